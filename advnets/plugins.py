"""The one place that finds, loads and checks plugins.

Plugins come from three places, loaded in this order:

1. the core (``advnets.builtins``: losses, optimizers, callbacks, metrics);
2. installed distributions with entry points in the group ``advnets``
   (the first-party plugins under ``plugins/`` are found this way too);
   ``ADVNETS_LOAD_PLUGINS=name,name`` limits which load, and an empty value loads none;
3. plugin files: ``--plugin PATH`` (repeatable) and ``ADVNETS_PLUGINS``
   (paths separated by ``os.pathsep``).

An installed plugin that fails to import or to register (an exception, or
``sys.exit``), or that registers a name another plugin has, is reported by name
and left out; the others still load. A plugin file the user named explicitly that
fails is an error. Either way a misspelled hook name is caught, and so is a hook
function left without ``@hookimpl``. Only Ctrl-C (KeyboardInterrupt) raised inside
plugin code passes through as itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import inspect
import os
import sys
import traceback
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError, close_matches, exception_line
from .registry import Component, Registry

ENTRY_POINT_GROUP = "advnets"
LOAD_FILTER_VAR = "ADVNETS_LOAD_PLUGINS"
PLUGIN_FILES_VAR = "ADVNETS_PLUGINS"
ENVIRONMENT = (LOAD_FILTER_VAR, PLUGIN_FILES_VAR)
"""The variables that choose which plugins load."""
CORE_PLUGIN = "advnets"


@dataclasses.dataclass
class PluginInfo:
    """What ``advnets list plugins`` shows about one plugin."""

    name: str
    source: str  # "core", "entry point" or "file"
    location: str  # module, distribution or file path
    version: str | None = None
    components: int = 0
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Plugins:
    """The loaded plugins: the pluggy manager, the registry they filled, and a report."""

    manager: pluggy.PluginManager
    registry: Registry
    infos: list[PluginInfo]
    filter_note: str = ""
    """Names in ``ADVNETS_LOAD_PLUGINS`` that no installed plugin has (a typo, or one not installed here)."""

    @property
    def errors(self) -> list[PluginInfo]:
        return [info for info in self.infos if info.error]


def _hook_names() -> list[str]:
    return [name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "advnets_spec")]


def _unknown_hooks(manager: pluggy.PluginManager, plugin: object) -> list[str]:
    specs = _hook_names()
    return [
        f"unknown hook {caller.name!r}{close_matches(caller.name, specs)}"
        for caller in manager.get_hookcallers(plugin) or []
        if not caller.has_spec()
    ]


def _unmarked_hooks(manager: pluggy.PluginManager, plugin: object) -> list[str]:
    """Functions named like a hook but not marked ``@hookimpl``, which pluggy would pass over in silence."""
    return [
        f"defines {name} without @hookimpl (from advnets import hookimpl)"
        for name in _hook_names()
        if callable(inspect.getattr_static(plugin, name, None)) and manager.parse_hookimpl_opts(plugin, name) is None
    ]


def _import_file(path: Path) -> object:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    module_name = f"advnets_plugin_{path.stem.replace('-', '_')}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin file {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    # No __pycache__ beside the user's file: loading a plugin writes nothing (whatever
    # PYTHONDONTWRITEBYTECODE says), and a file is compiled in milliseconds.
    writing, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(module)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit too: a plugin cannot end the command as a success
        del sys.modules[module_name]
        raise PluginError(f"plugin file {path}: {exception_line(exc)}") from None
    finally:
        sys.dont_write_bytecode = writing
    return module


def _selected_entry_points(environ: Mapping[str, str]) -> tuple[list[metadata.EntryPoint], list[str], list[str]]:
    """The installed plugins to load, the names of those ``ADVNETS_LOAD_PLUGINS`` leaves out,
    and the names it gives that no installed plugin has."""
    points = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
    wanted = environ.get(LOAD_FILTER_VAR)
    if wanted is None:
        return points, [], []
    names = {n.strip() for n in wanted.split(",") if n.strip()}
    known = {ep.name for ep in points} | {ep.dist.name for ep in points if ep.dist is not None}
    chosen = [ep for ep in points if ep.name in names or (ep.dist is not None and ep.dist.name in names)]
    return chosen, [ep.name for ep in points if ep not in chosen], sorted(names - known)


def plugin_file_paths(paths: Iterable[str | os.PathLike[str]], environ: Mapping[str, str]) -> list[Path]:
    """Files from ``ADVNETS_PLUGINS`` followed by the ones given explicitly, without repeats."""
    from_env = [p for p in environ.get(PLUGIN_FILES_VAR, "").split(os.pathsep) if p.strip()]
    result: list[Path] = []
    for raw in [*from_env, *paths]:
        path = Path(raw).expanduser().resolve()
        if path not in result:
            result.append(path)
    return result


def load_plugins(
    plugin_files: Iterable[str | os.PathLike[str]] = (),
    environ: Mapping[str, str] | None = None,
) -> Plugins:
    """Load every plugin, fill a fresh registry, and report what happened."""
    environ = os.environ if environ is None else environ
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []
    strict: set[str] = set()  # plugins whose failure is fatal rather than reported

    def attach(name: str, plugin: object, info: PluginInfo, fatal: bool) -> None:
        infos.append(info)
        if fatal:
            strict.add(name)
        try:
            manager.register(plugin, name=name)
            problems = _unknown_hooks(manager, plugin) + _unmarked_hooks(manager, plugin)
        except Exception as exc:  # pluggy's validation of hook signatures
            problems = [exception_line(exc)]
        if problems:
            if manager.is_registered(plugin):
                manager.unregister(plugin)
            info.error = "; ".join(problems)
            if fatal:
                raise PluginError(f"plugin {info.location}: {info.error}")

    from . import builtins

    attach(CORE_PLUGIN, builtins, PluginInfo(CORE_PLUGIN, "core", builtins.__name__, _version("advnets")), True)

    selected, left_out, unknown = _selected_entry_points(environ)
    for ep in selected:
        dist = ep.dist
        info = PluginInfo(
            ep.name,
            "entry point",
            f"{dist.name if dist else '?'}: {ep.value}",
            dist.version if dist else None,
        )
        try:
            module = ep.load()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit too
            info.error = f"failed to import: {exception_line(exc)}"
            infos.append(info)
            continue
        attach(ep.name, module, info, False)

    for path in plugin_file_paths(plugin_files, environ):
        if path.is_dir():
            raise PluginError(f"plugin file {path} is a folder; --plugin and ADVNETS_PLUGINS take Python files")
        if not path.is_file():
            raise PluginError(f"plugin file {path} does not exist" if not path.exists() else f"plugin file {path} is not a regular file")
        name = path.stem
        if manager.has_plugin(name) or any(i.name == name for i in infos):
            name = str(path)
        attach(name, _import_file(path), PluginInfo(name, "file", str(path)), True)

    manager.check_pending()
    registry = Registry()
    filter_note = ""
    if unknown:
        installed = sorted({ep.name for ep in selected} | set(left_out))
        filter_note = (
            f"{LOAD_FILTER_VAR} names {', '.join(map(repr, unknown))}, which no installed plugin is called "
            f"(installed: {', '.join(installed) or 'none'})"
        )
    if left_out:  # an unknown name may be one of theirs: its error says which plugins were not loaded
        registry.hint = f"{LOAD_FILTER_VAR} left out the installed plugins {', '.join(left_out)}"
        if filter_note:
            registry.hint += f"; it names {', '.join(map(repr, unknown))}, which no installed plugin is called"
    for info in infos:
        if info.error:
            continue
        try:
            components = _collect(manager, info.name)
            for component in components:  # a name another plugin has: the whole plugin is left out
                registry.check_free(component)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit too
            message = str(exc) if isinstance(exc, PluginError) else f"register_components failed: {exception_line(exc)}"
            if info.name in strict:
                raise PluginError(f"plugin {info.location}: {message}") from None
            info.error = message
            continue
        for component in components:
            registry.add(component)
        info.components = len(components)
    return Plugins(manager, registry, infos, filter_note)


def _collect(manager: pluggy.PluginManager, plugin_name: str) -> list[Component]:
    """Call one plugin's ``register_components`` and return what it registered.

    Calling each implementation on its own lets the loader stamp the plugin's name
    on its components and keep a plugin that fails half-way from leaving half of
    its components behind.
    """
    staged: list[Component] = []

    def register(component: Component) -> None:
        if not isinstance(component, Component):
            raise PluginError(
                f"plugin {plugin_name!r} registered {component!r}, which is not an advnets.Component"
            )
        stamped = dataclasses.replace(component, plugin=plugin_name)
        if any(c.key == stamped.key for c in staged):
            raise PluginError(f"plugin {plugin_name!r} registers {stamped.kind} {stamped.name!r} twice")
        staged.append(stamped)

    for impl in manager.hook.register_components.get_hookimpls():
        if impl.plugin_name == plugin_name:
            impl.function(**{arg: register for arg in impl.argnames})
    return staged


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


_default: tuple[tuple[str | None, ...], Plugins] | None = None


def default_plugins() -> Plugins:
    """The plugins of this process's environment, loaded once for each value of the variables
    that choose them (for the Python API: a notebook may set ADVNETS_PLUGINS after its first call)."""
    global _default
    key = tuple(os.environ.get(name) for name in ENVIRONMENT)
    if _default is None or _default[0] != key:
        _default = (key, load_plugins())
    return _default[1]
