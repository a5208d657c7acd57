"""Checks of a checkpoint's content against the trainer it is about to be loaded into.

A checkpoint can be a whole, well-formed safetensors file and still hold the
wrong things: a negative step, an epoch's data order that is not a permutation,
an optimiser moment shaped unlike its parameter, a random-number state of the
wrong size. Loaded as they are, such values fail deep inside torch (after part
of the trainer has changed), or worse, train on silently from a wrong state.

:func:`validate_state` looks at everything the trainer will read, before it reads
any of it, and raises a :class:`~advnets.errors.CheckpointError` with one line
naming the entry (``progress.cursor``, ``order``, ``generator.net.0.weight``,
``g_optimizer.state.3.exp_avg``, ``rng.noise``). When it raises, nothing has
changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from .data import is_finite_number
from .errors import CheckpointError, first_line
from .players import Player
from .sources import TensorSource

if TYPE_CHECKING:
    from .trainer import AdversarialTrainer

# The per-parameter state of torch's optimisers that is shaped like the parameter
# (Adam, AdamW, SGD, RMSprop, Adagrad, Adadelta, Rprop, ASGD). Entries not named
# here (Adafactor's factored moments, a plugin's own) are left to the optimiser.
PARAMETER_SHAPED = frozenset(
    {"exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer", "square_avg", "grad_avg", "acc_delta", "sum", "prev", "step_size", "ax"}
)
END = 2**63  # counters and the seed are int64 values (the trainer keeps its counters in an int64 tensor)


def validate_state(state: Mapping[str, Any], trainer: AdversarialTrainer) -> None:
    """Raise CheckpointError (one line) if ``state`` cannot be loaded into ``trainer`` as it is."""
    progress = _table(state, "progress")
    _check_progress(progress, trainer)
    _check_order(state.get("order"), progress["cursor"], trainer.source)
    _check_stats(state.get("stats"), progress)
    for player in trainer.players.values():
        _check_player(state, player)
    _check_rngs(_table(state, "rng"), progress, trainer.device)
    if state.get("lr_schedulers") is not None and trainer._lr_maker is not None:
        _check_lr_schedulers(state["lr_schedulers"], trainer)
    if state.get("scalers") and trainer.precision == "16":
        check_scalers(state["scalers"])
    _check_callbacks(state.get("callbacks"), trainer)


# --- what callbacks, schedulers and gradient scalers keep ----------------------------


def _check_callbacks(saved: Any, trainer: AdversarialTrainer) -> None:
    """Each callback's saved state is a table; a callback that can check it (``check_state``) does so now."""
    from .trainer import callback_key

    if saved is None:
        return
    if not isinstance(saved, Mapping):
        raise CheckpointError(f"the checkpoint's callbacks is {_kind(saved)}, not a table")
    for callback in trainer.callbacks:
        key = callback_key(callback)
        if key not in saved:
            continue
        value = saved[key]
        if not isinstance(value, Mapping):
            raise CheckpointError(f"callbacks.{key} is {_kind(value)}, not a table")
        try:
            callback.check_state(value)
        except (TypeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"callbacks.{key}: {first_line(exc)}") from None


def _check_lr_schedulers(saved: Any, trainer: AdversarialTrainer) -> None:
    """A learning-rate scheduler's state per player: its counters whole numbers, its rates one finite
    number per parameter group (the rest of a scheduler's state is its own; torch reads it)."""
    if not isinstance(saved, Mapping):
        raise CheckpointError(f"the checkpoint's lr_schedulers is {_kind(saved)}, not a table")
    for name, value in saved.items():
        where = f"lr_schedulers.{name}"
        if name not in trainer.players:
            raise CheckpointError(f"{where}: this run has no player {name!r}")
        if not isinstance(value, Mapping):
            raise CheckpointError(f"{where} is {_kind(value)}, not a table")
        for key, low in (("last_epoch", -1), ("_step_count", 0)):
            if key in value and not (_is_int(value[key]) and low <= value[key] < END):
                raise CheckpointError(f"{where}.{key} must be a whole number in [{low}, 2**63), found {value[key]!r}")
        groups = len(trainer.players[name].optimizer.param_groups)
        for key in ("base_lrs", "_last_lr"):
            rates = value.get(key)
            if rates is None and key == "_last_lr":
                continue
            if not (isinstance(rates, list) and len(rates) == groups and all(is_finite_number(r) and r >= 0 for r in rates)):
                raise CheckpointError(f"{where}.{key} must be {groups} finite learning rate(s) >= 0, found {rates!r}")


