"""Factories named by import path: listed without importing them (nor torch), imported on build."""

from __future__ import annotations

import importlib
import itertools
import subprocess
import sys
import textwrap

import pytest

from advnets import Component, ConfigError, PluginError, Registry
from advnets.builtins import BUILTINS

# --- the first-party components ------------------------------------------------------------


def _in_fresh_process(code: str) -> subprocess.CompletedProcess:
    script = code + "\nimport sys\nprint('torch' in sys.modules)"
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "args",
    [["list", "components"], ["list", "components", "--json"], ["info", "loss", "hinge"], ["info", "preset", "mlp-mnist"],
     ["info", "generator", "mlp"], ["list", "plugins"]],
)
def test_listing_and_info_do_not_import_torch(args):
    code = (
        "from advnets.cli import app\n"
        f"code = app({args!r}, prog_name='advnets', standalone_mode=False)\n"
        "assert code in (None, 0), code\n"
        "from advnets.plugins import load_plugins\n"
        "plugins = load_plugins()\n"
        "assert not plugins.errors, [(i.name, i.error) for i in plugins.errors]\n"
        "assert {'advnets', 'mnist', 'gaussian', 'bigan'} <= {i.name for i in plugins.infos}"
    )
    result = _in_fresh_process(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "False", f"advnets {' '.join(args)} imported torch"


def test_first_party_components_are_registered_lazily(registry):
    first_party = [c for c in registry.components() if c.plugin in ("advnets", "mnist", "gaussian", "bigan")]
    assert len(first_party) > 40
    eager = [c.key for c in first_party if c.kind != "preset" and not c.lazy]
    assert eager == [], "these import their module (and torch) whenever plugins load"


def test_lazy_metadata_matches_the_real_factory(registry):
    """What listing reads from the source is what the imported factory says: the two cannot drift apart."""
    lazy = [c for c in registry.components() if c.lazy]
    assert lazy
    for component in lazy:
        real = Component(kind=component.kind, name=component.name, factory=component.load())
        assert component.defaults == real.defaults, component.key
        assert component.summary == real.summary, component.key


@pytest.mark.parametrize("kind, module, table", [
    ("loss", "advnets.losses", "BUILTIN_LOSSES"),
    ("objective", "advnets.objectives", "BUILTIN_OBJECTIVES"),
    ("lr-scheduler", "advnets.schedules", "BUILTIN_LR_SCHEDULERS"),
    ("optimizer", "advnets.optim", "BUILTIN_OPTIMIZERS"),
    ("logger", "advnets.loggers", "BUILTIN_LOGGERS"),
])
def test_the_core_registers_every_entry_of_its_tables(kind, module, table):
    entries = getattr(importlib.import_module(module), table)
    assert BUILTINS[kind] == {name: f"{f.__module__}:{f.__name__}" for name, f in entries.items()}


# --- lazy factories in general ---------------------------------------------------------------


_serial = itertools.count()


@pytest.fixture
def write_module(tmp_path, monkeypatch):
    """Write a module under a name no other test uses, on sys.path; it is forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    written = []

    def write(stem: str, source: str) -> str:
        name = f"{stem}_{next(_serial)}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)


THINGS = '''
    """Factories for the tests."""


    def make(width: int = 8, rate: float = 0.5, names: list = ("a", "b"), label: str | None = None, *, deep: dict = {"k": [1, -2.5]}, **extra):
        """Makes a thing from settings.

        More text that is not the summary.
        """
        return {"width": width, "rate": rate, "names": names, "label": label, "deep": deep}


    class Base:
        """The base."""

        def __init__(self, size: int = 3) -> None:
            self.size = size


    class Child(Base):
        """A child that keeps its base's __init__."""


    class Plain:
        pass
'''


def test_a_lazy_factory_is_read_from_source_and_imported_on_build(write_module):
    module = write_module("lazy_things", THINGS)
    c = Component(kind="loss", name="thing", factory=f"{module}:make")
    assert c.lazy and module not in sys.modules
    assert c.summary == "Makes a thing from settings."
    assert c.defaults == {"width": 8, "rate": 0.5, "names": ["a", "b"], "label": None, "deep": {"k": [1, -2.5]}}
    registry = Registry([c])
    assert registry.params("loss", "thing", width=4)["width"] == 4 and module not in sys.modules
    built = registry.build("loss", "thing", width=4)
    assert built["width"] == 4 and built["names"] == ["a", "b"] and module in sys.modules
    eager = Component(kind="loss", name="thing", factory=sys.modules[module].make)
    assert (eager.defaults, eager.summary) == (c.defaults, c.summary)


@pytest.mark.parametrize("name, defaults, summary", [
    ("Child", {"size": 3}, "A child that keeps its base's __init__."),
    ("Base", {"size": 3}, "The base."),
    ("Plain", {}, ""),
])
def test_classes_read_like_their_signature(write_module, name, defaults, summary):
    module = write_module("lazy_classes", THINGS)
    c = Component(kind="loss", name="thing", factory=f"{module}:{name}")
    assert (c.defaults, c.summary) == (defaults, summary)
    real = getattr(importlib.import_module(module), name)
    assert (c.defaults, c.summary) == (Component(kind="loss", name="thing", factory=real).defaults, summary)


def test_settings_are_checked_as_for_an_eager_factory(write_module):
    module = write_module("lazy_checked", THINGS)
    registry = Registry([Component(kind="loss", name="thing", factory=f"{module}:make")])
    with pytest.raises(ConfigError, match=r"^loss.width must be an int, got string \"4\"$"):
        registry.build("loss", "thing", width="4")
    with pytest.raises(ConfigError, match="loss 'thing' has no setting 'widht' \\(did you mean: width\\?\\)"):
        registry.build("loss", "thing", widht=4)
    assert module not in sys.modules


@pytest.mark.parametrize("source, message", [
    ("import not_a_module_anywhere\ndef make():\n    pass\n",
     "loss 'thing' of plugin 'mine' failed to import {m}:make: ModuleNotFoundError: No module named 'not_a_module_anywhere'"),
    ("import sys\nsys.exit(3)\ndef make():\n    pass\n",
     "loss 'thing' of plugin 'mine' failed to import {m}:make: SystemExit: the plugin called sys.exit(3)"),
    ("def make():\n    pass\ndel make\n", "loss 'thing' of plugin 'mine' failed to import {m}:make: AttributeError: module '{m}' has no attribute 'make'"),
])
def test_an_import_failure_on_build_is_one_line_naming_the_component(write_module, source, message):
    module = write_module("lazy_broken", source)
    c = Component(kind="loss", name="thing", factory=f"{module}:make", defaults={}, summary="Broken.", plugin="mine")
    with pytest.raises(PluginError) as raised:
        Registry([c]).build("loss", "thing")
    assert str(raised.value) == message.format(m=module)


def test_explicit_defaults_and_summary_need_no_source():
    c = Component(kind="loss", name="thing", factory="somewhere_else.entirely:Thing", defaults={"size": 2}, summary="A thing.")
    assert (c.defaults, c.summary) == ({"size": 2}, "A thing.")


@pytest.mark.parametrize("source, factory, message", [
    ("def make(width):\n    pass\n", "make", "loss 'thing': factory parameter 'width' needs a default"),
    ("import math\ndef make(limit: float = math.inf):\n    pass\n", "make", r"the default of 'limit' is not a literal: math.inf"),
    ("import functools\n@functools.cache\ndef make():\n    pass\n", "make", "make is decorated"),
    ("from json import JSONDecoder as make\n", "make", "defines no function or class 'make' at its top level"),
    ("def make():\n    pass\nmake = print\n", "make", "defines no function or class 'make' at its top level"),
    ("import json\nclass Make(json.JSONDecoder):\n    pass\n", "Make", "inherits __init__ from json.JSONDecoder"),
    ("class Make:\n    def __new__(cls, size=1):\n        pass\n", "Make", "Make defines __new__"),
])
def test_a_factory_its_source_cannot_describe_is_refused_at_registration(write_module, source, factory, message):
    module = write_module("lazy_unreadable", source)
    with pytest.raises(PluginError, match=message):
        Component(kind="loss", name="thing", factory=f"{module}:{factory}")
    assert module not in sys.modules


@pytest.mark.parametrize("factory, message", [
    ("no_colon", "must be a callable, or a module and a name such as 'advnets.losses:MinimaxLoss'"),
    ("a.b:c.d", "must be a callable, or a module and a name"),
    ("not_a_module_anywhere:make", "loss 'thing': factory 'not_a_module_anywhere:make': no module named 'not_a_module_anywhere'"),
    ("not_a_package_anywhere.sub:make", "ModuleNotFoundError: No module named 'not_a_package_anywhere'"),
])
def test_a_bad_import_path_is_refused_at_registration(factory, message):
    with pytest.raises(PluginError, match=message):
        Component(kind="loss", name="thing", factory=factory)


def test_a_float_annotation_makes_an_int_default_a_float_setting_when_read_from_source(write_module):
    """The same rule as for a factory object (tests/test_registry.py): only a plain float widens an int."""
    module = write_module("floaty", '''
    def make(scale: float = 1, steps: int = 2, quoted: "float" = 3, maybe: float | None = 4):
        """Scales."""
        return scale
    ''')
    registry = Registry([Component(kind="loss", name="floaty", factory=f"{module}:make")])
    assert registry.get("loss", "floaty").defaults == {"scale": 1.0, "steps": 2, "quoted": 3.0, "maybe": 4}
    assert [type(v) for v in registry.get("loss", "floaty").defaults.values()] == [float, int, float, int]
    assert registry.build("loss", "floaty", scale=0.5) == 0.5
