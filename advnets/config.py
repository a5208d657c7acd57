"""Run configuration: the core settings, presets, and ``--set key=value`` overrides.

A resolved configuration is plain JSON and says everything a run needs; it is
written to ``config.json`` and is enough to rerun (``advnets run config.json``).
It is built in four steps:

1. the core defaults below;
2. a preset (a component of kind ``preset``) merged over them;
3. ``--set`` overrides, applied in order;
4. every component slot filled with its component's defaults, every name and
   type checked, and a random seed drawn if none was given.

A *component slot* (``generator``, ``loss``, ...) holds ``{"name": ..., **settings}``;
``--set loss=hinge`` picks another component and resets its settings to that
component's defaults. A *component map* (``callbacks``, ``loggers``, ``eval.metrics``) holds
``{name: settings}``; ``--set callbacks.sample-grid=null`` removes an entry and
``--set 'callbacks.sample-grid={}'`` adds one. The ``jsonl`` logger is always on
(``advnets plot`` and the training plots read ``metrics.jsonl``): ``--set logger=NAME``
adds a logger to it.

A config file (``advnets run FILE``) is JSON, YAML or TOML. It may be a run's
complete ``config.json`` or a few settings: a file that names a ``preset`` is laid
over that preset, one that names none over the core defaults, and every value is
checked as a ``--set`` value is.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import secrets
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError, close_matches, first_line
from .provenance import FIELD as PLUGIN_FILES
from .provenance import check_records
from .registry import Component, Registry, check_value, settings_of, type_name


@dataclasses.dataclass(frozen=True)
class Setting:
    """A core setting: its default, its type (for null defaults) and what it means."""

    default: Any
    type: type
    doc: str


SLOTS = {
    "generator": "generator",
    "discriminator": "discriminator",
    "dataset": "dataset",
    "loss": "loss",
    "g_optimizer": "optimizer",
    "d_optimizer": "optimizer",
    "objective": "objective",
    "lr_scheduler": "lr-scheduler",
}
"""Component slots and the kind of component each one holds."""

PLAYER_FIELDS = {"module", "optimizer", "ema_decay", "ema_start", "ema_warmup"}
"""An extra player's entry under ``players``: its module (a component of the kind named like the
player), its optimizer (an optimizer component; default adam), and its moving average."""

MAPS = {("callbacks",): "callback", ("loggers",): "logger", ("eval", "metrics"): "metric"}
"""Component maps: {name: settings} for several components of one kind."""

CORE: dict[str, Any] = {
    "seed": Setting(None, int, "seeds weights, noise and data order; null draws one and records it"),
    "device": Setting("auto", str, "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps"),
    "trainer": {
        "batch_size": Setting(64, int, "m, samples per minibatch (real and fake alike)"),
        "k": Setting(1, int, "discriminator updates per generator update (Algorithm 1)"),
        "k_schedule": Setting(None, list, "k as a function of the step: [[0, 5], [1000, 1]] is 5 until step 1000, then 1 (null: k throughout)"),
        "noise": Setting("normal", str, "p_z: normal, or uniform on [-1, 1]"),
        "epochs": Setting(1, int, "passes over the training set (ignored when steps is set)"),
        "steps": Setting(None, int, "generator updates in all; overrides epochs"),
        "log_every": Setting(100, int, "steps between records in metrics.jsonl"),
        "joint_d_forward": Setting(None, bool, "one D pass over real+fake; null decides from D's layers"),
        "ema_decay": Setting(0.0, float, "decay of G's weight average used for sampling and eval (0: off)"),
        "ema_start": Setting(0, int, "step at which the average starts following G"),
        "ema_warmup": Setting(
            0, int, "before ema_start: 0 copies G; W > 0 averages G with decay (1+t)/(W+1+t) at step t, so early "
            "samples are smoothed, and the average restarts from G at ema_start"
        ),
        "ema_norm_batches": Setting(
            50, int, "batches of fixed noise that recompute the batch-norm statistics of G's average before each use (0: copy G's)"
        ),
        "nan_guard": Setting(True, bool, "skip updates whose loss or gradients are not finite"),
        "max_bad_steps": Setting(10, int, "stop after this many steps in a row had a skipped update"),
        "lr_schedule": Setting(
            "constant", str,
            "constant, or linear / cosine decay of both learning rates to 0 at the fit's last step (a resume that "
            "extends the run stretches the decay to its new last step; lr_scheduler with decay_steps does not move)",
        ),
        "precision": Setting("32", str, "32, bf16 (autocast; CPU and CUDA) or 16 (float16 + gradient scaling; CUDA)"),
        "cuda_graphs": Setting(
            "auto", str, "auto: on CUDA, replay steps captured in CUDA graphs where they can be (docs/performance.md); "
            "on: the same, an error where they cannot; off: never"
        ),
    },
    "checkpoint": {
        "every_epochs": Setting(1, int, "epochs between checkpoints (0: off)"),
        "every_steps": Setting(0, int, "steps between checkpoints (0: off)"),
        "keep": Setting(3, int, "newest step checkpoints kept (best.safetensors is extra)"),
    },
    "eval": {
        "every_epochs": Setting(1, int, "epochs between evaluations (0: off); the closing evaluation is eval.at_end"),
        "every_steps": Setting(0, int, "steps between evaluations (0: off)"),
        "n_samples": Setting(10000, int, "generator samples per evaluation"),
        "seed": Setting(0, int, "noise seed for evaluation samples (the same at every evaluation)"),
        "best": Setting(None, str, "a reported number to keep checkpoints/best.safetensors by"),
        "mode": Setting(None, str, "min or max: which way best is better; null: the way its metric declares"),
        "at_end": Setting(True, bool, "evaluate once more when training ends (not after a stop or a fault)"),
    },
}

RUN_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
"""A run's id: ``uuid.uuid4().hex``, recorded in config.json and in every checkpoint's config."""

RECORDS = (PLUGIN_FILES, "changes")
"""Top-level keys that a run records rather than a user sets."""

SLOT_DEFAULTS = {
    "loss": "non-saturating",
    "g_optimizer": "adam",
    "d_optimizer": "adam",
    "objective": "gan",
    "lr_scheduler": "constant",
}


def _setting(path: tuple[str, ...]) -> Setting | dict[str, Any] | None:
    node: Any = CORE
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def core_defaults(node: Mapping[str, Any] = CORE) -> dict[str, Any]:
    return {key: core_defaults(v) if isinstance(v, dict) else v.default for key, v in node.items()}


def known_keys() -> list[str]:
    """Every dotted key a user can set at the top two levels (for close-match hints)."""
    keys = ["preset", *SLOTS, "players", "callbacks", "loggers", "logger", "eval.metrics"]
    for key, value in CORE.items():
        keys.append(key)
        if isinstance(value, dict):
            keys.extend(f"{key}.{sub}" for sub in value)
    return keys


def base_config() -> dict[str, Any]:
    config = {"preset": None, **core_defaults()}
    config.update({slot: None for slot in SLOTS})
    config.update({slot: {"name": name} for slot, name in SLOT_DEFAULTS.items()})
    config["players"] = {}
    config["callbacks"] = {}
    config["loggers"] = {"jsonl": {}}
    config["eval"]["metrics"] = {}
    config["distributed"] = {"world_size": 1}  # filled in by the run: the job's shape, not a setting
    config["run_id"] = None  # given by the run: which run wrote a checkpoint, not a setting
    config[PLUGIN_FILES] = []  # recorded by the run: the --plugin files it loaded, by path and hash
    config["changes"] = []  # recorded by resumes: settings changed part way, with the step
    return config


# --- parsing and applying overrides --------------------------------------------


def parse_set(text: str) -> tuple[tuple[str, ...], Any]:
    """``key.sub=value`` to (("key", "sub"), value); the value is JSON if it parses, else a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. trainer.k=2")
    parts = tuple(key.split("."))
    if any(not part for part in parts):
        raise ConfigError(f"--set {text!r}: empty part in key {key!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return parts, value


def _map_path(path: tuple[str, ...]) -> tuple[tuple[str, ...], str] | None:
    for prefix, kind in MAPS.items():
        if path[: len(prefix)] == prefix:
            return prefix, kind
    return None


def set_nested(settings: dict[str, Any], keys: tuple[str, ...], value: Any, dotted: str) -> None:
    """``settings[k1][k2]...[kn] = value``: deeper keys go into a nested component's config
    (``discriminator.discriminator.dropout``), a component name there becoming ``{"name": ...}``."""
    node = settings
    for depth, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            child = {}
        elif isinstance(child, str):
            child = {"name": child}
        elif not isinstance(child, dict):
            inner = ".".join(dotted.split(".")[: len(dotted.split(".")) - len(keys) + depth + 1])
            raise ConfigError(f"{dotted}: {inner} is {type_name(child)} {json.dumps(child)[:40]}, not a component config")
        node[key] = child
        node = child
    node[keys[-1]] = value


def apply_override(config: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Apply one override to an unresolved config (names are checked when it is resolved)."""
    dotted = ".".join(path)
    head = path[0]
    if head in SLOTS:
        if len(path) == 1 or path[1:] == ("name",):
            if not isinstance(value, str):
                raise ConfigError(f"{dotted} must be a component name (a string), got {type_name(value)}")
            config[head] = {"name": value}  # another component: its own defaults
        else:
            if not isinstance(config.get(head), dict):
                raise ConfigError(f"{dotted}: no {head} chosen yet; set {head}=NAME first")
            set_nested(config[head], path[1:], value, dotted)
        return
    if path == ("logger",):  # --set logger=tensorboard, --set 'logger=["csv", "tensorboard"]': added to jsonl
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError("logger must be a logger name or a list of names, e.g. logger=tensorboard")
        for name in names:
            config["loggers"].setdefault(name, {})
        return
    if path == ("loggers", "jsonl") and value is None:
        raise ConfigError("the jsonl logger is always on: advnets plot and the training plots read metrics.jsonl")
    mapped = _map_path(path)
    if mapped is not None:
        prefix, _ = mapped
        entries = config
        for key in prefix:
            entries = entries[key]
        rest = path[len(prefix) :]
        if not rest:
            if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
                raise ConfigError(f"{dotted} must be an object of {{name: {{settings}}}}")
            entries.clear()
            entries.update(copy.deepcopy(value))
        elif len(rest) == 1:
            if value is None:
                entries.pop(rest[0], None)
            elif isinstance(value, dict):
                entries[rest[0]] = copy.deepcopy(value)
            else:
                raise ConfigError(f"{dotted} must be an object of settings ({{}} for defaults) or null to remove it")
        else:
            set_nested(entries.setdefault(rest[0], {}), rest[1:], value, dotted)
        return
    if head == "players":
        _set_player(config, path, value)
        return
    if path == ("preset",):
        raise ConfigError("preset is chosen by `advnets run PRESET`, not by --set")
    if path[0] == "distributed":
        raise ConfigError("distributed describes the job torchrun started; use --nproc or torchrun's flags")
    if path[0] == "run_id":
        raise ConfigError("run_id names a run's folder and checkpoints; each new run gets its own")
    if path[0] == PLUGIN_FILES:
        raise ConfigError("plugin_files records the --plugin files a run loaded; give --plugin FILE instead")
    if path[0] == "changes":
        raise ConfigError("changes records what a resume changed; give --set when resuming instead")
    setting = _setting(path)
    if setting is None:
        raise ConfigError(f"unknown setting {dotted!r}{close_matches(dotted, known_keys())}")
    if isinstance(setting, dict):
        raise ConfigError(f"{dotted} is a section; set one of its keys: {', '.join(setting)}")
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _set_player(config: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """``players.NAME={...}``, ``players.NAME=null`` (remove), or ``players.NAME.FIELD[.SETTING...]=value``.

    Deeper keys under ``module`` or ``optimizer`` go into nested components, as at the top level.
    """
    dotted = ".".join(path)
    players = config.setdefault("players", {})
    if len(path) == 1:
        if not isinstance(value, dict):
            raise ConfigError(f"{dotted} must be an object of {{player: {{module: ..., optimizer: ...}}}}")
        players.clear()
        players.update(copy.deepcopy(value))
        return
    name = path[1]
    if name in ("generator", "discriminator"):
        raise ConfigError(f"{dotted}: the {name} is set with --set {name}=NAME, not under players")
    if len(path) == 2:
        if value is None:
            players.pop(name, None)
        elif isinstance(value, dict):
            players[name] = copy.deepcopy(value)
        else:
            raise ConfigError(f"{dotted} must be an object with module (and optionally optimizer), or null to remove it")
        return
    entry = players.setdefault(name, {})
    field = path[2]
    if field not in PLAYER_FIELDS:
        raise ConfigError(f"{dotted}: a player has {', '.join(sorted(PLAYER_FIELDS))}{close_matches(field, PLAYER_FIELDS)}")
    if len(path) == 3:
        entry[field] = {"name": value} if field in ("module", "optimizer") and isinstance(value, str) else value
    elif field in ("module", "optimizer"):
        if not isinstance(entry.get(field), dict):
            raise ConfigError(f"{dotted}: choose the {field} first, --set players.{name}.{field}=NAME")
        set_nested(entry[field], path[3:], value, dotted)
    else:
        raise ConfigError(f"{dotted}: {field} is a number; it has no settings of its own")


def _resolve_players(registry: Registry, config: dict[str, Any]) -> None:
    players = config.get("players") or {}
    if not isinstance(players, dict):
        raise ConfigError("players must be an object of {player: {module: ..., optimizer: ...}}")
    resolved = {}
    for name, entry in players.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("module"), dict) or "name" not in entry["module"]:
            raise ConfigError(f"players.{name} needs a module: {{\"module\": {{\"name\": ...}}}}")
        unknown = sorted(set(entry) - PLAYER_FIELDS)
        if unknown:
            raise ConfigError(f"players.{name}: unknown field {unknown[0]!r}; a player has {', '.join(sorted(PLAYER_FIELDS))}")
        module = entry["module"]
        optimizer = entry.get("optimizer") or {"name": "adam"}
        if not isinstance(optimizer, dict) or "name" not in optimizer:
            raise ConfigError(f"players.{name}.optimizer must be {{\"name\": ..., settings...}}")
        ema_decay = check_value(f"players.{name}.ema_decay", entry.get("ema_decay", 0.0), 0.0)
        ema_start = check_value(f"players.{name}.ema_start", entry.get("ema_start", 0), 0)
        ema_warmup = check_value(f"players.{name}.ema_warmup", entry.get("ema_warmup", 0), 0)
        module_params = registry.params_at(f"players.{name}.module", name, module["name"], settings_of(module))
        optimizer_params = registry.params_at(f"players.{name}.optimizer", "optimizer", optimizer["name"], settings_of(optimizer))
        resolved[name] = {  # aliases recorded as their components' own names
            "module": {"name": registry.get(name, module["name"]).name, **module_params},
            "optimizer": {"name": registry.get("optimizer", optimizer["name"]).name, **optimizer_params},
            "ema_decay": ema_decay,
            "ema_start": ema_start,
            "ema_warmup": ema_warmup,
        }
    config["players"] = resolved


def merge_preset(config: dict[str, Any], preset: Mapping[str, Any], name: str) -> None:
    """Lay a preset's partial config over the core defaults."""
    for key, value in preset.items():
        if key in SLOTS:
            if isinstance(value, str):
                value = {"name": value}
            if not isinstance(value, dict) or "name" not in value:
                raise ConfigError(f"preset {name!r}: {key} must be {{'name': ..., settings...}}")
            config[key] = copy.deepcopy(value)
        elif key in ("callbacks", "loggers", "players"):
            config[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(_setting((key,)), dict):
            for sub, sub_value in value.items():
                apply_override(config, (key, sub), copy.deepcopy(sub_value))
        else:
            apply_override(config, (key,), copy.deepcopy(value))


# --- resolution -------------------------------------------------------------------


def _check_core(config: dict[str, Any], node: Mapping[str, Any] = CORE, prefix: str = "") -> None:
    """Type-check the core settings and reject keys that are not settings."""
    allowed = set(node) | ({"metrics"} if prefix == "eval." else set())
    if prefix == "":
        allowed |= {"preset", *SLOTS, "players", "callbacks", "loggers", "distributed", "run_id", *RECORDS}
    for key in config:
        if key not in allowed:
            dotted = f"{prefix}{key}"
            raise ConfigError(f"unknown setting {dotted!r}{close_matches(dotted, known_keys())}")
    for key, spec in node.items():
        dotted = f"{prefix}{key}"
        if isinstance(spec, dict):
            _check_core(config[key], spec, f"{dotted}.")
            continue
        value = config[key]
        if value is None and spec.default is None:
            continue
        config[key] = check_value(dotted, value, spec.default if spec.default is not None else spec.type())


def check_seed(where: str, seed: int | None) -> None:
    """A seed (None: drawn later) is a 64-bit torch seed in [0, 2**63); ``where`` names the setting or option."""
    if seed is not None and not 0 <= seed < 2**63:
        raise ConfigError(f"{where} must be in [0, 2**63), got {seed}")


def _resolve_slot(registry: Registry, config: dict[str, Any], slot: str) -> None:
    entry = config.get(slot)
    if not isinstance(entry, dict) or "name" not in entry:
        raise ConfigError(f"no {slot} chosen: give a preset that sets one, or --set {slot}=NAME")
    settings = settings_of(entry)
    params = registry.params_at(slot, SLOTS[slot], entry["name"], settings)
    config[slot] = {"name": registry.get(SLOTS[slot], entry["name"]).name, **params}  # an alias is recorded as its component


def _resolve_map(registry: Registry, config: dict[str, Any], prefix: tuple[str, ...], kind: str) -> None:
    node = config
    for key in prefix[:-1]:
        node = node[key]
    entries = node[prefix[-1]] or {}
    where = ".".join(prefix)
    resolved: dict[str, Any] = {}
    given_as: dict[str, str] = {}
    for name, settings in entries.items():
        params = registry.params_at(f"{where}.{name}", kind, name, settings or {})
        own = registry.get(kind, name).name  # an alias is recorded as its component's own name
        if own in resolved:
            raise ConfigError(f"{where} names {kind} {own!r} twice, as {given_as[own]!r} and {name!r}")
        resolved[own], given_as[own] = params, name
    node[prefix[-1]] = resolved


def resolve(
    registry: Registry,
    *,
    preset: str | None = None,
    base: Mapping[str, Any] | None = None,
    overrides: Iterable[tuple[tuple[str, ...], Any]] = (),
    draw_seed: bool = True,
) -> dict[str, Any]:
    """A complete, checked configuration from a preset (or a saved config) and overrides.

    Without a seed, one is drawn (unless ``draw_seed`` is False: then it stays null).
    """
    if base is not None:
        config = copy.deepcopy(dict(base))
        for section, default in base_config().items():
            given = config.setdefault(section, copy.deepcopy(default))
            if isinstance(default, dict) and isinstance(given, dict) and section in CORE:
                # a config from an older advnets (or written by hand) lacks newer settings
                config[section] = {**copy.deepcopy(default), **given}
        unknown = sorted(set(config) - set(base_config()))
        if unknown:
            raise ConfigError(f"unknown setting {unknown[0]!r}{close_matches(unknown[0], known_keys())}")
    else:
        config = base_config()
    if preset is not None:
        preset = registry.get("preset", preset).name  # an alias runs, and is recorded, as its preset
        preset_config = registry.build("preset", preset)
        if not isinstance(preset_config, Mapping):
            raise ConfigError(f"preset {preset!r} did not give a configuration (a dict)")
        merge_preset(config, preset_config, preset)
        config["preset"] = preset
    for path, value in overrides:
        apply_override(config, path, value)
    for slot in SLOTS:
        _resolve_slot(registry, config, slot)
    config["loggers"] = {"jsonl": {}, **(config["loggers"] or {})}  # always on: plots read metrics.jsonl
    for prefix, kind in MAPS.items():
        _resolve_map(registry, config, prefix, kind)
    _resolve_players(registry, config)
    _check_core(config)
    check_seed("seed", config["seed"])
    check_seed("eval.seed", config["eval"]["seed"])
    if config["seed"] is None and draw_seed:
        config["seed"] = secrets.randbits(31)
    if config["run_id"] is not None and not (isinstance(config["run_id"], str) and RUN_ID_PATTERN.match(config["run_id"])):
        raise ConfigError(f"run_id must be 32 hexadecimal digits, got {json.dumps(config['run_id'])[:60]}")
    config[PLUGIN_FILES] = check_records(config[PLUGIN_FILES])
    config["changes"] = check_changes(config["changes"])
    from . import distributed  # imports torch: listing components imports this module (presets) and must not

    config["distributed"] = distributed.describe(config["trainer"]["batch_size"])  # this job's shape
    return config


def check_changes(value: Any) -> list[dict[str, Any]]:
    """``changes``: ``[{"step": N, "set": {key: new}, "was": {key: old}}]``, one entry per resume that changed settings."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 10000:
        raise ConfigError("changes must be a list of {\"step\": N, \"set\": {...}, \"was\": {...}}")
    for i, entry in enumerate(value):
        if (
            not isinstance(entry, dict)
            or set(entry) != {"step", "set", "was"}
            or not isinstance(entry["step"], int)
            or isinstance(entry["step"], bool)
            or entry["step"] < 0
            or not isinstance(entry["set"], dict)
            or not isinstance(entry["was"], dict)
        ):
            raise ConfigError(f"changes[{i}] must be {{\"step\": N >= 0, \"set\": {{...}}, \"was\": {{...}}}}")
    return value


CONFIG_SUFFIXES = {".json": "JSON", ".yaml": "YAML", ".yml": "YAML", ".toml": "TOML"}
"""The config file formats, by file name suffix."""


def is_config_file(name: str) -> bool:
    return Path(name).suffix.lower() in CONFIG_SUFFIXES


def _parse(text: str, form: str) -> Any:
    if form == "JSON":
        return json.loads(text)
    if form == "TOML":
        return tomllib.loads(text)
    try:
        import yaml
    except ImportError:
        raise ConfigError("reading a YAML config needs PyYAML: pip install pyyaml") from None
    return yaml.safe_load(text)  # plain data only: no Python objects are ever built


def _parse_error(exc: Exception) -> str:
    """What a parser says went wrong, and where, on one line (YAML's first line names neither)."""
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem}, line {mark.line + 1} column {mark.column + 1}"
    return first_line(exc)


def _check_plain(value: Any, where: str) -> None:
    """Only what JSON can hold (YAML and TOML also have dates, and keys that are not strings)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"{where or 'a'} key must be a string, got {type_name(key)} {key!r}")
            _check_plain(item, f"{where}.{key}" if where else key)
    elif isinstance(value, list):
        for item in value:
            _check_plain(item, where)
    elif not isinstance(value, (str, int, float, bool, type(None))):
        raise ConfigError(f"{where}: a {type(value).__name__} is not a setting value (quote it to make it a string)")


def load_config_file(path: Path) -> dict[str, Any]:
    """A config file's contents (JSON, or YAML or TOML by suffix), checked to be plain data."""
    form = CONFIG_SUFFIXES.get(Path(path).suffix.lower(), "JSON")
    try:
        config = _parse(Path(path).read_text(), form)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except ConfigError:
        raise
    except Exception as exc:  # json, tomllib and yaml each raise their own parse errors
        raise ConfigError(f"{path}: not a readable {form} config ({_parse_error(exc)})") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: a config must be a {form} object of settings, got {type_name(config)}")
    try:
        _check_plain(config, "")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return config


def file_overrides(config: Mapping[str, Any]) -> list[tuple[tuple[str, ...], Any]]:
    """A config file's settings as ``--set`` overrides, so that each is checked as one is.

    A component slot becomes its name and then each setting; a core section, each
    of its keys; anything else (a component map, a core setting) stays whole.
    ``preset`` (where it starts), ``distributed`` (the job's shape), ``run_id`` (which run
    wrote it), ``plugin_files`` and ``changes`` (what that run loaded and changed) are not settings.
    """
    overrides: list[tuple[tuple[str, ...], Any]] = []
    for key, value in config.items():
        if key in ("preset", "distributed", "run_id", *RECORDS):  # a new run gets its own id and records
            continue
        if key in SLOTS and isinstance(value, dict):
            if "name" in value:
                overrides.append(((key,), value["name"]))
            overrides += [((key, sub), item) for sub, item in value.items() if sub != "name"]
        elif isinstance(value, dict) and isinstance(_setting((key,)), dict):
            overrides += [((key, sub), item) for sub, item in value.items()]
        else:
            overrides.append(((key,), value))
    return overrides


def resolve_file(
    registry: Registry,
    path: Path,
    overrides: Iterable[tuple[tuple[str, ...], Any]] = (),
    draw_seed: bool = True,
) -> dict[str, Any]:
    """The configuration a config file describes, with ``overrides`` applied after it.

    A file that names a preset is laid over it, so ``{"preset": NAME,
    "trainer": {"epochs": 1}}`` is that preset with one change; a run's
    ``config.json`` names every setting, and gives back the same configuration.
    """
    config = load_config_file(path)
    preset = config.get("preset")
    if preset is not None and not isinstance(preset, str):
        raise ConfigError(f"{path}: preset must be a preset's name (a string), got {type_name(preset)}")
    try:
        from_file = file_overrides(config)
        resolve(registry, preset=preset, overrides=from_file, draw_seed=False)  # the file alone: its mistakes name it
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return resolve(registry, preset=preset, overrides=[*from_file, *overrides], draw_seed=draw_seed)


def preset_component(name: str, config: Mapping[str, Any], summary: str, aliases: tuple[str, ...] = ()):
    """A preset component: ``build("preset", name)`` returns ``config`` (deep-copied).

    The preset's settings are its defaults, so ``advnets info preset NAME`` shows them;
    ``aliases`` are other names that run it (a renamed preset's old name).
    """
    def make(**settings: Any) -> dict[str, Any]:
        return copy.deepcopy(settings)

    return Component(kind="preset", name=name, factory=make, summary=summary, defaults=dict(config), aliases=aliases)
