"""Tests that need a CUDA device (marker ``gpu``): skipped, with the reason, where there is none.

``python benchmarks/gpu_check.py`` runs them on a GPU together with the CUDA
throughput benchmark and the timed full schedule, and writes one JSON file.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from advnets import AdversarialTrainer, Callback, Data
from advnets.checkpoint import load_checkpoint, step_checkpoints
from advnets.errors import CaptureError
from advnets.losses import NonSaturatingLoss
from advnets.objectives import GANObjective

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "plugins"))
sys.path.insert(0, str(HERE))
from faulty_loss import FaultyLoss  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run benchmarks/gpu_check.py on a GPU)"),
]

MNIST = os.environ.get("ADVNETS_TEST_MNIST")


def mlp_trainer(**kwargs) -> AdversarialTrainer:
    """The lecture's MLPs on random 784-d data, on the GPU."""
    from advnets_mnist.models import MLPDiscriminator, MLPGenerator

    torch.manual_seed(0)
    data = Data(train=torch.rand(4096, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1)
    loss = kwargs.pop("loss", None) or NonSaturatingLoss()
    generator = MLPGenerator(batchnorm=kwargs.pop("g_batchnorm", False))
    return AdversarialTrainer(generator, MLPDiscriminator(), loss, data, batch_size=32, seed=0, device="cuda", **kwargs)


def state_tensors(trainer: AdversarialTrainer) -> dict[str, torch.Tensor]:
    found = {}
    for name, player in trainer.players.items():
        found.update({f"{name}.{k}": v.detach().clone() for k, v in player.module.state_dict().items()})
        for index, state in player.optimizer.state_dict()["state"].items():
            found.update({f"{name}.opt.{index}.{k}": v.clone() for k, v in state.items() if torch.is_tensor(v)})
        if player.ema is not None:
            found.update({f"{name}.ema.{k}": v.clone() for k, v in player.ema.state_dict().items()})
    return found


@pytest.mark.parametrize(
    "settings",
    [{}, {"k": 2, "ema_decay": 0.999}, {"precision": "bf16", "ema_decay": 0.999}, {"precision": "16"}],
    ids=["fp32", "k2-ema", "bf16-ema", "fp16-scaled"],
)
def test_steps_make_no_host_device_sync(settings):
    """300 steps under torch.cuda.set_sync_debug_mode("error"): any sync in a step raises."""
    trainer = mlp_trainer(log_every=10**6, **settings)
    for _ in range(3):  # the optimisers' first updates create their state (decided on the host once)
        trainer.train_step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(300):
            trainer.train_step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    stats = trainer.pop_stats()
    assert stats and all(torch.isfinite(torch.tensor(v)) for v in stats.values())
    if settings.get("precision") == "16":  # the scaler starts at 2**16 and halves on overflow: a few skips
        assert trainer._skipped <= 10
    else:
        assert trainer._skipped == 0


@pytest.mark.parametrize("precision", ["32", "16"])
def test_a_skipped_update_on_cuda_changes_nothing(precision):
    trainer = mlp_trainer(loss=FaultyLoss(nan_steps=[5]), precision=precision, ema_decay=0.99)
    for _ in range(5):
        trainer.train_step()
    before = state_tensors(trainer)
    trainer.train_step()
    after = state_tensors(trainer)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed == []
    trainer.train_step()
    assert trainer.pop_stats() and trainer._skipped == 1


def test_float16_scaler_lowers_its_scale_on_overflow_and_training_goes_on():
    trainer = mlp_trainer(precision="16")
    for _ in range(20):
        trainer.train_step()
    scales = {key: scaler.get_scale() for key, scaler in trainer._scalers.items()}
    assert set(scales) == {"discriminator", "generator"}
    stats = trainer.pop_stats()
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())


class Records(Callback):
    def __init__(self) -> None:
        self.records = []

    def on_log(self, trainer, record) -> None:
        self.records.append(record)


class SyncErrorsBetween(Callback):
    """torch.cuda.set_sync_debug_mode("error") from the end of step ``start`` to the end of step ``stop``."""

    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop = start, stop

    def on_step_end(self, trainer) -> None:
        if trainer.step == self.start:
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
        elif trainer.step == self.stop:
            torch.cuda.set_sync_debug_mode("default")

    def on_exception(self, trainer, exception) -> None:
        torch.cuda.set_sync_debug_mode("default")


