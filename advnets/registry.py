"""Components and the registry that answers questions about them.

A :class:`Component` is one thing a plugin offers: a generator, a discriminator,
a dataset, a loss, a metric, an optimizer, a callback or a preset. It is a
factory plus JSON-able defaults; :meth:`Registry.build` merges a user's overrides
into those defaults, checks their names and types, and calls the factory. A
factory named by import path (``"advnets.losses:MinimaxLoss"``) is imported only
then (:mod:`advnets.factories`).
"""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
import inspect
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from . import factories
from .errors import AdvnetsError, ConfigError, PluginError, close_matches, exception_line

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
"""Kinds and names are lowercase kebab-case: ``non-saturating``, ``lr-scheduler``."""


def _json_copy(value: Any, where: str) -> Any:
    """A deep copy of ``value`` as JSON would give it back (tuples become lists)."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise PluginError(f"{where} must be JSON-able: {exc}") from None


RESERVED_SETTINGS = ("kind", "name", "self")
"""Names no setting may have: ``Registry.build(self, kind, name, **settings)`` takes them as its own
arguments, and a component config ``{"name": ..., **settings}`` chooses its component by ``"name"``."""


def _check_setting_names(settings: Iterable[str], where: str) -> None:
    for key in settings:
        if key in RESERVED_SETTINGS:
            raise PluginError(
                f"{where}: a setting cannot be called {key!r} (kind, name and self are reserved: build(kind, name, **settings) "
                "takes them, and \"name\" in a component config chooses the component); rename the factory parameter"
            )


def _signature_defaults(factory: Callable[..., Any], where: str) -> dict[str, Any]:
    """Read a factory's keyword defaults; every parameter must have one (an int default annotated
    ``float`` is read as a float: :func:`factories.setting_default`)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature
        return {}
    defaults = {}
    for p in parameters:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is p.empty:
            raise factories.needs_default(where, p.name)
        defaults[p.name] = factories.setting_default(p.default, p.annotation)
    return defaults


