"""Metrics declare which way their numbers are better and which are headline; the core names none of them."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from advnets.cli import app
from advnets.errors import ConfigError
from advnets.metrics import Declared, declared, declared_all
from advnets.plots import headline_keys
from advnets_parzen.metrics import Parzen

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
TOY = ["run", "toy-gaussian", "--seed", "1", "--steps", "20", "--set", "callbacks={}", "--threads", "1"]


def test_a_metric_declares_directions_and_headline_keys():
    assert declared("parzen", Parzen()) == Declared({"parzen": "max", "parzen_valid": "max"}, ("parzen",))

    def plain(samples, data):  # a function without declarations: none
        return {"x": 1.0}

    assert declared("plain", plain) == Declared()
    plain.directions, plain.headline = {"x": "min"}, ["x"]
    both = declared_all({"parzen": Parzen(), "plain": plain})
    assert both.directions == {"parzen": "max", "parzen_valid": "max", "x": "min"} and both.headline == ("parzen", "x")
    assert both.as_json()["x"] == {"direction": "min", "headline": True}
    assert both.as_json()["parzen_valid"] == {"direction": "max", "headline": False}

    def agrees(samples, data):
        return {"x": 2.0}

    def disagrees(samples, data):
        return {"x": 3.0}

    agrees.directions, disagrees.directions = {"x": "min"}, {"x": "max"}
    assert declared_all({"plain": plain, "agrees": agrees}).directions == {"x": "min"}  # the same direction: fine
    with pytest.raises(ConfigError, match=re.escape("metrics 'plain' and 'disagrees' both declare 'x', as min and max")):
        declared_all({"plain": plain, "agrees": agrees, "disagrees": disagrees})


@pytest.mark.parametrize("directions, headline, message", [
    ({"x": "up"}, (), "directions must map each key to 'max' or 'min'"),
    (["x"], (), "directions must map each key"),
    ({"x": "max"}, "x", "headline must be a list of keys"),
    ({"x": "max"}, ("y",), "headline key 'y' has no direction"),
])
def test_bad_declarations_are_one_line_naming_the_metric(directions, headline, message):
    class Bad:
        pass

    Bad.directions, Bad.headline = directions, headline
    with pytest.raises(ConfigError, match=re.escape(f"metric 'bad': {message}")):
        declared("bad", Bad())


def test_a_metrics_numbers_become_plain_numbers():
    """A one-element tensor or a NumPy number is a number; what a record cannot hold is refused by score."""
    import numpy as np
    import torch

    from advnets import Data
    from advnets.metrics import score

    data = Data(train=torch.zeros(4, 2))
    report = {"a": torch.tensor(2.5), "b": np.float32(0.25), "c": 3, "d": float("nan"), "e": torch.tensor([7])}
    results, _ = score({"m": lambda samples, d: report}, torch.zeros(4, 2), data)
    assert results == pytest.approx({"a": 2.5, "b": 0.25, "c": 3, "d": float("nan"), "e": 7}, nan_ok=True)
    assert all(type(v) in (int, float) for v in results.values())


@pytest.mark.parametrize(
    "report, message",
    [
        ([1.0], "metric 'm' returned a list: a metric returns {name: number}"),
        (None, "metric 'm' returned None: a metric returns {name: number}"),
        ({"step": 999}, "metric 'm' reported 'step', a key of the evaluation record itself: name it otherwise"),
        ({"epoch": -1}, "metric 'm' reported 'epoch', a key of the evaluation record itself: name it otherwise"),
        ({"x": "high"}, "metric 'm' reported 'x' as str 'high': a metric reports numbers"),
        ({"x": {"a": 1}}, "metric 'm' reported 'x' as a dict: a metric reports numbers"),
        ({"x": True}, "metric 'm' reported 'x' as bool True: a metric reports numbers"),
        ({"x": "tensor"}, "metric 'm' reported 'x' as a tensor of shape (3,): a metric reports numbers"),
        ({1: 2.0}, "metric 'm' reported a number under 1: names must be strings"),
    ],
    ids=["a list", "None", "step", "epoch", "a string", "a dict", "a bool", "a tensor of three", "a non-string key"],
)
def test_a_metric_that_reports_what_a_record_cannot_hold_is_one_line(report, message):
    import torch

    from advnets import Data
    from advnets.errors import PluginError
    from advnets.metrics import score

    if report == {"x": "tensor"}:
        report = {"x": torch.ones(3)}
    with pytest.raises(PluginError) as caught:
        score({"m": lambda samples, data: report}, torch.zeros(4, 2), Data(train=torch.zeros(4, 2)))
    assert str(caught.value) == message


NAN_METRIC = """
from advnets import Component, hookimpl


