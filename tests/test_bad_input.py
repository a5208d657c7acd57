"""Bad input, table-driven: every case exits 2 with one line naming the problem and leaves no run folder."""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from advnets.checkpoint import load_checkpoint, save_checkpoint
from advnets.cli import app

MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
GOOD_PLUGIN = """
from advnets import Component, hookimpl
from advnets.losses import HingeLoss

@hookimpl
def register_components(register):
{body}
"""


def plugin(body: str) -> Callable[[Path, pytest.FixtureRequest], list[str]]:
    def setup(tmp: Path, request: pytest.FixtureRequest) -> list[str]:
        path = tmp / "my_plugin.py"
        path.write_text(GOOD_PLUGIN.format(body=body) if "register(" in body else body)
        return ["--plugin", str(path)]

    return setup


def mnist_folder(mangle: Callable[[Path], None]) -> Callable[[Path, pytest.FixtureRequest], list[str]]:
    """A copy of the real MNIST folder, damaged by ``mangle``."""

    def setup(tmp: Path, request: pytest.FixtureRequest) -> list[str]:
        mnist = request.getfixturevalue("mnist_dir")
        folder = tmp / "mnist"
        folder.mkdir()
        for name in MNIST_FILES:
            shutil.copy(mnist / name, folder / name)
        mangle(folder)
        return ["--data-dir", str(folder)]

    return setup


def truncate(folder: Path) -> None:
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100_000])


def mislabel(folder: Path) -> None:
    shutil.copy(folder / "train-labels-idx1-ubyte.gz", folder / "train-images-idx3-ubyte.gz")


def swap_splits(folder: Path) -> None:
    shutil.copy(folder / "t10k-images-idx3-ubyte.gz", folder / "train-images-idx3-ubyte.gz")


def short_labels(folder: Path) -> None:
    raw = gzip.decompress((folder / "train-labels-idx1-ubyte.gz").read_bytes())
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw[:-10]))


def existing(name: str, content: str) -> Callable[[Path, pytest.FixtureRequest], list[str]]:
    def setup(tmp: Path, request: pytest.FixtureRequest) -> list[str]:
        (tmp / name).write_text(content)
        return []

    return setup


def nonempty_out(tmp: Path, request: pytest.FixtureRequest) -> list[str]:
    (tmp / "taken").mkdir()
    (tmp / "taken" / "notes.txt").write_text("mine")
    return ["--out", str(tmp / "taken")]


def broken_checkpoint(change: Callable[[dict, dict], None]) -> Callable[[Path, pytest.FixtureRequest], list[str]]:
    """A run folder whose only checkpoint is a real one, altered by ``change(state, metadata)``."""

    def setup(tmp: Path, request: pytest.FixtureRequest) -> list[str]:
        source = BROKEN_SOURCE[0]
        state, metadata = load_checkpoint(source)
        change(state, metadata)
        folder = tmp / "old-run" / "checkpoints"
        folder.mkdir(parents=True)
        save_checkpoint(folder / source.name, state, metadata)
        return [str(tmp / "old-run")]

    return setup


def recorded_plugins(records: object) -> Callable[[Path, pytest.FixtureRequest], list[str]]:
    """A good run folder whose config.json records ``records`` as its plugin files ("changed": a real file, edited)."""

    def setup(tmp: Path, request: pytest.FixtureRequest) -> list[str]:
        args = broken_checkpoint(lambda s, m: None)(tmp, request)
        entries = records
        if records == "changed":
            (tmp / "p.py").write_text("# the plugin as it is now\n")
            entries = [{"path": str(tmp / "p.py"), "sha256": "0" * 64}]
        (tmp / "old-run" / "config.json").write_text(json.dumps({"plugin_files": entries}))
        (tmp / "old-run" / "metrics.jsonl").write_text(json.dumps({"event": "train", "step": 10, "d_loss": 1.0}) + "\n")
        return args

    return setup


def raw_checkpoint(data: bytes) -> Callable[[Path, pytest.FixtureRequest], list[str]]:
    def setup(tmp: Path, request: pytest.FixtureRequest) -> list[str]:
        folder = tmp / "old-run" / "checkpoints"
        folder.mkdir(parents=True)
        (folder / "step-000000010.safetensors").write_bytes(data)
        return [str(tmp / "old-run")]

    return setup


def fifo_checkpoint(tmp: Path, request: pytest.FixtureRequest) -> list[str]:
    folder = tmp / "old-run" / "checkpoints"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "step-000000010.safetensors")
    return [str(tmp / "old-run")]


def changed_byte(tmp: Path, request: pytest.FixtureRequest) -> list[str]:
    """A run folder whose only checkpoint had one byte of its RNG state flipped after it was written."""
    run = broken_checkpoint(lambda s, m: None)(tmp, request)[0]
    path = Path(run) / "checkpoints" / BROKEN_SOURCE[0].name
    data = bytearray(path.read_bytes())
    (length,) = struct.unpack("<Q", data[:8])
    entries = json.loads(data[8 : 8 + length])
    name = next(key for key in entries if key.startswith("rng"))
    data[8 + length + entries[name]["data_offsets"][0] + 64] ^= 0x01
    path.write_bytes(bytes(data))
    return [run]


def checkpoint_file(tmp: Path, request: pytest.FixtureRequest) -> list[str]:
    """A good run folder, named by its checkpoint file instead of the folder."""
    run = broken_checkpoint(lambda s, m: None)(tmp, request)[0]
    return [str(Path(run) / "checkpoints" / BROKEN_SOURCE[0].name)]


def empty_run(tmp: Path, request: pytest.FixtureRequest) -> list[str]:
    (tmp / "old-run" / "checkpoints").mkdir(parents=True)
    return [str(tmp / "old-run")]


