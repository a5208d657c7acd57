"""Loggers (jsonl, csv, tensorboard, mlflow) and the pictures of a run (training.png, samples.gif)."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from advnets.cli import app
from advnets.plots import read_metrics, read_records

runner = CliRunner()
TOY = ["run", "toy-gaussian", "--seed", "1", "--set", "callbacks={}", "--set", "eval.every_epochs=1"]


@pytest.mark.slow
def test_csv_and_jsonl_loggers_write_the_same_records(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, [*TOY, "--steps", "350", "--out", str(out), "--set", 'logger=["jsonl", "csv"]'])
    assert result.exit_code == 0, result.output
    jsonl = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    with open(out / "metrics-train.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [r["step"] for r in jsonl if r["event"] == "train"]
    assert float(rows[0]["d_loss"]) == pytest.approx(next(r for r in jsonl if r["event"] == "train")["d_loss"])
    with open(out / "metrics-eval.csv", newline="") as f:
        evals = list(csv.DictReader(f))
    assert [int(r["step"]) for r in evals] == [156, 312, 350] and "w1" in evals[0]
    # a resumed run appends under the same header
    resumed = runner.invoke(app, ["run", "--resume", str(out), "--steps", "400"])
    assert resumed.exit_code == 0, resumed.output
    with open(out / "metrics-train.csv", newline="") as f:
        lines = f.read().splitlines()
    assert sum(line.startswith("step,") for line in lines) == 1 and lines[-1].startswith("400,")


def test_a_chosen_logger_runs_beside_jsonl(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, [*TOY, "--steps", "20", "--out", str(out), "--set", "logger=csv"])
    assert result.exit_code == 0, result.output
    loggers = json.loads((out / "config.json").read_text())["loggers"]
    assert loggers == {"jsonl": {"filename": "metrics.jsonl"}, "csv": {"prefix": "metrics"}}
    assert (out / "metrics.jsonl").exists() and (out / "metrics-train.csv").exists()
    assert (out / "training.png").exists()  # the pictures are drawn from metrics.jsonl, always written


def test_a_renamed_jsonl_log_is_what_the_plots_and_compare_read(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, [*TOY, "--steps", "20", "--out", str(out), "--set", "loggers.jsonl.filename=log.jsonl"])
    assert result.exit_code == 0, result.output
    assert (out / "log.jsonl").is_file() and not (out / "metrics.jsonl").exists()
    assert (out / "training.png").is_file()  # drawn from log.jsonl at the end of the run
    (out / "training.png").unlink()
    assert runner.invoke(app, ["plot", str(out)]).exit_code == 0 and (out / "training.png").is_file()
    shutil.copytree(out, tmp_path / "copy")
    compared = runner.invoke(app, ["compare", str(out), str(tmp_path / "copy"), "--no-plot"])
    assert compared.exit_code == 0, compared.output


def short_mnist_run(out, mnist_dir, steps: int, *settings: str) -> None:
    """A few logged steps of mlp-mnist-lecture, without the (slow) evaluation."""
    args = ["run", "mlp-mnist-lecture", "--steps", str(steps), "--out", str(out), "--data-dir", str(mnist_dir)]
    args += ["--set", "eval.metrics={}", "--set", "trainer.log_every=10"]
    for setting in settings:
        args += ["--set", setting]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_tensorboard_logger_writes_scalars_and_sample_grids(tmp_path, mnist_dir):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    short_mnist_run(out, mnist_dir, 30, "logger=tensorboard")
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert [e.step for e in events.Scalars("train/d_loss")] == [10, 20, 30]
    assert {"train/g_loss", "train/d_real", "train/d_fake", "train/samples_per_s"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Images("samples")] == [0, 30]  # the grids at the start and the end


@pytest.mark.slow
def test_mlflow_logger_records_metrics_params_and_artifacts_and_resume_goes_on_in_the_same_run(tmp_path, mnist_dir):
    pytest.importorskip("mlflow", reason="the mlflow logger needs MLflow: pip install -e '.[mlflow]' (the test extra has it)")
    from mlflow.tracking import MlflowClient

    out = tmp_path / "run"
    short_mnist_run(out, mnist_dir, 30, "logger=mlflow", "checkpoint.every_steps=20")
    recorded = json.loads((out / "mlflow.json").read_text())
    assert recorded["tracking_uri"] is None  # the run's own store, in RUN_DIR/mlflow
    resumed = runner.invoke(app, ["run", "--resume", str(out), "--steps", "40"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((out / "mlflow.json").read_text()) == recorded  # the same MLflow run goes on

    client = MlflowClient(tracking_uri=f"sqlite:///{out.resolve() / 'mlflow' / 'mlflow.db'}")
    [experiment] = [e for e in client.search_experiments() if e.name == "advnets"]
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_id == recorded["run_id"] and run.info.status == "FINISHED" and run.info.run_name == "run"
    jsonl = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    history = client.get_metric_history(run.info.run_id, "train/d_loss")
    assert [m.step for m in history] == [10, 20, 30, 40]  # 10, 20 and 30 before the resume, 40 after it
    last = {r["step"]: r for r in jsonl if r["event"] == "train"}  # the resumed run's records of each step
    assert history[-1].value == pytest.approx(last[40]["d_loss"])
    assert {"train/g_loss", "train/d_real", "train/d_fake", "train/samples_per_s"} <= set(run.data.metrics)
    config = json.loads((out / "config.json").read_text())
    params = run.data.params
    assert params["preset"] == "mlp-mnist-lecture" and params["trainer.k"] == str(config["trainer"]["k"])
    assert params["g_optimizer.betas"] == json.dumps(config["g_optimizer"]["betas"]) and params["loss.name"] == config["loss"]["name"]
    assert params["trainer.steps"] == "30"  # MLflow keeps a parameter's first value; config.json (an artifact) has 40
    assert run.data.tags["advnets.run_id"] == config["run_id"]

    def artifacts(path=None):
        for item in client.list_artifacts(run.info.run_id, path):
            yield from artifacts(item.path) if item.is_dir else [item.path]

    listed = set(artifacts())
    assert {"config.json", "samples/step_000000000.png", "samples/step_000000030.png", "samples/step_000000040.png"} <= listed
    assert {"checkpoints/step-000000030.safetensors", "checkpoints/step-000000040.safetensors"} <= listed  # the last of each fit
    saved = client.download_artifacts(run.info.run_id, "checkpoints/step-000000040.safetensors", str(tmp_path))
    assert Path(saved).read_bytes() == (out / "checkpoints" / "step-000000040.safetensors").read_bytes()


def test_without_mlflow_the_mlflow_logger_is_one_line_with_the_pip_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if it were not installed: importing it fails
    out = tmp_path / "run"
    result = runner.invoke(app, [*TOY, "--steps", "5", "--out", str(out), "--logger", "mlflow"])
    assert result.exit_code == 2, result.output
    assert result.stderr == "error: the mlflow logger needs mlflow: pip install 'advnets[mlflow]'\n"
    assert not out.exists()  # refused before the run folder is made


@pytest.mark.slow
def test_a_run_leaves_its_training_curves_and_sample_animation(tmp_path, mnist_dir):
    out = tmp_path / "run"
    short_mnist_run(out, mnist_dir, 40, "callbacks.sample-grid.every_steps=10")
    with Image.open(out / "training.png") as image:
        assert image.format == "PNG" and image.width > 800
    with Image.open(out / "samples.gif") as gif:
        assert gif.n_frames == 5  # steps 0, 10, 20, 30, 40
    (out / "training.png").unlink()
    again = runner.invoke(app, ["plot", str(out)])
    assert again.exit_code == 0 and (out / "training.png").exists()


def test_records_of_a_resumed_run_count_once(tmp_path):
    lines = [
        {"event": "train", "step": 100, "d_loss": 1.0},
        {"event": "train", "step": 200, "d_loss": 2.0},
        {"event": "train", "step": 200, "d_loss": 2.5},  # the same step again after a resume
        {"event": "eval", "step": 200, "w1": 0.1},
    ]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n{\"cut")
    records = read_records(tmp_path)
    assert [(r["event"], r["step"]) for r in records] == [("train", 100), ("eval", 200), ("train", 200)]
    assert records[-1]["d_loss"] == 2.5
    assert read_metrics(tmp_path) == (records, [5])  # the line cut short, by its number


def test_plot_of_a_folder_without_metrics(tmp_path):
    result = runner.invoke(app, ["plot", str(tmp_path)])
    assert result.exit_code == 2 and "no metrics.jsonl" in result.stderr


@pytest.mark.parametrize("panels, columns", [(["losses"], 2), (["losses", "outputs"], 3), (["norms"], 1)])  # + the evaluation's
def test_the_training_plot_draws_only_the_panels_the_objective_reports(tmp_path, panels, columns):
    """An objective without D's outputs (docs/examples/latent_regression.py) gets no empty panel and no warning."""
    import warnings

    from advnets.plots import plot_training

    described = {f"x_{panel}": {"label": panel, "equilibrium": None, "panel": panel} for panel in panels}
    records = [{"event": "diagnostics", "step": 0, "diagnostics": described}]
    records += [{"event": "train", "step": s, **{key: 1.0 / s for key in described}} for s in (10, 20, 30)]
    records += [{"event": "eval", "step": 30, "score": 0.5}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "No artists with labels found to put in legend"
        plot_training(records, tmp_path / "training.png")
    assert Image.open(tmp_path / "training.png").width == round(4.6 * 110 * columns)