def broken():
    \"\"\"A metric whose numbers failed.\"\"\"
    return lambda samples, data: {"nan": float("nan"), "inf": float("inf"), "fine": 1.5}


@hookimpl
def register_components(register):
    register(Component(kind="metric", name="broken", factory=broken))
"""


def strict(text: str):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_a_nan_or_infinite_number_is_written_as_standard_json_null_and_read_back_as_nan(tmp_path):
    """metrics.jsonl, eval.json and --json output are standard JSON (jq and JavaScript refuse NaN)."""
    import math

    from advnets.plots import read_records

    plugin, out = tmp_path / "broken.py", tmp_path / "run"
    plugin.write_text(NAN_METRIC)
    result = runner.invoke(app, [*TOY, "--out", str(out), "--plugin", str(plugin), "--set", 'eval.metrics={"broken": {}}',
                                 "--set", "eval.n_samples=100"])
    assert result.exit_code == 0, result.output
    records = [strict(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["event"] == "eval"]
    assert evals and all(r["nan"] is None and r["inf"] is None and r["fine"] == 1.5 for r in evals)
    read = [r for r in read_records(out) if r["event"] == "eval"]
    assert all(math.isnan(r["nan"]) and math.isnan(r["inf"]) for r in read)
    result = runner.invoke(app, ["eval", str(out), "--plugin", str(plugin), "--n", "100", "--json"])
    assert result.exit_code == 0, result.output
    reported = strict(result.stdout[result.stdout.index("{"):])
    assert reported["results"]["nan"] is None and reported["results"]["fine"] == 1.5
    assert strict((out / "eval.json").read_text())["results"]["inf"] is None
    # a run folder that cannot take eval.json: the numbers are shown first, then the one-line error
    (out / "eval.json").unlink()
    (out / "eval.json").mkdir()
    unwritable = runner.invoke(app, ["eval", str(out), "--plugin", str(plugin), "--n", "100"])
    assert unwritable.exit_code == 2 and "fine" in unwritable.stdout and "1.5000" in unwritable.stdout
    assert unwritable.stderr.strip().startswith(f"error: {out / 'eval.json'}: cannot write")
    import shutil

    shutil.copytree(out, tmp_path / "copy")
    compared = runner.invoke(app, ["compare", str(out), str(tmp_path / "copy"), "--json", "--no-plot"])
    assert compared.exit_code == 0, compared.output
    strict(compared.stdout[compared.stdout.index("{"):])


def test_eval_best_takes_its_direction_from_the_metric(tmp_path):
    """gaussian-w1 declares lower is better: best.safetensors follows the lowest w1 without eval.mode."""
    out = tmp_path / "run"
    result = runner.invoke(app, [*TOY, "--out", str(out), "--set", "eval.every_steps=5", "--set", "eval.n_samples=500",
                                 "--set", "eval.best=w1"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    described = [r for r in records if r["event"] == "evaluations"]
    assert len(described) == 1 and described[0]["evaluations"]["w1"] == {"direction": "min", "headline": True}
    assert set(described[0]["evaluations"]) == {"w1", "ks", "js"}
    evals = [r for r in records if r["event"] == "eval"]
    best_step = min(evals, key=lambda r: r["w1"])["step"]  # the first of equal values, as the callback keeps it
    from advnets.checkpoint import read_metadata

    assert read_metadata(out / "checkpoints" / "best.safetensors")["step"] == best_step
    assert headline_keys(records) == ["w1", "ks", "js"]
    assert json.loads((out / "config.json").read_text())["eval"]["mode"] is None  # recorded as given: the metric decides


def test_a_callback_that_describes_its_numbers_badly_is_refused_before_training():
    from advnets import Callback
    from advnets.loggers import JsonlLogger, described

    class Bad(Callback):
        def describe(self, trainer):
            return {"x": {"direction": "up"}}

    class Trainer:  # what JsonlLogger.check and described() read of a trainer
        callbacks = [Bad()]
        run_dir = None

    with pytest.raises(ConfigError, match=r"callback Bad: describe\(\) must return"):
        JsonlLogger().check(Trainer())
    Trainer.callbacks = [Callback()]  # the default says nothing
    assert described(Trainer()) == {}


def test_plot_of_a_run_from_before_declarations_asks_the_installed_metrics(registry):
    """An old run's metrics.jsonl has no evaluations record: advnets plot reads the metrics' classes instead."""
    from advnets.cli import _declared_by_factories

    config = {"eval": {"metrics": {"parzen": {}, "mnist-fid": {}, "gone": {}}}}
    found = _declared_by_factories(registry, config)
    assert found["parzen"] == {"direction": "max", "headline": True} and found["mnist_fid"]["direction"] == "min"
    records = [{"event": "evaluations", "step": 0, "evaluations": found},
               {"event": "eval", "step": 10, "parzen": 1.0, "parzen_se": 0.1, "parzen_sigma": 0.2, "parzen_valid": 1.0, "mnist_fid": 9.0}]
    assert headline_keys(records) == ["parzen", "mnist_fid"]  # not the first four numbers logged


def test_eval_mode_still_wins(tmp_path):
    result = runner.invoke(app, [*TOY, "--out", str(tmp_path / "a"), "--set", "eval.n_samples=200", "--set", "eval.best=w1",
                                 "--set", "eval.mode=max"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert next(r for r in records if r["event"] == "evaluations")["evaluations"]["w1"]["direction"] == "max"


def test_an_undeclared_best_is_refused_before_training(tmp_path, mnist_dir):
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "mlp-mnist", "--steps", "1", "--out", str(out), "--data-dir", str(mnist_dir), "--threads", "1",
                                 "--set", "eval.best=parzen_se", "--set", "eval.n_samples=100", "--set", 'eval.metrics={"parzen": {}}'])
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        "error: eval.best is 'parzen_se', and no metric says which way it is better: set eval.mode to min or max\n"
    )
    assert not out.exists()  # refused before the run folder is made


def test_parzen_needs_a_validation_split_or_a_named_one(tmp_path, mnist_dir):
    """Parzen's default held-out images are the dataset's valid split, not a fixed MNIST range."""
    import torch

    from advnets.data import Data

    train = torch.randint(0, 256, (300, 1, 4, 4), dtype=torch.uint8)
    data = Data(train=train, test=train[:50], raw_range=(0.0, 255.0), model_range=(-1.0, 1.0), name="tiny")
    samples = torch.rand(40, 1, 4, 4) * 2 - 1
    with pytest.raises(ConfigError, match="dataset 'tiny' has no validation split to choose sigma on.*valid_start"):
        Parzen(n_test=50)(samples, data)
    numbers = Parzen(valid_start=200, valid_size=100, n_test=50)(samples, data)
    assert set(numbers) == {"parzen", "parzen_se", "parzen_sigma", "parzen_valid"}
    with pytest.raises(ConfigError, match="valid_start must be null or an integer >= 0"):
        Parzen(valid_start=-1)


def test_the_training_plot_draws_the_declared_headline_keys():
    records = [
        {"event": "evaluations", "step": 0, "evaluations": {"fid": {"direction": "min", "headline": True},
                                                            "kl": {"direction": "min", "headline": False}}},
        {"event": "eval", "step": 10, "epoch": 0.1, "se": 0.1, "kl": 0.5, "fid": 40.0, "time": 2.0},
    ]
    assert headline_keys(records) == ["fid"]
    assert headline_keys(records[1:]) == ["se", "kl", "fid"]  # a run from before: the first numbers it logged


def test_the_core_names_no_first_party_plugin_and_no_metric():
    """grep advnets/ for the first-party plugins' names, their components' names, and every key their metrics report."""
    from advnets.plugins import load_plugins

    registry = load_plugins(environ={}).registry
    first_party = [c for c in registry.components() if c.plugin != "advnets"]
    names = {c.name for c in first_party} | {p for c in first_party for p in [c.plugin.replace("-", "_"), c.plugin]}
    metric_keys = set()
    for component in registry.components("metric"):
        metric_keys |= set(declared(component.name, component.load()).directions)
    assert {"parzen", "parzen_valid", "mnist_fid", "w1"} <= metric_keys
    assert {c.name for c in registry.components("metric")} <= names  # every metric is a first-party plugin's
    words = sorted(names | metric_keys | {"mnist", "gaussian", "bigan", "dcgan", "nn_accuracy", "linear_accuracy"})
    long, short = [w for w in words if len(w) > 3], [w for w in words if len(w) <= 3]  # short ones (js, w1) as whole words
    pattern = r"\b(" + "|".join(map(re.escape, long)) + r")|\b(" + "|".join(map(re.escape, short)) + r")\b"  # parzen_se too
    found = subprocess.run(["grep", "-rniE", pattern, "advnets/", "--include=*.py"], cwd=REPO, capture_output=True, text=True)
    assert found.returncode == 1 and found.stdout == "", found.stdout  # 1: grep ran and found nothing