# field: (lowest, highest or None, whole number?); the bounds themselves are excluded for fractions
SCALER_FIELDS = {
    "scale": (0.0, None, False),
    "growth_factor": (1.0, None, False),
    "backoff_factor": (0.0, 1.0, False),
    "growth_interval": (1, None, True),
    "_growth_tracker": (0, None, True),
}


def check_scalers(saved: Any) -> None:
    """Float16 gradient scalers, one per update: a positive finite scale, factors and counters in range."""
    if not isinstance(saved, (Mapping, list)):
        raise CheckpointError(f"the checkpoint's scalers is {_kind(saved)}, not a table")
    items = saved.items() if isinstance(saved, Mapping) else enumerate(saved)  # the first release kept a list
    for name, value in items:
        where = f"scalers.{name}"
        if not isinstance(value, Mapping):
            raise CheckpointError(f"{where} is {_kind(value)}, not a table")
        for key, (low, high, whole) in SCALER_FIELDS.items():
            got = value.get(key)
            if whole:
                ok, kind = _is_int(got) and low <= got < END, f"a whole number >= {low}"
            else:
                ok = is_finite_number(got) and got > low and (high is None or got < high)
                kind = f"a finite number above {low:g}" + ("" if high is None else f" and below {high:g}")
            if not ok:
                raise CheckpointError(f"{where}.{key} must be {kind}, found {got!r}")


# --- counters ----------------------------------------------------------------------


