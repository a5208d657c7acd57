"""The command line: listings, info, bad input (exit 2, one line), plugin files, resume, sample, signals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from typer.testing import CliRunner

from advnets.checkpoint import load_checkpoint
from advnets.cli import app

runner = CliRunner()

PLUGIN = '''
"""A third-party plugin written outside the repository: one new loss."""
import torch.nn.functional as F
from advnets import Component, GANLoss, hookimpl


class SoftHinge(GANLoss):
    """Hinge loss with softplus instead of relu."""

    equilibrium = None

    def __init__(self, margin: float = 1.0):
        self.margin = margin

    def discriminator_loss(self, real, fake):
        return F.softplus(self.margin - real).mean() + F.softplus(self.margin + fake).mean()

    def generator_loss(self, fake):
        return -fake.mean()


@hookimpl
def register_components(register):
    register(Component(kind="loss", name="soft-hinge", factory=SoftHinge))
'''


def invoke(*args, env=None):
    return runner.invoke(app, list(args), env={"ADVNETS_PLUGINS": "", **(env or {})})


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.startswith("advnets 0.")


def test_list_components_json_has_every_kind_with_its_plugin():
    result = invoke("list", "components", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    kinds = {row["kind"] for row in rows}
    assert {"generator", "discriminator", "dataset", "loss", "metric", "preset", "optimizer", "callback"} <= kinds
    by_key = {(row["kind"], row["name"]): row for row in rows}
    assert by_key[("preset", "mlp-mnist")]["plugin"] == "mnist"
    assert by_key[("preset", "mlp-mnist")]["aliases"] == ["mlp-mnist-fast"] and ("preset", "mlp-mnist-fast") not in by_key
    assert by_key[("loss", "hinge")]["plugin"] == "advnets"
    assert by_key[("dataset", "gaussian-1d")]["defaults"]["mu"] == 4.0


def test_list_components_filters():
    losses = json.loads(invoke("list", "components", "--kind", "loss", "--json").stdout)
    assert {r["name"] for r in losses} == {"minimax", "non-saturating", "least-squares", "hinge", "wasserstein", "relativistic-average"}
    mnist_only = json.loads(invoke("list", "components", "--from", "mnist", "--json").stdout)
    assert {r["plugin"] for r in mnist_only} == {"mnist"}
    named = json.loads(invoke("list", "components", "--name", "*mnist*", "--json").stdout)
    assert {r["name"] for r in named} == {"mnist", "fashion-mnist", "mlp-mnist", "mlp-mnist-lecture", "cgan-mnist", "bigan-mnist", "mnist-fid", "mnist-score", "mnist-modes", "mnist-cond-acc"}
    table = invoke("list", "components", "--kind", "preset")
    assert "mlp-mnist (alias" in table.stdout and "mlp-mnist-fast)" in table.stdout and "toy-gaussian" in table.stdout


def test_info_on_an_alias_says_so_and_shows_its_component():
    result = invoke("info", "preset", "mlp-mnist-fast")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("preset mlp-mnist-fast is an alias of mlp-mnist\n")
    assert "ema_start" in result.stdout and "example: advnets run mlp-mnist --epochs 1" in result.stdout
    assert "aliases: mlp-mnist-fast" in invoke("info", "preset", "mlp-mnist").stdout


def test_list_plugins():
    rows = json.loads(invoke("list", "plugins", "--json").stdout)
    assert {(r["name"], r["source"]) for r in rows} >= {("advnets", "core"), ("mnist", "entry point"), ("gaussian", "entry point")}
    assert all(r["version"] and r["error"] is None for r in rows)


def test_info_shows_settings_and_an_example():
    result = invoke("info", "loss", "wasserstein")
    assert result.exit_code == 0
    assert "gradient_penalty" in result.stdout and "10.0" in result.stdout and "float" in result.stdout
    assert "--set loss=wasserstein" in result.stdout
    as_json = json.loads(invoke("info", "generator", "mlp", "--json").stdout)
    assert as_json["defaults"]["latent_dim"] == 64 and as_json["plugin"] == "mnist"


def test_an_existing_output_folder_is_never_overwritten(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "precious.txt").write_text("keep me")
    result = invoke("run", "toy-gaussian", "--out", str(tmp_path / "run"), "--steps", "5")
    assert result.exit_code == 2 and "already exists and is not empty" in result.stderr
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["precious.txt"]


def test_a_run_folder_without_checkpoints(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    result = invoke("run", "--resume", str(tmp_path))
    assert result.exit_code == 2 and "no loadable checkpoint" in result.stderr


@pytest.mark.slow
def test_a_plugin_file_from_outside_the_repository_is_listed_and_trains(tmp_path, cli):
    plugin = tmp_path / "elsewhere" / "my_losses.py"
    plugin.parent.mkdir()
    plugin.write_text(textwrap.dedent(PLUGIN))
    listed = cli("list", "components", "--kind", "loss", "--json", "--plugin", str(plugin), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert {"name": "soft-hinge", "plugin": "my_losses"}.items() <= {
        k: v for r in json.loads(listed.stdout) if r["name"] == "soft-hinge" for k, v in r.items()
    }.items()
    out = tmp_path / "run"
    trained = cli(
        "run", "toy-gaussian", "--steps", "60", "--seed", "1", "--out", str(out), "--set", "loss=soft-hinge",
        "--set", "loss.margin=0.5", cwd=tmp_path, env={"ADVNETS_PLUGINS": str(plugin)},
    )
    assert trained.returncode == 0, trained.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["loss"] == {"name": "soft-hinge", "margin": 0.5}
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 60 and records[-1]["event"] == "eval"


@pytest.mark.slow
def test_resume_continues_from_the_last_checkpoint(tmp_path, cli):
    out = tmp_path / "run"
    first = cli("run", "toy-gaussian", "--steps", "150", "--seed", "2", "--out", str(out), "--set", "checkpoint.every_steps=100", "--set", "callbacks={}")
    assert first.returncode == 0, first.stderr
    # pretend the run died after step 100: drop the final checkpoint
    (out / "checkpoints" / "step-000000150.safetensors").unlink()
    resumed = cli("run", "--resume", str(out), "--steps", "250")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr and "step-000000100" in resumed.stderr
    state, metadata = load_checkpoint(out / "checkpoints" / "step-000000250.safetensors")
    assert metadata["step"] == 250 and state["progress"]["step"] == 250
    straight = tmp_path / "straight"
    cli("run", "toy-gaussian", "--steps", "250", "--seed", "2", "--out", str(straight), "--set", "checkpoint.every_steps=100", "--set", "callbacks={}")
    other, _ = load_checkpoint(straight / "checkpoints" / "step-000000250.safetensors")
    for key, value in other["generator"].items():
        assert torch.equal(value, state["generator"][key]), key


@pytest.mark.slow
def test_sample_writes_a_histogram_or_tensors_and_overwrites_only_with_force(tmp_path, cli, toy_run):
    out, _ = toy_run
    png = tmp_path / "hist.png"
    result = cli("sample", str(out), "--n", "500", "--out", str(png), "--seed", "0")
    assert result.returncode == 0, result.stderr
    assert png.read_bytes()[:4] == b"\x89PNG" and "moving average" in result.stderr
    first = png.read_bytes()
    # without --force it is refused, the file untouched: the bad-input table's "sample over a file"
    assert cli("sample", str(out), "--n", "500", "--out", str(png), "--seed", "1", "--force").returncode == 0
    assert png.read_bytes() != first  # another seed's histogram
    tensors = tmp_path / "s.safetensors"
    checkpoint = next((out / "checkpoints").glob("step-*.safetensors"))
    assert cli("sample", str(checkpoint), "--n", "7", "--out", str(tensors), "--raw").returncode == 0
    import safetensors.torch

    assert safetensors.torch.load_file(tensors)["samples"].shape == (7, 1)
    # another suffix is one line and exit 2: the bad-input table's "sample to a text file"


def test_sample_and_eval_say_which_damaged_checkpoint_they_passed_over(tmp_path, toy_run):
    out, _ = toy_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    newest = run / "checkpoints" / "step-000000030.safetensors"
    shutil.copy(newest, run / "checkpoints" / "step-000000020.safetensors")  # a good older one to fall back on
    data = bytearray(newest.read_bytes())
    data[-50] ^= 0x01  # a byte of the last tensor, changed on disk
    newest.write_bytes(bytes(data))
    for command in (["sample", str(run), "--out", str(tmp_path / "s.png")], ["eval", str(run), "--n", "100"]):
        result = invoke(*command)
        assert result.exit_code == 0, result.output
        assert f"advnets: skipped {newest}: damaged checkpoint (its contents do not match their checksum" in result.stderr


def _long_toy_run_once_logging(out, *extra: str) -> subprocess.Popen:
    """A real `advnets run toy-gaussian` of 1000 epochs in ``out``, returned once it has logged its first record."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADVNETS_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "advnets", "run", "toy-gaussian", "--epochs", "1000", "--out", str(out), "--set", "trainer.log_every=10", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 60
    while not ((out / "metrics.jsonl").exists() and (out / "metrics.jsonl").stat().st_size > 0):
        assert time.time() < deadline and process.poll() is None, "the run did not start"
        time.sleep(0.1)
    return process


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_at_a_step_boundary_with_a_checkpoint(tmp_path, sig, code):
    out = tmp_path / "run"
    process = _long_toy_run_once_logging(out)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert f"advnets run --resume {out}" in stderr
    saved = sorted((out / "checkpoints").glob("step-*.safetensors"))
    state, metadata = load_checkpoint(saved[-1])
    assert 0 < metadata["step"] < 1000 * 156


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_second_signal_stops_at_once_with_its_own_exit_code_and_an_honest_hint(tmp_path, cli, sig, code):
    """No checkpoint yet (checkpoints only at the end): the hint must not promise one, and --resume starts over."""
    out = tmp_path / "run"
    process = _long_toy_run_once_logging(out, "--set", "checkpoint.every_epochs=0", "--set", "callbacks={}", "--no-eval")
    process.send_signal(sig)
    time.sleep(0.01)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    saved = sorted((out / "checkpoints").glob("step-*.safetensors"))
    if saved:  # the second signal came after the stop had written its checkpoint
        assert "stopped early; resume with:" in stderr or "resume from the last checkpoint" in stderr, stderr
    else:
        assert "before the first checkpoint; this starts it again from step 0:" in stderr, stderr
    assert f"advnets run --resume {out}" in stderr
    target = str(int(saved[-1].stem.split("-")[1]) + 5 if saved else 20)
    again = cli("run", "--resume", str(out), "--steps", target, timeout=120)
    assert again.returncode == 0, again.stderr
    assert ("has no checkpoint yet" in again.stderr) == (not saved)


