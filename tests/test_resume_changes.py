"""Continuing a run: settings that may change on resume, and the plugin files a run records."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from advnets.checkpoint import load_checkpoint
from advnets.cli import app
from advnets.provenance import file_digest
from advnets.runs import resume_run, start_run
from advnets.config import resolve

PLUGIN = '''
"""A loss from a plugin file: softplus hinge."""
import torch.nn.functional as F
from advnets import Component, GANLoss, hookimpl


class SoftHinge(GANLoss):
    """Hinge loss with softplus instead of relu."""

    equilibrium = None

    def discriminator_loss(self, real, fake):
        return F.softplus(1 - real).mean() + F.softplus(1 + fake).mean()

    def generator_loss(self, fake):
        return -fake.mean()


@hookimpl
def register_components(register):
    register(Component(kind="loss", name="soft-hinge", factory=SoftHinge))
'''

SHORT = ["--set", "callbacks={}", "--no-eval", "--set", "checkpoint.every_steps=50"]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"ADVNETS_PLUGINS": "", "ADVNETS_LOAD_PLUGINS": None})


def listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def groups(path: Path, which: str) -> list[float]:
    state, _ = load_checkpoint(path)
    return [group["lr"] for group in state[which]["param_groups"]]


def test_resume_takes_a_new_learning_rate_a_logger_and_eval_settings_and_records_them(tmp_path):
    out = tmp_path / "run"
    first = invoke("run", "toy-gaussian", "--steps", "100", "--seed", "3", "--out", str(out), *SHORT)
    assert first.exit_code == 0, first.output
    assert groups(out / "checkpoints" / "step-000000100.safetensors", "g_optimizer") == [1e-4]
    resumed = invoke(
        "run", "--resume", str(out), "--steps", "150", "--set", "g_optimizer.lr=3e-5", "--logger", "csv",
        "--set", "checkpoint.keep=5",
    )
    assert resumed.exit_code == 0, resumed.output
    assert 'changed: checkpoint.keep 2 -> 5, g_optimizer.lr 0.0001 -> 3e-05, loggers.csv null -> {"prefix": "metrics"}, trainer.steps 100 -> 150' in resumed.stderr
    last = out / "checkpoints" / "step-000000150.safetensors"
    assert groups(last, "g_optimizer") == [3e-5]
    assert groups(last, "d_optimizer") == groups(out / "checkpoints" / "step-000000100.safetensors", "d_optimizer")
    config = json.loads((out / "config.json").read_text())
    assert config["g_optimizer"]["lr"] == 3e-5 and "csv" in config["loggers"]
    assert config["changes"] == [
        {
            "step": 100,
            "set": {"checkpoint.keep": 5, "g_optimizer.lr": 3e-5, "loggers.csv": {"prefix": "metrics"}, "trainer.steps": 150},
            "was": {"checkpoint.keep": 2, "g_optimizer.lr": 1e-4, "loggers.csv": None, "trainer.steps": 100},
        }
    ]
    _, metadata = load_checkpoint(last)  # the checkpoint carries the history too: a later resume keeps it
    assert metadata["config"]["changes"] == config["changes"]
    rows = (out / "metrics-train.csv").read_text().splitlines()
    assert rows[0].startswith("step") and rows[-1].startswith("150,")  # the added logger logged the new steps
    again = invoke("run", "--resume", str(out), "--steps", "200")
    assert again.exit_code == 0, again.output
    assert [c["step"] for c in json.loads((out / "config.json").read_text())["changes"]] == [100, 150]


@pytest.fixture(scope="module")
def short_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("short") / "run"
    assert invoke("run", "toy-gaussian", "--steps", "20", "--out", str(out), *SHORT).exit_code == 0
    return out


@pytest.mark.parametrize(
    "option, refused",
    [
        (["--set", "trainer.k=2"], "trainer.k cannot change when resuming"),
        (["--seed", "7"], "seed cannot change when resuming"),
        (["--set", "d_optimizer.betas=[0.9, 0.99]"], "d_optimizer.betas cannot change when resuming"),
        (["--set", "loss=hinge"], "loss.name cannot change when resuming"),
        (["--set", "eval.best=gaussian-w1"], "eval.best cannot change when resuming"),
        (["--out", "elsewhere"], "--out cannot change a run being resumed"),
    ],
)
def test_resume_refuses_what_would_change_the_steps_already_taken(tmp_path, monkeypatch, short_run, option, refused):
    monkeypatch.chdir(tmp_path)
    out = short_run  # every case leaves it as it was, which each one checks
    before = listing(out)
    result = invoke("run", "--resume", str(out), "--steps", "40", *option)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and refused in lines[0], result.stderr
    assert listing(out) == before and not (tmp_path / "elsewhere").exists()


def test_a_new_learning_rate_carries_the_schedule_on_from_where_it_was(tmp_path, registry):
    overrides = [(("lr_scheduler",), "warmup"), (("lr_scheduler", "warmup_steps"), 400), (("callbacks",), {}),
                 (("eval", "metrics"), {}), (("checkpoint", "every_steps"), 100), (("trainer", "steps"), 100)]
    config = resolve(registry, preset="toy-gaussian", overrides=overrides)
    start_run(registry, config, tmp_path / "run").fit()
    run = resume_run(registry, tmp_path / "run", steps=150, overrides=[(("g_optimizer", "lr"), 5e-5)])
    run.fit()
    g_lr = run.trainer.players["generator"].optimizer.param_groups[0]["lr"]
    d_lr = run.trainer.players["discriminator"].optimizer.param_groups[0]["lr"]
    # both players are 150 steps into the same warm-up: the same fraction of their own rates
    assert g_lr / 5e-5 == pytest.approx(d_lr / config["d_optimizer"]["lr"], rel=1e-9)
    assert g_lr / 5e-5 == pytest.approx(151 / 400, rel=1e-9)


def test_an_edited_config_json_is_reported_not_silently_overwritten(tmp_path):
    out = tmp_path / "run"
    assert invoke("run", "toy-gaussian", "--steps", "20", "--out", str(out), *SHORT).exit_code == 0
    config = json.loads((out / "config.json").read_text())
    config["trainer"]["k"] = 3
    (out / "config.json").write_text(json.dumps(config))
    result = invoke("run", "--resume", str(out), "--steps", "30")
    assert result.exit_code == 0, result.output
    assert "config.json differs from the checkpoint's configuration (trainer.k)" in result.stderr
    assert json.loads((out / "config.json").read_text())["trainer"]["k"] == 1


@pytest.mark.slow
def test_plugin_files_are_recorded_and_found_again(tmp_path, cli):
    plugin = tmp_path / "mine" / "soft_hinge.py"
    plugin.parent.mkdir()
    plugin.write_text(textwrap.dedent(PLUGIN))
    out = tmp_path / "run"
    trained = cli("run", "toy-gaussian", "--steps", "60", "--out", str(out), "--plugin", str(plugin), "--set", "loss=soft-hinge", *SHORT)
    assert trained.returncode == 0, trained.stderr
    record = {"path": str(plugin.resolve()), "sha256": file_digest(plugin)}
    assert json.loads((out / "config.json").read_text())["plugin_files"] == [record]

    # resume, sample, eval, plot and a rerun of config.json load it with no --plugin
    resumed = cli("run", "--resume", str(out), "--steps", "80")
    assert resumed.returncode == 0, resumed.stderr
    assert invoke("sample", str(out), "--out", str(tmp_path / "s.png"), "--n", "16").exit_code == 0
    assert invoke("plot", str(out)).exit_code == 0
    shown = invoke("config", str(out / "config.json"))
    assert shown.exit_code == 0 and json.loads(shown.stdout)["loss"]["name"] == "soft-hinge"

    # moved: one line naming it, nothing changed; --plugin at its new place finds it (same content)
    moved = tmp_path / "elsewhere.py"
    shutil.move(plugin, moved)
    before = listing(out)
    for args in (["run", "--resume", str(out), "--steps", "90"], ["sample", str(out), "--out", str(tmp_path / "t.png")],
                 ["eval", str(out), "--n", "100"]):
        failed = invoke(*args)
        assert failed.exit_code == 2, failed.output
        assert failed.stderr.strip() == (
            f"error: {out} records the plugin file {plugin.resolve()}, which is no longer there; "
            "put it back, or name its new place with --plugin"
        )
    assert listing(out) == before and not (tmp_path / "t.png").exists()
    again = invoke("run", "--resume", str(out), "--steps", "90", "--plugin", str(moved))
    assert again.exit_code == 0, again.output
    assert json.loads((out / "config.json").read_text())["plugin_files"] == [{"path": str(moved.resolve()), "sha256": record["sha256"]}]

    # changed: refused unless --plugin names it, which loads it as it is now, with a note
    moved.write_text(moved.read_text() + "\n# edited\n")
    changed = invoke("sample", str(out), "--out", str(tmp_path / "u.png"))
    assert changed.exit_code == 2 and f"the plugin file {moved.resolve()} changed since {out} recorded it" in changed.stderr
    accepted = invoke("sample", str(out), "--out", str(tmp_path / "u.png"), "--plugin", str(moved))
    assert accepted.exit_code == 0, accepted.output
    assert "changed since" in accepted.stderr and "loading it as it is now" in accepted.stderr

    # moved and edited: a --plugin that matches no record by place or content stands in, with a note
    renamed = tmp_path / "renamed.py"
    shutil.move(moved, renamed)
    renamed.write_text(renamed.read_text() + "\n# edited again\n")
    stood_in = invoke("sample", str(out), "--out", str(tmp_path / "v.png"), "--plugin", str(renamed))
    assert stood_in.exit_code == 0, stood_in.output
    assert (f"{out} records the plugin file {moved.resolve()}, which is no longer there; going on with "
            f"{renamed.resolve()} (given, with other content) in its place") in " ".join(stood_in.stderr.split())


@pytest.mark.slow  # a short run and its resume, in this process
def test_the_python_api_records_plugin_files_and_finds_them_again(tmp_path, monkeypatch):
    """advnets.train(plugins=[...]) and ADVNETS_PLUGINS set in a notebook after its first call are
    recorded; resume and evaluate load them again from the record."""
    import advnets

    monkeypatch.delenv("ADVNETS_PLUGINS", raising=False)
    monkeypatch.delenv("ADVNETS_LOAD_PLUGINS", raising=False)
    plugin = tmp_path / "soft_hinge.py"
    plugin.write_text(textwrap.dedent(PLUGIN))
    assert "soft-hinge" not in [c.name for c in advnets.components(kind="loss")]
    settings = {"loss": "soft-hinge", "trainer.steps": 30, "callbacks": {}, "eval.at_end": False, "eval.every_epochs": 0}
    given = advnets.train("toy-gaussian", out=tmp_path / "given", plugins=[plugin], settings=settings)
    record = [{"path": str(plugin.resolve()), "sha256": file_digest(plugin)}]
    assert given.config["plugin_files"] == record
    monkeypatch.setenv("ADVNETS_PLUGINS", str(plugin))  # after the first call: read again
    assert "soft-hinge" in [c.name for c in advnets.components(kind="loss")]
    from_env = advnets.train("toy-gaussian", out=tmp_path / "env", settings=settings)
    assert from_env.config["plugin_files"] == record
    monkeypatch.delenv("ADVNETS_PLUGINS")
    assert "soft-hinge" not in [c.name for c in advnets.components(kind="loss")]
    resumed = advnets.resume(tmp_path / "given", steps=40)  # builds soft-hinge: found from the record
    assert resumed.trainer.step == 40 and resumed.config["plugin_files"] == record
    assert "w1" in advnets.evaluate(tmp_path / "env", metrics=["gaussian-w1"], n=200)


def test_a_rerun_of_a_config_json_says_what_it_cannot_repeat(tmp_path):
    """Changes made on resume apply from step 0 in a rerun, and the world size is the rerun's own: said, not silent."""
    from advnets.cli import _rerun_notes

    path = tmp_path / "config.json"
    config = {
        "preset": "toy-gaussian",
        "changes": [{"step": 50, "set": {"g_optimizer.lr": 5e-5, "trainer.steps": 80}, "was": {"g_optimizer.lr": 1e-4, "trainer.steps": 50}},
                    {"step": 80, "set": {"trainer.epochs": 9}, "was": {"trainer.epochs": 5}}],
        "distributed": {"world_size": 2},
    }
    path.write_text(json.dumps(config))
    assert _rerun_notes(path, 1, 128) == [
        f"{path} records 1 change(s) made when its run was resumed (at step 50: g_optimizer.lr): this run trains "
        "with the last values from step 0, not the run's history",
        f"{path}'s run trained with 2 processes (a global batch of 2 x batch_size); this run has 1 (a global batch of 128): "
        "add --nproc 2 for the same",
    ]
    assert _rerun_notes(path, 2, 128)[1:] == []
    path.write_text(json.dumps({"preset": "toy-gaussian", "changes": [config["changes"][1]], "distributed": {"world_size": 1}}))
    assert _rerun_notes(path, 1, 128) == []  # a run only extended: nothing a rerun misses
