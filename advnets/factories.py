"""Factories named by import path, so that components can be listed without importing them.

A component's ``factory`` may be a string such as ``"advnets.losses:MinimaxLoss"``
instead of the object. ``advnets list components`` and ``advnets info`` then
answer without importing the module that defines it, nor torch, which most such
modules import (about 2 s and 600 MiB); the module is imported when the
component is built.

What those commands show is read from the module's source with :mod:`ast`, the
way it would be read from the imported object: the summary is the first line of
the docstring, and the settings are the keyword defaults of the function, or of
the class's ``__init__`` (its own, or one inherited from a class of the same
module). Defaults must be literals (numbers, strings, ``None``, ``True``, lists,
tuples, dicts). Where the source cannot say for certain (a decorated factory, an
``__init__`` inherited from another module, a default computed by code), the
component is refused at registration, and the author either gives ``defaults``
and ``summary`` explicitly or registers the factory object itself.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import os
import re
from collections.abc import Callable
from typing import Any

from .errors import PluginError, exception_line

PATH_PATTERN = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
"""``package.module:Name``: a module, a colon, and a name defined at the module's top level."""

_MISSING = object()


def doc_summary(doc: str | None) -> str:
    """The first line of a docstring, cleaned as :func:`inspect.cleandoc` does; ``""`` if there is none."""
    line = inspect.cleandoc(doc).splitlines()[0].strip() if doc and doc.strip() else ""
    return line.replace("``", "`")  # reStructuredText's literals, shown as Markdown's (listings, docs)


def needs_default(where: str, parameter: str) -> PluginError:
    return PluginError(
        f"{where}: factory parameter {parameter!r} needs a default (components are built from settings alone)"
    )


def check_path(path: str, where: str) -> None:
    if not PATH_PATTERN.match(path):
        raise PluginError(
            f"{where}: factory {path!r} must be a callable, or a module and a name such as "
            "'advnets.losses:MinimaxLoss'"
        )


def load(path: str) -> Callable[..., Any]:
    """Import the module of ``module:Name`` and return the name's object (exceptions pass through)."""
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def setting_default(default: Any, annotation: Any) -> Any:
    """A parameter's default as its setting's default: an int of a parameter annotated plainly
    ``float`` (``scale: float = 1``; ``"float"`` under ``from __future__ import annotations``, or as
    read from source) is a float, so that the setting takes fractions (its type is its default's)."""
    plain_float = annotation is float or (isinstance(annotation, str) and annotation.strip() == "float")
    return float(default) if type(default) is int and plain_float else default


