"""The registry: components, building with checked settings, listing, and conflicts."""

from __future__ import annotations

import pytest

from advnets import Component, ConfigError, PluginError, Registry
from advnets.registry import type_name


def factory(width: int = 8, rate: float = 0.5, names: list[str] = ("a", "b"), label: str | None = None):
    """Makes a thing from settings."""
    return {"width": width, "rate": rate, "names": names, "label": label}


def test_component_takes_summary_and_defaults_from_factory():
    c = Component(kind="generator", name="thing", factory=factory)
    assert c.summary == "Makes a thing from settings."
    assert c.defaults == {"width": 8, "rate": 0.5, "names": ["a", "b"], "label": None}
    assert c.plugin is None


@pytest.mark.parametrize("name", ["Thing", "thing_one", "-thing", "thing-", "1thing", "", "thing--one"])
def test_invalid_names_are_rejected(name):
    with pytest.raises(PluginError, match="kebab-case"):
        Component(kind="loss", name=name, factory=factory)


def test_defaults_must_be_json_able():
    with pytest.raises(PluginError, match="JSON-able"):
        Component(kind="loss", name="x", factory=factory, defaults={"device": object()})


def test_factory_parameters_need_defaults():
    def needs_arg(width):
        return width

    with pytest.raises(PluginError, match="'width' needs a default"):
        Component(kind="loss", name="x", factory=needs_arg)


def test_build_merges_overrides_and_checks_types():
    registry = Registry([Component(kind="generator", name="thing", factory=factory)])
    built = registry.build("generator", "thing", width=16, rate=1, label="x")
    assert built == {"width": 16, "rate": 1.0, "names": ["a", "b"], "label": "x"}
    assert isinstance(built["rate"], float)
    with pytest.raises(ConfigError, match="generator.width must be an int, got string"):
        registry.build("generator", "thing", width="16")
    with pytest.raises(ConfigError, match="must be an int, got bool"):
        registry.build("generator", "thing", width=True)
    with pytest.raises(ConfigError, match="no setting 'widht' \\(did you mean: width\\?\\)"):
        registry.build("generator", "thing", widht=3)


def test_unknown_names_list_close_matches():
    registry = Registry(
        [Component(kind="loss", name=n, factory=factory) for n in ("hinge", "minimax", "non-saturating")]
    )
    with pytest.raises(ConfigError, match="unknown loss 'hing' \\(did you mean: hinge\\?\\)"):
        registry.get("loss", "hing")
    with pytest.raises(ConfigError, match="unknown component kind 'losss' \\(did you mean: loss\\?\\)"):
        registry.get("losss", "hinge")


def test_same_name_from_two_plugins_names_both():
    registry = Registry([Component(kind="loss", name="hinge", factory=factory, plugin="first")])
    with pytest.raises(PluginError, match="registered by two plugins: 'first' and 'second'"):
        registry.add(Component(kind="loss", name="hinge", factory=factory, plugin="second"))


def test_listing_filters_and_sorts_naturally():
    names = ["net-10", "net-2", "net-1", "other"]
    registry = Registry(
        [Component(kind="generator", name=n, factory=factory, plugin="p" if n != "other" else "q") for n in names]
        + [Component(kind="loss", name="net-3", factory=factory, plugin="p")]
    )
    assert [c.name for c in registry.components(kind="generator")] == ["net-1", "net-2", "net-10", "other"]
    assert [c.name for c in registry.components(pattern="net-*")] == ["net-1", "net-2", "net-10", "net-3"]
    assert [c.name for c in registry.components(plugin="q")] == ["other"]
    assert registry.kinds() == ["generator", "loss"]


def test_an_alias_finds_and_builds_the_component():
    renamed = Component(kind="preset", name="new-name", factory=factory, aliases=("old-name",), plugin="p")
    registry = Registry([renamed])
    assert registry.get("preset", "old-name") is renamed
    assert registry.build("preset", "old-name", width=3) == registry.build("preset", "new-name", width=3)
    assert ("preset", "old-name") in registry and registry.names("preset") == ["new-name", "old-name"]
    assert registry.components(pattern="old-*") == [renamed]  # listed once, under its own name
    with pytest.raises(ConfigError, match="unknown preset 'old-nam' \\(did you mean: old-name"):
        registry.get("preset", "old-nam")