def test_info_works_for_every_registered_component(registry):
    for component in registry.components():
        result = invoke("info", component.kind, component.name)
        assert result.exit_code == 0, (component.key, result.output)
        assert component.summary in result.stdout and f"(plugin {component.plugin})" in result.stdout
        for setting in component.defaults:
            assert setting in result.stdout, (component.key, setting)


# --- start-up: the help and the version do not import torch ------------------------------


def _imports_torch(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint('torch' in sys.modules)"], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["--version"], ["run", "--help"], ["list", "-h"]])
def test_help_and_version_do_not_import_torch(args):
    result = _imports_torch(f"from advnets.cli import app\napp({args!r}, prog_name='advnets', standalone_mode=False)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "False", f"advnets {' '.join(args)} imported torch"


def test_public_names_load_on_first_use():
    result = _imports_torch("import advnets\nassert not any(name in vars(advnets) for name in advnets.__all__)")
    assert result.returncode == 0 and result.stdout.splitlines()[-1] == "False", result.stderr
    code = (
        "import advnets, advnets.registry, inspect\n"
        "from advnets import *\n"
        "assert sorted(advnets.__all__) == sorted(n for n in dir() if n in advnets.__all__)\n"
        "assert inspect.isfunction(advnets.registry) and advnets.registry().get('loss', 'hinge')\n"
        "from advnets.registry import Component\n"
        "assert advnets.Component is Component"
    )
    result = _imports_torch(code)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "path", [[], ["run"], ["info"], ["config"], ["sample"], ["eval"], ["plot"], ["compare"], ["list"], ["list", "components"], ["list", "plugins"]]
)
def test_h_is_help_and_flags_show_no_type(path):
    result = invoke(*path, "-h")
    assert result.exit_code == 0 and "Usage: advnets" in result.stdout, result.output
    assert "<bool>" not in result.stdout and "<list[" not in result.stdout


# --- threads ---------------------------------------------------------------------------------

THREADS_PLUGIN = '''
"""A metric that reports the threads torch uses: what --threads set, seen from inside a run."""
import torch
from advnets import Component, hookimpl


def threads():
    """torch's intra-op and inter-op thread counts."""
    return lambda samples, data: {"intra": torch.get_num_threads(), "inter": torch.get_num_interop_threads()}


@hookimpl
def register_components(register):
    register(Component(kind="metric", name="threads", factory=threads))
'''


@pytest.fixture
def threads_plugin(tmp_path):
    path = tmp_path / "threads_metric.py"
    path.write_text(THREADS_PLUGIN)
    return path


@pytest.mark.slow
def test_threads_sets_torchs_threads_in_run_eval_and_sample(tmp_path, cli, threads_plugin):
    out = tmp_path / "run"
    run = cli(
        "run", "toy-gaussian", "--steps", "20", "--device", "cpu", "--out", str(out), "--threads", "3",
        "--plugin", str(threads_plugin), "--set", 'eval.metrics={"threads": {}}', "--set", "callbacks={}",
    )
    assert run.returncode == 0, run.stderr
    assert "on cpu, 3 threads" in run.stderr
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["intra"], r["inter"]) for r in records if r["event"] == "eval"] == [(3, 3)]
    scored = cli("eval", str(out), "--threads", "5", "--n", "10", "--json", "--plugin", str(threads_plugin))
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["results"] == {"intra": 5, "inter": 5}
    sampled = cli("sample", str(out), "--threads", "2", "--n", "10", "--out", str(tmp_path / "s.safetensors"))
    assert sampled.returncode == 0, sampled.stderr
    for command in (["run", "toy-gaussian"], ["eval", str(out)], ["sample", str(out)]):
        bad = cli(*command, "--threads", "0")
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--threads" in bad.stderr, bad.stderr


