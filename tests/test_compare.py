"""advnets compare: runs side by side, read from their metrics.jsonl and config.json, and one plot of their curves."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image
from typer.testing import CliRunner

from advnets.cli import app

runner = CliRunner()
GAME = {  # the diagnostics record a run of the 2014 game writes first
    "d_loss": {"label": "D's loss", "equilibrium": 1.3862943611198906, "panel": "losses"},
    "g_loss": {"label": "G's loss", "equilibrium": None, "panel": "losses"},
    "d_real": {"label": "mean D(x)", "equilibrium": 0.5, "panel": "outputs"},
}


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], env={"ADVNETS_PLUGINS": "", "COLUMNS": "200"})


def write_run(folder, records, config=None, tail=""):
    """A run folder as a run leaves it: config.json and metrics.jsonl (``tail`` is appended as it is)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config or {"preset": "toy-gaussian", "eval": {"best": None, "mode": "min"}}))
    lines = [json.dumps({"event": "diagnostics", "step": 0, "diagnostics": GAME})] + [json.dumps(r) for r in records]
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n" + tail)
    return folder


def train(step, d_loss, g_loss=1.0, **more):
    return {"event": "train", "step": step, "epoch": step / 100, "d_loss": d_loss, "g_loss": g_loss, "d_real": 0.6, **more}


def evaluation(step, **values):
    return {"event": "eval", "step": step, "epoch": step / 100, **values, "time": 1.0}


@pytest.fixture
def two_runs(tmp_path):
    first = write_run(
        tmp_path / "first",
        [train(10, 1.3), evaluation(10, w1=0.9, parzen=100.0), train(20, 1.1), evaluation(20, w1=0.4, parzen=140.0),
         train(30, 1.2), evaluation(30, w1=0.5, parzen=120.0)],
        {"preset": "toy-gaussian", "eval": {"best": "parzen", "mode": "max"}},
    )
    second = write_run(
        tmp_path / "second",
        [train(10, 1.0), evaluation(10, w1=0.3), train(20, 0.9, g_loss=2.5), evaluation(20, w1=0.35),
         # resumed from step 10: steps 20 and 30 again; the last record of each step counts
         train(20, 0.8, g_loss=2.0), evaluation(20, w1=0.2), train(30, 0.7), evaluation(30, w1=0.25)],
        {"preset": "mlp-mnist", "eval": {"best": "w1", "mode": "min"}},
    )
    return first, second


def test_compare_reads_final_and_best_values_and_takes_best_from_the_runs_eval_mode(tmp_path, two_runs):
    first, second = two_runs
    result = invoke("compare", first, second, "--json", "--out", tmp_path / "c.png")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["shared"] == {"losses": ["d_loss", "g_loss"], "eval": ["w1"]} and shown["plot"] == str(tmp_path / "c.png")
    a, b = shown["runs"]
    assert (a["run"], a["preset"], a["steps"], a["epoch"]) == (str(first), "toy-gaussian", 30, 0.3)
    assert a["final"] == {"step": 30, "d_loss": 1.2, "g_loss": 1.0, "d_real": 0.6}
    # parzen is the number the first run keeps best.safetensors by, with eval.mode max
    assert a["eval"]["parzen"] == {
        "final": {"value": 120.0, "step": 30},
        "best": {"value": 140.0, "step": 20, "mode": "max"},
        "lowest": {"value": 100.0, "step": 10},
        "highest": {"value": 140.0, "step": 20},
    }
    assert a["eval"]["w1"]["best"] is None  # the run does not say which way w1 is better
    assert a["eval"]["w1"]["lowest"] == {"value": 0.4, "step": 20} and a["eval"]["w1"]["highest"] == {"value": 0.9, "step": 10}
    assert b["final"] == {"step": 30, "d_loss": 0.7, "g_loss": 1.0, "d_real": 0.6}
    assert b["eval"]["w1"]["best"] == {"value": 0.2, "step": 20, "mode": "min"}  # the resumed run's step 20, not the first
    assert b["eval"]["w1"]["final"] == {"value": 0.25, "step": 30} and b["skipped_lines"] == []
    with Image.open(tmp_path / "c.png") as image:
        assert image.format == "PNG" and image.width > 1000  # three panels: d_loss, g_loss, w1

    table = invoke("compare", first, second, "--no-plot")
    assert table.exit_code == 0, table.output
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]] for line in table.stdout.splitlines() if line.count("│") == 4}
    assert rows["preset"] == ["toy-gaussian", "mlp-mnist"] and rows["steps"] == ["30 (epoch 0.3)", "30 (epoch 0.3)"]
    assert rows["d_loss"] == ["1.2", "0.7"]
    assert rows["parzen last evaluated"] == ["120 (step 30)", "-"] and rows["parzen best"] == ["140 (step 20), max", "-"]
    assert rows["w1 best"] == ["-", "0.2 (step 20), min"]
    # a number with a direction shows its best; lowest / highest only where the run does not say
    assert rows["w1 lowest / highest"] == ["0.4 (step 20) / 0.9 (step 10)", "-"]
    assert not (tmp_path / "compare.png").exists()


