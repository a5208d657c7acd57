"""Checkpoints whose file is whole but whose content is wrong: one line, exit 2, nothing changed.

Each case takes a real checkpoint of a short toy-gaussian run (with G's moving
average, mid-epoch so it holds a data order), damages one thing in it and saves
it again as a well-formed safetensors file: a counter, the data order, an
optimiser's state, a weight, a random-number state. Resuming it must be refused
before anything is loaded or written, with one line naming the entry.
"""

from __future__ import annotations

import hashlib
import math
import re
import shutil
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from typer.testing import CliRunner

from advnets.checkpoint import load_checkpoint, save_checkpoint, step_checkpoints
from advnets.cli import app
from advnets.errors import CheckpointError
from advnets.runs import resume_run
from advnets.validate import validate_state

STEPS = 30  # toy-gaussian's epoch is longer: the checkpoint is mid-epoch and holds the order
RUN = [
    "run", "toy-gaussian", "--steps", str(STEPS), "--seed", "5", "--set", "eval.metrics={\"gaussian-w1\": {}}", "--set", "eval.n_samples=200",
    "--set", "eval.best=w1", "--set", "lr_scheduler=warmup", "--set", "lr_scheduler.warmup_steps=10",
]  # figure-1 and the evaluator keep state in checkpoints, and so does the warm-up's scheduler
NAME = f"step-{STEPS:09d}.safetensors"

Damage = Callable[[dict[str, Any]], None]


def child_key(node: Any, part: str) -> Any:
    """The key of ``part`` in ``node``: an index in a list or an optimiser's state (keyed by int), else a name."""
    if part.isdigit() and (isinstance(node, list) or int(part) in node):
        return int(part)
    return part


def parent_and_key(state: dict[str, Any], path: str) -> tuple[Any, Any]:
    *parents, last = path.split("/")
    node = state
    for part in parents:
        node = node[child_key(node, part)]
    return node, child_key(node, last)


def setter(path: str, value: Any) -> Damage:
    """Set the entry at ``path`` (keys joined by ``/``) to ``value`` (or to ``value(old)`` if it is a function)."""

    def damage(state: dict[str, Any]) -> None:
        node, key = parent_and_key(state, path)
        node[key] = value(node[key]) if callable(value) else value

    return damage


def changed(path: str, change: Callable[[torch.Tensor], torch.Tensor]) -> Damage:
    return setter(path, lambda old: change(old.clone()))


def poke(index: Any, value: float) -> Callable[[torch.Tensor], torch.Tensor]:
    def change(t: torch.Tensor) -> torch.Tensor:
        t[index] = value
        return t

    return change


def removed(path: str) -> Damage:
    def damage(state: dict[str, Any]) -> None:
        node, key = parent_and_key(state, path)
        del node[key]

    return damage


def repeated_index(order: torch.Tensor) -> torch.Tensor:
    order[0] = order[1]
    return order


def extra_group(state: dict[str, Any]) -> None:
    groups = state["g_optimizer"]["param_groups"]
    groups.append({**groups[0], "params": []})


def foreign_parameter_state(state: dict[str, Any]) -> None:
    optimizer = state["d_optimizer"]["state"]
    optimizer[17] = dict(optimizer[0])


