"""No host reads inside a training step: the NaN guard decides on the device (issue 15).

On a GPU every read of a device value on the host (``.item()``, ``bool(t)``,
``t.tolist()``...) stalls the queue. These tests count such reads made from
Python during training, on the CPU, and assert that there are none between the
training records, with the NaN guard, a moving average, k > 1 and bf16 on; a
skipped update must still change nothing. ``benchmarks/gpu_check.py`` runs the
same steps on CUDA under ``torch.cuda.set_sync_debug_mode("error")``, which also
catches reads made inside torch's C++ code.
"""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from advnets import AdversarialTrainer, Callback, Data
from advnets.losses import NonSaturatingLoss
from advnets.optim import adam, rmsprop

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "plugins"))
from faulty_loss import FaultyLoss  # noqa: E402
from test_trainer import Discriminator, Generator  # noqa: E402

READS = ("item", "tolist", "numpy", "__bool__", "__int__", "__float__", "__index__", "__array__")


@contextlib.contextmanager
def counting_host_reads(counter: Counter):
    """Count every Python-level read of a tensor's value on the host, by method."""
    originals = {name: getattr(torch.Tensor, name) for name in READS}

    def wrap(name, method):
        def counted(self, *args, **kwargs):
            counter[name] += 1
            return method(self, *args, **kwargs)

        return counted

    for name, method in originals.items():
        setattr(torch.Tensor, name, wrap(name, method))
    try:
        yield counter
    finally:
        for name, method in originals.items():
            setattr(torch.Tensor, name, method)


class ReadsPerStep(Callback):
    """The host reads made since the previous step ended (training records included)."""

    def __init__(self, counter: Counter) -> None:
        self.counter, self.per_step = counter, {}

    def on_step_end(self, trainer) -> None:
        self.per_step[trainer.step] = sum(self.counter.values())
        self.counter.clear()


class Records(Callback):
    def __init__(self) -> None:
        self.records = []

    def on_log(self, trainer, record) -> None:
        self.records.append(record)


def trainer(loss=None, log_every=10, **kwargs) -> AdversarialTrainer:
    torch.manual_seed(0)
    data = Data(train=torch.randn(512, 2, generator=torch.Generator().manual_seed(99)))
    return AdversarialTrainer(
        Generator(), Discriminator(), loss or NonSaturatingLoss(), data, batch_size=16, seed=0, device="cpu",
        log_every=log_every, **kwargs,
    )


def reads_per_step(trainer: AdversarialTrainer, steps: int) -> dict[int, int]:
    counter: Counter = Counter()
    probe = ReadsPerStep(counter)
    trainer.callbacks.append(probe)
    with counting_host_reads(counter):
        trainer.fit(steps=steps)
    return probe.per_step


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"k": 2, "ema_decay": 0.9},
        {"precision": "bf16", "ema_decay": 0.9, "ema_start": 5},
    ],
    ids=["plain", "k2-ema", "bf16-ema"],
)
def test_no_host_reads_between_training_records(settings):
    run = trainer(**settings)
    assert run.nan_guard
    per_step = reads_per_step(run, 40)
    # Step 1 is each optimiser's first update: torch creates its state then, so that one
    # decision is taken on the host. Records (every 10 steps) read the counters and statistics.
    quiet = {step: n for step, n in per_step.items() if step > 1 and step % 10}
    assert quiet and all(n == 0 for n in quiet.values()), {s: n for s, n in quiet.items() if n}
    assert all(per_step[step] > 0 for step in (10, 20, 30, 40))  # the counting sees the records' reads


def test_the_counting_sees_a_read_in_a_step():
    """The probe is not blind: an optimiser that cannot skip on the device decides on the host."""
    run = trainer(g_optimizer=rmsprop(lr=1e-3), d_optimizer=rmsprop(lr=1e-3))
    per_step = reads_per_step(run, 12)
    assert all(per_step[step] >= 2 for step in range(2, 10))  # one decision per update: D's and G's


def test_a_skipped_update_changes_nothing_and_is_counted_at_the_record():
    records = Records()
    run = trainer(loss=FaultyLoss(nan_steps=[6], where="both"), ema_decay=0.9, callbacks=[records])
    run.fit(steps=6)
    before = {k: v.clone() for k, v in tensors(run).items()}
    run.fit(steps=7)  # step 7 (index 6): NaN losses for D and G, decided on the device
    after = tensors(run)
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed == []
    assert records.records[-1]["step"] == 7 and records.records[-1]["skipped_steps"] == 1
    assert run._bad_run == 1 and run.fault is None
    run.fit(steps=10)
    assert records.records[-1]["skipped_steps"] == 0 and run._bad_run == 0 and run.fault is None


def tensors(run: AdversarialTrainer) -> dict[str, torch.Tensor]:
    """Every parameter, optimiser state tensor and moving average of both players."""
    found = {}
    for name, player in run.players.items():
        for key, value in player.module.state_dict().items():
            found[f"{name}.{key}"] = value
        for index, state in player.optimizer.state_dict()["state"].items():
            for key, value in state.items():
                found[f"{name}.optimizer.{index}.{key}"] = value
        if player.ema is not None:
            for key, value in player.ema.state_dict().items():
                found[f"{name}.ema.{key}"] = value
    return found