@pytest.mark.slow
def test_threads_reach_every_worker_under_nproc(tmp_path, cli, threads_plugin):
    out = tmp_path / "run"
    run = cli(
        "run", "toy-gaussian", "--nproc", "2", "--threads", "2", "--steps", "4", "--device", "cpu", "--out", str(out),
        "--plugin", str(threads_plugin), "--set", 'eval.metrics={"threads": {}}', "--set", "callbacks={}",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "x 2 processes, 2 threads" in run.stderr  # torchrun alone would give each worker 1
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["intra"], r["inter"]) for r in records if r["event"] == "eval"] == [(2, 2)]


# --- evaluation: shown while it runs, and skipped on request ---------------------------------


@pytest.mark.slow
def test_an_evaluation_says_what_it_computes(toy_run):
    _, run = toy_run
    lines = run.stderr.splitlines()
    started = [i for i, line in enumerate(lines) if line.startswith("evaluating ")]
    assert [lines[i] for i in started] == [f"evaluating {m} at step 30 ..." for m in ("gaussian-w1", "gaussian-ks", "gaussian-js")]
    assert lines[started[-1] + 1].startswith("eval @ step 30: w1 ")
    assert "(one logging interval)" in run.stderr and "median of 1 " not in run.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "options, evaluations",
    [
        (["--no-eval"], []),
        (["--set", "eval.at_end=false", "--set", "eval.every_steps=10"], [10, 20]),
        (["--set", "eval.every_epochs=0"], [25]),  # the closing evaluation is eval.at_end's
    ],
)
def test_evaluation_can_be_turned_off(tmp_path, cli, options, evaluations):
    out = tmp_path / "run"
    run = cli("run", "toy-gaussian", "--steps", "25", "--out", str(out), "--set", "callbacks={}", *options)
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["event"] == "eval"] == evaluations
    assert ("evaluating" in run.stderr) == bool(evaluations)


