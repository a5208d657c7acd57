"""The benchmark scripts run and report what docs/performance.md says they report (one short round)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_throughput_benchmark_runs_and_reports(tmp_path, mnist_dir):
    out = tmp_path / "throughput.json"
    command = [sys.executable, str(REPO / "benchmarks" / "throughput.py"), "--data-dir", str(mnist_dir), "--rounds", "1",
               "--seconds", "0.3", "--batches", "32", "--bf16", "--rss-steps", "30", "--arithmetic-batch", "128", "--json", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(out.read_text())
    row = report["batches"]["32"]
    for name in ("seed", "hand", "trainer", "trainer bf16"):
        assert row[name]["median"] > 0 and len(row[name]["rounds"]) == 1
    assert row["trainer_over_seed"]["median"] > 0 and row["trainer_over_hand"]["median"] > 0
    arithmetic = report["arithmetic"]
    # 2 * (forward + backward) multiply-adds of both players' linear layers: tens of MFLOP per sample
    assert 20e6 < arithmetic["flops_per_sample"] < 60e6
    assert 0 < arithmetic["fraction"] < 1.5
    assert 200 < report["peak_rss_mib"] < 4096
    assert "samples/s" in result.stdout


def test_previous_trainer_benchmark_runs_both_trainers_interleaved(tmp_path, mnist_dir):
    """benchmarks/previous.py exports the last release's trainer from git and times it beside today's."""
    out = tmp_path / "previous.json"
    command = [sys.executable, str(REPO / "benchmarks" / "previous.py"), "--data-dir", str(mnist_dir), "--rounds", "1",
               "--steps", "5", "--batch", "32", "--json", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    row = json.loads(out.read_text())["batches"]["32"]
    assert row["previous"]["median"] > 0 and row["current"]["median"] > 0
    assert row["current_over_previous"]["median"] > 0 and "current / previous" in result.stdout


@pytest.mark.slow
def test_gpu_check_runs_every_part_at_toy_sizes_on_the_cpu(tmp_path, mnist_dir):
    """benchmarks/gpu_check.py, the device check, with --device cpu --smoke: every part runs and reports."""
    out = tmp_path / "gpu_check.json"
    command = [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--smoke", "--data-dir",
               str(mnist_dir), "--batches", "32", "--rounds", "1", "--seconds", "0.1", "--json", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    report = json.loads(out.read_text())
    for name in ("gpu_tests", "probe", "throughput", "schedule", "graphed_hand_step"):
        assert "error" not in report[name], (name, report[name].get("traceback"))
    assert report["gpu_tests"]["skipped"] == report["gpu_tests"]["passed"] + report["gpu_tests"]["skipped"] > 0
    assert report["probe"]["fp32_tflops"] > 0 and report["probe"]["layer_shapes_gflops"]["32"] > 0
    row = report["throughput"]["32"]
    assert row["samples_per_s"] > 0 and 20e6 < row["flops_per_step"] / 32 < 60e6
    assert row["cuda_graphs"] == "off: CUDA graphs need a CUDA device; this run is on cpu"  # auto, on the CPU
    assert report["throughput"]["32 eager"]["cuda_graphs"] == "off" and report["throughput"]["32 eager"]["samples_per_s"] > 0
    assert report["schedule"]["steps"] == 187_500 and report["schedule"]["extrapolated"]
    assert report["schedule"]["eager"]["cuda_graphs"] == "off" and report["schedule"]["eager"]["ms_per_step"] > 0
    assert report["schedule"]["epoch_end_seconds"] == {} and report["schedule"]["epoch_end_share"] == 0  # 60 steps end no epoch
    assert report["graphed_hand_step"] == {"skipped": "CUDA graphs need a CUDA device", "seconds": report["graphed_hand_step"]["seconds"]}
    assert report["summary"]["gpu_tests"].endswith("skipped")


def test_gpu_check_reports_tests_that_run_past_their_time_limit(tmp_path):
    """A hung gpu test must not cost the check's other parts: the pytest run is killed, with its children, and reported."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    found = gpu_check.run_gpu_tests(SimpleNamespace(data_dir=tmp_path, test_timeout=1))
    assert found["error"] == "the gpu tests ran past --test-timeout 1 s"
    assert found["cases"] == {}  # pytest cannot even collect in a second
    assert gpu_check.summary({"gpu_tests": found})["gpu_tests"] == "the gpu tests ran past --test-timeout 1 s (0 passed before)"


HANGS = """
import time

import pytest


@pytest.mark.gpu
def test_ends():
    pass


@pytest.mark.gpu
def test_hangs():
    time.sleep(600)
"""


@pytest.mark.slow
def test_gpu_check_keeps_the_tests_that_ended_before_one_hung(tmp_path):
    """Past --test-timeout the pytest run is killed (with the test that hangs) and the ones that ended are kept."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    tests = tmp_path / "test_hangs.py"
    tests.write_text(HANGS)
    started = time.time()
    found = gpu_check.run_gpu_tests(SimpleNamespace(data_dir=tmp_path, test_timeout=20, tests=tests))
    assert time.time() - started < 60  # not the sleeping test's 600 s
    assert found["error"] == "the gpu tests ran past --test-timeout 20 s"
    assert found["cases"] == {"test_ends": {"outcome": "passed"}}
    assert gpu_check.summary({"gpu_tests": found})["gpu_tests"] == "the gpu tests ran past --test-timeout 20 s (1 passed before)"


def test_gpu_check_times_each_callbacks_epoch_end():
    """The schedule's breakdown: seconds per epoch end, by callback (the checkpoint, the sample grid)."""
    import time

    import torch
    from torch import nn

    from advnets import AdversarialTrainer, Callback, Data
    from advnets.losses import NonSaturatingLoss

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(REPO / "benchmarks"))

    class Slow(Callback):
        def on_epoch_end(self, trainer):
            time.sleep(0.05)

    class Quick(Callback):
        pass

    generator = nn.Linear(2, 2)
    generator.latent_dim = 2
    trainer = AdversarialTrainer(generator, nn.Linear(2, 1), NonSaturatingLoss(), Data(train=torch.randn(16, 2)),
                                 batch_size=8, device="cpu", callbacks=[Slow(), Quick()])
    with gpu_check.epoch_end_clock(SimpleNamespace(trainer=trainer, device=torch.device("cpu"))) as spent:
        trainer.fit(steps=6)  # three epochs of two steps
    assert sorted(spent) == ["Quick", "Slow"] and len(spent["Slow"]) == 3
    assert all(0.05 <= t < 1 for t in spent["Slow"]) and all(t < 0.05 for t in spent["Quick"])
    assert "on_epoch_end" not in vars(trainer.callbacks[0])  # the hooks are the callbacks' own again