def test_compare_takes_directions_and_headline_keys_from_the_runs_metrics(tmp_path):
    """The metrics declare which way each number is better (the run's evaluations record); eval.mode wins for eval.best."""
    declared = {"event": "evaluations", "step": 0, "evaluations": {
        "fid": {"direction": "min", "headline": True}, "score": {"direction": "max", "headline": False},
        "acc": {"direction": "max", "headline": True},
    }}
    records = [declared, train(10, 1.3), evaluation(10, se=0.1, score=2.0, fid=50.0, acc=0.5),
               train(20, 1.1), evaluation(20, se=0.3, score=3.0, fid=40.0, acc=0.7),
               train(30, 1.2), evaluation(30, se=0.2, score=2.5, fid=45.0, acc=0.6)]
    ours = write_run(tmp_path / "ours", records, {"preset": "p", "eval": {"best": "acc", "mode": "min"}})
    theirs = write_run(tmp_path / "theirs", records[1:], {"preset": "p", "eval": {"best": None, "mode": None}})
    result = invoke("compare", ours, theirs, "--json", "--no-plot")
    assert result.exit_code == 0, result.output
    a, b = json.loads(result.stdout)["runs"]
    assert list(a["eval"]) == ["fid", "acc", "se", "score"]  # headline keys first, in their declared order
    assert a["eval"]["fid"]["best"] == {"value": 40.0, "step": 20, "mode": "min"}
    assert a["eval"]["score"]["best"] == {"value": 3.0, "step": 20, "mode": "max"}
    assert a["eval"]["acc"]["best"] == {"value": 0.5, "step": 10, "mode": "min"}  # the run's eval.mode says so
    assert a["eval"]["se"]["best"] is None  # no direction declared: lowest and highest only
    assert a["eval"]["se"]["lowest"] == {"value": 0.1, "step": 10}
    # a run from before metrics declared directions: no best, in the order it logged
    assert list(b["eval"]) == ["se", "score", "fid", "acc"] and all(v["best"] is None for v in b["eval"].values())
    table = invoke("compare", ours, theirs, "--no-plot")
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]] for line in table.stdout.splitlines() if line.count("│") == 4}
    assert rows["fid best"] == ["40 (step 20), min", "-"] and rows["fid lowest / highest"] == ["-", "40 (step 20) / 50 (step 10)"]
    assert rows["se lowest / highest"] == ["0.1 (step 10) / 0.3 (step 20)", "0.1 (step 10) / 0.3 (step 20)"]


def test_damaged_lines_are_skipped_with_a_note_in_compare_and_plot(tmp_path, two_runs):
    first, _ = two_runs
    cut = write_run(tmp_path / "cut", [train(10, 1.0), evaluation(10, w1=0.3)], tail='[1, 2]\n{"event": "train", "step": "x"}\n{"event": "eval", "st')
    result = invoke("compare", first, cut, "--json", "--no-plot")
    assert result.exit_code == 0, result.output
    assert result.stderr == f"note: {cut / 'metrics.jsonl'}: skipped damaged 3 lines (4, 5, 6)\n"
    assert json.loads(result.stdout)["runs"][1]["skipped_lines"] == [4, 5, 6]
    plotted = invoke("plot", cut)
    assert plotted.exit_code == 0, plotted.output
    assert f"skipped damaged 3 lines (4, 5, 6)" in plotted.stderr and (cut / "training.png").is_file()