# --- loggers add up ----------------------------------------------------------------------------


@pytest.mark.parametrize("options", [["--logger", "csv"], ["--set", "logger=csv"], ["--set", 'loggers={"csv": {}}']])
def test_a_logger_is_added_to_jsonl(tmp_path, options):
    out = tmp_path / "run"
    result = invoke("run", "toy-gaussian", "--steps", "20", "--out", str(out), "--set", "callbacks={}", "--no-eval", *options)
    assert result.exit_code == 0, result.output
    assert set(json.loads((out / "config.json").read_text())["loggers"]) == {"jsonl", "csv"}
    assert (out / "metrics.jsonl").stat().st_size > 0 and (out / "metrics-train.csv").exists()
    assert (out / "training.png").exists()  # drawn from metrics.jsonl


def test_jsonl_cannot_be_removed():
    result = invoke("run", "toy-gaussian", "--set", "loggers.jsonl=null")
    assert result.exit_code == 2 and "the jsonl logger is always on" in result.stderr


# --- advnets config, and config files ----------------------------------------------------------


def test_config_prints_what_run_would_train():
    result = invoke("config", "toy-gaussian", "--set", "trainer.k=3", "--set", "loss=hinge")
    assert result.exit_code == 0, result.output
    config = json.loads(result.stdout)
    assert config["preset"] == "toy-gaussian" and config["trainer"]["k"] == 3 and config["loss"] == {"name": "hinge"}
    assert config["seed"] is None  # drawn when a run starts, and recorded in its config.json
    assert config["generator"] == {"name": "toy-mlp", "latent_dim": 1, "hidden": [64, 64]}


