"""Property-based tests (hypothesis): --set parsing, and the config round trip through a real run."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from advnets.cli import app
from advnets.config import parse_set, resolve

segments = st.text(alphabet=string.ascii_lowercase + string.digits + "_-", min_size=1, max_size=12)
keys = st.lists(segments, min_size=1, max_size=4).map(".".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@given(keys, json_values)
def test_a_json_value_comes_back_as_itself(key, value):
    assert parse_set(f"{key}={json.dumps(value)}") == (tuple(key.split(".")), value)


@given(keys, st.text(max_size=30))
def test_text_that_is_not_json_is_taken_as_text(key, text):
    try:
        json.loads(text)
    except ValueError:
        assert parse_set(f"{key}={text}") == (tuple(key.split(".")), text)


# Valid overrides of the toy-gaussian preset, one strategy per setting.
OVERRIDES = {
    ("seed",): st.integers(0, 2**31 - 1),
    ("trainer", "k"): st.integers(1, 3),
    ("trainer", "batch_size"): st.integers(1, 256),
    ("trainer", "noise"): st.sampled_from(["normal", "uniform"]),
    ("trainer", "log_every"): st.integers(1, 500),
    ("trainer", "ema_decay"): st.sampled_from([0.0, 0.5, 0.99, 0.999]),
    ("trainer", "precision"): st.sampled_from(["32", "bf16"]),
    ("trainer", "nan_guard"): st.booleans(),
    ("loss",): st.sampled_from(["minimax", "non-saturating", "least-squares", "hinge", "wasserstein"]),
    ("g_optimizer", "lr"): st.floats(1e-6, 1e-1),
    ("d_optimizer", "betas"): st.tuples(st.floats(0, 0.99), st.floats(0, 0.999)).map(list),
    ("generator", "hidden"): st.lists(st.integers(1, 64), min_size=1, max_size=3),
    ("dataset", "mu"): st.floats(-10, 10),
    ("checkpoint", "keep"): st.integers(1, 5),
}
override_sets = st.dictionaries(st.sampled_from(sorted(OVERRIDES)), st.none()).flatmap(
    lambda chosen: st.fixed_dictionaries({key: OVERRIDES[key] for key in chosen})
)


@settings(max_examples=60, deadline=None)
@given(override_sets)
def test_a_resolved_config_resolves_to_itself(registry, overrides):
    config = resolve(registry, preset="toy-gaussian", overrides=list(overrides.items()))
    assert resolve(registry, base=json.loads(json.dumps(config))) == config


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(override_sets)
def test_config_json_to_a_run_gives_the_same_config_json(registry, tmp_path_factory, overrides):
    """config.json -> `advnets run config.json` -> the run's config.json is the same configuration (and a new run id)."""
    overrides = {**overrides, ("trainer", "steps"): 2, ("callbacks",): {}, ("eval", "metrics"): {}}
    config = resolve(registry, preset="toy-gaussian", overrides=list(overrides.items()))
    folder = tmp_path_factory.mktemp("roundtrip")
    (folder / "config.json").write_text(json.dumps(config))
    result = CliRunner().invoke(app, ["run", str(folder / "config.json"), "--out", str(folder / "run")])
    assert result.exit_code == 0, result.output
    written = json.loads((folder / "run" / "config.json").read_text())
    assert written.pop("run_id") != config.pop("run_id")  # a rerun is a new run, with an id of its own
    assert written == config