@pytest.mark.parametrize(
    "first, second, message",
    [
        (("thing", ()), ("other", ("thing",)), "preset 'thing' is registered by two plugins: 'first' and 'second' \\(as an alias of 'other'\\)"),
        (("thing", ("old",)), ("old", ()), "preset 'old' is registered by two plugins: 'first' \\(as an alias of 'thing'\\) and 'second'"),
        (("thing", ("old",)), ("other", ("old",)), "'first' \\(as an alias of 'thing'\\) and 'second' \\(as an alias of 'other'\\)"),
    ],
)
def test_a_name_or_alias_claimed_by_two_plugins_names_both(first, second, message):
    registry = Registry([Component(kind="preset", name=first[0], aliases=first[1], factory=factory, plugin="first")])
    with pytest.raises(PluginError, match=message):
        registry.add(Component(kind="preset", name=second[0], aliases=second[1], factory=factory, plugin="second"))
    assert registry.names("preset") == sorted([first[0], *first[1]])  # the loser left nothing behind


@pytest.mark.parametrize("aliases, message", [(("Old",), "invalid component alias 'Old'"), (("x", "x"), "aliases repeat a name"), ("old", "tuple of names")])
def test_bad_aliases_are_rejected(aliases, message):
    with pytest.raises(PluginError, match=message):
        Component(kind="preset", name="x", factory=factory, aliases=aliases)


def with_kind(kind: str = "a"):
    return kind


def with_name(width: int = 1, name: str = "a"):
    return name


def with_self(self: str = "a"):
    return self


@pytest.mark.parametrize("reserved, taken", [("kind", with_kind), ("name", with_name), ("self", with_self)])
def test_a_setting_named_like_an_argument_of_build_is_refused(reserved, taken):
    """build(kind, name, **settings) takes these itself, and {"name": ...} chooses the component in a config."""
    message = f"loss 'x': a setting cannot be called '{reserved}' \\(kind, name and self are reserved"
    with pytest.raises(PluginError, match=message):
        Component(kind="loss", name="x", factory=taken)
    with pytest.raises(PluginError, match=message):
        Component(kind="loss", name="x", factory=factory, defaults={reserved: "a"})


def test_a_float_annotation_makes_an_int_default_a_float_setting():
    def scaled(scale: float = 1, steps: int = 2, maybe: float | None = 3, flag: float = True):
        return scale

    assert scaled.__annotations__["scale"] == "float"  # a string here: this file has `from __future__ import annotations`
    namespace: dict = {}
    exec(compile("def plain(scale: float = 1):\n    return scale\n", "<plain>", "exec", dont_inherit=True), namespace)
    assert namespace["plain"].__annotations__["scale"] is float
    registry = Registry([Component(kind="loss", name="x", factory=scaled), Component(kind="loss", name="y", factory=namespace["plain"])])
    x, y = registry.get("loss", "x"), registry.get("loss", "y")
    assert x.defaults == {"scale": 1.0, "steps": 2, "maybe": 3, "flag": True} and y.defaults == {"scale": 1.0}
    assert [type_name(v) for v in x.defaults.values()] == ["float", "int", "int", "bool"]  # only plain float widens
    assert registry.build("loss", "x", scale=0.5) == 0.5 and registry.build("loss", "y", scale=0.5) == 0.5
    assert isinstance(registry.build("loss", "x"), float)
    with pytest.raises(ConfigError, match="loss.steps must be an int, got float 0.5"):
        registry.build("loss", "x", steps=0.5)


@pytest.mark.parametrize(
    "error, line",
    [
        (AssertionError("width must be even"), "AssertionError: width must be even"),
        (KeyError("relu6"), "KeyError: 'relu6'"),
        (AttributeError("no attribute 'hiden'"), "AttributeError: no attribute 'hiden'"),
    ],
    ids=["an assert", "a KeyError", "an AttributeError"],
)
def test_whatever_a_factory_raises_is_one_line_naming_the_component(error, line):
    """Not only ValueError and TypeError: an assert or a lookup in a plugin's factory was a traceback."""

    def make(width: int = 3):
        raise error

    registry = Registry([Component(kind="loss", name="picky", factory=make)])
    with pytest.raises(ConfigError) as caught:
        registry.build("loss", "picky")
    assert str(caught.value) == f"loss 'picky' cannot be built with these settings: {line}"