@dataclasses.dataclass(frozen=True)
class Component:
    """One registered thing: ``build(kind, name, **overrides)`` calls ``factory``.

    ``summary`` defaults to the first line of the factory's docstring and
    ``defaults`` to the factory's keyword defaults. ``factory`` may be the
    callable or its import path, ``"package.module:Name"``: then both are read
    from the module's source, and the module is imported only by ``build``, so
    that listing components does not import what they need (torch).
    ``aliases`` are other names that find the same component (a renamed
    preset's old name, say). ``plugin`` is filled in by the loader, not by the
    author.

    ``nested`` names the settings whose value is itself a component config, and
    of which kind: ``nested={"discriminator": "discriminator"}`` for a wrapper
    around any discriminator. Such a setting takes a name (``"my-d"``) or a table
    (``{"name": "my-d", "hidden": [256]}``; without ``"name"``, or with the
    default's name, it is laid over the default's settings); the registry checks
    it as it checks any component, builds it first (through the same registry,
    so components of ``--plugin`` files too), and passes the built object to the
    factory. The default is such a config, or ``None``: then the user must give one.
    """

    kind: str
    name: str
    factory: Callable[..., Any] | str
    summary: str = ""
    defaults: Mapping[str, Any] | None = None
    plugin: str | None = None
    aliases: tuple[str, ...] = ()
    nested: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.aliases, (tuple, list)):
            raise PluginError(f"{self.kind} {self.name!r}: aliases must be a tuple of names, not {self.aliases!r}")
        object.__setattr__(self, "aliases", tuple(self.aliases))
        named = [("kind", self.kind), ("name", self.name), *(("alias", alias) for alias in self.aliases)]
        for field, value in named:
            if not isinstance(value, str) or not NAME_PATTERN.match(value):
                raise PluginError(
                    f"invalid component {field} {value!r}: use lowercase kebab-case "
                    "such as 'non-saturating' or 'my-discriminator'"
                )
        if len(set(self.names)) < len(self.names):
            raise PluginError(f"{self.kind} {self.name!r}: its aliases repeat a name: {self.aliases}")
        where = f"{self.kind} {self.name!r}"
        source = None  # a lazy factory's definition, read only for what the author did not give
        if isinstance(self.factory, str):
            factories.check_path(self.factory, where)
            if self.defaults is None or not self.summary:
                source = factories.FactorySource(self.factory, where)
        elif not callable(self.factory):
            raise PluginError(f"{where}: factory {self.factory!r} is not callable")
        defaults = self.defaults
        if defaults is None:
            defaults = source.defaults() if self.lazy else _signature_defaults(self.factory, where)
        elif not isinstance(defaults, Mapping):
            raise PluginError(f"{where}: defaults must be a mapping, not {type(defaults).__name__}")
        _check_setting_names(defaults, where)
        object.__setattr__(self, "defaults", _json_copy(dict(defaults), f"{where} defaults"))
        if not self.summary:
            summary = source.summary() if self.lazy else factories.doc_summary(self.factory.__doc__)
            object.__setattr__(self, "summary", summary)
        self._check_nested(where)

    def _check_nested(self, where: str) -> None:
        if not isinstance(self.nested, Mapping):
            raise PluginError(f"{where}: nested must map settings to component kinds, not {self.nested!r}")
        object.__setattr__(self, "nested", dict(self.nested))
        for key, kind in self.nested.items():
            if key not in self.defaults:
                raise PluginError(f"{where}: nested setting {key!r} is not one of its settings ({', '.join(self.defaults) or 'none'})")
            if not isinstance(kind, str) or not NAME_PATTERN.match(kind):
                raise PluginError(f"{where}: nested setting {key!r} must name a component kind in kebab-case, not {kind!r}")
            default = self.defaults[key]
            if not (default is None or isinstance(default, str) or (isinstance(default, dict) and isinstance(default.get("name"), str))):
                raise PluginError(
                    f"{where}: the default of nested setting {key!r} must be a {kind} name or {{\"name\": ..., settings}}, "
                    f"not {json.dumps(default)}"
                )

    @property
    def lazy(self) -> bool:
        """Whether the factory is named by import path (imported on ``build``)."""
        return isinstance(self.factory, str)

    def load(self) -> Callable[..., Any]:
        """The factory itself, imported now if it is named by import path."""
        if not self.lazy:
            return self.factory
        try:
            factory = factories.load(self.factory)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit too: plugin code cannot end a command as a success
            raise PluginError(
                f"{self.kind} {self.name!r} of plugin {self.plugin!r} failed to import {self.factory}: {exception_line(exc)}"
            ) from None
        if not callable(factory):
            raise PluginError(f"{self.kind} {self.name!r} of plugin {self.plugin!r}: {self.factory} is not callable")
        return factory

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.name)

    @property
    def names(self) -> tuple[str, ...]:
        """Every name that finds this component: its own, then its aliases."""
        return (self.name, *self.aliases)


# --- type checks for settings ------------------------------------------------


