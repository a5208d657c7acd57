"""Captured steps (advnets.graphs, issue 15), on the CPU.

A CUDA graph bakes every Python number of the step it records into its kernels
and reads everything else from fixed device memory. There is no CUDA graph on
the CPU, so these tests put :class:`~advnets.graphs.Rehearsal` in its place: it
"replays" by running the step with the Python state frozen at its capture (the
step number, the data cursor), reading the fed device tensors. A step that read
a Python number where a replay must read memory then trains differently from the
eager run, and the bit-for-bit comparisons below fail (the last test shows that
they do). tests/test_gpu.py runs the same comparisons with real graphs on CUDA.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from advnets import AdversarialTrainer, Callback, Data, graphs
from advnets.checkpoint import load_checkpoint, save_checkpoint
from advnets.errors import CaptureError, ConfigError
from advnets.losses import NonSaturatingLoss
from advnets.objectives import GANObjective
from advnets.optim import adam
from advnets.schedules import step_decay

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "plugins"))
from test_gpu import assert_same_parts  # noqa: E402
from test_sync_free import tensors  # noqa: E402
from test_trainer import Discriminator, Generator  # noqa: E402


class Records(Callback):
    def __init__(self) -> None:
        self.records = []

    def on_log(self, trainer, record) -> None:
        self.records.append({k: v for k, v in record.items() if k not in ("time", "samples_per_s")})


class DeviceNaNLoss(NonSaturatingLoss):
    """NaN losses at chosen steps, counted on the device: a loss a captured step can replay."""

    def __init__(self, nan_steps: list[int]) -> None:
        self.count = torch.zeros((), dtype=torch.int64)
        self.bad = torch.tensor(nan_steps, dtype=torch.int64)

    def _poison(self, loss):  # a NaN added where the count is bad (a where() around loss * nan would poison every gradient)
        return loss + torch.where(torch.isin(self.count, self.bad), float("nan"), 0.0)

    def discriminator_loss(self, real_logits, fake_logits):
        return self._poison(super().discriminator_loss(real_logits, fake_logits))

    def generator_loss(self, fake_logits):
        loss = self._poison(super().generator_loss(fake_logits))
        self.count += 1
        return loss


def make(rehearse: bool, loss=None, callbacks=(), batchnorm: bool = False, **settings) -> AdversarialTrainer:
    torch.manual_seed(0)
    data = Data(train=torch.randn(512, 2, generator=torch.Generator().manual_seed(99)))
    trainer = AdversarialTrainer(
        Generator(), Discriminator(batchnorm=batchnorm), loss or NonSaturatingLoss(), data, batch_size=16, seed=0, device="cpu",
        log_every=10, callbacks=list(callbacks), **settings,
    )
    if rehearse:
        graphs.rehearse(trainer)
    return trainer


def assert_same_run(eager: AdversarialTrainer, replayed: AdversarialTrainer) -> None:
    a, b = tensors(eager), tensors(replayed)
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert torch.equal(eager._counters, replayed._counters)
    assert (eager.step, eager.epoch, eager.source.cursor) == (replayed.step, replayed.epoch, replayed.source.cursor)
    assert torch.equal(eager._noise_rng.get_state(), replayed._noise_rng.get_state())


@pytest.mark.parametrize(
    ("settings", "report"),
    [
        ({}, "on: 97 of 100 steps were replays of 1 captured graph"),
        # the average's weight changes every step up to ema_start (20): those steps stay eager
        ({"k": 2, "ema_decay": 0.9, "ema_start": 20, "ema_warmup": 3}, "on: 77 of 100 steps were replays of 1 captured graph"),
        ({"precision": "bf16"}, "on: 97 of 100 steps were replays of 1 captured graph"),
        # k = 2 until step 30, then 1: one graph for each, three warm-up steps before each
        ({"k_schedule": [[0, 2], [30, 1]]}, "on: 94 of 100 steps were replays of 2 captured graphs"),
        # a learning rate that changes every step is baked into no graph: every step is eager
        ({"lr_schedule": "cosine"}, "on: 0 of 100 steps were replays of 0 captured graphs"),
        # halved every 12 steps: a graph for each of the 9 rates, at most 4 kept at once
        ({"lr_scheduler": step_decay(every_steps=12, gamma=0.5)}, "on: 73 of 100 steps were replays of 9 captured graphs"),
        # batch norm's running statistics update in place: captured like any other kernel
        ({"batchnorm": True}, "on: 97 of 100 steps were replays of 1 captured graph"),
    ],
    ids=["plain", "k2-ema-warmup", "bf16", "k-schedule", "cosine-lr", "step-lr", "batchnorm"],
)
def test_replayed_steps_train_exactly_as_eager_steps(settings, report):
    eager_records, replayed_records = Records(), Records()
    eager = make(False, callbacks=[eager_records], **settings).fit(steps=100)  # 100 steps: several epochs
    replayed = make(True, callbacks=[replayed_records], **settings).fit(steps=100)
    assert_same_run(eager, replayed)
    assert eager_records.records == replayed_records.records  # every training record, number for number
    assert replayed.graph_report == report
    assert eager.graph_report == "off: CUDA graphs need a CUDA device; this run is on cpu"


def test_a_run_of_bad_steps_in_replays_is_found_and_named_as_in_eager_steps():
    """The NaN guard's record of where the bad run began comes from the fed step number."""
    runs = []
    for rehearse in (False, True):
        run = make(rehearse, loss=DeviceNaNLoss([40, 41, 42]), max_bad_steps=3)
        run.fit(steps=100)
        runs.append(run)
    eager, replayed = runs
    assert replayed.graph_report.startswith("on: ") and " 0 of " not in replayed.graph_report
    assert eager.step == replayed.step == 50 and eager.fault == replayed.fault
    assert "(steps 41 to 43)" in replayed.fault
    assert_same_run(eager, replayed)