# (id, class, damage, what the one line must say); the first of each class runs by default.
CASES: list[tuple[str, str, Damage, str]] = [
    ("negative step", "progress", setter("progress/step", -5), "progress.step must be a whole number in [0, 2**63), found -5"),
    ("fractional step", "progress", setter("progress/step", 30.5), "progress.step must be a whole number in [0, 2**63), found 30.5"),
    ("step as text", "progress", setter("progress/step", "30"), "progress.step must be a whole number in [0, 2**63), found '30'"),
    ("epoch beyond step", "progress", setter("progress/epoch", STEPS + 1), f"progress.epoch is {STEPS + 1}, more than progress.step ({STEPS})"),
    ("cursor beyond the epoch", "progress", setter("progress/cursor", 10**6), "progress.cursor is 1000000, beyond the epoch's"),
    ("negative cursor", "progress", setter("progress/cursor", -1), "progress.cursor must be a whole number in [0, 2**63), found -1"),
    ("seed beyond 2**63", "progress", setter("progress/seed", 2**64), "progress.seed must be a whole number in [0, 2**63), found 18446744073709551616"),
    ("trip_first below -1", "progress", setter("progress/trip_first", -2), "progress.trip_first must be a whole number in [-1, 2**63), found -2"),
    ("stats_steps beyond step", "progress", setter("progress/stats_steps", STEPS + 7), f"progress.stats_steps is {STEPS + 7}, more than progress.step"),
    ("bad_run beyond int64", "progress", setter("progress/bad_run", 2**63), "progress.bad_run must be a whole number in [0, 2**63), found 9223372036854775808"),
    ("skipped as a flag", "progress", setter("progress/skipped", True), "progress.skipped must be a whole number in [0, 2**63), found True"),
    ("stat names as text", "progress", setter("progress/stat_names", "d_loss"), "progress.stat_names must be a list of names"),
    ("stats of another length", "progress", changed("stats", lambda t: t[:2]), "stats has 2 sums for the"),
    ("order as floats", "order", changed("order", lambda t: t.float()), "order must be a 1-D int64 tensor of sample indices, found a float32 tensor"),
    ("order one short", "order", changed("order", lambda t: t[:-1]), "order has 19999 indices; the training set has 20000 samples"),
    ("order repeats an index", "order", changed("order", repeated_index), "order repeats some indices and misses others"),
    ("order beyond the data", "order", changed("order", poke(0, 10**9)), "order holds indices outside [0,"),
    ("order missing mid-epoch", "order", removed("order"), "but the checkpoint has no data order for that epoch"),
    ("Adam moment of another shape", "optimizer", setter("g_optimizer/state/0/exp_avg", torch.zeros(3)), "g_optimizer.state.0.exp_avg has shape (3,); its parameter net.0.weight has (64, 1)"),
    ("a group one parameter short", "optimizer", setter("d_optimizer/param_groups/0/params", lambda ids: ids[:-1]), "d_optimizer.param_groups.0 has 5 parameters; the optimiser's group has 6"),
    ("two parameter groups", "optimizer", extra_group, "g_optimizer has 2 parameter group(s); the optimiser of player 'generator' has 1"),
    ("lr as text", "optimizer", setter("g_optimizer/param_groups/0/lr", "fast"), "g_optimizer.param_groups.0.lr is 'fast'; the optimiser needs a finite number"),
    ("three betas", "optimizer", setter("d_optimizer/param_groups/0/betas", [0.5, 0.9, 0.99]), "d_optimizer.param_groups.0.betas is [0.5, 0.9, 0.99]; the optimiser needs 2 finite numbers"),
    ("state of a parameter no group has", "optimizer", foreign_parameter_state, "d_optimizer.state has an entry for parameter 17, which no parameter group lists"),
    ("Adam step as a vector", "optimizer", setter("d_optimizer/state/2/step", torch.ones(4)), "d_optimizer.state.2.step must be one number"),
    ("weight of another shape", "model", setter("discriminator/net.2.weight", torch.zeros(64, 63)), "does not fit the model its config builds: discriminator.net.2.weight has shape (64, 63), the model's has (64, 64)"),
    ("missing weight", "model", removed("generator/net.4.bias"), "does not fit the model its config builds: it has no generator.net.4.bias"),
    ("NaN in a weight", "model", changed("generator/net.0.weight", poke((0, 0), math.nan)), "generator.net.0.weight holds non-finite values"),
    ("integer weight", "model", changed("discriminator/net.0.bias", lambda t: t.long()), "discriminator.net.0.bias is a torch.int64 tensor, the model's is torch.float32"),
    ("torch RNG state cut short", "rng", changed("rng/torch", lambda t: t[:100]), "rng.torch is not a cpu random-number state (a uint8 tensor of shape (5056,)), found a uint8 tensor of shape (100,)"),
    ("noise RNG state as floats", "rng", changed("rng/noise", lambda t: t.float()), "rng.noise is not a cpu random-number state"),
    ("RNG states as a list", "rng", setter("rng", [1, 2]), "the checkpoint's rng is a list, not a table"),
    ("data RNG state of garbage", "rng", setter("rng/data", torch.zeros(5056, dtype=torch.uint8)), "rng.data is not a valid cpu random-number state (Invalid mt19937 state)"),
    ("average of another shape", "average", setter("generator_ema/net.0.weight", torch.zeros(32, 1)), "does not fit the model its config builds: generator_ema.net.0.weight has shape (32, 1), the model's has (64, 1)"),
    ("infinity in the average", "average", changed("generator_ema/net.4.bias", poke(0, math.inf)), "generator_ema.net.4.bias holds non-finite values"),
    ("best value as text", "callbacks", setter("callbacks/Evaluate/best_value", "high"), "callbacks.Evaluate: best_value must be a finite number or null, found 'high'"),
    ("best value infinite", "callbacks", setter("callbacks/Evaluate/best_value", math.inf), "callbacks.Evaluate: best_value must be a finite number or null, found inf"),
    ("callbacks as a list", "callbacks", setter("callbacks", [1]), "the checkpoint's callbacks is a list, not a table"),
    ("a callback's state as a number", "callbacks", setter("callbacks/Evaluate", 3), "callbacks.Evaluate is an int, not a table"),
    ("a figure panel without D", "callbacks", removed("callbacks/FigureOne/snapshots/0/d"), "callbacks.FigureOne: snapshots.0.d must be a 1-D float tensor"),
    ("figure panels as text", "callbacks", setter("callbacks/FigureOne/snapshots", "many"), "callbacks.FigureOne: snapshots must be a list of at most 1000 panels"),
    ("scheduler step as text", "scheduler", setter("lr_schedulers/generator/last_epoch", "9"), "lr_schedulers.generator.last_epoch must be a whole number in [-1, 2**63), found '9'"),
    ("scheduler rates one short", "scheduler", setter("lr_schedulers/discriminator/base_lrs", []), "lr_schedulers.discriminator.base_lrs must be 1 finite learning rate(s) >= 0, found []"),
    ("negative scheduler rate", "scheduler", setter("lr_schedulers/generator/_last_lr", [-0.1]), "lr_schedulers.generator._last_lr must be 1 finite learning rate(s) >= 0, found [-0.1]"),
    ("a scheduler for no player", "scheduler", setter("lr_schedulers/encoder", {}), "lr_schedulers.encoder: this run has no player 'encoder'"),
    ("schedulers as a list", "scheduler", setter("lr_schedulers", [0]), "the checkpoint's lr_schedulers is a list, not a table"),
]


