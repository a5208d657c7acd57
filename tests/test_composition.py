"""Component settings that are component configs: the ``augmented`` discriminator around any other one."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from typer.testing import CliRunner

from advnets import Component, ConfigError, PluginError, Registry
from advnets.augment import Augmented, cut_out, translate
from advnets.checkpoint import load_checkpoint
from advnets.cli import app

runner = CliRunner()


class Wrapper:
    """Holds the component it was given."""

    def __init__(self, inner=None, scale: float = 1.0):
        self.inner, self.scale = inner, scale


class Leaf:
    """A leaf component with two settings."""

    def __init__(self, width: int = 4, depth: int = 2):
        self.width, self.depth = width, depth


class Other:
    """Another leaf, with a setting of its own."""

    def __init__(self, colour: str = "red"):
        self.colour = colour


def registry(default=None) -> Registry:
    return Registry([
        Component(kind="part", name="leaf", factory=Leaf),
        Component(kind="part", name="other", factory=Other),
        Component(kind="part", name="wrap", factory=Wrapper, defaults={"inner": default, "scale": 1.0}, nested={"inner": "part"}),
    ])


def test_a_nested_setting_is_checked_and_built_through_the_registry():
    plain = registry()
    assert plain.params("part", "wrap", inner="leaf") == {"inner": {"name": "leaf", "width": 4, "depth": 2}, "scale": 1.0}
    built = plain.build("part", "wrap", inner={"name": "leaf", "width": 7})
    assert isinstance(built.inner, Leaf) and (built.inner.width, built.inner.depth) == (7, 2)
    # wrappers nest: a wrapper around a wrapper around a leaf
    deep = plain.build("part", "wrap", inner={"name": "wrap", "inner": {"name": "other", "colour": "blue"}, "scale": 2.0})
    assert isinstance(deep.inner, Wrapper) and deep.inner.scale == 2.0 and deep.inner.inner.colour == "blue"


def test_set_reaches_into_the_nested_components_of_a_players_module():
    """players.NAME.module.INNER.SETTING, as generator.INNER.SETTING does at the top level."""
    from advnets.config import apply_override
    from advnets.registry import settings_of

    config = {"players": {"part": {"module": {"name": "wrap"}}}}
    apply_override(config, ("players", "part", "module", "inner"), "leaf")
    apply_override(config, ("players", "part", "module", "inner", "width"), 11)
    apply_override(config, ("players", "part", "module", "scale"), 3.0)
    module = config["players"]["part"]["module"]
    assert module == {"name": "wrap", "inner": {"name": "leaf", "width": 11}, "scale": 3.0}
    built = registry().build("part", "wrap", **settings_of(module))
    assert isinstance(built.inner, Leaf) and (built.inner.width, built.inner.depth, built.scale) == (11, 2, 3.0)
    with pytest.raises(ConfigError, match=r"players.part.ema_decay.x: ema_decay is a number; it has no settings of its own"):
        apply_override(config, ("players", "part", "ema_decay", "x"), 1)
    with pytest.raises(ConfigError, match=r"players.part.module.scale.x: players.part.module.scale is float 3.0, not a component config"):
        apply_override(config, ("players", "part", "module", "scale", "x"), 1)


def test_a_table_without_a_name_or_with_the_defaults_name_is_laid_over_the_default():
    with_default = registry({"name": "leaf", "width": 9})
    assert with_default.params("part", "wrap")["inner"] == {"name": "leaf", "width": 9, "depth": 2}
    assert with_default.params("part", "wrap", inner={"depth": 5})["inner"] == {"name": "leaf", "width": 9, "depth": 5}
    assert with_default.params("part", "wrap", inner={"name": "leaf", "depth": 5})["inner"] == {"name": "leaf", "width": 9, "depth": 5}
    # another component starts from its own defaults, not from the default's settings
    assert with_default.params("part", "wrap", inner="other")["inner"] == {"name": "other", "colour": "red"}


@pytest.mark.parametrize("inner, message", [
    (None, "part.inner: choose a part, by name (--set part.inner=NAME)"),
    ({"width": 3}, "part.inner: choose a part"),
    ("nope", "part 'wrap', setting 'inner': unknown part 'nope'"),
    ({"name": "leaf", "colour": "red"}, "part 'wrap', setting 'inner': part 'leaf' has no setting 'colour'"),
    ({"name": "leaf", "width": "wide"}, "part 'wrap', setting 'inner': part.inner.width must be an int, got string \"wide\""),
    (5, "part.inner must be a part name or {\"name\": NAME, settings}, got int 5"),
])
def test_bad_nested_settings_are_one_line_naming_where(inner, message):
    with pytest.raises(ConfigError) as caught:
        registry().build("part", "wrap", **({} if inner is None else {"inner": inner}))
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_components_nested_too_deep_are_one_line_not_a_recursion_error():
    plain = registry()
    deep: dict = {"name": "leaf"}
    for _ in range(5):
        deep = {"name": "wrap", "inner": deep}
    assert plain.build("part", "wrap", inner=deep).inner.inner.inner.inner.inner.inner.width == 4
    for depth in (20, 2000):  # past the limit; and deep enough that a recursive copy would overflow Python's stack
        deep = {"name": "leaf"}
        for _ in range(depth):
            deep = {"name": "wrap", "inner": deep}
        with pytest.raises(ConfigError, match="nested more than 16 deep") as caught:
            plain.params("part", "wrap", inner=deep)
        assert len(str(caught.value)) < 300


@pytest.mark.parametrize("defaults, nested, message", [
    ({"inner": None}, {"missing": "part"}, "nested setting 'missing' is not one of its settings"),
    ({"inner": None}, {"inner": "Not A Kind"}, "must name a component kind in kebab-case"),
    ({"inner": 3}, {"inner": "part"}, "the default of nested setting 'inner' must be a part name"),
    ({"inner": None}, ["inner"], "nested must map settings to component kinds"),
])
def test_a_bad_nested_declaration_is_refused_at_registration(defaults, nested, message):
    with pytest.raises(PluginError, match=message):
        Component(kind="part", name="bad", factory=Wrapper, defaults={**defaults, "scale": 1.0}, nested=nested)


def test_translation_moves_every_pixel_by_the_same_whole_shift_and_passes_gradients():
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 8, 8] = 1.0  # one lit pixel in the middle of each image
    x.requires_grad_(True)
    moved = translate(x, 0.125)  # up to 2 pixels each way
    where = moved.detach()[:, 0].flatten(1).argmax(1)
    rows, cols = where // 16 - 8, where % 16 - 8
    assert moved.detach().sum().item() == 64  # nothing lost: the pixel moved, edges repeat only background
    assert rows.abs().max() == 2 and cols.abs().max() == 2 and len(set(zip(rows.tolist(), cols.tolist()))) > 10
    moved.sum().backward()
    assert x.grad is not None and x.grad.sum().item() > 0


def test_cutout_zeroes_one_square_of_the_asked_size():
    torch.manual_seed(0)
    x = torch.ones(32, 3, 8, 8)
    out = cut_out(x, 0.5)
    zeroed = (out == 0).all(1)  # the same square in every channel
    assert torch.equal(zeroed.flatten(1).sum(1), torch.full((32,), 16))
    assert ((out == 0) | (out == 1)).all()


def test_augmented_is_the_identity_in_eval_mode_and_for_p_zero():
    inner = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 1))
    x = torch.randn(8, 1, 4, 4)
    wrapped = Augmented(inner, translation=0.25, cutout=0.5)
    wrapped.eval()
    assert torch.equal(wrapped(x), inner(x))
    off = Augmented(inner, translation=0.25, cutout=0.5, p=0.0)
    assert torch.equal(off.train()(x), inner(x))
    assert not torch.equal(wrapped.train()(x), inner(x))
    with pytest.raises(ConfigError, match=r"augmented: translation must be in \[0, 0.5\], got 0.9"):
        Augmented(inner, translation=0.9)


MNIST_AUGMENTED = [
    "--set", "discriminator=augmented", "--set", "discriminator.discriminator=mlp",
    "--set", "discriminator.discriminator.dropout=0.3", "--set", "discriminator.cutout=0.25",
    "--no-eval", "--threads", "1", "--set", "callbacks={}",
]


@pytest.mark.slow
def test_augmented_mlp_trains_on_mnist_and_resumes_bit_identically(tmp_path, mnist_dir):
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    common = ["run", "mlp-mnist", "--seed", "4", "--data-dir", str(mnist_dir), *MNIST_AUGMENTED]
    result = runner.invoke(app, [*common, "--steps", "12", "--out", str(straight)])
    assert result.exit_code == 0, result.output
    config = json.loads((straight / "config.json").read_text())
    assert config["discriminator"] == {
        "name": "augmented", "translation": 0.125, "cutout": 0.25, "flip": False, "p": 1.0,
        "discriminator": {"name": "mlp", "in_shape": [1, 28, 28], "hidden": [1024, 512, 256, 128], "activation": "relu",
                          "negative_slope": 0.2, "dropout": 0.3},
    }
    assert runner.invoke(app, [*common, "--steps", "5", "--out", str(halves)]).exit_code == 0
    resumed = runner.invoke(app, ["run", "--resume", str(halves), "--steps", "12"])
    assert resumed.exit_code == 0, resumed.output
    a = load_checkpoint(straight / "checkpoints" / "step-000000012.safetensors")[0]
    b = load_checkpoint(halves / "checkpoints" / "step-000000012.safetensors")[0]
    flat_a, flat_b = _tensors(a), _tensors(b)
    assert flat_a.keys() == flat_b.keys() and any("discriminator.discriminator" in k for k in flat_a)
    assert all(torch.equal(flat_a[k], flat_b[k]) for k in flat_a)


def _tensors(state, prefix=""):
    out = {}
    for key, value in state.items():
        if isinstance(value, dict):
            out.update(_tensors(value, f"{prefix}{key}."))
        elif isinstance(value, torch.Tensor):
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.slow
def test_a_plugin_files_discriminator_goes_inside_augmented(tmp_path, mnist_dir):
    plugin = tmp_path / "tiny_d.py"
    plugin.write_text(textwrap.dedent('''
        import torch
        from advnets import Component, hookimpl

        class TinyD(torch.nn.Module):
            """One linear layer on the pixels."""

            def __init__(self, pixels: int = 784):
                super().__init__()
                self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(pixels, 1))

            def forward(self, x):
                return self.net(x).squeeze(1)

        @hookimpl
        def register_components(register):
            register(Component(kind="discriminator", name="tiny-d", factory=TinyD))
    '''))
    out = tmp_path / "run"
    result = runner.invoke(app, [
        "run", "mlp-mnist", "--steps", "3", "--out", str(out), "--data-dir", str(mnist_dir), "--plugin", str(plugin),
        "--set", "discriminator=augmented", "--set", 'discriminator.discriminator={"name": "tiny-d"}', "--set", "discriminator.flip=true",
        "--no-eval", "--threads", "1", "--set", "callbacks={}",
    ])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["discriminator"]["discriminator"] == {"name": "tiny-d", "pixels": 784}


@pytest.mark.parametrize("settings, message", [
    (["--set", "discriminator=augmented"], "error: discriminator.discriminator: choose a discriminator"),
    (["--set", "discriminator=augmented", "--set", "discriminator.discriminator=toy-mlp"],
     "error: augmented: needs images of shape (N, C, H, W)"),
    (["--set", "discriminator.hidden.width=3"], "error: discriminator.hidden.width: discriminator.hidden is list [64, 64], not a component config"),
])
def test_bad_composition_is_one_line_and_exit_2(tmp_path, settings, message):
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "toy-gaussian", "--steps", "2", "--out", str(out), "--no-eval", *settings])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
    assert not out.exists()  # refused before the run folder is made