def test_a_skipped_update_in_a_replay_changes_nothing():
    run = make(True, loss=DeviceNaNLoss([30]), ema_decay=0.9)
    run.fit(steps=30)
    before = {k: v.clone() for k, v in tensors(run).items()}
    run.fit(steps=31)  # step 31 is bad; a fresh fit warms up again, so make it a replay by hand
    assert run.graph_report == "on: 0 of 1 steps were replays of 0 captured graphs"
    stepped = make(True, loss=DeviceNaNLoss([30]), ema_decay=0.9)
    stepped.fit(steps=31)
    assert stepped.graph_report == "on: 28 of 31 steps were replays of 1 captured graph"  # step 31 was a replay
    assert [k for k, v in tensors(stepped).items() if not torch.equal(before[k], v)] == []


def test_a_run_resumed_from_a_checkpoint_file_with_replays_is_the_straight_run(tmp_path):
    """Through a file, as --resume does: the optimisers' betas come back from JSON as lists, and mid-epoch
    the data order comes back from the static buffer it was saved from."""
    straight = make(False).fit(steps=90)
    for stop in (37, 64, 70):  # 64: an epoch boundary (32 steps an epoch)
        first = make(True).fit(steps=stop)
        save_checkpoint(tmp_path / f"{stop}.safetensors", first.state_dict(), {})
        state, _ = load_checkpoint(tmp_path / f"{stop}.safetensors")
        resumed = make(True)
        resumed.load_state_dict(state)
        resumed.fit(steps=90)
        assert resumed.graph_report.startswith("on: ") and " 0 of " not in resumed.graph_report
        assert_same_run(straight, resumed)


def test_a_resumed_run_with_replays_is_the_straight_run():
    straight = make(True).fit(steps=90)
    first = make(True).fit(steps=37)
    state = first.state_dict()
    resumed = make(True)
    resumed.load_state_dict(state)
    resumed.fit(steps=90)
    assert_same_run(straight, resumed)
    assert_same_run(make(False).fit(steps=90), resumed)