class FactorySource:
    """The definition of ``module:Name`` in the module's source: its summary and keyword defaults."""

    def __init__(self, path: str, where: str) -> None:
        self.path = path
        self.where = where
        module, name = path.split(":")
        self._tree = _parse_module(module, where, path)
        self._node = _top_level_definition(self._tree, name)
        if self._node is None:
            raise self._unreadable(f"{module} defines no function or class {name!r} at its top level")
        if self._node.decorator_list:
            raise self._unreadable(f"{name} is decorated, and a decorator may change its signature")

    def summary(self) -> str:
        """The first line of the docstring, as ``factory.__doc__`` would give it."""
        return doc_summary(ast.get_docstring(self._node, clean=False))

    def defaults(self) -> dict[str, Any]:
        """The keyword defaults ``inspect.signature(factory)`` would give, without ``self``."""
        if isinstance(self._node, ast.ClassDef):
            init = self._init_of(self._node)
            if init is None:  # no __init__ up to object: no settings
                return {}
            return self._parameters(init, skip_first=True)
        return self._parameters(self._node, skip_first=False)

    def _init_of(self, cls: ast.ClassDef) -> ast.FunctionDef | None:
        """The ``__init__`` a class runs: its own, or its base's within this module (single inheritance)."""
        seen = set()
        while cls.name not in seen:
            seen.add(cls.name)
            body = {node.name: node for node in cls.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
            if "__new__" in body:
                raise self._unreadable(f"{cls.name} defines __new__")
            if "__init__" in body:
                if body["__init__"].decorator_list:
                    raise self._unreadable(f"{cls.name}.__init__ is decorated")
                return body["__init__"]
            if cls.keywords:
                raise self._unreadable(f"{cls.name} has a metaclass or class keywords")
            bases = [base for base in cls.bases if not (isinstance(base, ast.Name) and base.id == "object")]
            if not bases:
                return None
            base = _top_level_definition(self._tree, bases[0].id) if isinstance(bases[0], ast.Name) else None
            if len(bases) > 1 or not isinstance(base, ast.ClassDef) or base.decorator_list:
                raise self._unreadable(
                    f"{cls.name} inherits __init__ from {ast.unparse(bases[0])}, which is not a class of its own module"
                )
            cls = base
        raise self._unreadable(f"{cls.name} inherits from itself")

    def _parameters(self, function: ast.FunctionDef | ast.AsyncFunctionDef, skip_first: bool) -> dict[str, Any]:
        args = function.args
        positional = [*args.posonlyargs, *args.args]
        defaults = [_MISSING] * (len(positional) - len(args.defaults)) + list(args.defaults)
        pairs = list(zip(positional, defaults))[1 if skip_first else 0 :]
        pairs += [(arg, _MISSING if node is None else node) for arg, node in zip(args.kwonlyargs, args.kw_defaults)]
        result = {}
        for arg, node in pairs:
            if node is _MISSING:
                raise needs_default(self.where, arg.arg)
            try:
                annotation = arg.annotation  # its source: a name (float) or a string ("float")
                annotation = annotation.id if isinstance(annotation, ast.Name) else getattr(annotation, "value", None)
                result[arg.arg] = setting_default(ast.literal_eval(node), annotation)
            except ValueError:
                raise self._unreadable(
                    f"the default of {arg.arg!r} is not a literal: {ast.unparse(node)}"
                ) from None
        return result

    def _unreadable(self, why: str) -> PluginError:
        return PluginError(
            f"{self.where}: cannot read factory {self.path!r} from its source ({why}); "
            "give the component's defaults and summary explicitly, or register the factory object"
        )


_trees: dict[tuple[str, int, int], ast.Module] = {}  # (file, mtime, size) -> its parsed source


def _parse_module(module: str, where: str, path: str) -> ast.Module:
    try:
        spec = importlib.util.find_spec(module)  # imports its parent packages, not the module itself
    except ImportError as exc:  # a parent package that is missing or fails to import
        raise PluginError(f"{where}: factory {path!r}: {exception_line(exc)}") from None
    if spec is None:
        raise PluginError(f"{where}: factory {path!r}: no module named {module!r}")
    if not spec.has_location or not (spec.origin or "").endswith(".py"):
        raise PluginError(f"{where}: factory {path!r}: {module} has no Python source to read")
    try:
        stat = os.stat(spec.origin)
        key = (spec.origin, stat.st_mtime_ns, stat.st_size)
        if key not in _trees:
            with open(spec.origin, "rb") as file:
                _trees[key] = ast.parse(file.read(), spec.origin)
    except (OSError, SyntaxError) as exc:
        raise PluginError(f"{where}: factory {path!r}: cannot read {spec.origin}: {exc}") from None
    return _trees[key]


def _top_level_definition(tree: ast.Module, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | None:
    """The last top-level ``def`` or ``class`` of that name, or None if the name is bound any other way."""
    found = None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            found = node
        elif _binds(node, name):
            found = None  # reassigned or imported after (or instead of) a definition
    return found


def _binds(node: ast.stmt, name: str) -> bool:
    """Whether a top-level statement other than def/class binds ``name``."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return any((alias.asname or alias.name.split(".")[0]) == name for alias in node.names)
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return any(isinstance(t, ast.Name) and t.id == name for target in targets for t in ast.walk(target))
    return False