def _table(state: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = state.get(key)
    if not isinstance(value, Mapping):
        raise CheckpointError(f"the checkpoint's {key} is {_kind(value)}, not a table")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _integer(progress: Mapping[str, Any], key: str, low: int, required: bool = True) -> None:
    """progress[key] must be a whole number in [low, 2**63)."""
    if key not in progress and not required:
        return
    value = progress.get(key)
    if not _is_int(value) or not low <= value < END:
        raise CheckpointError(f"progress.{key} must be a whole number in [{low}, 2**63), found {value!r}")


def _check_progress(progress: Mapping[str, Any], trainer: AdversarialTrainer) -> None:
    for key in ("step", "epoch", "stats_steps", "skipped", "bad_run", "seed", "cursor"):
        _integer(progress, key, 0)
    _integer(progress, "source_epoch", 0, required=False)
    _integer(progress, "trip_first", -1, required=False)
    step, cursor, batches = progress["step"], progress["cursor"], trainer.source.batches_per_epoch
    if cursor >= batches:
        raise CheckpointError(f"progress.cursor is {cursor}, beyond the epoch's {batches} batches")
    for key, why in (("epoch", "every epoch takes at least one step"), ("stats_steps", "it counts steps")):
        if progress[key] > step:
            raise CheckpointError(f"progress.{key} is {progress[key]}, more than progress.step ({step}); {why}")
    names = progress.get("stat_names")
    if names is not None and not (isinstance(names, list) and all(isinstance(name, str) for name in names)):
        raise CheckpointError(f"progress.stat_names must be a list of names, found {names!r}")
    if not isinstance(progress.get("device_type", ""), str):
        raise CheckpointError(f"progress.device_type must be a device type's name, found {progress['device_type']!r}")


def _check_order(order: Any, cursor: int, source: Any) -> None:
    """The epoch's data order (tensor-resident data only): a permutation of the training set's indices."""
    if not isinstance(source, TensorSource):
        return
    if order is None:
        if cursor > 0:
            raise CheckpointError(f"progress.cursor is {cursor} but the checkpoint has no data order for that epoch")
        return
    samples = len(source.data.train)
    if not isinstance(order, Tensor) or order.dtype != torch.int64 or order.dim() != 1:
        raise CheckpointError(f"order must be a 1-D int64 tensor of sample indices, found {_kind(order)}")
    if len(order) != samples:
        raise CheckpointError(f"order has {len(order)} indices; the training set has {samples} samples")
    if int(order.min()) < 0 or int(order.max()) >= samples:
        raise CheckpointError(f"order holds indices outside [0, {samples}), so it is not a permutation of the training set")
    if not bool((torch.bincount(order, minlength=samples) == 1).all()):
        raise CheckpointError("order repeats some indices and misses others, so it is not a permutation of the training set")


def _check_stats(stats: Any, progress: Mapping[str, Any]) -> None:
    if stats is None:
        return
    if not isinstance(stats, Tensor) or not stats.is_floating_point() or stats.dim() != 1:
        raise CheckpointError(f"stats must be a 1-D float tensor of running sums, found {_kind(stats)}")
    names = progress.get("stat_names")
    if names is not None and len(stats) != len(names):
        raise CheckpointError(f"stats has {len(stats)} sums for the {len(names)} names of progress.stat_names")


# --- players -----------------------------------------------------------------------


def _check_player(state: Mapping[str, Any], player: Player) -> None:
    module_key, optimizer_key, ema_key = player.state_keys()
    if module_key not in state:
        raise CheckpointError(f"the checkpoint has no {module_key!r} (player {player.name!r})")
    check_module_state(state[module_key], player.module, module_key)
    if player.ema is not None and ema_key in state:
        check_module_state(state[ema_key], player.ema, ema_key)
    if optimizer_key not in state:
        raise CheckpointError(f"the checkpoint has no {optimizer_key!r} (player {player.name!r})")
    _check_optimizer(state[optimizer_key], player, optimizer_key)


def check_module_state(saved: Any, module: nn.Module, key: str, what: str = "model") -> None:
    """``saved`` must have exactly ``module``'s tensors, each of its shape and kind, with finite values."""
    expected = module.state_dict()
    if not isinstance(saved, Mapping):
        raise CheckpointError(f"{key} is {_kind(saved)}, not a table of tensors")
    missing = [name for name in expected if name not in saved]
    unexpected = [name for name in saved if name not in expected]
    if missing or unexpected:
        detail = f"has no {key}.{missing[0]}" if missing else f"has {key}.{unexpected[0]}, which the {what} has not"
        more = len(missing) + len(unexpected) - 1
        raise CheckpointError(f"does not fit the {what} its config builds: it {detail}" + (f" (and {more} more)" if more else ""))
    for name, want in expected.items():
        got = saved[name]
        if not isinstance(got, Tensor):
            raise CheckpointError(f"{key}.{name} is {_kind(got)}, not a tensor")
        if got.shape != want.shape:
            raise CheckpointError(
                f"does not fit the {what} its config builds: {key}.{name} has shape {_shape(got)}, the {what}'s has {_shape(want)}"
            )
        if got.is_floating_point() != want.is_floating_point():
            raise CheckpointError(f"{key}.{name} is a {got.dtype} tensor, the {what}'s is {want.dtype}")
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise CheckpointError(f"{key}.{name} holds non-finite values (NaN or infinity)")


def _check_optimizer(saved: Any, player: Player, key: str) -> None:
    """Groups and parameters as many as the optimiser's; moments shaped like their parameters."""
    live_groups = player.optimizer.param_groups
    if not isinstance(saved, Mapping) or not isinstance(saved.get("state"), Mapping) or not isinstance(saved.get("param_groups"), list):
        raise CheckpointError(f"{key} is not an optimiser's state (a table with 'state' and a list 'param_groups')")
    groups = saved["param_groups"]
    if len(groups) != len(live_groups):
        raise CheckpointError(f"{key} has {len(groups)} parameter group(s); the optimiser of player {player.name!r} has {len(live_groups)}")
    params: dict[int, Tensor] = {}
    for i, (group, live) in enumerate(zip(groups, live_groups)):
        where = f"{key}.param_groups.{i}"
        ids = group.get("params") if isinstance(group, Mapping) else None
        if not isinstance(ids, list) or not all(_is_int(pid) for pid in ids):
            raise CheckpointError(f"{where} has no list of parameter ids")
        if len(ids) != len(live["params"]):
            raise CheckpointError(f"{where} has {len(ids)} parameters; the optimiser's group has {len(live['params'])}")
        _check_hyperparameters(group, live, where)
        for pid, param in zip(ids, live["params"]):
            if pid in params:
                raise CheckpointError(f"{key}.param_groups list parameter {pid} twice")
            params[pid] = param
    names = {id(p): name for name, p in player.module.named_parameters()}
    for pid, entry in saved["state"].items():
        if pid not in params:
            raise CheckpointError(f"{key}.state has an entry for parameter {pid!r}, which no parameter group lists")
        if not isinstance(entry, Mapping):
            raise CheckpointError(f"{key}.state.{pid} is {_kind(entry)}, not a table")
        _check_moments(entry, params[pid], f"{key}.state.{pid}", names.get(id(params[pid]), "?"))


def _check_hyperparameters(group: Mapping[str, Any], live: Mapping[str, Any], where: str) -> None:
    """Numbers where the optimiser has numbers (lr, eps, betas...), finite; switches where it has switches."""
    for name, want in live.items():
        if name == "params" or name not in group:
            continue
        got = group[name]
        if isinstance(want, bool):
            ok = got is None or isinstance(got, bool)  # None: torch's default, as on a device without the fused kernel
        elif is_finite_number(want):
            ok = is_finite_number(got)
        elif isinstance(want, (list, tuple)) and all(is_finite_number(w) for w in want):
            ok = isinstance(got, (list, tuple)) and len(got) == len(want) and all(is_finite_number(g) for g in got)
        else:
            continue
        if not ok:
            raise CheckpointError(f"{where}.{name} is {got!r}; the optimiser needs {_describe(want)}")




def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (list, tuple)):
        return f"{len(value)} finite numbers"
    return "a finite number"