class _Refuses:
    """A recorder whose capture raises, as torch's does where a kernel cannot be captured."""

    def __init__(self, trainer, body) -> None:
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing")


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_a_failed_capture_stops_the_run_with_one_line_that_says_how_to_go_on(mode):
    """torch leaves its generators in capture mode after a failed capture: no eager step may follow."""
    run = make(False)
    run._graph_recorder, run.cuda_graphs = _Refuses, mode
    with pytest.raises(CaptureError) as caught:
        run.fit(steps=40)
    assert str(caught.value) == (
        "capturing the training step in a CUDA graph failed (CUDA error: operation not permitted when stream is capturing)"
    )
    assert run.step == 3 and run.source.cursor == 3  # the warm-up steps ran; the capture drew no batch
    # The state is whole (a real capture runs nothing); the next test resumes it in a new process.
    eager = make(False).fit(steps=3)
    a, b = tensors(eager), tensors(run)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert torch.equal(eager._noise_rng.get_state(), run._noise_rng.get_state())


PARTS = ("generator", "discriminator", "g_optimizer", "d_optimizer")
REFUSE = HERE / "plugins" / "refuse_capture.py"
TOY = ["toy-gaussian", "--seed", "0", "--plugin", str(REFUSE), "--set", "callbacks={\"refuse-capture\": {}}",
       "--set", "checkpoint.every_steps=20", "--steps", "40"]


@pytest.mark.slow  # three runs through the command line
def test_a_run_whose_capture_fails_keeps_its_steps_and_resumes_with_graphs_off(tmp_path, cli):
    """Through the command line: a final checkpoint at the failure, one line, exit 1; the resume the
    line names ends where a run without graphs ends, bit for bit."""
    stopped = tmp_path / "stopped"
    result = cli("run", *TOY, "--out", str(stopped))
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line == "error: " + (
        "capturing the training step in a CUDA graph failed (CUDA error: operation not permitted when stream is "
        f"capturing); training stopped at step 3: saved in {stopped / 'checkpoints' / 'step-000000003.safetensors'}; "
        f"resume with: advnets run --resume {stopped} --set trainer.cuda_graphs=off"
    ), line
    resumed = cli("run", "--resume", str(stopped), "--set", "trainer.cuda_graphs=off")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "changed: trainer.cuda_graphs \"auto\" -> \"off\"" in resumed.stdout + resumed.stderr
    straight = tmp_path / "straight"
    assert cli("run", *TOY, "--set", "trainer.cuda_graphs=off", "--out", str(straight)).returncode == 0
    a, _ = load_checkpoint(straight / "checkpoints" / "step-000000040.safetensors")
    b, _ = load_checkpoint(stopped / "checkpoints" / "step-000000040.safetensors")
    assert_same_parts(a, b, PARTS)


REHEARSE = HERE / "plugins" / "rehearse_graphs.py"


@pytest.mark.slow  # two short MNIST runs through the command line
def test_the_lecture_recipe_through_the_command_line_replays_its_steps_and_is_the_eager_run(tmp_path, cli, mnist_dir):
    """advnets run mlp-mnist-lecture with the stand-in for CUDA graphs: checkpoints, grids and an evaluation
    happen between replays, and every checkpoint is the eager run's, bit for bit."""
    common = ["mlp-mnist-lecture", "--data-dir", str(mnist_dir), "--seed", "0", "--steps", "120", "--plugin", str(REHEARSE),
              "--set", "callbacks.rehearse-graphs={}", "--set", "checkpoint.every_steps=50", "--set", "eval.metrics={\"mnist-modes\": {}}",
              "--set", "eval.n_samples=500"]
    replayed, eager, resumed = tmp_path / "replayed", tmp_path / "eager", tmp_path / "resumed"
    for out, mode in ((replayed, "auto"), (eager, "off")):
        result = cli("run", *common, "--set", f"trainer.cuda_graphs={mode}", "--out", str(out))
        assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((replayed / "graphs.json").read_text()) == {"steps": 120, "replayed": 117}
    assert json.loads((eager / "graphs.json").read_text()) == {"steps": 0, "replayed": 0}
    # stopped at 60 and resumed from its checkpoint file with replays: the optimisers' settings
    # and the data order come back from the file
    assert cli("run", *common, "--steps", "60", "--out", str(resumed)).returncode == 0
    result = cli("run", "--resume", str(resumed), "--steps", "120")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((resumed / "graphs.json").read_text()) == {"steps": 60, "replayed": 57}
    for step, other in ((50, replayed), (100, replayed), (120, replayed), (120, resumed)):
        a, _ = load_checkpoint(eager / "checkpoints" / f"step-{step:09d}.safetensors")
        b, _ = load_checkpoint(other / "checkpoints" / f"step-{step:09d}.safetensors")
        assert_same_parts(a, b, PARTS, (step, other.name))
        assert a["progress"] == b["progress"], (step, other.name)
    metrics = [(out / "metrics.jsonl").read_text().splitlines() for out in (eager, replayed)]
    strip = [[{k: v for k, v in json.loads(line).items() if k not in ("time", "samples_per_s")} for line in lines] for lines in metrics]
    assert strip[0] == strip[1]  # every training record and the evaluation, number for number