def _params() -> list[Any]:
    """The first case of each class through a real ``advnets`` process (in the fast loop); the others through
    the same command line in this process (typer's runner: the same code, without 3-5 s of start-up each)."""
    first_of_class: set[str] = set()
    params = []
    for name, kind, damage, message in CASES:
        first = kind not in first_of_class
        first_of_class.add(kind)
        params.append(pytest.param(damage, message, "process" if first else "in-process", id=name, marks=() if first else (pytest.mark.slow,)))
    return params


def _in_process(*args: str) -> Any:
    """The command line run in this process, with a CompletedProcess's returncode, stdout and stderr."""
    result = CliRunner().invoke(app, list(args), env={"ADVNETS_PLUGINS": "", "ADVNETS_LOAD_PLUGINS": None})
    return types.SimpleNamespace(returncode=result.exit_code, stdout=result.stdout, stderr=result.stderr)


@pytest.fixture(scope="module")
def source_run(tmp_path_factory, cli) -> Path:
    out = tmp_path_factory.mktemp("content") / "run"
    result = cli(*RUN, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert [p.name for p in step_checkpoints(out / "checkpoints")] == [NAME]
    state, _ = load_checkpoint(out / "checkpoints" / NAME)
    assert state["progress"]["cursor"] > 0 and "order" in state and "generator_ema" in state  # what the cases damage
    return out


def damaged_copy(source: Path, target: Path, damage: Damage) -> Path:
    """A copy of the run folder (without its lock) whose checkpoint is re-saved with ``damage`` applied."""
    shutil.copytree(source, target)
    (target / ".lock").unlink(missing_ok=True)
    path = target / "checkpoints" / NAME
    state, metadata = load_checkpoint(path)
    damage(state)
    save_checkpoint(path, state, metadata)
    load_checkpoint(path)  # still a well-formed checkpoint: only its content is wrong
    return target


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_cases_are_distinct_and_cover_every_class():
    assert len({case[0] for case in CASES}) == len(CASES)
    assert {case[1] for case in CASES} == {"progress", "order", "optimizer", "model", "rng", "average", "callbacks", "scheduler"}


@pytest.mark.parametrize("damage, message, via", _params())
def test_resume_of_wrong_content_is_one_line_and_changes_nothing(source_run, tmp_path, cli, damage, message, via):
    run = damaged_copy(source_run, tmp_path / "run", damage)
    before = digests(run)
    result = (cli if via == "process" else _in_process)("run", "--resume", str(run), "--steps", str(STEPS + 10))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert f"checkpoints/{NAME}: " in lines[0] and message in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert digests(run) == before  # the checkpoint byte for byte, no new one, config.json as it was
    assert [p.name for p in step_checkpoints(run / "checkpoints")] == [NAME]


# --- the library: a refused load leaves the trainer as it was ---------------------------


def flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() for k, v in flat(value, f"{prefix}.{key}").items()}
    if isinstance(tree, list):
        return {k: v for i, value in enumerate(tree) for k, v in flat(value, f"{prefix}.{i}").items()}
    return {prefix: tree.clone() if isinstance(tree, torch.Tensor) else tree}


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(
        torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k] for k in a
    )


