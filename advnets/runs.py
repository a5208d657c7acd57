"""From a resolved configuration to a trainer with its run folder, and back from a checkpoint.

A run on disk::

    runs/<preset>-<YYYYmmdd-HHMMSS>/
      config.json             the resolved configuration (rerun: advnets run config.json)
      metrics.jsonl           one JSON object per logged step / evaluation
      samples/step_*.png      fixed-noise grids
      checkpoints/*.safetensors

Everything that can fail on bad input (unknown names, wrong values, missing data)
is built *before* the run folder is made, so a failed start leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from . import distributed, runlock
from .callbacks import Checkpointer, Evaluate, TrainingPlots
from .checkpoint import (
    ANY_RUN,
    load_checkpoint,
    newest_loadable,
    newest_of_run,
    remove_unfinished_writes,
    set_aside,
    step_checkpoints,
)
from .config import MAPS, SLOTS, load_config_file, resolve
from .files import no_run_folder, write_json_atomic
from .data import Data
from .errors import AdvnetsError, CheckpointError, ConfigError, first_line
from .objectives import Objective
from .players import PlayerSpec
from .registry import NAME_PATTERN, Registry, settings_of
from .samples import check_sample_memory
from .trainer import AdversarialTrainer, Callback, check_world_size, generate
from .validate import check_module_state, validate_state

CONFIG_NAME = "config.json"
DEFAULT_RUNS_DIR = "runs"


@dataclasses.dataclass
class Components:
    """Everything a configuration names, built."""

    generator: torch.nn.Module
    discriminator: torch.nn.Module
    dataset: Data
    loss: Any
    g_optimizer: Any
    d_optimizer: Any
    objective: Any
    lr_scheduler: Any
    players: dict[str, PlayerSpec] = dataclasses.field(default_factory=dict)


def build_components(registry: Registry, config: dict[str, Any]) -> Components:
    """Build every component slot. Seeds torch first so that weight initialisation repeats."""
    torch.manual_seed(config["seed"])
    built = {}
    for slot, kind in SLOTS.items():
        with _in_slot(slot):
            built[slot] = registry.build(kind, config[slot]["name"], **settings_of(config[slot]))
    for slot in ("generator", "discriminator"):
        if not isinstance(built[slot], torch.nn.Module):
            raise ConfigError(f"{slot} {config[slot]['name']!r} did not build a torch.nn.Module")
    if not isinstance(built["dataset"], Data):
        raise ConfigError(f"dataset {config['dataset']['name']!r} did not build an advnets.Data")
    if not isinstance(built["objective"], Objective):
        raise ConfigError(f"objective {config['objective']['name']!r} did not build an advnets.Objective")
    players = {}
    for name, entry in config.get("players", {}).items():
        with _in_slot(f"players.{name}.module"):
            module = registry.build(name, entry["module"]["name"], **settings_of(entry["module"]))
        if not isinstance(module, torch.nn.Module):
            raise ConfigError(f"players.{name}: {name} {entry['module']['name']!r} did not build a torch.nn.Module")
        with _in_slot(f"players.{name}.optimizer"):
            optimizer = registry.build("optimizer", entry["optimizer"]["name"], **settings_of(entry["optimizer"]))
        players[name] = PlayerSpec(module, optimizer, entry["ema_decay"], entry["ema_start"], entry["ema_warmup"])
    return Components(**built, players=players)


@contextlib.contextmanager
def _in_slot(slot: str) -> Iterator[None]:
    """A component's own error, said with the slot it fills (``g_optimizer: adam: lr must be > 0``)."""
    try:
        yield
    except ConfigError as exc:
        text = str(exc)
        if text.startswith((slot, slot.replace("_", " "), "no ", "unknown ")):
            raise
        raise ConfigError(f"{slot}: {text}") from None


@dataclasses.dataclass
class Run:
    """A trainer wired to its run folder."""

    config: dict[str, Any]
    run_dir: Path
    trainer: AdversarialTrainer
    checkpointer: Checkpointer
    resumed_from: Path | None = None
    skipped: list[str] = dataclasses.field(default_factory=list)

    def fit(self) -> AdversarialTrainer:
        trainer_config = self.config["trainer"]
        return self.trainer.fit(steps=trainer_config["steps"], epochs=trainer_config["epochs"])