@pytest.mark.parametrize(
    "make, args, message",
    [
        (lambda t: None, ["first"], "compare needs two or more run folders"),
        (lambda t: None, ["first", "first/"], "first and first are the same run folder; name each run once"),
        (lambda t: None, ["first", "nowhere"], "nowhere: no such run folder"),
        (lambda t: (t / "empty").mkdir(), ["first", "empty"], "empty: not a run folder (no config.json)"),
        (lambda t: write_run(t / "bad", []).joinpath("config.json").write_text("{"), ["first", "bad"],
         "bad/config.json: not a readable run configuration (Expecting property name"),
        (lambda t: write_run(t / "nolog", []).joinpath("metrics.jsonl").unlink(), ["first", "nolog"], "nolog: no metrics.jsonl"),
        (lambda t: write_run(t / "fresh", []), ["first", "fresh"], "fresh/metrics.jsonl: no training or evaluation records yet"),
        (lambda t: write_run(t / "other", [evaluation(5, fid=3.0)]), ["first", "other"],
         "first, other: no losses or evaluation numbers in common to compare"),
        (lambda t: (t / "taken.png").write_bytes(b"mine"), ["first", "second", "--out", "taken.png"],
         "taken.png already exists; give --force to overwrite it"),
        (lambda t: None, ["first", "second", "--out", "plot.jpg"], "plot.jpg: the plot is a PNG file"),
        (lambda t: None, ["first", "second", "--out", "missing/c.png"], "missing/c.png: cannot write the comparison plot"),
        (lambda t: None, [], "Missing argument 'RUN'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, two_runs, make, args, message):
    monkeypatch.chdir(tmp_path)
    make(tmp_path)
    result = invoke("compare", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    if "taken.png" in args:
        assert (tmp_path / "taken.png").read_bytes() == b"mine"
        assert invoke("compare", *args, "--force").exit_code == 0
        assert (tmp_path / "taken.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_does_not_import_torch(two_runs):
    first, second = two_runs
    code = (
        "import sys\nfrom advnets.cli import app\n"
        f"app(['compare', {str(first)!r}, {str(second)!r}, '--no-plot'], prog_name='advnets', standalone_mode=False)\n"
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "False"


@pytest.mark.slow
def test_compare_two_real_runs_through_the_cli(tmp_path, cli, toy_run):
    first, _ = toy_run  # 30 steps, evaluated at the end
    second = tmp_path / "hinge"
    made = invoke(
        "run", "toy-gaussian", "--steps", "30", "--seed", "3", "--out", second, "--threads", "1", "--set", "callbacks={}",
        "--set", "loss=hinge", "--set", "eval.every_steps=10", "--set", "eval.n_samples=2000", "--set", "eval.best=w1",
    )
    assert made.exit_code == 0, made.output
    png = tmp_path / "both.png"
    result = cli("compare", str(first), str(second), "--out", str(png))
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"wrote {png}\n"
    with Image.open(png) as image:
        image.verify()
        assert image.format == "PNG"

    def logged(run):
        return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]

    records = {run: logged(run) for run in (first, second)}
    last = {run: [r for r in records[run] if r["event"] == "train"][-1] for run in records}
    evals = {run: [r for r in records[run] if r["event"] == "eval"] for run in records}
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]] for line in result.stdout.splitlines() if line.count("│") == 4}
    for key in ("d_loss", "g_loss", "d_grad_norm"):
        assert rows[key] == [f"{last[first][key]:.5g}", f"{last[second][key]:.5g}"]
    assert rows["w1 last evaluated"] == [f"{evals[run][-1]['w1']:.5g} (step 30)" for run in (first, second)]
    best = min(evals[second], key=lambda r: r["w1"])
    only = evals[first][-1]  # the first run evaluated once; gaussian-w1 declares lower is better
    assert rows["w1 best"] == [f"{only['w1']:.5g} (step 30), min", f"{best['w1']:.5g} (step {best['step']}), min"]

    as_json = json.loads(cli("compare", str(first), str(second), "--json", "--no-plot").stdout)
    a, b = as_json["runs"]
    assert a["final"] == {"step": 30, **{k: last[first][k] for k in a["final"] if k != "step"}}
    assert set(b["final"]) >= {"d_loss", "g_loss", "real_score", "fake_score"}  # hinge's own diagnostics
    assert b["eval"]["w1"]["best"] == {"value": best["w1"], "step": best["step"], "mode": "min"}
    assert [b["eval"][k]["final"]["value"] for k in ("w1", "ks", "js")] == [evals[second][-1][k] for k in ("w1", "ks", "js")]
    assert as_json["shared"] == {"losses": ["d_loss", "g_loss"], "eval": ["w1", "ks", "js"]}
    again = cli("compare", str(first), str(second), "--out", str(png))
    assert again.returncode == 2 and "already exists; give --force" in again.stderr


def test_plot_leaves_out_an_unreadable_grid_and_says_so(tmp_path):
    """A grid cut short (a crash, a full disk) must not cost the run its pictures: the animation goes on without it."""
    run = write_run(tmp_path / "run", [train(10, 1.0), train(20, 0.9)])
    (run / "samples").mkdir()
    Image.new("L", (28, 28), 128).save(run / "samples" / "step_000000010.png")
    whole = (run / "samples" / "step_000000010.png").read_bytes()
    (run / "samples" / "step_000000020.png").write_bytes(whole[: len(whole) // 2])
    (run / "samples" / "step_000000030.png").write_bytes(b"not a png")
    result = invoke("plot", run)
    assert result.exit_code == 0, result.output
    assert result.stderr == f"note: {run / 'samples'}: left out of the animation, unreadable: step_000000020.png, step_000000030.png\n"
    with Image.open(run / "samples.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames == 1