GRAPH_SETTINGS = [
    {},
    {"k": 2, "ema_decay": 0.999, "ema_start": 50},
    {"precision": "bf16"},
    {"k_schedule": [[0, 2], [100, 1]]},
    {"g_batchnorm": True, "ema_decay": 0.999},  # mlp-mnist's G: batch norm, and its average's buffers
]
GRAPH_IDS = ["fp32", "k2-ema", "bf16", "k-schedule", "g-batchnorm"]


@pytest.mark.parametrize("settings", GRAPH_SETTINGS, ids=GRAPH_IDS)
def test_captured_steps_train_exactly_as_eager_steps(settings):
    """300 steps with CUDA graphs against 300 eager steps: every tensor equal, bit for bit."""
    eager = mlp_trainer(cuda_graphs="off", log_every=50, **settings).fit(steps=300)
    graphed = mlp_trainer(cuda_graphs="on", log_every=50, **settings).fit(steps=300)
    assert graphed.graph_report.startswith("on: ") and " 0 of " not in graphed.graph_report, graphed.graph_report
    a, b = state_tensors(eager), state_tensors(graphed)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert torch.equal(eager._counters, graphed._counters)
    assert torch.equal(eager._noise_rng.get_state(), graphed._noise_rng.get_state())


@pytest.mark.parametrize("settings", GRAPH_SETTINGS, ids=GRAPH_IDS)
def test_captured_steps_make_no_host_device_sync(settings):
    """300 replays under torch.cuda.set_sync_debug_mode("error"): steps 150 to 450, after every signature's
    capture (an average's start at 50, k's change at 100), which synchronise once each, on purpose."""
    records = Records()
    trainer = mlp_trainer(cuda_graphs="on", log_every=10**6, callbacks=[SyncErrorsBetween(150, 450), records], **settings)
    trainer.fit(steps=450)
    assert " 0 of " not in trainer.graph_report, trainer.graph_report
    last = records.records[-1]  # the fit's closing record: its statistics read once, at the end
    assert last["step"] == 450 and last["skipped_steps"] == 0 and all(math.isfinite(last[k]) for k in ("d_loss", "g_loss"))


def test_a_bad_step_in_a_replay_is_skipped_and_the_trip_names_its_steps():
    from test_graphs import DeviceNaNLoss

    runs = {}
    for mode in ("off", "on"):
        loss = DeviceNaNLoss([40, 41, 42])
        loss.count, loss.bad = loss.count.cuda(), loss.bad.cuda()
        runs[mode] = mlp_trainer(cuda_graphs=mode, loss=loss, max_bad_steps=3, log_every=10).fit(steps=100)
    assert runs["on"].step == runs["off"].step == 50 and "(steps 41 to 43)" in runs["on"].fault
    a, b = state_tensors(runs["off"]), state_tensors(runs["on"])
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


class ReadsOnTheHost(GANObjective):
    """Wrongly declares itself capturable: it reads a value on the host, which a capture refuses."""

    capturable = True

    def step(self, ctx):
        result = super().step(ctx)
        if float(result["d_loss"]) > 1e9:
            raise AssertionError("unreachable")
        return result


def test_a_step_that_reads_on_the_host_is_never_captured_auto_goes_on_eagerly_on_is_an_error():
    """The last warm-up step runs under sync debug mode "warn": the read is found before any capture."""
    auto = mlp_trainer(objective=ReadsOnTheHost()).fit(steps=20)
    assert auto.graph_report.startswith("on: 0 of 20 steps were replays of 0 captured graphs; then the step reads a value on the host")
    eager = mlp_trainer(objective=ReadsOnTheHost(), cuda_graphs="off").fit(steps=20)
    a, b = state_tensors(eager), state_tensors(auto)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    strict = mlp_trainer(objective=ReadsOnTheHost(), cuda_graphs="on")
    with pytest.raises(CaptureError, match="^trainer.cuda_graphs is on, but the step reads a value on the host"):
        strict.fit(steps=20)
    assert strict.step == 3
    short = mlp_trainer(objective=ReadsOnTheHost(), cuda_graphs="on")
    with pytest.raises(CaptureError, match="^trainer.cuda_graphs is on, but the step reads a value on the host"):
        short.fit(steps=3)  # found in the fit's last step: raised at its end