def build_trainer(
    registry: Registry,
    config: dict[str, Any],
    run_dir: Path,
    extra_callbacks: Iterable[Callback] = (),
) -> tuple[AdversarialTrainer, Checkpointer]:
    """The trainer for ``config`` with the standard callbacks, writing into ``run_dir``."""
    parts = build_components(registry, config)
    callbacks: list[Callback] = [registry.build("callback", name, **settings) for name, settings in config["callbacks"].items()]
    checkpointer = Checkpointer(**config["checkpoint"])
    eval_config = dict(config["eval"])
    metrics = {name: registry.build("metric", name, **settings) for name, settings in eval_config.pop("metrics").items()}
    if metrics:
        check_sample_memory("eval.n_samples", eval_config["n_samples"], parts.dataset.sample_shape)
    if metrics:
        callbacks.append(Evaluate(metrics, checkpointer=checkpointer, **eval_config))
    elif eval_config["best"] is not None:
        raise ConfigError("eval.best is set, but eval.metrics names no metric")
    # Order matters at the end of a run: the last evaluation is logged before the
    # final checkpoint (which holds the best value so far) and before the log closes.
    loggers = [registry.build("logger", name, **settings) for name, settings in config["loggers"].items()]
    callbacks += [checkpointer, *loggers, TrainingPlots(), *extra_callbacks]  # plots read jsonl's metrics.jsonl
    if not distributed.is_main():  # under torchrun only rank 0 writes; a callback can ask for every rank
        callbacks = [c for c in callbacks if getattr(c, "all_ranks", False)]
    trainer_config = config["trainer"]
    trainer = AdversarialTrainer(
        parts.generator,
        parts.discriminator,
        parts.loss,
        parts.dataset,
        g_optimizer=parts.g_optimizer,
        d_optimizer=parts.d_optimizer,
        batch_size=trainer_config["batch_size"],
        k=trainer_config["k"],
        noise=trainer_config["noise"],
        device=distributed.local_device(config["device"]),
        seed=config["seed"],
        callbacks=callbacks,
        log_every=trainer_config["log_every"],
        run_dir=run_dir,
        metadata={"config": config},
        joint_d_forward=trainer_config["joint_d_forward"],
        ema_decay=trainer_config["ema_decay"],
        ema_start=trainer_config["ema_start"],
        ema_warmup=trainer_config["ema_warmup"],
        ema_norm_batches=trainer_config["ema_norm_batches"],
        precision=trainer_config["precision"],
        nan_guard=trainer_config["nan_guard"],
        max_bad_steps=trainer_config["max_bad_steps"],
        lr_schedule=trainer_config["lr_schedule"],
        objective=parts.objective,
        players=parts.players,
        k_schedule=trainer_config["k_schedule"],
        lr_scheduler=parts.lr_scheduler,
        cuda_graphs=trainer_config["cuda_graphs"],
        # --no-eval: no interval and no closing evaluation; callbacks that evaluate stay quiet too
        evaluation=bool(eval_config["every_epochs"] or eval_config["every_steps"] or eval_config["at_end"]),
    )
    trainer.steps_for(steps=trainer_config["steps"], epochs=trainer_config["epochs"])  # checked before any folder exists
    return trainer, checkpointer


def new_run_dir(out: str | os.PathLike[str] | None, preset: str | None, check: bool = True) -> Path:
    """``--out DIR`` (must be new or empty), or ``runs/<preset>-<timestamp>`` made unique.

    ``preset`` goes into a path: pass only a checked name (:func:`folder_prefix`).
    """
    if out is not None:
        path = Path(out)
        if check and path.exists() and not path.is_dir():
            raise ConfigError(f"output folder {path} is a file; choose another output folder (--out)")
        if check and path.exists() and any(path.iterdir()):
            runlock.check_free(path)  # a live run's folder: say so rather than "not empty"
            raise ConfigError(f"output folder {path} already exists and is not empty; choose another output folder (--out), or resume the run in it")
    else:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = Path(DEFAULT_RUNS_DIR) / f"{preset or 'run'}-{stamp}"
        path, n = base, 1
        while path.exists():
            n += 1
            path = base.with_name(f"{base.name}-{n}")
    return path


