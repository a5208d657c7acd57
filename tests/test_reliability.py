"""Reliability: exact resume after SIGKILL anywhere, NaN guards, interrupts, and nothing unsafe to load."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from advnets import AdversarialTrainer, Data
from advnets.checkpoint import load_checkpoint, step_checkpoints

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FAULTY = HERE / "plugins" / "faulty_loss.py"
sys.path.insert(0, str(HERE / "plugins"))
from faulty_loss import FaultyLoss  # noqa: E402

# toy-gaussian has 156 steps per epoch; a checkpoint every 50 steps.
RUN = ["toy-gaussian", "--seed", "7", "--set", "checkpoint.every_steps=50", "--set", "checkpoint.every_epochs=0", "--set", "checkpoint.keep=2", "--set", "eval.every_epochs=0"]
TOTAL = 400


def env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("ADVNETS_")}, **extra}


def advnets(*args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "advnets", *args], env=env(**extra), capture_output=True, text=True, timeout=300)


def final_state(run_dir: Path) -> dict:
    state, _ = load_checkpoint(run_dir / "checkpoints" / f"step-{TOTAL:09d}.safetensors")
    return state


def flatten(tree, prefix=""):
    if isinstance(tree, torch.Tensor):
        yield prefix, tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield from flatten(value, f"{prefix}.{key}")
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from flatten(value, f"{prefix}.{i}")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("straight") / "run"
    result = advnets("run", *RUN, "--steps", str(TOTAL), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return final_state(out)


def assert_same_training_state(a: dict, b: dict) -> None:
    for part in ("generator", "discriminator", "generator_ema", "g_optimizer", "d_optimizer", "rng", "progress"):
        left, right = dict(flatten(a[part])), dict(flatten(b[part]))
        assert left.keys() == right.keys(), part
        for key in left:
            assert torch.equal(left[key], right[key]), f"{part}{key}"
    assert a["progress"] == b["progress"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "failpoint, killed_after",
    [
        ("step=230", "mid-epoch, 30 steps after the checkpoint at step 200"),
        ("step=312", "right at the end of epoch 2, before its callbacks"),
        # file writes: config.json, then the checkpoints of steps 50, 100, 150, 200, 250
        ("checkpoint-write=6", "half-way through writing the checkpoint of step 250"),
        ("step=49", "before the first checkpoint: the run starts over"),
    ],
)
def test_sigkill_then_resume_gives_bit_identical_weights(tmp_path, uninterrupted, failpoint, killed_after):
    out = tmp_path / "run"
    killed = advnets("run", *RUN, "--steps", str(TOTAL), "--out", str(out), ADVNETS_FAILPOINTS=failpoint)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (out / "checkpoints" / f"step-{TOTAL:09d}.safetensors").exists()
    if failpoint.startswith("checkpoint-write"):
        debris = list((out / "checkpoints").glob(".*.tmp-*"))
        assert debris, "the kill should leave a half-written temporary file"
        assert not (out / "checkpoints" / "step-000000250.safetensors").exists()  # never under its real name
    if failpoint == "step=49":
        assert step_checkpoints(out / "checkpoints") == []
        resumed = advnets("run", "--resume", str(out))  # no checkpoint: it trains again from step 0, and says so
        assert "has no checkpoint yet (stopped before its first): training it again from step 0" in resumed.stderr
    else:
        resumed = advnets("run", "--resume", str(out))
        assert "resuming" in resumed.stderr
    assert resumed.returncode == 0, resumed.stderr
    if failpoint.startswith("checkpoint-write"):
        assert "removed an unfinished write" in resumed.stderr and "step-000000200" in resumed.stderr
        assert not list((out / "checkpoints").glob(".*.tmp-*"))
    assert_same_training_state(final_state(out), uninterrupted)


@pytest.mark.slow
def test_sigkill_at_a_random_moment_then_resume(tmp_path, uninterrupted):
    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "advnets", "run", *RUN, "--steps", str(TOTAL), "--out", str(out)], env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not step_checkpoints(out / "checkpoints"):
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.005)
    time.sleep(0.05 * (os.getpid() % 7))  # somewhere after the first checkpoint
    process.kill()
    process.wait()
    if (out / "checkpoints" / f"step-{TOTAL:09d}.safetensors").exists():
        pytest.skip("the run finished before the kill landed")
    resumed = advnets("run", "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert_same_training_state(final_state(out), uninterrupted)


def small_trainer(loss, **kwargs) -> AdversarialTrainer:
    torch.manual_seed(0)
    from advnets_gaussian.models import ToyDiscriminator, ToyGenerator

    data = Data(train=torch.randn(512, 1, generator=torch.Generator().manual_seed(1)))
    return AdversarialTrainer(ToyGenerator(), ToyDiscriminator(), loss, data, batch_size=32, device="cpu", seed=0, **kwargs)


def snapshot(trainer):
    state = trainer.state_dict()
    return {k: v.clone() for k, v in flatten({p: state[p] for p in ("generator", "discriminator", "g_optimizer", "d_optimizer")})}


@pytest.mark.parametrize("where", ["d", "g", "both"])
def test_a_step_with_a_nan_loss_changes_nothing(where):
    trainer = small_trainer(FaultyLoss(nan_steps=[3], where=where))
    for _ in range(3):
        trainer.train_step()
    before = snapshot(trainer)
    trainer.train_step()  # step 3: poisoned
    after = snapshot(trainer)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    if where == "both":
        assert changed == set()
    elif where == "d":  # only the generator's update went through
        assert changed and all(k.startswith((".generator", ".g_optimizer")) for k in changed)
    else:
        assert changed and all(k.startswith((".discriminator", ".d_optimizer")) for k in changed)
    trainer.train_step()  # and training goes on
    stats = trainer.pop_stats()
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())
    assert trainer._skipped == 1 and trainer.fault is None


def test_a_nan_gradient_with_a_finite_loss_is_caught():
    class InfiniteGradient(FaultyLoss):
        def generator_loss(self, fake_logits):
            # finite value, infinite gradient: d/dx of x * inf
            return super().generator_loss(fake_logits) + (fake_logits * float("inf")).sum() * 0.0

    trainer = small_trainer(InfiniteGradient())
    before = snapshot(trainer)
    trainer.train_step()
    after = snapshot(trainer)
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith((".generator", ".g_optimizer")))
    assert trainer._skipped == 1


@pytest.mark.slow
def test_too_many_bad_steps_in_a_row_stop_the_run_with_the_weights_from_before(tmp_path):
    out, reference = tmp_path / "run", tmp_path / "reference"
    common = ["toy-gaussian", "--seed", "3", "--plugin", str(FAULTY), "--set", "loss=faulty", "--set", "eval.every_epochs=0", "--set", "callbacks={}"]
    faulted = advnets("run", *common, "--set", "loss.nan_from=120", "--set", "trainer.max_bad_steps=5", "--steps", "1000", "--out", str(out))
    assert faulted.returncode == 1, faulted.stderr
    message = [line for line in faulted.stderr.splitlines() if line.startswith("error:")]
    assert len(message) == 1
    assert "5 steps in a row had non-finite losses or gradients (steps 121 to 125)" in message[0]
    # The guard decides on the device and the host reads its counters at each record (every
    # 100 steps here): the run stops at the first record after the trip, and every update
    # from the trip on was skipped, so nothing after step 120 reached the weights.
    assert "every one after, up to step 200 where the run stopped, were skipped" in message[0]
    assert "so the weights are those of step 120; they are saved in" in message[0] and "step-000000200.safetensors" in message[0]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["skipped_steps"] == 80 and records[-1]["step"] == 200
    stopped, _ = load_checkpoint(out / "checkpoints" / "step-000000200.safetensors")
    assert advnets("run", *common, "--steps", "120", "--out", str(reference)).returncode == 0
    before_fault, _ = load_checkpoint(reference / "checkpoints" / "step-000000120.safetensors")
    for part in ("generator", "discriminator", "g_optimizer", "d_optimizer"):
        for (key, a), (_, b) in zip(flatten(stopped[part]), flatten(before_fault[part])):
            assert torch.equal(a, b), part + key


@pytest.mark.slow
def test_a_second_ctrl_c_stops_at_once_without_damage(tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "advnets", "run", *RUN, "--epochs", "1000", "--out", str(out)],
        env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 60
    while not step_checkpoints(out / "checkpoints"):
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "advnets run --resume" in stderr
    assert not list((out / "checkpoints").glob(".*.tmp-*"))
    for path in step_checkpoints(out / "checkpoints"):
        load_checkpoint(path)  # every checkpoint left behind is whole


UNSAFE = [
    (re.compile(r"^\s*(import pickle|from pickle import|import dill|import cloudpickle)", re.M), "pickle"),
    (re.compile(r"(?<![.\w])torch\.load\((?![^)]*weights_only\s*=\s*True)"), "torch.load without weights_only=True"),
    (re.compile(r"allow_pickle\s*=\s*True"), "numpy allow_pickle=True"),
    (re.compile(r"\b(pickle|marshal|shelve)\.loads?\("), "unpickling"),
    (re.compile(r"(?<![.\w])(eval|exec)\("), "eval/exec"),
]


def test_nothing_in_the_code_base_can_unpickle():
    sources = [p for folder in ("advnets", "plugins", "benchmarks", "scripts") for p in (REPO / folder).rglob("*.py")]
    assert len(sources) > 10
    found = [
        f"{path.relative_to(REPO)}: {what}"
        for path in sources
        for pattern, what in UNSAFE
        if pattern.search(path.read_text())
    ]
    assert found == []
