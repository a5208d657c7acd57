"""Configuration: presets, --set parsing and overrides, checks, and the config.json round trip."""

from __future__ import annotations

import json

import pytest

from advnets import ConfigError
from advnets.config import parse_set, resolve, resolve_file


def resolved(registry, *sets, preset="toy-gaussian"):
    return resolve(registry, preset=preset, overrides=[parse_set(s) for s in sets])


@pytest.mark.parametrize(
    "text, expected",
    [
        ("trainer.k=2", (("trainer", "k"), 2)),
        ("loss=hinge", (("loss",), "hinge")),
        ("g_optimizer.lr=1e-4", (("g_optimizer", "lr"), 1e-4)),
        ("g_optimizer.betas=[0.5, 0.999]", (("g_optimizer", "betas"), [0.5, 0.999])),
        ("dataset.data_dir=/tmp/a=b", (("dataset", "data_dir"), "/tmp/a=b")),
        ("trainer.steps=null", (("trainer", "steps"), None)),
        ("trainer.joint_d_forward=false", (("trainer", "joint_d_forward"), False)),
        ("callbacks.sample-grid={}", (("callbacks", "sample-grid"), {})),
        ("device=", (("device",), "")),
    ],
)
def test_parse_set(text, expected):
    assert parse_set(text) == expected


@pytest.mark.parametrize("text", ["trainer.k", "=2", "trainer..k=2", ""])
def test_parse_set_rejects_malformed(text):
    with pytest.raises(ConfigError, match="--set"):
        parse_set(text)


def test_preset_fills_every_component_with_its_defaults(registry):
    config = resolved(registry, "seed=1")
    assert config["preset"] == "toy-gaussian"
    assert config["generator"] == {"name": "toy-mlp", "latent_dim": 1, "hidden": [64, 64]}
    assert config["g_optimizer"]["name"] == "adam" and config["g_optimizer"]["eps"] == 1e-8
    assert config["loss"] == {"name": "non-saturating"}
    assert config["seed"] == 1
    assert set(config["eval"]["metrics"]) == {"gaussian-w1", "gaussian-ks", "gaussian-js"}


def test_choosing_another_component_resets_its_settings(registry):
    config = resolved(registry, "loss=wasserstein", "loss.gradient_penalty=5")
    assert config["loss"] == {"name": "wasserstein", "gradient_penalty": 5.0}
    config = resolved(registry, "loss.name=hinge")
    assert config["loss"] == {"name": "hinge"}


def test_component_maps_add_and_remove(registry):
    config = resolved(registry, "callbacks.figure-1=null", "eval.metrics.gaussian-ks=null")
    assert config["callbacks"] == {} and set(config["eval"]["metrics"]) == {"gaussian-w1", "gaussian-js"}
    config = resolved(registry, "callbacks.figure-1.panels=6")
    assert config["callbacks"]["figure-1"]["panels"] == 6


def test_a_missing_seed_is_drawn_and_recorded(registry):
    a, b = resolved(registry), resolved(registry)
    assert isinstance(a["seed"], int) and a["seed"] != b["seed"]


@pytest.mark.parametrize(
    "sets, message",
    [
        (["trainer.kk=2"], "unknown setting 'trainer.kk' \\(did you mean: trainer.k"),
        (["trainer.k=two"], "trainer.k must be an int, got string \"two\""),
        (["trainer.k=1.5"], "trainer.k must be an int, got float"),
        (["g_optimizer.lr=fast"], "optimizer.lr must be a float, got string"),
        (["generator.hiden=[8]"], "generator 'toy-mlp' has no setting 'hiden' \\(did you mean: hidden\\?\\)"),
        (["loss=hing"], "unknown loss 'hing' \\(did you mean: hinge\\?\\)"),
        (["callbacks.no-such=null", "callbacks.sample-grd={}"], "unknown callback 'sample-grd' \\(did you mean: sample-grid\\?\\)"),
        (["trainer=3"], "trainer is a section"),
        (["preset=mlp-mnist"], "preset is chosen by"),
        (["generator=[1]"], "generator must be a component name"),
        (["seed=abc"], "seed must be an int"),
        (["trainer.steps=true"], "trainer.steps must be an int, got bool"),
    ],
)
def test_bad_overrides_name_the_problem(registry, sets, message):
    with pytest.raises(ConfigError, match=message):
        resolved(registry, *sets)


def test_unknown_preset(registry):
    with pytest.raises(ConfigError, match="unknown preset 'mlp-mnst' \\(did you mean: mlp-mnist, "):
        resolve(registry, preset="mlp-mnst")


def test_resolved_config_round_trips_through_json(registry):
    config = resolved(registry, "trainer.k=2", "loss=hinge", "seed=11")
    again = resolve(registry, base=json.loads(json.dumps(config)))
    assert again == config


def test_saved_config_with_unknown_keys_is_rejected(registry):
    config = resolved(registry, "seed=1")
    config["trainer"]["bogus"] = 1
    with pytest.raises(ConfigError, match="unknown setting 'trainer.bogus'"):
        resolve(registry, base=config)