def folder_prefix(registry: Registry, preset: Any) -> str:
    """The default run folder's name before its timestamp: a registered preset's name, else ``run``.

    The ``preset`` of a config file is only text; it must never choose where files go.
    """
    if isinstance(preset, str) and NAME_PATTERN.match(preset) and ("preset", preset) in registry:
        return preset
    return "run"


def start_run(
    registry: Registry,
    config: dict[str, Any],
    out: str | os.PathLike[str] | None = None,
    extra_callbacks: Iterable[Callback] = (),
) -> Run:
    """A new run of ``config`` with its own id, in a folder that this process claims (locks) for its life."""
    main = distributed.is_main()
    config = {**config, "run_id": uuid.uuid4().hex}  # a rerun of a config.json is a new run
    run_dir = new_run_dir(out, folder_prefix(registry, config.get("preset")), check=main)
    run_dir = distributed.broadcast_path(run_dir)  # every rank names the folder rank 0 chose
    trainer, checkpointer = build_trainer(registry, config, run_dir, extra_callbacks)
    # Only now, with everything built and checked, does the run folder appear.
    if main:
        try:
            if out is None:  # a default name must be new, even if another run took it just now
                base, n = run_dir, 1
                while True:
                    try:
                        run_dir.mkdir(parents=True)
                        break
                    except FileExistsError:
                        n += 1
                        run_dir = base.with_name(f"{base.name}-{n}")
                trainer.run_dir = run_dir
            else:
                run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create output folder {run_dir}: {exc.strerror or exc}") from None
        runlock.claim(run_dir)
        if any(p.name != runlock.LOCK_NAME for p in run_dir.iterdir()):  # another run filled it since the check
            raise ConfigError(f"output folder {run_dir} already exists and is not empty; choose another output folder (--out), or resume the run in it")
        try:
            write_json_atomic(run_dir / CONFIG_NAME, config)
        except AdvnetsError as exc:
            raise ConfigError(f"cannot create output folder {run_dir}: {exc}") from None
    return Run(config, run_dir, trainer, checkpointer)


def given_overrides(
    steps: int | None, epochs: int | None, device: str | None, data_dir: str | None, overrides: Iterable[tuple[tuple[str, ...], Any]]
) -> list[tuple[tuple[str, ...], Any]]:
    """A resume's options as overrides, in the order ``--set`` would apply them."""
    given: list[tuple[tuple[str, ...], Any]] = []
    if device is not None:
        given.append((("device",), device))
    if data_dir is not None:
        given.append((("dataset", "data_dir"), data_dir))
    if steps is not None or epochs is not None:
        given.append((("trainer", "steps"), steps))
        if epochs is not None:
            given.append((("trainer", "epochs"), epochs))
    return given + list(overrides)


def _restart(
    registry: Registry,
    run_dir: Path,
    *,
    overrides: list[tuple[tuple[str, ...], Any]],
    plugin_files: list[dict[str, str]] | None,
    extra_callbacks: Iterable[Callback],
    check_world_size: int | None,
) -> Run | None:
    """A run killed before its first checkpoint, trained again from step 0 in its folder with its config.json."""
    path = run_dir / CONFIG_NAME
    try:
        saved = resolve(registry, base=load_config_file(path))
    except AdvnetsError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    config = resolve(registry, base=saved, overrides=overrides)
    changed = changed_settings(saved, config)
    check_resumable(changed, config)  # the same rules as a resume from a checkpoint
    record_changes(config, changed, step=0)
    if plugin_files is not None:
        config["plugin_files"] = plugin_files
    trainer, checkpointer = build_trainer(registry, config, run_dir, extra_callbacks)
    if check_world_size is not None:
        return None
    if distributed.is_main():
        runlock.claim(run_dir)
        write_json_atomic(run_dir / CONFIG_NAME, config)
    note = f"{run_dir} has no checkpoint yet (stopped before its first): training it again from step 0 with its config.json"
    return Run(config, run_dir, trainer, checkpointer, resumed_from=None, skipped=[note])


def check_start(registry: Registry, config: dict[str, Any], out: str | os.PathLike[str] | None, world_size: int = 1) -> None:
    """Everything :func:`start_run` checks, for a job of ``world_size`` processes torchrun is about to
    start (built here as one process, then checked for the data all of them take): nothing is written."""
    new_run_dir(out, folder_prefix(registry, config.get("preset")))
    check_config(registry, config, world_size)