def other_shape(state: dict, metadata: dict) -> None:
    metadata["config"]["generator"]["hidden"] = [32, 32]


def unknown_component(state: dict, metadata: dict) -> None:
    metadata["config"]["generator"]["name"] = "no-such-generator"


def no_config(state: dict, metadata: dict) -> None:
    del metadata["config"]


def side_file(name: str, kind: str) -> Callable[[Path, pytest.FixtureRequest], list[str]]:
    """A good run folder where ``name`` (a file the run writes, or a folder it keeps) is the wrong kind of thing."""

    def setup(tmp: Path, request: pytest.FixtureRequest) -> list[str]:
        run = broken_checkpoint(lambda s, m: None)(tmp, request)[0]
        target = Path(run) / name
        if kind == "folder":
            target.mkdir()
        elif kind == "file":
            target.write_text("not a folder")
        elif kind == "dangling link":
            target.symlink_to(tmp / "nowhere")
        else:
            os.mkfifo(target)
        return [run]

    return setup


BROKEN_SOURCE: list[Path] = []
RUN = ["run", "toy-gaussian"]
# (id, arguments, message, setup), by class: the keys name the classes docs/reliability.md counts.
TABLE: dict[str, list[tuple]] = {
    "names": [
        ("unknown preset", ["run", "mlp-mnst"], "unknown preset 'mlp-mnst' (did you mean: mlp-mnist, mlp-mnist-fast, mlp-mnist-lecture", None),
        ("unknown generator", [*RUN, "--set", "generator=mpl"], "unknown generator 'mpl' (did you mean: mlp?)", None),
        ("components of an unknown plugin", ["list", "components", "--from", "mnst"], "no loaded plugin is called 'mnst' (did you mean: mnist?)", None),
        ("unknown loss", [*RUN, "--set", "loss=hing"], "unknown loss 'hing' (did you mean: hinge?)", None),
        ("unknown optimizer", [*RUN, "--set", "g_optimizer=adma"], "unknown optimizer 'adma' (did you mean: adam?)", None),
        ("unknown callback", [*RUN, "--set", "callbacks.figure-2={}"], "unknown callback 'figure-2' (did you mean: figure-1?)", None),
        ("unknown metric", [*RUN, "--set", "eval.metrics.gaussian-w2={}"], "unknown metric 'gaussian-w2'", None),
        ("unknown trainer key", [*RUN, "--set", "trainer.kk=2"], "unknown setting 'trainer.kk' (did you mean: trainer.k", None),
        ("unknown top-level key", [*RUN, "--set", "sead=3"], "unknown setting 'sead' (did you mean: seed", None),
        ("unknown component setting", [*RUN, "--set", "generator.hiden=[8]"], "has no setting 'hiden' (did you mean: hidden?)", None),
        ("unknown option", [*RUN, "--bogus"], "No such option: --bogus", None),
        ("unknown noise", [*RUN, "--set", "trainer.noise=laplace"], "noise must be one of normal, uniform", None),
        ("unknown schedule", [*RUN, "--set", "trainer.lr_schedule=step"], "lr_schedule must be one of constant, linear, cosine", None),
        ("unknown precision", [*RUN, "--set", "trainer.precision=8"], "precision must be one of 32, bf16, 16", None),
        ("unknown device", [*RUN, "--device", "tpu"], "unknown device 'tpu'", None),
        ("no preset", ["run"], "name a preset", None),
        ("info unknown kind", ["info", "los", "hinge"], "unknown component kind 'los' (did you mean: loss?)", None),
        ("info unknown name", ["info", "loss", "hnge"], "unknown loss 'hnge' (did you mean: hinge?)", None),
        ("list unknown kind", ["list", "components", "--kind", "presets"], "unknown component kind 'presets' (did you mean: preset?)", None),
        ("unknown command", ["trian"], "No such command 'trian'", None),
        ("unknown dataset", [*RUN, "--set", "dataset=gausian-1d"], "unknown dataset 'gausian-1d'", None),
        ("unknown discriminator", [*RUN, "--set", "discriminator=mpl"], "unknown discriminator 'mpl'", None),
        ("unknown lr scheduler", [*RUN, "--set", "lr_scheduler=warmpu"], "unknown lr-scheduler 'warmpu'", None),
        ("unknown logger", [*RUN, "--logger", "tensorbord"], "unknown logger 'tensorbord'", None),
        ("unknown objective", [*RUN, "--set", "objective=gna"], "unknown objective 'gna'", None),
        ("unknown eval mode", [*RUN, "--set", "eval.mode=maximum"], "eval.mode must be min, max or null", None),
        ("nested component missing", [*RUN, "--set", "discriminator=augmented"], "discriminator.discriminator: choose a discriminator", None),
        ("unknown nested component", [*RUN, "--set", "discriminator=augmented", "--set", "discriminator.discriminator=mpl"],
         "discriminator 'augmented', setting 'discriminator': unknown discriminator 'mpl'", None),
        ("unknown nested setting", [*RUN, "--set", "discriminator=augmented", "--set", 'discriminator.discriminator={"name": "toy-mlp", "hiden": [8]}'],
         "setting 'discriminator': discriminator 'toy-mlp' has no setting 'hiden' (did you mean: hidden?)", None),
        ("setting below a plain setting", [*RUN, "--set", "generator.hidden.width=8"], "generator.hidden is list", None),
    ],
    "types and syntax": [
        ("string for int", [*RUN, "--set", "trainer.k=two"], 'trainer.k must be an int, got string "two"', None),
        ("float for int", [*RUN, "--set", "trainer.batch_size=12.5"], "trainer.batch_size must be an int, got float", None),
        ("bool for int", [*RUN, "--set", "trainer.steps=true"], "trainer.steps must be an int, got bool", None),
        ("string for float", [*RUN, "--set", "d_optimizer.lr=fast"], "error: d_optimizer.lr must be a float, got string", None),
        ("number for list", [*RUN, "--set", "generator.hidden=64"], "generator.hidden must be a list, got int", None),
        ("string for bool", [*RUN, "--set", "trainer.nan_guard=maybe"], "trainer.nan_guard must be a bool", None),
        ("section as value", [*RUN, "--set", "trainer=3"], "trainer is a section", None),
        ("component as list", [*RUN, "--set", "loss=[1]"], "loss must be a component name", None),
        ("set without =", [*RUN, "--set", "trainer.k"], "expected KEY=VALUE", None),
        ("set with empty key", [*RUN, "--set", "=3"], "expected KEY=VALUE", None),
        ("not a number", [*RUN, "--steps", "ten"], "Invalid value for '--steps'", None),
        ("set the run id", [*RUN, "--set", "run_id=0123"], "run_id names a run's folder and checkpoints", None),
        ("set changes", [*RUN, "--set", "changes=[]"], "changes records what a resume changed", None),
        ("list for a float", [*RUN, "--set", "g_optimizer.lr=[1]"], "error: g_optimizer.lr must be a float, got list", None),
        ("object for an int", [*RUN, "--set", 'trainer.k={"a": 1}'], 'trainer.k must be an int, got object {"a": 1}', None),
        ("null for a bool", [*RUN, "--set", "trainer.nan_guard=null"], "trainer.nan_guard must be a bool", None),
        ("text for a list", [*RUN, "--set", "d_optimizer.betas=fast"], 'optimizer.betas must be a list, got string "fast"', None),
    ],
    "ranges and sizes": [
        ("k = 0", [*RUN, "--set", "trainer.k=0"], "k (discriminator steps per generator step) must be >= 1", None),
        ("zero batch", [*RUN, "--set", "trainer.batch_size=0"], "batch_size must be >= 1", None),
        ("negative batch", [*RUN, "--set", "trainer.batch_size=-4"], "batch_size must be >= 1", None),
        ("G's samples shaped unlike the data", [*RUN, "--set", "generator=mlp", "--set", "generator.out_shape=[2]"], "the generator makes samples of shape (2,), the dataset's are (1,)", None),
        ("batch larger than the data", [*RUN, "--set", "trainer.batch_size=50000"], "fewer than one batch needs", None),
        ("negative lr", [*RUN, "--set", "g_optimizer.lr=-1e-4"], "g_optimizer: adam: lr must be > 0", None),
        ("zero lr", [*RUN, "--set", "d_optimizer.lr=0"], "d_optimizer: adam: lr must be > 0", None),
        ("beta of 1", [*RUN, "--set", "d_optimizer.betas=[0.5, 1.0]"], "betas must be two numbers in [0, 1)", None),
        ("zero latent size", [*RUN, "--set", "generator.latent_dim=0"], "latent_dim must be >= 1", None),
        ("zero hidden width", [*RUN, "--set", "generator.hidden=[0, 8]"], "generator: hidden must be a list of positive integers", None),
        ("negative sigma", [*RUN, "--set", "dataset.sigma=-1"], "dataset.sigma must be > 0", None),
        ("zero epochs", [*RUN, "--epochs", "0"], "epochs must be >= 1", None),
        ("negative steps", [*RUN, "--steps", "-5"], "steps must be in [1, 2**62] (the step counters are 64-bit), got -5", None),
        ("zero log interval", [*RUN, "--set", "trainer.log_every=0"], "log_every must be >= 1", None),
        ("zero checkpoints kept", [*RUN, "--set", "checkpoint.keep=0"], "checkpoint.keep must be >= 1", None),
        ("negative interval", [*RUN, "--set", "checkpoint.every_steps=-1"], "every_epochs and every_steps must be >= 0", None),
        ("ema decay 1", [*RUN, "--set", "trainer.ema_decay=1.0"], "ema_decay must be in [0, 1)", None),
        ("negative sample seed", ["sample", "--seed", "-1"], "--seed must be in [0, 2**63), got -1", broken_checkpoint(lambda s, m: None)),
        ("eval seed of 2**63", ["eval", "--seed", str(2**63)], f"--seed must be in [0, 2**63), got {2**63}", broken_checkpoint(lambda s, m: None)),
        ("float16 on the CPU", [*RUN, "--set", "trainer.precision=16", "--device", "cpu"], "needs CUDA; on cpu use bf16", None),
        ("unknown cuda_graphs", [*RUN, "--set", "trainer.cuda_graphs=yes"], "trainer.cuda_graphs must be one of auto, on, off, got 'yes'", None),
        ("jsonl log outside the run folder", [*RUN, "--set", "loggers.jsonl.filename=../../escape.jsonl"], "loggers.jsonl.filename must be a file name ending in .jsonl in the run folder, with no folder part; got '../../escape.jsonl'", None),
        ("jsonl log at an absolute path", [*RUN, "--set", "loggers.jsonl.filename=/tmp/m.jsonl"], "loggers.jsonl.filename must be a file name ending in .jsonl in the run folder", None),
        ("jsonl log over the run's config", [*RUN, "--set", "loggers.jsonl.filename=config.json"], "loggers.jsonl.filename must be a file name ending in .jsonl in the run folder, with no folder part; got 'config.json'", None),
        ("csv logs outside the run folder", [*RUN, "--logger", "csv", "--set", "loggers.csv.prefix=../../escape"], "loggers.csv.prefix must start a file name in the run folder, with no folder part; got '../../escape'", None),
        ("CUDA graphs on the CPU", [*RUN, "--set", "trainer.cuda_graphs=on", "--device", "cpu"], "trainer.cuda_graphs is on, but CUDA graphs need a CUDA device; this run is on cpu", None),
        ("absent CUDA", [*RUN, "--device", "cuda:3"], "CUDA is not available here", None),
        ("best that no metric reports", [*RUN, "--set", "eval.best=w2"], "eval.best is 'w2', but the metrics report only w1, ks, js", None),
        ("histogram of no bins", [*RUN, "--set", "eval.metrics.gaussian-js.bins=0"], "gaussian-js: need bins >= 1 and width > 0", None),
        ("sample grid of 1-D data", [*RUN, "--set", "callbacks.sample-grid={}"], "sample-grid needs image data", None),
        ("Figure 1 of images", ["run", "mlp-mnist", "--set", "callbacks.figure-1={}"], "figure-1 draws 1-D data; dataset 'mnist'", mnist_folder(lambda f: None)),
        ("seed too large", [*RUN, "--seed", str(2**64)], "seed must be in [0, 2**63)", None),
        ("real images, none asked for", ["eval", "--real", "toy-gaussian", "--n", "0"], "--n must be >= 1", None),
        ("sample grid rows of zero", ["sample", ".", "--nrow", "0"], "--n and --nrow must be >= 1", None),
        ("best without metrics", [*RUN, "--set", "eval.metrics={}", "--set", "eval.best=w1"], "eval.best is set, but eval.metrics names no metric", None),
        ("optimizer eps below 0", [*RUN, "--set", "d_optimizer.eps=-1"], "adam: Invalid epsilon value: -1.0", None),
        ("device meta", [*RUN, "--device", "meta"], "device 'meta' cannot train or sample", None),
        ("sample on device meta", ["sample", "--device", "meta"], "device 'meta' cannot train or sample", broken_checkpoint(lambda s, m: None)),
        ("eval on device meta", ["eval", "--device", "meta", "--n", "100", "--metric", "gaussian-w1"], "device 'meta' cannot train or sample", broken_checkpoint(lambda s, m: None)),
        ("sample billions", ["sample", "--n", "3000000000", "--out", "x.safetensors"], "--n 3,000,000,000: the samples alone take", broken_checkpoint(lambda s, m: None)),
        ("sample zero", ["sample", ".", "--n", "0"], "--n and --nrow must be >= 1", None),
        ("sample --nearest of 1-D data", ["sample", "--nearest"], "--nearest draws images; this run's data (gaussian-1d) are samples of shape (1,)", broken_checkpoint(lambda s, m: None)),
        ("sample --interpolate of 1-D data", ["sample", "--interpolate"], "--interpolate draws images", broken_checkpoint(lambda s, m: None)),
        ("sample both figures", ["sample", ".", "--nearest", "--interpolate"], "--nearest and --interpolate draw different figures", None),
        ("ema norm batches below 0", [*RUN, "--set", "trainer.ema_norm_batches=-1"], "ema_norm_batches must be in [0, 100000], got -1", None),
        ("ema norm batches beyond the bound", [*RUN, "--set", "trainer.ema_norm_batches=1000000"], "ema_norm_batches must be in [0, 100000], got 1000000", None),
        ("ema start below 0", [*RUN, "--set", "trainer.ema_start=-5"], "ema_start must be >= 0, got -5", None),
        ("ema warm-up below 0", [*RUN, "--set", "trainer.ema_warmup=-3"], "ema_warmup must be >= 0, got -3", None),
        ("an extra player's ema warm-up below 0", ["run", "bigan-mnist", "--set", "players.encoder.ema_warmup=-2"], "players.encoder: ema_warmup must be >= 0, got -2", mnist_folder(lambda f: None)),
        ("no bad steps allowed", [*RUN, "--set", "trainer.max_bad_steps=0"], "max_bad_steps must be >= 1, got 0", None),
        ("k schedule with k of 0", [*RUN, "--set", "trainer.k_schedule=[[0, 0]]"], "trainer.k_schedule: every k must be >= 1", None),
        ("evaluation of no samples", [*RUN, "--set", "eval.n_samples=0"], "eval.n_samples must be >= 1, got 0", None),
        ("negative evaluation interval", [*RUN, "--set", "eval.every_epochs=-1"], "eval: every_epochs and every_steps must be >= 0", None),
        ("warm-up of negative steps", [*RUN, "--set", "lr_scheduler=warmup", "--set", "lr_scheduler.warmup_steps=-1"], "lr_scheduler warmup: warmup_steps must be >= 0, got -1", None),
        ("step schedule gamma 0", [*RUN, "--set", "lr_scheduler=step", "--set", "lr_scheduler.gamma=0"], "lr_scheduler step: every_steps must be >= 1 and gamma in (0, 1]", None),
        ("threads 0", [*RUN, "--threads", "0"], "Invalid value for '--threads': Input should be greater than or equal to 1", None),
    ],
    "config files": [
        ("config file not JSON", ["run", "config.json"], "config.json: not a readable JSON config", existing("config.json", "{nope")),
        ("config file not an object", ["run", "config.json"], "a config must be a JSON object", existing("config.json", "[1, 2]")),
        ("config file unknown key", ["run", "config.json"], "unknown setting 'trainr'", existing("config.json", json.dumps({"trainr": {}}))),
        ("config file missing", ["run", "missing.json"], "missing.json: no such config file", None),
        ("config file records a gone plugin", ["run", "cfg.json"], "cfg.json records the plugin file /gone.py", existing("cfg.json", json.dumps({"preset": "toy-gaussian", "plugin_files": [{"path": "/gone.py", "sha256": "0" * 64}]}))),
        ('config: a list where a section belongs', ["run", "c.json"], 'c.json: trainer is a section; set one of its keys', existing("c.json", json.dumps({'preset': 'toy-gaussian', 'trainer': []}))),
        ('config: k null', ["run", "c.json"], 'c.json: trainer.k must be an int, got null', existing("c.json", json.dumps({'preset': 'toy-gaussian', 'trainer': {'k': None}}))),
        ('config: a number where a name belongs', ["run", "c.json"], 'c.json: loss must be a component name (a string), got int', existing("c.json", json.dumps({'preset': 'toy-gaussian', 'loss': 5}))),
        ('config: settings without a name', ["run", "c.json"], "loss 'non-saturating' has no setting 'margin'", existing("c.json", json.dumps({'preset': 'toy-gaussian', 'loss': {'margin': 1}}))),
        ('config: generator null', ["run", "c.json"], 'c.json: generator must be a component name (a string), got null', existing("c.json", json.dumps({'preset': 'toy-gaussian', 'generator': None}))),
        ('config: dataset name null', ["run", "c.json"], 'c.json: dataset must be a component name (a string), got null', existing("c.json", json.dumps({'preset': 'toy-gaussian', 'dataset': {'name': None}}))),
        ('config: metrics as a list', ["run", "c.json"], 'c.json: eval.metrics must be an object of {name: {settings}}', existing("c.json", json.dumps({'preset': 'toy-gaussian', 'eval': {'metrics': []}}))),
        ('config: callbacks as a list', ["run", "c.json"], 'c.json: callbacks must be an object of {name: {settings}}', existing("c.json", json.dumps({'preset': 'toy-gaussian', 'callbacks': []}))),
        ('config: logger settings as a number', ["run", "c.json"], 'c.json: loggers must be an object of {name: {settings}}', existing("c.json", json.dumps({'preset': 'toy-gaussian', 'loggers': {'csv': 3}}))),
        ('config: players as a list', ["run", "c.json"], 'c.json: players must be an object of {player: {module: ..., optimizer: ...}}', existing("c.json", json.dumps({'preset': 'toy-gaussian', 'players': []}))),
        ('config: seed as text', ["run", "c.json"], 'c.json: seed must be an int, got string "abc"', existing("c.json", json.dumps({'preset': 'toy-gaussian', 'seed': 'abc'}))),
        ('config: seed as a fraction', ["run", "c.json"], 'c.json: seed must be an int, got float 1.5', existing("c.json", json.dumps({'preset': 'toy-gaussian', 'seed': 1.5}))),
        ('config: device as a number', ["run", "c.json"], "unknown device '3'", existing("c.json", json.dumps({'preset': 'toy-gaussian', 'device': 3}))),
        ('config: keep below 1', ["run", "c.json"], 'checkpoint.keep must be >= 1, got -1', existing("c.json", json.dumps({'preset': 'toy-gaussian', 'checkpoint': {'keep': -1}}))),
        ('config: batch as a flag', ["run", "c.json"], 'c.json: trainer.batch_size must be an int, got bool true', existing("c.json", json.dumps({'preset': 'toy-gaussian', 'trainer': {'batch_size': True}}))),
        ('config: best as a number', ["run", "c.json"], "eval.best is '3', but the metrics report only", existing("c.json", json.dumps({'preset': 'toy-gaussian', 'eval': {'best': 3}}))),
        ('config: mode middle', ["run", "c.json"], "eval.mode must be min, max or null (the metric's own direction), got 'middle'", existing("c.json", json.dumps({'preset': 'toy-gaussian', 'eval': {'mode': 'middle'}}))),
        ('config: noise gaussian', ["run", "c.json"], "noise must be one of normal, uniform, got 'gaussian'", existing("c.json", json.dumps({'preset': 'toy-gaussian', 'trainer': {'noise': 'gaussian'}}))),
        ('config: preset as a number', ["run", "c.json"], "c.json: preset must be a preset's name (a string), got int", existing("c.json", json.dumps({'preset': 5}))),
        ('config: k schedule as text', ["run", "c.json"], 'c.json: trainer.k_schedule must be a list, got string "fast"', existing("c.json", json.dumps({'preset': 'toy-gaussian', 'trainer': {'k_schedule': 'fast'}}))),
        ('config: k schedule of singles', ["run", "c.json"], 'trainer.k_schedule must be a list of [step, k] pairs of integers', existing("c.json", json.dumps({'preset': 'toy-gaussian', 'trainer': {'k_schedule': [[0]]}}))),
        ('config: ema decay of 2', ["run", "c.json"], 'ema_decay must be in [0, 1), got 2.0', existing("c.json", json.dumps({'preset': 'toy-gaussian', 'trainer': {'ema_decay': 2}}))),
        ('config: unknown lr scheduler', ["run", "c.json"], "c.json: unknown lr-scheduler 'fancy'", existing("c.json", json.dumps({'preset': 'toy-gaussian', 'lr_scheduler': 'fancy'}))),
        ('config: precision 8', ["run", "c.json"], "precision must be one of 32, bf16, 16, got '8'", existing("c.json", json.dumps({'preset': 'toy-gaussian', 'trainer': {'precision': '8'}}))),
        ('config: evaluation seed below 0', ["run", "c.json"], 'eval.seed must be in [0, 2**63), got -1', existing("c.json", json.dumps({'preset': 'toy-gaussian', 'eval': {'seed': -1}}))),
        ('config: 2**70 steps', ["run", "c.json"], 'steps must be in [1, 2**62]', existing("c.json", json.dumps({'preset': 'toy-gaussian', 'trainer': {'steps': 1180591620717411303424}}))),
        ('config: 2**62 epochs', ["run", "c.json"], 'epochs are more than 2**62 steps', existing("c.json", json.dumps({'preset': 'toy-gaussian', 'trainer': {'epochs': 4611686018427387904}}))),
        ('config: 2**40 evaluation samples', ["run", "c.json"], 'eval.n_samples 1,099,511,627,776: the samples alone take', existing("c.json", json.dumps({'preset': 'toy-gaussian', 'eval': {'n_samples': 1099511627776}}))),
        ('config: a layer of 2**40 units', ["run", "c.json"], "generator 'toy-mlp' cannot be built with these settings: RuntimeError", existing("c.json", json.dumps({'preset': 'toy-gaussian', 'generator': {'name': 'toy-mlp', 'hidden': [1099511627776]}}))),
        ("config: nested 100,000 deep", ["run", "c.json"], "c.json: not a readable JSON config", existing("c.json", "[" * 100000 + "]" * 100000)),
        ("config: YAML that would run code", ["run", "c.yaml"], "c.yaml: not a readable YAML config (could not determine a constructor", existing("c.yaml", "preset: !!python/object/apply:os.system ['echo hi']\n")),
        ("config: a TOML date", ["run", "c.toml"], "c.toml: seed: a date is not a setting value", existing("c.toml", 'preset = "toy-gaussian"\nseed = 1979-05-27\n')),
        ("config: a folder named like a config", ["run", "c.json"], "c.json: not a readable JSON config", lambda tmp, request: (tmp / "c.json").mkdir() or []),
        ("config: ema norm batches as text", ["run", "c.json"], 'c.json: trainer.ema_norm_batches must be an int, got string "many"', existing("c.json", json.dumps({"preset": "toy-gaussian", "trainer": {"ema_norm_batches": "many"}}))),
        ("config: lr scheduler as a list", ["run", "c.json"], "c.json: lr_scheduler must be a component name", existing("c.json", json.dumps({"preset": "toy-gaussian", "lr_scheduler": [1]}))),
        ("config: device null", ["run", "c.json"], "c.json: device must be a string, got null", existing("c.json", json.dumps({"preset": "toy-gaussian", "device": None}))),
        ("config: an empty file", ["run", "c.json"], "c.json: not a readable JSON config", existing("c.json", "")),
    ],
    "data": [
        ("data dir not text", ["run", "mlp-mnist", "--set", "dataset.data_dir=[1]"], "dataset.data_dir must be a folder name", None),
        ("data dir for a dataset without one", [*RUN, "--data-dir", "/tmp"], "dataset 'gaussian-1d' has no setting 'data_dir'", None),
        ("no MNIST and no download", ["run", "mlp-mnist", "--data-dir", "/nonexistent/mnist", "--set", "dataset.download=false"], "mnist: no IDX files in /nonexistent/mnist", None),
        ("MNIST file missing", ["run", "mlp-mnist"], "incomplete data folder, missing", mnist_folder(lambda f: (f / "t10k-labels-idx1-ubyte.gz").unlink())),
        ("MNIST file truncated", ["run", "mlp-mnist"], "train-images-idx3-ubyte.gz: cannot read", mnist_folder(truncate)),
        ("MNIST labels as images", ["run", "mlp-mnist"], "expected an IDX image file (magic 2051), found magic 2049 (a label file)", mnist_folder(mislabel)),
        ("MNIST test images as train", ["run", "mlp-mnist"], "train-images-idx3-ubyte.gz: 10000 images but train-labels-idx1-ubyte.gz has 60000 labels", mnist_folder(swap_splits)),
        ("MNIST test split as train", ["run", "mlp-mnist"], "expected 60000 train images, found 10000", mnist_folder(lambda f: [shutil.copy(f / n.replace("train", "t10k"), f / n) for n in MNIST_FILES[:2]])),
        ("MNIST labels cut short", ["run", "mlp-mnist"], "IDX label file is truncated or padded", mnist_folder(short_labels)),
    ],
    "plugins": [
        ("plugin syntax error", [*RUN], "my_plugin.py: SyntaxError", plugin("def broken(:\n")),
        ("plugin import error", [*RUN], "ModuleNotFoundError: No module named 'nowhere'", plugin("import nowhere\n")),
        ("plugin misspelled hook", [*RUN], "unknown hook 'register_component'", plugin("from advnets import hookimpl\n@hookimpl\ndef register_component(register):\n    pass\n")),
        ("plugin registers twice", [*RUN], "registers loss 'twice' twice", plugin("    register(Component(kind='loss', name='twice', factory=HingeLoss))\n    register(Component(kind='loss', name='twice', factory=HingeLoss))")),
        ("plugin invalid name", [*RUN], "invalid component name 'My_Loss'", plugin("    register(Component(kind='loss', name='My_Loss', factory=HingeLoss))")),
        ("plugin takes a built-in name", [*RUN], "loss 'hinge' is registered by two plugins: 'advnets' and 'my_plugin'", plugin("    register(Component(kind='loss', name='hinge', factory=HingeLoss))")),
        ("plugin exits at import", [*RUN], "my_plugin.py: SystemExit: the plugin called sys.exit(0)", plugin("import sys\nsys.exit(0)\n")),
        ("plugin file missing", [*RUN, "--plugin", "/nonexistent/plugin.py"], "plugin file /nonexistent/plugin.py does not exist", None),
        ("resume: recorded plugin gone", ["run", "--resume"], "records the plugin file /nonexistent/p.py, which is no longer there", recorded_plugins([{"path": "/nonexistent/p.py", "sha256": "0" * 64}])),
        ("sample: recorded plugin gone", ["sample"], "records the plugin file /nonexistent/p.py, which is no longer there", recorded_plugins([{"path": "/nonexistent/p.py", "sha256": "0" * 64}])),
        ("eval: recorded plugin gone", ["eval"], "records the plugin file /nonexistent/p.py, which is no longer there", recorded_plugins([{"path": "/nonexistent/p.py", "sha256": "0" * 64}])),
        ("plot: recorded plugin gone", ["plot"], "records the plugin file /nonexistent/p.py, which is no longer there", recorded_plugins([{"path": "/nonexistent/p.py", "sha256": "0" * 64}])),
        ("resume: recorded plugin changed", ["run", "--resume"], "p.py changed since", recorded_plugins("changed")),
        ("resume: plugin_files not a list", ["run", "--resume"], "plugin_files must be a list", recorded_plugins("x")),
        ("resume: plugin_files bad hash", ["run", "--resume"], "plugin_files[0].sha256 must be 64 lowercase hexadecimal digits", recorded_plugins([{"path": "/p.py", "sha256": "xyz"}])),
        ("resume: plugin_files extra field", ["run", "--resume"], "plugin_files[0] must be an object with exactly path and sha256", recorded_plugins([{"path": "/p.py", "sha256": "0" * 64, "x": 1}])),
        ("checkpoint plugin_files not a list", ["run", "--resume"], "plugin_files must be a list", broken_checkpoint(lambda s, m: m["config"].__setitem__("plugin_files", {"a": 1}))),
        ("plugin is a folder", [*RUN, "--plugin", "."], "is a folder; --plugin and ADVNETS_PLUGINS take Python files", None),
        ("plugin error with its reason on line 2", [*RUN, "--set", "loss=strict"], "1 validation error for Strict; margin; Input should be greater than 0", plugin("    def make(margin: float = 1.0):\n        raise ValueError('1 validation error for Strict\\nmargin\\n  Input should be greater than 0')\n    register(Component(kind='loss', name='strict', factory=make))")),
        ("set plugin_files", [*RUN, "--set", "plugin_files=[]"], "plugin_files records the --plugin files a run loaded", None),
    ],
    "checkpoints and resume": [
        ("resume a missing folder", ["run", "--resume", "no-such-run"], "no-such-run: no such run folder", None),
        ("resume with --set of k", ["run", "--set", "trainer.k=2", "--resume"], "trainer.k cannot change when resuming", broken_checkpoint(lambda s, m: None)),
        ("resume with new betas", ["run", "--set", "d_optimizer.betas=[0.9, 0.99]", "--resume"], "d_optimizer.betas cannot change when resuming", broken_checkpoint(lambda s, m: None)),
        ("resume with --precision", ["run", "--precision", "bf16", "--resume"], "trainer.precision cannot change when resuming", broken_checkpoint(lambda s, m: None)),
        ("resume with another loss", ["run", "--set", "loss=hinge", "--resume"], "loss.name cannot change when resuming", broken_checkpoint(lambda s, m: None)),
        ("resume with another best", ["run", "--set", "eval.best=gaussian-w1", "--resume"], "eval.best cannot change when resuming", broken_checkpoint(lambda s, m: None)),
        ("resume with --out", ["run", "--out", "elsewhere", "--resume"], "--out cannot change a run being resumed", broken_checkpoint(lambda s, m: None)),
        ("resume with a zero lr", ["run", "--set", "g_optimizer.lr=0", "--resume"], "adam: lr must be > 0, got 0.0", broken_checkpoint(lambda s, m: None)),
        ("resume with an unknown setting", ["run", "--set", "trainer.kk=2", "--resume"], "unknown setting 'trainer.kk'", broken_checkpoint(lambda s, m: None)),
        ("checkpoint changes not a list", ["run", "--resume"], "changes must be a list", broken_checkpoint(lambda s, m: m["config"].__setitem__("changes", "x"))),
        ("checkpoint change without a step", ["run", "--resume"], "changes[0] must be", broken_checkpoint(lambda s, m: m["config"].__setitem__("changes", [{"set": {}, "was": {}}]))),
        ("resume to an earlier step", ["run", "--steps", "5", "--resume"], "is at step 10 already; --steps 5 ends at step 5, before it", broken_checkpoint(lambda s, m: None)),
        ("resume without checkpoints", ["run", "--resume"], "no loadable checkpoint", empty_run),
        ("resume a truncated checkpoint", ["run", "--resume"], "step-000000010.safetensors: file is truncated", raw_checkpoint(b"\x10\x00\x00\x00\x00\x00\x00\x00{")),
        ("resume a named pipe", ["run", "--resume"], "step-000000010.safetensors: not a regular file (a named pipe)", fifo_checkpoint),
        ("resume a pickle", ["run", "--resume"], "not a safetensors file", raw_checkpoint(b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94.")),
        ("resume another model shape", ["run", "--resume"], "does not fit the model its config builds", broken_checkpoint(other_shape)),
        ("resume an unknown component", ["run", "--resume"], "unknown generator 'no-such-generator'", broken_checkpoint(unknown_component)),
        ("resume without a config", ["run", "--resume"], "carries no advnets run configuration", broken_checkpoint(no_config)),
        ("resume under another preset", ["run", "mlp-mnist", "--resume"], "is a run of preset 'toy-gaussian', not 'mlp-mnist'", broken_checkpoint(lambda s, m: None)),
        ("resume with --seed 0", ["run", "--seed", "0", "--resume"], "seed cannot change when resuming", broken_checkpoint(lambda s, m: None)),
        ("sample another model shape", ["sample"], "does not fit the generator its config builds", broken_checkpoint(other_shape)),
        ("sample a pickle", ["sample"], "not a safetensors file", raw_checkpoint(b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94.")),
        ("eval a run without checkpoints", ["eval"], "no loadable checkpoint", empty_run),
        ("resume a checkpoint changed after writing", ["run", "--resume"], "damaged checkpoint (its contents do not match their checksum", changed_byte),
        ("sample a checkpoint changed after writing", ["sample"], "damaged checkpoint (its contents do not match their checksum", changed_byte),
        ("resume a checkpoint file", ["run", "--resume"], "step-000000010.safetensors: a checkpoint file, not a run folder; --resume takes the run folder", checkpoint_file),
        ("plot a run without metrics", ["plot"], "no metrics.jsonl to plot", empty_run),
    ],
    "side files": [
        ("metrics log is a folder", ["run", "--resume"], "metrics.jsonl: the metrics log is written here, but this is a folder", side_file("metrics.jsonl", "folder")),
        ("metrics log is a pipe", ["run", "--resume"], "metrics.jsonl: the metrics log is written here, but this is not a regular file", side_file("metrics.jsonl", "pipe")),
        ("metrics log is a dangling link", ["run", "--resume"], "metrics.jsonl: the metrics log is written here, but this is a link to nothing", side_file("metrics.jsonl", "dangling link")),
        ("training plot is a folder", ["run", "--resume"], "training.png: the training plot is written here, but this is a folder", side_file("training.png", "folder")),
        ("animation is a folder", ["run", "--resume"], "samples.gif: the animation of the sample grids is written here, but this is a folder", side_file("samples.gif", "folder")),
        ("csv eval log is a pipe", ["run", "--logger", "csv", "--resume"], "metrics-eval.csv: the metrics log is written here, but this is not a regular file", side_file("metrics-eval.csv", "pipe")),
        ("csv log is a folder", ["run", "--logger", "csv", "--resume"], "metrics-train.csv: the metrics log is written here, but this is a folder", side_file("metrics-train.csv", "folder")),
        ("plot of a metrics log that is a folder", ["plot"], "metrics.jsonl: not a file (a folder), so there is nothing to plot", side_file("metrics.jsonl", "folder")),
    ],
    "torchrun": [
        ("--nproc 0", [*RUN, "--nproc", "0"], "--nproc must be >= 1, got 0", None),
        ("--nproc with k of 0", [*RUN, "--nproc", "2", "--set", "trainer.k=0"], "k (discriminator steps per generator step) must be >= 1", None),
        ("--nproc with an unknown loss", [*RUN, "--nproc", "2", "--set", "loss=hing"], "unknown loss 'hing' (did you mean: hinge?)", None),
        ("--nproc with a bad config file", ["run", "c.json", "--nproc", "2"], "c.json: trainer.k must be an int, got null", existing("c.json", json.dumps({"preset": "toy-gaussian", "trainer": {"k": None}}))),
        ("--nproc with a missing plugin", [*RUN, "--nproc", "2", "--plugin", "/nonexistent/p.py"], "plugin file /nonexistent/p.py does not exist", None),
        ("--nproc resume of another world size", ["run", "--nproc", "2", "--resume"], "trained by 1 process(es); resume it with the same number (--nproc 1), not 2", broken_checkpoint(lambda s, m: None)),
        ("--nproc with a batch larger than the data", [*RUN, "--nproc", "2", "--set", "trainer.batch_size=15000"], "fewer than one", None),
    ],
    "output files": [
        ("output folder not empty", [*RUN], "already exists and is not empty", nonempty_out),
        ("output folder is a file", [*RUN, "--out", "notes.txt"], "output folder notes.txt is a file; choose another output folder (--out)", existing("notes.txt", "mine")),
        ("output folder under a file", [*RUN, "--out", "/etc/passwd/run"], "cannot create output folder /etc/passwd/run", None),
        ("sample to a text file", ["sample", "--out", "x.txt"], "cannot write x.txt: use a .png or .safetensors file name", broken_checkpoint(lambda s, m: None)),
        ("sample into a missing folder", ["sample", "--out", "nowhere/x.png"], "folder nowhere does not exist", broken_checkpoint(lambda s, m: None)),
        ("sample over a file", ["sample", ".", "--out", "grid.png"], "grid.png already exists; give --force to overwrite it", lambda tmp, request: (tmp / "grid.png").write_bytes(b"mine") and []),
    ],
}
CASES = [(f"{kind}: {case[0]}", *case[1:]) for kind, cases in TABLE.items() for case in cases]


@pytest.fixture(scope="module", autouse=True)
def a_real_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("source") / "run"
    result = CliRunner().invoke(app, ["run", "toy-gaussian", "--steps", "10", "--out", str(out), "--set", "callbacks={}", "--set", "eval.metrics={}"])
    assert result.exit_code == 0, result.output
    BROKEN_SOURCE[:] = [out / "checkpoints" / "step-000000010.safetensors"]


def listing(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` with a digest of its bytes (folders, pipes and links by kind)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not path.is_file():
            found[str(path.relative_to(folder))] = "link" if path.is_symlink() else ("folder" if path.is_dir() else "other")
        else:
            found[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def test_the_table_is_long_enough():
    assert len(CASES) >= 200 and len({case[0] for case in CASES}) == len(CASES)
    assert all(len(cases) >= 5 for cases in TABLE.values())


@pytest.mark.parametrize("name, args, message, setup", CASES, ids=[case[0] for case in CASES])
def test_bad_input(tmp_path, monkeypatch, request, name, args, message, setup):
    monkeypatch.chdir(tmp_path)
    extra = setup(tmp_path, request) if setup is not None else []
    before = listing(tmp_path)
    result = CliRunner().invoke(app, [*args, *extra], env={"ADVNETS_PLUGINS": "", "ADVNETS_LOAD_PLUGINS": None})
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    after = listing(tmp_path)
    after.pop("old-run/.lock", None)  # a refused resume takes the folder's lock and lets it go
    assert after == before  # no partial run folder, every earlier file byte for byte