def cli(*args: str, timeout: float = 600, **env_extra: str) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ADVNETS_")}, **env_extra}
    return subprocess.run([sys.executable, "-m", "advnets", *args], env=env, capture_output=True, text=True, timeout=timeout)


needs_mnist = pytest.mark.skipif(not MNIST, reason="ADVNETS_TEST_MNIST is not set")
SHORT = ["--data-dir", str(MNIST), "--no-eval", "--seed", "0", "--set", "checkpoint.every_epochs=0"]


@needs_mnist
@pytest.mark.parametrize("precision", ["32", "bf16", "16"])
def test_mlp_mnist_trains_on_cuda(tmp_path, precision):
    out = tmp_path / "run"
    result = cli("run", "mlp-mnist", *SHORT, "--device", "cuda", "--precision", precision, "--steps", "300", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r.get("event") == "train"]
    # float16's scaler starts at 2**16 and halves on each overflow: its first steps may be skipped
    allowed = 10 if precision == "16" else 0
    assert train[-1]["step"] == 300 and sum(r["skipped_steps"] for r in train) <= allowed
    assert all(abs(train[-1][key]) < 1e3 for key in ("d_loss", "g_loss"))


@needs_mnist
def test_nccl_with_one_process(tmp_path):
    out = tmp_path / "run"
    result = cli("run", "mlp-mnist", *SHORT, "--device", "cuda", "--nproc", "1", "--steps", "200", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    state, _ = load_checkpoint(out / "checkpoints" / "step-000000200.safetensors")
    assert state["progress"]["world_size"] == 1 and state["progress"]["device_type"] == "cuda"


@needs_mnist
# mlp-mnist's learning rate changes every step, so its steps are eager; the lecture's recipe replays
@pytest.mark.parametrize("preset", ["mlp-mnist", "mlp-mnist-lecture"])
def test_kill_and_resume_on_cuda_is_bit_identical(tmp_path, preset):
    common = [*SHORT, "--device", "cuda", "--set", "checkpoint.every_steps=100", "--set", "checkpoint.keep=10"]
    straight = tmp_path / "straight"
    result = cli("run", preset, *common, "--steps", "600", "--out", str(straight))
    assert result.returncode == 0, result.stderr[-2000:]
    if preset == "mlp-mnist-lecture":
        # the summary's "CUDA graphs" row (a narrow terminal may wrap it)
        assert "on: 597 of 600 steps were replays of 1 captured graph" in " ".join((result.stdout + result.stderr).split()), result.stderr[-2000:]
    killed = tmp_path / "killed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADVNETS_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "advnets", "run", preset, *common, "--steps", "600", "--out", str(killed)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while len(step_checkpoints(killed / "checkpoints")) < 2 and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert step_checkpoints(killed / "checkpoints"), "no checkpoint before the kill"
    resumed = cli("run", "--resume", str(killed))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, _ = load_checkpoint(straight / "checkpoints" / "step-000000600.safetensors")
    b, _ = load_checkpoint(killed / "checkpoints" / "step-000000600.safetensors")
    parts = ("generator", "discriminator", "g_optimizer", "d_optimizer", "generator_ema")
    assert (preset == "mlp-mnist") == ("generator_ema" in a)  # the lecture's recipe has no average
    assert_same_parts(a, b, [p for p in parts if p in a])


def assert_same_parts(a: dict, b: dict, parts, where: object = "") -> None:
    """Two checkpoints' states hold the same tensors, bit for bit, in each of ``parts``."""
    for part in parts:
        left, right = dict(flatten(a[part])), dict(flatten(b[part]))
        assert left and left.keys() == right.keys(), (where, part)
        assert [k for k in left if not torch.equal(left[k], right[k])] == [], (where, part)


def flatten(tree, prefix=""):
    if torch.is_tensor(tree):
        yield prefix, tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield from flatten(value, f"{prefix}.{key}")
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from flatten(value, f"{prefix}.{i}")