@pytest.mark.parametrize("setting, message", [
    ("trainer.k=0", "k (discriminator steps per generator step) must be >= 1, got 0"),
    ("g_optimizer.lr=-1", "lr must be > 0, got -1.0"),
    ("trainer.noise=cauchy", "noise must be one of normal, uniform, got 'cauchy'"),
    ("eval.best=nosuch", "eval.best is 'nosuch', but the metrics report only"),
])
def test_config_check_builds_the_run_and_refuses_what_run_refuses(setting, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert invoke("config", "toy-gaussian", "--set", setting).exit_code == 0  # types only: the value is an int, a float...
    checked = invoke("config", "toy-gaussian", "--set", setting, "--check")
    assert checked.exit_code == 2 and checked.stderr.startswith("error: ") and message in checked.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written
    assert json.loads(invoke("config", "toy-gaussian", "--check").stdout)["preset"] == "toy-gaussian"


PARTIAL = {
    "json": '{"preset": "toy-gaussian", "seed": 5, "trainer": {"steps": 20}, "loss": "hinge", "callbacks": {}}',
    "yaml": "preset: toy-gaussian\nseed: 5\ntrainer:\n  steps: 20\nloss: hinge\ncallbacks: {}\n",
    "yml": "preset: toy-gaussian\nseed: 5\ntrainer: {steps: 20}\nloss: {name: hinge}\ncallbacks: {}\n",
    "toml": 'preset = "toy-gaussian"\nseed = 5\nloss = "hinge"\ncallbacks = {}\n[trainer]\nsteps = 20\n',
}


@pytest.mark.parametrize("suffix", sorted(PARTIAL))
def test_a_partial_config_file_is_laid_over_its_preset(tmp_path, suffix):
    path = tmp_path / f"mine.{suffix}"
    path.write_text(PARTIAL[suffix])
    expected = invoke("config", "toy-gaussian", "--set", "seed=5", "--set", "trainer.steps=20", "--set", "loss=hinge", "--set", "callbacks={}")
    printed = invoke("config", str(path))
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.stdout) == json.loads(expected.stdout)
    with_set = json.loads(invoke("config", str(path), "--set", "trainer.k=2").stdout)
    assert with_set["trainer"]["k"] == 2 and with_set["loss"] == {"name": "hinge"}