@pytest.fixture(scope="module")
def resumed(source_run, tmp_path_factory, registry):
    """A trainer resumed in this process from the good checkpoint."""
    run = tmp_path_factory.mktemp("resumed") / "run"
    shutil.copytree(source_run, run)
    (run / ".lock").unlink(missing_ok=True)
    return resume_run(registry, run)


@pytest.mark.parametrize("damage, message", [pytest.param(d, m, id=name) for name, _, d, m in CASES])
def test_a_refused_load_leaves_the_trainer_untouched(source_run, resumed, damage, message):
    trainer = resumed.trainer
    state, _ = load_checkpoint(source_run / "checkpoints" / NAME)
    damage(state)
    before = flat(trainer.state_dict())
    with pytest.raises(CheckpointError) as info:
        trainer.load_state_dict(state)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert same(flat(trainer.state_dict()), before)  # weights, moments, counters, order, every RNG stream


def test_the_good_checkpoint_and_the_optional_trip_first_are_accepted(source_run, resumed):
    state, _ = load_checkpoint(source_run / "checkpoints" / NAME)
    validate_state(state, resumed.trainer)
    for trip_first in (-1, 0, 12):
        state["progress"]["trip_first"] = trip_first
        validate_state(state, resumed.trainer)


@pytest.mark.parametrize(
    "damage, message",
    [
        pytest.param(setter("generator_ema/net.2.weight", torch.zeros(64, 8)), "does not fit the generator its config builds: generator_ema.net.2.weight has shape (64, 8), the generator's has (64, 64)", id="wrong shape", marks=pytest.mark.slow),
        pytest.param(changed("generator_ema/net.0.bias", poke(3, math.nan)), "generator_ema.net.0.bias holds non-finite values", id="NaN"),
    ],
)
def test_sample_of_a_wrong_or_non_finite_generator_is_one_line(source_run, tmp_path, cli, damage, message):
    run = damaged_copy(source_run, tmp_path / "run", damage)
    before = digests(run)
    result = cli("sample", str(run), "--out", str(tmp_path / "grid.png"))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{NAME}: " in lines[0] and message in lines[0], result.stderr
    assert not (tmp_path / "grid.png").exists() and digests(run) == before


@pytest.mark.parametrize(
    "scalers, message",
    [
        ([1], "scalers.0 is an int, not a table"),
        ({"generator": {"scale": -1.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000, "_growth_tracker": 0}}, "scalers.generator.scale must be a finite number above 0, found -1.0"),
        ({"generator": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 1.5, "growth_interval": 2000, "_growth_tracker": 0}}, "scalers.generator.backoff_factor must be a finite number above 0 and below 1, found 1.5"),
        ({"generator": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": "2000", "_growth_tracker": 0}}, "scalers.generator.growth_interval must be a whole number >= 1, found '2000'"),
        ("scales", "the checkpoint's scalers is a str, not a table"),
    ],
)
def test_float16_gradient_scalers_are_checked_before_they_load(scalers, message):
    """Float16 runs need CUDA, so this checks the scalers' validation on its own (tests/test_gpu.py trains with them)."""
    from advnets.validate import check_scalers

    with pytest.raises(CheckpointError, match=re.escape(message)):
        check_scalers(scalers)
    check_scalers({"generator": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000, "_growth_tracker": 0}})