def test_after_max_bad_steps_nothing_is_applied_and_the_run_stops_at_the_next_record():
    run = trainer(loss=FaultyLoss(nan_steps=[12, 13, 14]), max_bad_steps=3, log_every=10)
    run.fit(steps=12)
    before = {k: v.clone() for k, v in tensors(run).items()}
    run.fit(steps=100)  # the losses are finite again from step 16 on...
    # ...but once 3 steps in a row were bad (13 to 15), nothing more is applied, and the
    # host learns of it at the record of step 20, where the run stops.
    assert run.step == 20 and run.should_stop
    assert "3 steps in a row had non-finite losses or gradients (steps 13 to 15)" in run.fault
    assert "up to step 20 where the run stopped" in run.fault and "weights are those of step 12" in run.fault
    assert all(torch.equal(before[k], v) for k, v in tensors(run).items())


def test_the_counters_survive_a_checkpoint():
    run = trainer(loss=FaultyLoss(nan_steps=[3, 4]))
    for _ in range(5):
        run.train_step()
    state = run.state_dict()  # reads the device's counters
    assert state["progress"]["skipped"] == 2 and state["progress"]["bad_run"] == 2  # steps 4 and 5
    assert state["progress"]["stats_steps"] == 3 and state["progress"]["trip_first"] == -1
    resumed = trainer(loss=FaultyLoss())
    resumed.load_state_dict(state)
    straight = trainer(loss=FaultyLoss(nan_steps=[3, 4]))
    for _ in range(3):
        resumed.train_step()
    for _ in range(8):
        straight.train_step()
    assert resumed.pop_stats() == straight.pop_stats()
    assert resumed._skipped == straight._skipped == 2 and resumed._bad_run == straight._bad_run == 0


def test_fused_and_host_decided_skips_agree():
    """The device decision (fused Adam reading found_inf) and the host decision (the same Adam,
    unfused) skip the same steps: their runs differ only by the kernels' rounding."""
    runs = {}
    for impl in ("fused", "foreach"):
        maker = adam(lr=1e-3, impl=impl)
        records = Records()
        run = trainer(loss=FaultyLoss(nan_steps=[4, 9], where="d"), g_optimizer=maker, d_optimizer=maker, callbacks=[records])
        run.fit(steps=12)
        runs[impl] = run
        assert [r["skipped_steps"] for r in records.records] == [2, 0]  # steps 5 and 10, then 11 and 12
    for (key, a), b in zip(tensors(runs["fused"]).items(), tensors(runs["foreach"]).values()):
        assert torch.allclose(a.float(), b.float(), rtol=1e-4, atol=1e-5), key


@pytest.mark.parametrize("impl", ["fused", "foreach"])  # decided on the device, and on the host
def test_a_skipped_update_at_the_averages_restart_still_restarts_it_from_g(impl):
    """ema_warmup's average restarts as a copy of G at step ema_start - 1, even when that update is
    skipped, so from ema_start on nothing depends on the warm-up (the preset's promise)."""
    runs = []
    for warmup in (0, 3):
        maker = adam(lr=1e-3, impl=impl)
        run = trainer(loss=FaultyLoss(nan_steps=[5], where="g"), g_optimizer=maker, d_optimizer=maker,
                      ema_decay=0.9, ema_start=6, ema_warmup=warmup)
        run.fit(steps=5)
        before = [p.clone() for p in run.generator.parameters()]
        run.fit(steps=6)  # step index 5 = ema_start - 1: G's update is skipped
        assert all(torch.equal(a, b) for a, b in zip(before, run.generator.parameters()))
        assert all(torch.equal(a, b) for a, b in zip(run.generator_ema.parameters(), run.generator.parameters()))
        run.fit(steps=9)
        runs.append(run)
    plain, warmed = (tensors(run) for run in runs)
    assert plain.keys() == warmed.keys() and all(torch.equal(plain[k], warmed[k]) for k in plain)


def test_no_host_reads_between_records_with_the_standard_callbacks(tmp_path):
    """A real run of a preset with its callbacks (checkpoints, loggers, plots): the same rule."""
    from advnets import api

    counter: Counter = Counter()
    probe = ReadsPerStep(counter)
    settings = {
        "trainer.steps": 60, "trainer.log_every": 20, "checkpoint.every_steps": 20, "checkpoint.every_epochs": 0,
        "eval.every_epochs": 0,
    }
    run = api.train("toy-gaussian", out=tmp_path / "run", settings=settings, callbacks=[probe], fit=False)
    with counting_host_reads(counter):
        run.fit()
    quiet = {step: n for step, n in probe.per_step.items() if step > 1 and step % 20}
    assert len(quiet) == 56 and all(n == 0 for n in quiet.values()), {s: n for s, n in quiet.items() if n}
    assert (tmp_path / "run" / "checkpoints" / "step-000000060.safetensors").exists()
