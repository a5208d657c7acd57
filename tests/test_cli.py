"""The command line: listings, info, bad input (exit 2, one line), plugin files, resume, sample, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from typer.testing import CliRunner

from advnets.checkpoint import load_checkpoint
from advnets.cli import app

runner = CliRunner()

PLUGIN = '''
"""A third-party plugin written outside the repository: one new loss."""
import torch.nn.functional as F
from advnets import Component, GANLoss, hookimpl


class SoftHinge(GANLoss):
    """Hinge loss with softplus instead of relu."""

    equilibrium = None

    def __init__(self, margin: float = 1.0):
        self.margin = margin

    def discriminator_loss(self, real, fake):
        return F.softplus(self.margin - real).mean() + F.softplus(self.margin + fake).mean()

    def generator_loss(self, fake):
        return -fake.mean()


@hookimpl
def register_components(register):
    register(Component(kind="loss", name="soft-hinge", factory=SoftHinge))
'''


def invoke(*args, env=None):
    return runner.invoke(app, list(args), env={"ADVNETS_PLUGINS": "", **(env or {})})


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.startswith("advnets 0.")


def test_list_components_json_has_every_kind_with_its_plugin():
    result = invoke("list", "components", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    kinds = {row["kind"] for row in rows}
    assert {"generator", "discriminator", "dataset", "loss", "metric", "preset", "optimizer", "callback"} <= kinds
    by_key = {(row["kind"], row["name"]): row for row in rows}
    assert by_key[("preset", "mlp-mnist")]["plugin"] == "mnist"
    assert by_key[("preset", "mlp-mnist")]["aliases"] == ["mlp-mnist-fast"] and ("preset", "mlp-mnist-fast") not in by_key
    assert by_key[("loss", "hinge")]["plugin"] == "advnets"
    assert by_key[("dataset", "gaussian-1d")]["defaults"]["mu"] == 4.0


def test_list_components_filters():
    losses = json.loads(invoke("list", "components", "--kind", "loss", "--json").stdout)
    assert {r["name"] for r in losses} == {"minimax", "non-saturating", "least-squares", "hinge", "wasserstein"}
    mnist_only = json.loads(invoke("list", "components", "--from", "mnist", "--json").stdout)
    assert {r["plugin"] for r in mnist_only} == {"mnist"}
    named = json.loads(invoke("list", "components", "--name", "*mnist*", "--json").stdout)
    assert {r["name"] for r in named} == {"mnist", "fashion-mnist", "mlp-mnist", "mlp-mnist-lecture", "cgan-mnist", "mnist-fid", "mnist-score", "mnist-modes", "mnist-cond-acc"}
    table = invoke("list", "components", "--kind", "preset")
    assert "mlp-mnist (alias" in table.stdout and "mlp-mnist-fast)" in table.stdout and "toy-gaussian" in table.stdout


def test_info_on_an_alias_says_so_and_shows_its_component():
    result = invoke("info", "preset", "mlp-mnist-fast")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("preset mlp-mnist-fast is an alias of mlp-mnist\n")
    assert "ema_start" in result.stdout and "example: advnets run mlp-mnist --epochs 1" in result.stdout
    assert "aliases: mlp-mnist-fast" in invoke("info", "preset", "mlp-mnist").stdout


def test_list_plugins():
    rows = json.loads(invoke("list", "plugins", "--json").stdout)
    assert {(r["name"], r["source"]) for r in rows} >= {("advnets", "core"), ("mnist", "entry point"), ("gaussian", "entry point")}
    assert all(r["version"] and r["error"] is None for r in rows)


def test_info_shows_settings_and_an_example():
    result = invoke("info", "loss", "wasserstein")
    assert result.exit_code == 0
    assert "gradient_penalty" in result.stdout and "10.0" in result.stdout and "float" in result.stdout
    assert "--set loss=wasserstein" in result.stdout
    as_json = json.loads(invoke("info", "generator", "mlp", "--json").stdout)
    assert as_json["defaults"]["latent_dim"] == 64 and as_json["plugin"] == "mnist"


def test_an_existing_output_folder_is_never_overwritten(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "precious.txt").write_text("keep me")
    result = invoke("run", "toy-gaussian", "--out", str(tmp_path / "run"), "--steps", "5")
    assert result.exit_code == 2 and "already exists and is not empty" in result.stderr
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["precious.txt"]


def test_a_run_folder_without_checkpoints(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    result = invoke("run", "--resume", str(tmp_path))
    assert result.exit_code == 2 and "no loadable checkpoint" in result.stderr


def test_a_plugin_file_from_outside_the_repository_is_listed_and_trains(tmp_path, cli):
    plugin = tmp_path / "elsewhere" / "my_losses.py"
    plugin.parent.mkdir()
    plugin.write_text(textwrap.dedent(PLUGIN))
    listed = cli("list", "components", "--kind", "loss", "--json", "--plugin", str(plugin), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert {"name": "soft-hinge", "plugin": "my_losses"}.items() <= {
        k: v for r in json.loads(listed.stdout) if r["name"] == "soft-hinge" for k, v in r.items()
    }.items()
    out = tmp_path / "run"
    trained = cli(
        "run", "toy-gaussian", "--steps", "60", "--seed", "1", "--out", str(out), "--set", "loss=soft-hinge",
        "--set", "loss.margin=0.5", cwd=tmp_path, env={"ADVNETS_PLUGINS": str(plugin)},
    )
    assert trained.returncode == 0, trained.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["loss"] == {"name": "soft-hinge", "margin": 0.5}
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 60 and records[-1]["event"] == "eval"


def test_resume_continues_from_the_last_checkpoint(tmp_path, cli):
    out = tmp_path / "run"
    first = cli("run", "toy-gaussian", "--steps", "150", "--seed", "2", "--out", str(out), "--set", "checkpoint.every_steps=100", "--set", "callbacks={}")
    assert first.returncode == 0, first.stderr
    # pretend the run died after step 100: drop the final checkpoint
    (out / "checkpoints" / "step-000000150.safetensors").unlink()
    resumed = cli("run", "--resume", str(out), "--steps", "250")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr and "step-000000100" in resumed.stderr
    state, metadata = load_checkpoint(out / "checkpoints" / "step-000000250.safetensors")
    assert metadata["step"] == 250 and state["progress"]["step"] == 250
    straight = tmp_path / "straight"
    cli("run", "toy-gaussian", "--steps", "250", "--seed", "2", "--out", str(straight), "--set", "checkpoint.every_steps=100", "--set", "callbacks={}")
    other, _ = load_checkpoint(straight / "checkpoints" / "step-000000250.safetensors")
    for key, value in other["generator"].items():
        assert torch.equal(value, state["generator"][key]), key


def test_sample_writes_a_histogram_or_tensors_and_overwrites_only_with_force(tmp_path, cli):
    out = tmp_path / "run"
    assert cli("run", "toy-gaussian", "--steps", "30", "--out", str(out), "--set", "callbacks={}").returncode == 0
    png = tmp_path / "hist.png"
    result = cli("sample", str(out), "--n", "500", "--out", str(png), "--seed", "0")
    assert result.returncode == 0, result.stderr
    assert png.read_bytes()[:4] == b"\x89PNG" and "moving average" in result.stderr
    first = png.read_bytes()
    again = cli("sample", str(out), "--n", "500", "--out", str(png), "--seed", "1")
    assert again.returncode == 2 and "already exists; give --force" in again.stderr and png.read_bytes() == first
    assert cli("sample", str(out), "--n", "500", "--out", str(png), "--seed", "1", "--force").returncode == 0
    assert png.read_bytes() != first  # another seed's histogram
    tensors = tmp_path / "s.safetensors"
    checkpoint = next((out / "checkpoints").glob("step-*.safetensors"))
    assert cli("sample", str(checkpoint), "--n", "7", "--out", str(tensors), "--raw").returncode == 0
    import safetensors.torch

    assert safetensors.torch.load_file(tensors)["samples"].shape == (7, 1)
    bad = cli("sample", str(out), "--out", str(tmp_path / "x.jpg"))
    assert bad.returncode == 2 and "use a .png or .safetensors" in bad.stderr


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_at_a_step_boundary_with_a_checkpoint(tmp_path, sig, code):
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADVNETS_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "advnets", "run", "toy-gaussian", "--epochs", "1000", "--out", str(out), "--set", "trainer.log_every=10"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 60
    while not ((out / "metrics.jsonl").exists() and (out / "metrics.jsonl").stat().st_size > 0):
        assert time.time() < deadline and process.poll() is None, "the run did not start"
        time.sleep(0.1)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert f"advnets run --resume {out}" in stderr
    saved = sorted((out / "checkpoints").glob("step-*.safetensors"))
    state, metadata = load_checkpoint(saved[-1])
    assert 0 < metadata["step"] < 1000 * 156


def test_info_works_for_every_registered_component(registry):
    for component in registry.components():
        result = invoke("info", component.kind, component.name)
        assert result.exit_code == 0, (component.key, result.output)
        assert component.summary in result.stdout and f"(plugin {component.plugin})" in result.stdout
        for setting in component.defaults:
            assert setting in result.stdout, (component.key, setting)