def _check_moments(entry: Mapping[str, Any], param: Tensor, where: str, param_name: str) -> None:
    for name, value in entry.items():
        if name in PARAMETER_SHAPED and value is not None:
            if not isinstance(value, Tensor):
                raise CheckpointError(f"{where}.{name} is {_kind(value)}, not a tensor")
            if value.shape != param.shape:
                raise CheckpointError(f"{where}.{name} has shape {_shape(value)}; its parameter {param_name} has {_shape(param)}")
        elif name == "step" and not (is_finite_number(value) or (isinstance(value, Tensor) and value.numel() == 1)):
            raise CheckpointError(f"{where}.step must be one number, found {_kind(value)}")


# --- random-number states ------------------------------------------------------------


def _check_rngs(rng: Mapping[str, Any], progress: Mapping[str, Any], device: torch.device) -> None:
    """Each state the trainer will restore must be one that a generator of its device takes."""
    _check_rng(rng.get("torch"), "rng.torch", torch.device("cpu"))
    if progress.get("device_type", device.type) == device.type:
        for name in ("noise", "data"):
            _check_rng(rng.get(name), f"rng.{name}", device)
    if "cuda" in rng and device.type == "cuda":
        _check_rng(rng["cuda"], "rng.cuda", device)


def _check_rng(value: Any, where: str, device: torch.device) -> None:
    scratch = torch.Generator(device=device)  # a throwaway generator: the live ones stay as they are
    reference = scratch.get_state()
    if not isinstance(value, Tensor) or value.dtype != reference.dtype or value.shape != reference.shape:
        raise CheckpointError(
            f"{where} is not a {device.type} random-number state ({_kind(reference)}), found {_kind(value)}"
        )
    try:
        scratch.set_state(value)
    except (RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{where} is not a valid {device.type} random-number state ({first_line(exc)})") from None


# --- words ---------------------------------------------------------------------------


def _shape(value: Tensor) -> str:
    return str(tuple(value.shape))


def _kind(value: Any) -> str:
    """A value described for a message: a tensor by dtype and shape, anything else by type."""
    if isinstance(value, Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    if value is None:
        return "missing"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"