def test_a_config_from_an_older_version_gets_the_newer_settings(registry):
    config = resolved(registry, "seed=4")
    del config["trainer"]["lr_schedule"], config["checkpoint"]["keep"]
    again = resolve(registry, base=config)
    assert again["trainer"]["lr_schedule"] == "constant" and again["checkpoint"]["keep"] == 3


@pytest.mark.parametrize("run_id", ["../../x", "ABC", 7, ["a"], "0" * 31])
def test_a_saved_run_id_must_be_32_hex_digits(registry, run_id):
    config = {**resolved(registry, "seed=1"), "run_id": run_id}
    with pytest.raises(ConfigError, match="run_id must be 32 hexadecimal digits"):
        resolve(registry, base=config)
    assert resolve(registry, base={**config, "run_id": "0123456789abcdef" * 2})["run_id"] == "0123456789abcdef" * 2


def test_the_closing_evaluation_is_a_setting(registry):
    assert resolved(registry)["eval"]["at_end"] is True
    assert resolved(registry, "eval.at_end=false")["eval"]["at_end"] is False
    with pytest.raises(ConfigError, match="eval.at_end must be a bool, got string"):
        resolved(registry, "eval.at_end=no")


@pytest.mark.parametrize(
    "sets, loggers",
    [
        ([], {"jsonl"}),
        (["logger=csv"], {"jsonl", "csv"}),
        (['logger=["csv", "tensorboard"]'], {"jsonl", "csv", "tensorboard"}),
        (["logger=csv", "logger=tensorboard"], {"jsonl", "csv", "tensorboard"}),
        (['loggers={"csv": {}}'], {"jsonl", "csv"}),
        (['loggers.jsonl={"filename": "log.jsonl"}'], {"jsonl"}),
    ],
)
def test_loggers_add_up_and_jsonl_is_always_on(registry, sets, loggers):
    config = resolved(registry, *sets)
    assert set(config["loggers"]) == loggers
    if sets and "log.jsonl" in sets[0]:
        assert config["loggers"]["jsonl"] == {"filename": "log.jsonl"}


def test_jsonl_cannot_be_removed(registry):
    with pytest.raises(ConfigError, match="the jsonl logger is always on"):
        resolved(registry, "loggers.jsonl=null")


def test_a_runs_config_json_resolves_from_the_file_to_itself(registry, tmp_path):
    config = resolved(registry, "trainer.k=2", "loss=wasserstein", "loss.gradient_penalty=3", "logger=csv", "seed=9")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert resolve_file(registry, path) == config
    assert resolve_file(registry, path, [parse_set("trainer.k=3")])["trainer"]["k"] == 3


def test_a_config_file_without_a_preset_starts_from_the_core_defaults(registry, tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('seed = 1\ngenerator = "toy-mlp"\ndiscriminator = "toy-mlp"\ndataset = "gaussian-1d"\n[trainer]\nk = 2\n')
    config = resolve_file(registry, path)
    assert config["preset"] is None and config["trainer"]["k"] == 2 and config["trainer"]["batch_size"] == 64
    assert config["eval"]["metrics"] == {} and config["generator"]["hidden"] == [64, 64]


def test_a_partial_config_file_changes_only_what_it_names(registry, tmp_path):
    path = tmp_path / "partial.json"
    path.write_text(json.dumps({"preset": "toy-gaussian", "seed": 1, "trainer": {"epochs": 1}, "generator": {"hidden": [8]}}))
    config = resolve_file(registry, path)
    assert config == resolved(registry, "seed=1", "trainer.epochs=1", "generator.hidden=[8]")
    assert config["trainer"]["batch_size"] == 128  # the preset's, not the core default 64


ALIASES = '''
from advnets import Component, hookimpl
from advnets.losses import HingeLoss

def scaled_hinge(scale: float = 1.0):
    """A hinge loss, scaled."""
    return HingeLoss()

def mean_gap(samples, data):
    return {"mean_gap": 0.0}

@hookimpl
def register_components(register):
    register(Component(kind="loss", name="scaled-hinge", factory=scaled_hinge, aliases=("sh",)))
    register(Component(kind="metric", name="mean-gap", factory=mean_gap, defaults={}, aliases=("gap",)))
'''


def test_a_config_records_the_components_own_name_not_the_alias_it_was_given(tmp_path):
    from advnets.plugins import load_plugins

    path = tmp_path / "aliased.py"
    path.write_text(ALIASES)
    registry = load_plugins([path], environ={}).registry
    config = resolved(registry, "loss=sh", "loss.scale=0.5", "eval.metrics.gap={}")
    assert config["loss"] == {"name": "scaled-hinge", "scale": 0.5}
    assert "mean-gap" in config["eval"]["metrics"] and "gap" not in config["eval"]["metrics"]
    assert resolve(registry, base=config, draw_seed=False) == config  # and it resolves to itself
    with pytest.raises(ConfigError, match="eval.metrics names metric 'mean-gap' twice, as 'gap' and 'mean-gap'"):
        resolved(registry, "eval.metrics.gap={}", "eval.metrics.mean-gap={}")