def type_name(value: Any) -> str:
    return {
        bool: "bool",
        int: "int",
        float: "float",
        str: "string",
        list: "list",
        dict: "object",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _a(value: Any) -> str:
    name = type_name(value)
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def check_value(where: str, value: Any, default: Any) -> Any:
    """Check ``value`` against the type of ``default``; return it, ints widened to float."""
    if default is None or isinstance(default, dict):
        return value  # free-form: the factory validates it
    if isinstance(default, str) and isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # --set trainer.precision=16 means the text "16"
    if value is None:
        raise ConfigError(f"{where} must be {_a(default)}, got null")
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            value = float(value)
            if not math.isfinite(value):
                raise ConfigError(f"{where} must be a finite number, got {value}")
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(
            f"{where} must be {_a(default)}, got {type_name(value)} {json.dumps(value)}"
        )
    return value


def merge_params(component: Component, overrides: Mapping[str, Any], path: str | None = None) -> dict[str, Any]:
    """The component's defaults with ``overrides`` applied, each name and type checked.

    A nested setting (:attr:`Component.nested`) comes back as a config table laid
    over its default's; :meth:`Registry.params` checks it against its own component.
    """
    path = path or component.kind
    params = copy.deepcopy(dict(component.defaults or {}))
    for key, value in overrides.items():
        if key not in params:
            known = ", ".join(sorted(params)) or "none"
            raise ConfigError(
                f"{component.kind} {component.name!r} has no setting {key!r}"
                f"{close_matches(key, params)}; its settings: {known}"
            )
        if key in component.nested:
            params[key] = nested_config(f"{path}.{key}", component.nested[key], params[key], value)
        else:
            params[key] = check_value(f"{path}.{key}", value, params[key])
    for key, kind in component.nested.items():
        if key not in overrides:
            params[key] = nested_config(f"{path}.{key}", kind, params[key], None)
    return params


def nested_config(where: str, kind: str, default: Any, given: Any) -> dict[str, Any]:
    """A nested setting as a table ``{"name": ..., settings}``: ``given`` (a name or a table) over ``default``.

    A table without ``"name"``, or with the default's name, is laid over the default's settings;
    another name starts from that component's own defaults.
    """
    def table(value: Any) -> dict[str, Any]:
        if isinstance(value, str):
            return {"name": value}
        if isinstance(value, dict) and isinstance(value.get("name", ""), str):
            if nesting_depth(value, 4 * MAX_NESTING) > 4 * MAX_NESTING:  # before deepcopy, which would recurse through all of it
                raise ConfigError(f"{where}: components nested more than {MAX_NESTING} deep")
            return copy.deepcopy(value)
        raise ConfigError(f"{where} must be a {kind} name or {{\"name\": NAME, settings}}, got {type_name(value)} {json.dumps(value)[:80]}")

    if default is None:
        chosen = None if given is None else table(given)
        if chosen is None or "name" not in chosen:
            raise ConfigError(f"{where}: choose a {kind}, by name (--set {where}=NAME) or as {{\"name\": NAME, settings}}")
        return chosen
    base = table(default)
    if given is None:
        return base
    override = table(given)
    if override.get("name", base["name"]) == base["name"]:
        return {**base, **override, "name": base["name"]}
    return override


MAX_NESTING = 16
"""How deep components may sit inside each other's settings."""


def _placed(exc: ConfigError, kind: str, name: str, key: str) -> ConfigError:
    """The error of a nested component, said once with the outermost component and setting it sits in."""
    if getattr(exc, "placed", False):
        placed = ConfigError(str(exc))  # an inner level already said where: keep the message, mark it again
    else:
        placed = ConfigError(f"{kind} {name!r}, setting {key!r}: {exc}")
    placed.placed = True
    return placed


def nesting_depth(tree: Any, stop_above: int | None = None) -> int:
    """How deeply lists and objects nest in ``tree``, counted without recursion (so any depth is safe);
    with ``stop_above``, counting stops once it is passed (the answer is then just more than it)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, depth)
            if stop_above is not None and deepest > stop_above:
                break
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def settings_of(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A component config's settings: the table without its ``"name"``."""
    return {k: v for k, v in entry.items() if k != "name"}


def _natural_key(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _as_alias(component: Component, name: str) -> str:
    return "" if name == component.name else f" (as an alias of {component.name!r})"


class Registry:
    """Every component by (kind, name); it lists, finds and builds them."""

    def __init__(self, components: Iterable[Component] = ()) -> None:
        self._components: dict[tuple[str, str], Component] = {}
        self._by_any_name: dict[tuple[str, str], Component] = {}  # names and aliases
        self.hint = ""  # added to an unknown name's error (which installed plugins were not loaded)
        for component in components:
            self.add(component)

    def add(self, component: Component) -> None:
        """Register ``component``; a name or alias already claimed is an error naming both claimants."""
        self.check_free(component)
        self._components[component.key] = component
        for name in component.names:
            self._by_any_name[(component.kind, name)] = component

    def check_free(self, component: Component) -> None:
        """The error ``add`` raises if ``component``'s name or an alias is taken, naming both plugins."""
        for name in component.names:
            previous = self._by_any_name.get((component.kind, name))
            if previous is None:
                continue
            if previous.plugin == component.plugin:
                raise PluginError(f"plugin {component.plugin!r} registers {component.kind} {name!r} twice")
            raise PluginError(
                f"{component.kind} {name!r} is registered by two plugins: "
                f"{previous.plugin!r}{_as_alias(previous, name)} and {component.plugin!r}"
                f"{_as_alias(component, name)}; uninstall or filter one (ADVNETS_LOAD_PLUGINS)"
            )

    def kinds(self) -> list[str]:
        return sorted({kind for kind, _ in self._components})

    def names(self, kind: str) -> list[str]:
        """The names and aliases of a kind, naturally sorted."""
        return sorted((n for k, n in self._by_any_name if k == kind), key=_natural_key)

    def components(
        self, kind: str | None = None, plugin: str | None = None, pattern: str | None = None
    ) -> list[Component]:
        """Components filtered by kind, plugin and a glob on a name or alias (``*gan*``), naturally sorted."""
        if kind is not None:
            self._check_kind(kind)
        found = [
            c
            for c in self._components.values()
            if (kind is None or c.kind == kind)
            and (plugin is None or c.plugin == plugin)
            and (pattern is None or any(fnmatch.fnmatchcase(n, pattern) for n in c.names))
        ]
        return sorted(found, key=lambda c: (c.kind, _natural_key(c.name)))

    def _check_kind(self, kind: str) -> None:
        if kind not in self.kinds():
            hint = f" ({self.hint})" if self.hint else ""
            raise ConfigError(
                f"unknown component kind {kind!r}{close_matches(kind, self.kinds())}; "
                f"kinds: {', '.join(self.kinds())}{hint}"
            )

    def get(self, kind: str, name: str) -> Component:
        """The component called ``name`` (or with ``name`` among its aliases)."""
        self._check_kind(kind)
        component = self._by_any_name.get((kind, name))
        if component is None:
            hint = f" ({self.hint})" if self.hint else ""
            raise ConfigError(
                f"unknown {kind} {name!r}{close_matches(name, self.names(kind))}; "
                f"see `advnets list components --kind {kind}`{hint}"
            )
        return component

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._by_any_name

    def __len__(self) -> int:
        return len(self._components)

    def params(self, kind: str, name: str, **overrides: Any) -> dict[str, Any]:
        """The settings ``build`` would pass to the factory; a nested setting as its complete config table."""
        return self._params(kind, name, overrides, kind, 0)

    def params_at(self, path: str, kind: str, name: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """:meth:`params` for the component in the configuration's slot ``path`` (``g_optimizer``), which errors name."""
        return self._params(kind, name, overrides, path, 0)

    def _params(self, kind: str, name: str, overrides: Mapping[str, Any], path: str, depth: int) -> dict[str, Any]:
        if depth > MAX_NESTING:
            raise ConfigError(f"{path}: components nested more than {MAX_NESTING} deep")
        component = self.get(kind, name)
        params = merge_params(component, overrides, path)
        for key, nested_kind in component.nested.items():
            entry = params[key]
            try:
                self._check_kind(nested_kind)
                inner = self.get(nested_kind, entry["name"])
                inner_path = f"{path}.{key}"
                params[key] = {"name": inner.name, **self._params(nested_kind, inner.name, settings_of(entry), inner_path, depth + 1)}
            except ConfigError as exc:
                raise _placed(exc, kind, component.name, key) from None
        return params

    def build(self, kind: str, name: str, **overrides: Any) -> Any:
        """Merge defaults and overrides and call the component's factory (nested components built first)."""
        return self._construct(self.get(kind, name), self.params(kind, name, **overrides))

    def _construct(self, component: Component, settings: dict[str, Any]) -> Any:
        """Call the factory with settings already merged and checked; nested configs built first, innermost first."""
        kind, name = component.kind, component.name
        for key, nested_kind in component.nested.items():
            entry = settings[key]
            try:
                settings[key] = self._construct(self.get(nested_kind, entry["name"]), settings_of(entry))
            except ConfigError as exc:
                raise _placed(exc, kind, name, key) from None
        factory = component.load()
        try:
            return factory(**settings)
        except SystemExit as exc:  # plugin code cannot end a command as if it had succeeded
            raise PluginError(f"{kind} {name!r} of plugin {component.plugin!r} called sys.exit({exc.code!r}) when built") from None
        except AdvnetsError:
            raise  # the factory's own one-line error
        except Exception as exc:  # noqa: BLE001 - whatever a factory raises (an assert, a KeyError), said in one line
            # settings that pass the type check but not the factory (or torch under it: a layer of
            # 2**40 units cannot be allocated): one line naming the component, before anything is written
            raise ConfigError(f"{kind} {name!r} cannot be built with these settings: {exception_line(exc)}") from None
