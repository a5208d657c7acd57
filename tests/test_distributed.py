"""Distributed data parallel with real torchrun processes (gloo, two ranks on the CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch

from advnets.checkpoint import load_checkpoint

DUMP = Path(__file__).resolve().parent / "plugins" / "dump_weights.py"
# toy-gaussian without its figure and evaluation, so that only training is compared
TOY = ["toy-gaussian", "--seed", "5", "--set", "callbacks={}", "--set", "eval.metrics={}", "--set", "trainer.ema_decay=0.0"]


def env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("ADVNETS_")}, "ADVNETS_DIST_TIMEOUT": "60", **extra}


def torchrun(*args: str, nproc: int = 2, timeout: float = 240, **extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "advnets", *args]
    return subprocess.run(command, env=env(**extra), capture_output=True, text=True, timeout=timeout)


def single(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "advnets", *args], env=env(), capture_output=True, text=True, timeout=240)


def weights(path: Path) -> dict:
    state, _ = load_checkpoint(path)
    return {**{f"g.{k}": v for k, v in state["generator"].items()}, **{f"d.{k}": v for k, v in state["discriminator"].items()}}


@pytest.mark.slow
def test_two_ranks_end_with_identical_parameters(tmp_path):
    out = tmp_path / "run"
    result = torchrun("run", *TOY, "--steps", "80", "--out", str(out), "--plugin", str(DUMP), "--set", "callbacks.dump-weights={}")
    assert result.returncode == 0, result.stderr
    rank0 = safetensors.torch.load_file(out / "weights-rank0.safetensors")
    rank1 = safetensors.torch.load_file(out / "weights-rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    config = json.loads((out / "config.json").read_text())
    assert config["distributed"]["world_size"] == 2 and config["distributed"]["backend"] == "gloo"
    assert config["distributed"]["global_batch_size"] == 2 * config["trainer"]["batch_size"]
    # only rank 0 wrote the run's files
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000000080.safetensors"]
    assert result.stderr.count("run folder") == 1


@pytest.mark.slow
def test_two_ranks_of_batch_b_match_one_process_of_batch_2b(tmp_path):
    """Same data order, same noise (each rank takes its slice of the global batch's), averaged gradients."""
    sgd = ["--set", "g_optimizer=sgd", "--set", "d_optimizer=sgd", "--set", "g_optimizer.lr=0.01", "--set", "d_optimizer.lr=0.01"]
    two = torchrun("run", *TOY, *sgd, "--steps", "5", "--out", str(tmp_path / "two"), "--set", "trainer.batch_size=64")
    assert two.returncode == 0, two.stderr
    one = single("run", *TOY, *sgd, "--steps", "5", "--out", str(tmp_path / "one"), "--set", "trainer.batch_size=128")
    assert one.returncode == 0, one.stderr
    a = weights(tmp_path / "two" / "checkpoints" / "step-000000005.safetensors")
    b = weights(tmp_path / "one" / "checkpoints" / "step-000000005.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    record_two = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()][-1]
    record_one = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()][-1]
    assert record_two["d_loss"] == pytest.approx(record_one["d_loss"], rel=1e-4)


@pytest.mark.slow
def test_checkpoint_and_resume_under_ddp(tmp_path):
    common = ["--set", "checkpoint.every_steps=20", "--set", "checkpoint.every_epochs=0"]
    straight = torchrun("run", *TOY, *common, "--steps", "60", "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr
    first = torchrun("run", *TOY, *common, "--steps", "40", "--out", str(tmp_path / "resumed"))
    assert first.returncode == 0, first.stderr
    resumed = torchrun("run", "--resume", str(tmp_path / "resumed"), "--steps", "60")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    alone = single("run", "--resume", str(tmp_path / "resumed"), "--steps", "80")
    assert alone.returncode == 2 and "trained by 2 process(es); resume it with the same number (--nproc 2), not 1" in alone.stderr
    a = weights(tmp_path / "straight" / "checkpoints" / "step-000000060.safetensors")
    b = weights(tmp_path / "resumed" / "checkpoints" / "step-000000060.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_dying_rank_stops_the_job_instead_of_hanging(tmp_path):
    start = time.time()
    result = torchrun("run", *TOY, "--steps", "100000", "--out", str(tmp_path / "run"), ADVNETS_FAILPOINTS="step=30@1", timeout=200)
    assert result.returncode != 0
    assert time.time() - start < 150
    assert "exitcode  : -9" in result.stderr or "Signal 9" in result.stderr or "SIGKILL" in result.stderr, result.stderr[-2000:]


@pytest.mark.slow
def test_nproc_launches_torchrun_for_this_machine(tmp_path):
    result = single("run", *TOY, "--nproc", "2", "--steps", "20", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["distributed"]["world_size"] == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "trainer.k=0"], "error: k (discriminator steps per generator step) must be >= 1, got 0"),
        pytest.param(["--set", "trainer.batch_size=0"], "error: batch_size must be >= 1, got 0", marks=pytest.mark.slow),
        pytest.param(["--nproc", "0"], "error: --nproc must be >= 1, got 0", marks=pytest.mark.slow),
    ],
    ids=["k of 0", "batch of 0", "no processes"],
)
def test_bad_input_with_nproc_is_one_line_before_torchrun_starts(tmp_path, args, message):
    """The same one line and exit 2 as without --nproc: checked in this process, before any worker exists."""
    nproc = [] if "--nproc" in args else ["--nproc", "2"]
    result = single("run", *TOY, *nproc, *args, "--steps", "20", "--out", str(tmp_path / "run"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == message
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_resume_with_another_nproc_is_one_line_before_torchrun_starts(tmp_path):
    out = tmp_path / "run"
    assert single("run", *TOY, "--steps", "10", "--out", str(out)).returncode == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    result = single("run", "--resume", str(out), "--nproc", "2", "--steps", "20")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "trained by 1 process(es); resume it with the same number (--nproc 1), not 2" in lines[0]
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