class HooksEveryUpdate(Callback):
    def on_after_backward(self, trainer, players) -> None: ...


class Uncapturable(GANObjective):
    capturable = False


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"objective": Uncapturable()}, "objective Uncapturable does not declare capturable = True"),
        ({"d_optimizer": adam(lr=1e-3, impl="foreach")}, "player discriminator's optimizer is not one of torch's fused kernels"),
        ({"callbacks": [HooksEveryUpdate()]}, "callback HooksEveryUpdate runs Python at every update"),
        ({"streamed": True}, "streamed data comes through a DataLoader on the host"),
    ],
    ids=["objective", "optimizer", "hooks", "streamed"],
)
def test_where_steps_cannot_be_captured_auto_runs_them_eagerly_and_says_why(change, reason):
    torch.manual_seed(0)
    train = torch.randn(512, 2, generator=torch.Generator().manual_seed(99))
    data = Data(train=torch.utils.data.TensorDataset(train) if change.pop("streamed", False) else train)
    run = AdversarialTrainer(Generator(), Discriminator(), NonSaturatingLoss(), data, batch_size=16, seed=0, device="cpu", **change)
    graphs.rehearse(run)
    run.fit(steps=5)
    assert run.graph_report.startswith(f"off: {reason}")


def test_on_is_one_line_where_graphs_cannot_be():
    with pytest.raises(ConfigError, match="^trainer.cuda_graphs is on, but CUDA graphs need a CUDA device; this run is on cpu$"):
        make(False, cuda_graphs="on")
    with pytest.raises(ConfigError, match="^trainer.cuda_graphs must be one of auto, on, off, got 'yes'$"):
        make(False, cuda_graphs="yes")
    assert make(False, cuda_graphs="off").fit(steps=3).graph_report == "off"


class ReadsTheStepNumber(GANObjective):
    """Wrongly declares itself capturable: its D update depends on ctx.step, a Python number."""

    capturable = True

    def step(self, ctx):
        result = super().step(ctx)
        with torch.no_grad():
            for p in ctx.players.discriminator.params:
                p.mul_(1.0 - 1e-3 * (ctx.step % 2))
        return result


class CountsInPython(GANObjective):
    """Wrongly declares itself capturable: it keeps a counter in Python, which a replay would not advance."""

    capturable = True

    def __init__(self) -> None:
        super().__init__()
        self.updates = 0

    def step(self, ctx):
        self.updates += 1
        return super().step(ctx)


def test_the_rehearsal_names_python_state_a_step_changes():
    with pytest.raises(AssertionError, match=r"the step changed CountsInPython.updates in Python; a CUDA graph's replay would not"):
        make(True, objective=CountsInPython()).fit(steps=10)


def test_the_rehearsal_catches_a_step_that_reads_a_python_number():
    """The comparisons above can fail: a step that depends on ctx.step replays differently."""
    eager = make(False, objective=ReadsTheStepNumber()).fit(steps=20)
    replayed = make(True, objective=ReadsTheStepNumber()).fit(steps=20)
    assert replayed.graph_report == "on: 17 of 20 steps were replays of 1 captured graph"
    with pytest.raises(AssertionError):
        assert_same_run(eager, replayed)
