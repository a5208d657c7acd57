"""Plugin loading: entry points (guarded), the load filter, plugin files, and loud failures."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from advnets import ConfigError, PluginError
from advnets.cli import app
from advnets.plugins import load_plugins

GOOD = '''
from advnets import Component, hookimpl
from advnets.losses import HingeLoss

def margin_loss(margin: float = 1.0):
    """A hinge loss with a margin."""
    return HingeLoss()

@hookimpl
def register_components(register):
    register(Component(kind="loss", name="{name}", factory=margin_loss))
'''


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


def install_fake_distribution(folder: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """A real (if minimal) installed distribution: a module plus a .dist-info folder, as pip leaves them."""
    for module, source in modules.items():
        write(folder, f"{module}.py", source)
    info = folder / f"{dist.replace('-', '_')}-0.3.dist-info"  # pip's name for it
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[advnets]\n{lines}")


def by_name(plugins):
    return {info.name: info for info in plugins.infos}


def test_first_party_plugins_load_through_entry_points(plugins):
    infos = by_name(plugins)
    assert infos["advnets"].source == "core"
    assert infos["mnist"].source == "entry point" and infos["gaussian"].source == "entry point"
    assert infos["mnist"].version == infos["advnets"].version
    registry = plugins.registry
    assert registry.get("preset", "mlp-mnist").plugin == "mnist"
    assert registry.get("preset", "toy-gaussian").plugin == "gaussian"
    assert registry.get("loss", "minimax").plugin == "advnets"
    for kind in ("generator", "discriminator", "dataset", "loss", "metric", "preset", "optimizer", "callback"):
        assert registry.components(kind=kind), kind


def test_a_broken_installed_plugin_is_reported_and_the_rest_load(tmp_path, monkeypatch):
    install_fake_distribution(
        tmp_path,
        "advnets-zoo",
        {
            "zoo-broken": "zoo_broken",
            "zoo-raises": "zoo_raises",
            "zoo-typo": "zoo_typo",
            "zoo-good": "zoo_good",
            "zoo-unmarked": "zoo_unmarked",
            "zoo-kind": "zoo_kind",
        },
        {
            "zoo_broken": "raise RuntimeError('boom at import')\n",
            "zoo_raises": GOOD.replace("    register(", "    register(Component(kind='loss', name='half-done', factory=margin_loss))\n    raise ValueError('oops')\n    register("),
            "zoo_typo": "from advnets import hookimpl\n@hookimpl\ndef register_component(register):\n    pass\n",
            "zoo_good": GOOD.format(name="zoo-margin"),
            "zoo_unmarked": GOOD.format(name="zoo-unmarked").replace("@hookimpl\n", ""),
            "zoo_kind": GOOD.format(name="zoo-kind").replace("margin: float = 1.0", "kind: str = 'a'"),
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins = load_plugins(environ={})
    infos = by_name(plugins)
    assert infos["zoo-broken"].error == "failed to import: RuntimeError: boom at import"
    assert infos["zoo-raises"].error == "register_components failed: ValueError: oops"
    assert "unknown hook 'register_component' (did you mean: register_components?)" in infos["zoo-typo"].error
    assert infos["zoo-unmarked"].error == "defines register_components without @hookimpl (from advnets import hookimpl)"
    assert infos["zoo-kind"].error.startswith("loss 'zoo-kind': a setting cannot be called 'kind' (")
    assert ("loss", "zoo-unmarked") not in plugins.registry and ("loss", "zoo-kind") not in plugins.registry
    assert infos["zoo-good"].error is None and infos["zoo-good"].version == "0.3"
    assert ("loss", "zoo-margin") in plugins.registry
    assert ("loss", "half-done") not in plugins.registry  # a plugin that fails half-way leaves nothing
    assert ("preset", "mlp-mnist") in plugins.registry


def test_load_filter_variable(tmp_path):
    only_mnist = by_name(load_plugins(environ={"ADVNETS_LOAD_PLUGINS": "mnist"}))
    assert set(only_mnist) == {"advnets", "mnist"}
    assert set(by_name(load_plugins(environ={"ADVNETS_LOAD_PLUGINS": ""}))) == {"advnets"}
    by_distribution = by_name(load_plugins(environ={"ADVNETS_LOAD_PLUGINS": "advnets"}))
    assert {"mnist", "gaussian"} <= set(by_distribution)
    # a name that a plugin left out would have given: the error says which were left out
    filtered = load_plugins(environ={"ADVNETS_LOAD_PLUGINS": "mnist"}).registry
    with pytest.raises(ConfigError, match=r"unknown metric 'parzen'; see .* \(ADVNETS_LOAD_PLUGINS left out the installed plugins (\w+, )*parzen"):
        filtered.get("metric", "parzen")
    with pytest.raises(ConfigError) as unfiltered:
        load_plugins(environ={}).registry.get("metric", "no-such-metric")
    assert "left out" not in str(unfiltered.value)
    assert load_plugins(environ={"ADVNETS_LOAD_PLUGINS": "mnist,advnets"}).filter_note == ""


def test_a_name_in_the_load_filter_that_no_plugin_has_is_said(tmp_path):
    """A typo in ADVNETS_LOAD_PLUGINS: a warning on every command, and the errors it leads to name it."""
    plugins = load_plugins(environ={"ADVNETS_LOAD_PLUGINS": "mnist,gausian"})
    assert plugins.filter_note.startswith("ADVNETS_LOAD_PLUGINS names 'gausian', which no installed plugin is called (installed: ")
    assert "gaussian" in plugins.filter_note
    result = CliRunner().invoke(app, ["run", "toy-gaussian", "--out", str(tmp_path / "run")], env={"ADVNETS_LOAD_PLUGINS": "gausian"})
    assert result.exit_code == 2
    warning, error = result.stderr.strip().splitlines()
    assert warning == f"advnets: warning: {load_plugins(environ={'ADVNETS_LOAD_PLUGINS': 'gausian'}).filter_note}"
    assert error.startswith("error: unknown component kind 'preset'") and "names 'gausian', which no installed plugin" in error


def test_plugin_files_from_option_and_variable(tmp_path):
    one = write(tmp_path, "one.py", GOOD.format(name="one-loss"))
    two = write(tmp_path, "two.py", GOOD.format(name="two-loss"))
    plugins = load_plugins([one], environ={"ADVNETS_PLUGINS": str(two)})
    assert plugins.registry.get("loss", "one-loss").plugin == "one"
    assert plugins.registry.get("loss", "two-loss").plugin == "two"
    assert by_name(plugins)["one"].source == "file"


@pytest.mark.parametrize(
    "source, message",
    [
        ("def broken(:\n", r"bad\.py: SyntaxError: .*\(line 1\)"),
        ("import no_such_module_here\n", r"ModuleNotFoundError: No module named 'no_such_module_here'"),
        ("from advnets import hookimpl\n@hookimpl\ndef register_component(register):\n    pass\n", "unknown hook 'register_component'"),
        (GOOD.format(name="hinge"), "loss 'hinge' is registered by two plugins: 'advnets' and 'bad'"),
        (GOOD.format(name="Bad_Name"), "invalid component name 'Bad_Name'"),
        (GOOD.format(name="twice") + "    register(Component(kind='loss', name='twice', factory=margin_loss))\n", "registers loss 'twice' twice"),
        (GOOD.format(name="x").replace("register(Component(", "register(dict(") , "not an advnets.Component"),
        (GOOD.format(name="x").replace("@hookimpl\n", ""), r"bad\.py: defines register_components without @hookimpl \(from advnets import hookimpl\)$"),
        (
            GOOD.format(name="named").replace("margin: float = 1.0", "name: str = 'a'"),
            r"bad\.py: loss 'named': a setting cannot be called 'name' \(kind, name and self are reserved",
        ),
    ],
)
def test_a_bad_plugin_file_fails_loudly(tmp_path, source, message):
    bad = write(tmp_path, "bad.py", source)
    with pytest.raises(PluginError, match=message):
        load_plugins([bad], environ={})


def test_missing_plugin_file(tmp_path):
    with pytest.raises(PluginError, match="does not exist"):
        load_plugins([tmp_path / "nope.py"], environ={})


def test_list_components_from_a_loaded_plugin_without_components_is_an_empty_table(tmp_path):
    path = tmp_path / "empty_plugin.py"
    path.write_text("from advnets import hookimpl\n\n@hookimpl\ndef register_components(register):\n    pass\n")
    result = CliRunner().invoke(app, ["list", "components", "--from", "empty_plugin", "--plugin", str(path)])
    assert result.exit_code == 0 and "0 components" in result.stdout
    typo = CliRunner().invoke(app, ["list", "components", "--from", "empty_plugn", "--plugin", str(path)])
    assert typo.exit_code == 2 and "no loaded plugin is called 'empty_plugn' (did you mean: empty_plugin?)" in typo.stderr


def test_loading_a_plugin_file_writes_nothing_beside_it(tmp_path, monkeypatch):
    """No __pycache__ in the user's folder, whatever PYTHONDONTWRITEBYTECODE says (CI may not set it)."""
    import sys

    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    path = tmp_path / "quiet_plugin.py"
    path.write_text("from advnets import hookimpl\n\n@hookimpl\ndef register_components(register):\n    pass\n")
    load_plugins([path], environ={})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quiet_plugin.py"]
    assert sys.dont_write_bytecode is False  # put back