def check_config(registry: Registry, config: dict[str, Any], world_size: int = 1) -> None:
    """Build the run of ``config`` as :func:`start_run` would, data and callbacks' checks included,
    for ``world_size`` processes; nothing is trained or written."""
    seed = 0 if config.get("seed") is None else config["seed"]  # `advnets config` leaves the seed to draw
    trainer, _ = build_trainer(registry, {**config, "seed": seed, "run_id": uuid.uuid4().hex}, Path(os.devnull))
    trainer.check_data_for(world_size)


def _check_state(path: Path, state: dict[str, Any], trainer: AdversarialTrainer, world_size: int) -> None:
    """What ``load_state_dict`` checks before it loads, for ``world_size`` processes."""
    try:
        check_world_size(state.get("progress"), world_size)
        validate_state(state, trainer)
    except AdvnetsError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def recorded_run_id(run_dir: Path) -> tuple[Any, list[str]]:
    """The run id that ``run_dir/config.json`` records (None for a run from before ids), and notes.

    Without a readable config.json there is no record of the owner: any run's
    checkpoint may then be taken (:data:`ANY_RUN`), and a note says so.
    """
    path = run_dir / CONFIG_NAME
    try:
        if path.exists() and not path.is_file():
            raise ConfigError(f"{path}: not a regular file")
        run_id = load_config_file(path).get("run_id")
    except ConfigError as exc:
        return ANY_RUN, [f"{exc}; taking the newest checkpoint that loads, whichever run wrote it"]
    return (run_id if isinstance(run_id, str) else None), []