def test_run_trains_a_partial_yaml_config(tmp_path):
    path = tmp_path / "quick.yaml"
    path.write_text(PARTIAL["yaml"])
    result = invoke("run", str(path), "--out", str(tmp_path / "run"), "--no-eval")
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["preset"] == "toy-gaussian" and config["trainer"]["steps"] == 20 and config["seed"] == 5
    assert config["loss"] == {"name": "hinge"} and "figure-1" not in config["callbacks"]


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("a.json", '{"preset": "toy-gaussian", "trainer": [1]}', "a.json: trainer is a section"),
        ("a.json", '{"preset": "toy-gaussian", "trainer": {"k": null}}', "a.json: trainer.k must be an int, got null"),
        ("a.json", '{"preset": "toy-gaussian", "trainer": {"k": "2"}}', "a.json: trainer.k must be an int, got string"),
        ("a.json", '{"preset": "toy-gaussian", "loss": 3}', "a.json: loss must be a component name (a string), got int"),
        ("a.json", '{"preset": "toy-gaussian", "loss": {"name": null}}', "loss must be a component name (a string), got null"),
        ("a.json", '{"preset": "toy-gaussian", "generator": {"hidden": "x"}}', "generator.hidden must be a list, got string"),
        ("a.json", '{"preset": "toy-gaussian", "callbacks": []}', "callbacks must be an object of"),
        ("a.json", '{"preset": "toy-gaussian", "loggers": null}', "loggers must be an object of"),
        ("a.json", '{"preset": "toy-gaussian", "eval": {"metrics": ["gaussian-w1"]}}', "eval.metrics must be an object of"),
        ("a.json", '{"preset": "toy-gaussian", "trainr": {}}', "unknown setting 'trainr'"),
        ("a.json", '{"preset": 3}', "a.json: preset must be a preset's name (a string), got int"),
        ("a.json", '{"preset": "toy-gausian"}', "unknown preset 'toy-gausian'"),
        ("a.json", '{"trainer": {"steps": 5}}', "a.json: no generator chosen"),
        ("a.json", "[1, 2]", "a.json: a config must be a JSON object of settings, got list"),
        ("a.yaml", "preset: toy-gaussian\nseed: 2024-01-01\n", "a.yaml: seed: a date is not a setting value"),
        ("a.yaml", "preset: toy-gaussian\ntrainer:\n  2: 3\n", "a.yaml: trainer key must be a string, got int 2"),
        ("a.yaml", "trainer: [\n", "a.yaml: not a readable YAML config (expected"),
        ("a.toml", 'preset = "toy-gaussian"\nseed = [1]\n', "a.toml: seed must be an int, got list"),
        ("a.toml", "preset = \n", "a.toml: not a readable TOML config"),
        ("a.txt", "{}", "a.txt: a config file's name ends in .json, .yaml, .yml, .toml"),
    ],
)
def test_every_field_of_a_config_file_is_checked(tmp_path, monkeypatch, name, text, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_text(text)
    for command in ("run", "config"):
        result = invoke(command, name, "--out", "run") if command == "run" else invoke(command, name)
        assert result.exit_code == 2, result.output
        assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "run").exists()


# --- the MNIST download ----------------------------------------------------------------------


@pytest.mark.slow
def test_a_failed_download_says_why(tmp_path, cli):
    closed = "http://127.0.0.1:9"  # nothing listens there: every mirror's download fails at once
    proxies = {"http_proxy": closed, "https_proxy": closed, "HTTP_PROXY": closed, "HTTPS_PROXY": closed, "no_proxy": ""}
    result = cli("run", "mlp-mnist", "--steps", "1", "--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "run"), env=proxies)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "the download failed (Error downloading train-images-idx3-ubyte.gz: <urlopen error" in result.stderr