def resume_run(
    registry: Registry,
    run_dir: str | os.PathLike[str],
    *,
    steps: int | None = None,
    epochs: int | None = None,
    device: str | None = None,
    data_dir: str | None = None,
    preset: str | None = None,
    overrides: Iterable[tuple[tuple[str, ...], Any]] = (),
    plugin_files: list[dict[str, str]] | None = None,
    extra_callbacks: Iterable[Callback] = (),
    check_world_size: int | None = None,
) -> Run | None:
    """Continue a run from its newest checkpoint that loads (of ``preset``, if given).

    ``steps``/``epochs`` extend it; ``device`` and ``data_dir`` may change, as they
    do not change the maths (a change of device type re-seeds the noise and data
    streams, so the continuation is then not bit-identical). ``overrides`` (``--set``)
    may change the settings that leave the steps already taken as they were
    (:data:`RESUMABLE`); each change is recorded, with the step, in ``changes``.
    ``plugin_files``: the plugin files loaded for this resume, recorded in place of the old
    record (a file found at a new place is recorded there).

    ``check_world_size=N``: only check that a job of N processes could resume it (before
    torchrun starts them): everything is read, built and checked, nothing is locked or
    written, and None is returned.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(no_run_folder(run_dir, "--resume"))
    main = distributed.is_main()
    if check_world_size is not None:
        runlock.check_free(run_dir)
    elif main:
        runlock.claim_existing(run_dir)  # a live run's folder: refused before anything is read
    run_id, unrecorded = recorded_run_id(run_dir)
    if isinstance(run_id, str) and not step_checkpoints(run_dir / "checkpoints"):  # killed before its first checkpoint
        return _restart(registry, run_dir, overrides=given_overrides(steps, epochs, device, data_dir, overrides),
                        plugin_files=plugin_files, extra_callbacks=extra_callbacks, check_world_size=check_world_size)
    path, state, metadata, unusable = newest_of_run(run_dir / "checkpoints", run_id)
    config = metadata.get("config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: the checkpoint carries no advnets run configuration")
    given = given_overrides(steps, epochs, device, data_dir, overrides)
    try:
        saved = resolve(registry, base=config)
    except AdvnetsError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    if preset is not None and saved.get("preset") not in (None, *registry.get("preset", preset).names):
        raise ConfigError(f"{run_dir} is a run of preset {saved['preset']!r}, not {preset!r}")
    config = resolve(registry, base=saved, overrides=given)
    changed = changed_settings(saved, config)
    check_resumable(changed, config)
    edited = _edited_config(run_dir, saved)
    if plugin_files is not None:
        config["plugin_files"] = plugin_files
    trainer, checkpointer = build_trainer(registry, config, run_dir, extra_callbacks)
    if check_world_size is not None:
        _check_state(path, state, trainer, check_world_size)
        return None
    try:
        trainer.load_state_dict(state)
    except CheckpointError as exc:  # its content, checked before anything was loaded
        raise CheckpointError(f"{path}: {exc}") from None
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as exc:
        first = first_line(exc)
        raise CheckpointError(f"{path}: does not fit the model its config builds ({first})") from None
    target = trainer.steps_for(steps=config["trainer"]["steps"], epochs=config["trainer"]["epochs"])
    if target < trainer.step:
        length = f"--steps {config['trainer']['steps']}" if config["trainer"]["steps"] is not None else f"--epochs {config['trainer']['epochs']}"
        raise ConfigError(
            f"{run_dir} is at step {trainer.step} already; {length} ends at step {target}, before it: "
            "give a later target (a run never trains backwards)"
        )
    for player, (old, new) in _learning_rate_changes(changed).items():
        trainer.change_learning_rate(player, old, new)
    record_changes(config, changed, step=trainer.step)
    notes: list[str] = []
    if main:  # everything checked: only now, as its owner, does anything in the folder change
        runlock.claim(run_dir)
        notes = remove_unfinished_writes(run_dir / "checkpoints") + unrecorded + edited
        notes += [set_aside(item) for item in unusable]
        write_json_atomic(run_dir / CONFIG_NAME, config)
    return Run(config, run_dir, trainer, checkpointer, resumed_from=path, skipped=notes)


# --- what a resume may change -----------------------------------------------------

RESUMABLE = (
    "learning rates (g_optimizer.lr, d_optimizer.lr, players.NAME.optimizer.lr), trainer.steps, trainer.epochs, "
    "eval.* (but eval.best and eval.mode), loggers, checkpoint.*, device, dataset.data_dir and trainer.cuda_graphs"
)
"""What ``run --resume`` accepts ``--set`` for: settings that leave the steps already taken as they were."""

_NOT_SETTINGS = ("distributed", "run_id", "changes", "plugin_files", "preset")


def _flatten(node: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """{path: value} for every setting; an entry of a component map (a logger, a metric) is one value."""
    if prefix in MAPS and isinstance(node, dict) and not node:
        return {}  # an empty map: its entries, none, are what changed
    if isinstance(node, dict) and node and (len(prefix) < 2 or prefix[:-1] not in MAPS):
        flat: dict[tuple[str, ...], Any] = {}
        for key, value in node.items():
            flat.update(_flatten(value, (*prefix, str(key))))
        return flat
    return {prefix: node}


def changed_settings(before: dict[str, Any], after: dict[str, Any]) -> dict[tuple[str, ...], tuple[Any, Any]]:
    """Every setting whose value differs between two resolved configurations: {path: (old, new)}."""
    old = {k: v for k, v in _flatten(before).items() if k[0] not in _NOT_SETTINGS}
    new = {k: v for k, v in _flatten(after).items() if k[0] not in _NOT_SETTINGS}
    return {key: (old.get(key), new.get(key)) for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)}


def record_changes(config: dict[str, Any], changed: dict[tuple[str, ...], tuple[Any, Any]], step: int) -> None:
    """Append ``{"step", "set", "was"}`` to ``config["changes"]`` if anything changed."""
    if changed:
        config["changes"] = [
            *config["changes"],
            {
                "step": step,
                "set": {".".join(key): new for key, (_, new) in changed.items()},
                "was": {".".join(key): old for key, (old, _) in changed.items()},
            },
        ]


def _lr_owner(key: tuple[str, ...]) -> str | None:
    """The player whose learning rate ``key`` is, if it is one."""
    if key in (("g_optimizer", "lr"), ("d_optimizer", "lr")):
        return "generator" if key[0] == "g_optimizer" else "discriminator"
    if key[0] == "players" and len(key) == 4 and key[2:] == ("optimizer", "lr"):
        return key[1]
    return None


def _may_change(key: tuple[str, ...]) -> bool:
    if key in (("device",), ("dataset", "data_dir"), ("trainer", "steps"), ("trainer", "epochs"), ("trainer", "cuda_graphs")):
        return True
    if _lr_owner(key) is not None or key[0] in ("checkpoint", "loggers"):
        return True
    return key[0] == "eval" and len(key) > 1 and key[1] not in ("best", "mode")


def check_resumable(changed: dict[tuple[str, ...], tuple[Any, Any]], config: dict[str, Any]) -> None:
    """One line of refusal for a change that would make the resumed run another run."""
    refused = [".".join(key) for key in changed if not _may_change(key)]
    if refused:
        shown = ", ".join(refused[:4]) + (f" and {len(refused) - 4} more" if len(refused) > 4 else "")
        raise ConfigError(
            f"{shown} cannot change when resuming (the steps already taken used the old value); "
            f"what may change: {RESUMABLE}; start a new run for the rest"
        )
    lr_changed = [key for key in changed if _lr_owner(key) is not None]
    if lr_changed and config["lr_scheduler"]["name"] == "torch":
        raise ConfigError(
            f"{'.'.join(lr_changed[0])} cannot change when resuming a run whose lr_scheduler is torch's own "
            "(its saved state decides the rates); start a new run instead"
        )
    for key in lr_changed:
        old, new = changed[key]
        if not (isinstance(old, (int, float)) and old > 0):
            raise ConfigError(f"{'.'.join(key)} cannot change when resuming: the run's value was {old!r}")


def _learning_rate_changes(changed: dict[tuple[str, ...], tuple[Any, Any]]) -> dict[str, tuple[float, float]]:
    return {_lr_owner(key): (float(old), float(new)) for key, (old, new) in changed.items() if _lr_owner(key) is not None}


def _edited_config(run_dir: Path, saved: dict[str, Any]) -> list[str]:
    """A note when the run's config.json says otherwise than the checkpoint (edited by hand, or a later resume)."""
    try:
        on_disk = load_config_file(run_dir / CONFIG_NAME)
    except (ConfigError, OSError):
        return []
    written = _flatten(on_disk)  # what config.json says; settings it lacks are not edits
    differ = [k for k in changed_settings(saved, on_disk) if k in written]
    if not differ:
        return []
    shown = ", ".join(".".join(k) for k in differ[:3]) + (" ..." if len(differ) > 3 else "")
    return [
        f"config.json differs from the checkpoint's configuration ({shown}); the checkpoint's is used and config.json "
        "rewritten: change settings with --set when resuming"
    ]


@dataclasses.dataclass
class LoadedGenerator:
    generator: torch.nn.Module
    metadata: dict[str, Any]
    path: Path
    averaged: bool  # True if these are the weights of G's moving average
    skipped: list[str] = dataclasses.field(default_factory=list)  # newer checkpoints that could not be loaded, and why

    @property
    def noise(self) -> str:
        return self.metadata.get("noise", "normal")

    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        """n samples of this generator (eval mode, no gradients), in the model's space."""
        return generate(self.generator, n, noise=self.noise, seed=seed)


def load_generator(registry: Registry, path: str | os.PathLike[str], use_average: bool = True) -> LoadedGenerator:
    """G from a checkpoint file, or from a run folder's newest loadable checkpoint.

    Takes G's moving average where the checkpoint has one, unless ``use_average`` is False.
    """
    path = Path(path)
    skipped: list[str] = []
    if path.is_dir():
        path, state, metadata, skipped = newest_loadable(path / "checkpoints")
    else:
        state, metadata = load_checkpoint(path)
    config = metadata.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("generator"), dict):
        raise CheckpointError(f"{path}: the checkpoint carries no advnets run configuration")
    settings = settings_of(config["generator"])
    averaged = use_average and "generator_ema" in state
    try:
        generator = registry.build("generator", config["generator"].get("name"), **settings)
        key = "generator_ema" if averaged else "generator"
        check_module_state(state.get(key), generator, key, what="generator")
        generator.load_state_dict(state[key])
    except AdvnetsError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except (RuntimeError, KeyError, TypeError, AttributeError) as exc:
        first = first_line(exc)
        raise CheckpointError(f"{path}: does not fit the generator its config builds ({first})") from None
    return LoadedGenerator(generator, metadata, path, averaged, skipped)
