"""The plugin author's path: the example distribution installs with pip, shows up, trains, uninstalls."""

from __future__ import annotations

import json
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a fresh virtual environment, pip install and uninstall, a training run

EXAMPLE = Path(__file__).resolve().parents[1] / "plugins" / "examples" / "advnets-dcgan"


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory) -> Path:
    """A new virtual environment that sees this one's packages (torch, advnets) the way it would see system ones."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip()
    lines = "".join(f"import site; site.addsitedir({path!r})\n" for path in site.getsitepackages())
    (Path(purelib) / "advnets-test-parent.pth").write_text(lines)
    return python


def advnets(python: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-m", "advnets", *args], capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin", **env})


def pip(python: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([python, "-m", "pip", *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_install_list_train_uninstall(fresh_venv, mnist_dir, tmp_path):
    before = json.loads(advnets(fresh_venv, "list", "plugins", "--json").stdout)
    assert "dcgan" not in {p["name"] for p in before}

    source = tmp_path / "advnets-dcgan"  # a copy: building leaves build/ and egg-info behind
    shutil.copytree(EXAMPLE, source)
    pip(fresh_venv, "install", "--no-deps", str(source))  # advnets and torch come from the environment

    plugins = {p["name"]: p for p in json.loads(advnets(fresh_venv, "list", "plugins", "--json").stdout)}
    assert plugins["dcgan"]["version"] == "0.1.0" and plugins["dcgan"]["source"] == "entry point"
    assert plugins["dcgan"]["location"] == "advnets-dcgan: advnets_dcgan" and plugins["dcgan"]["error"] is None
    components = json.loads(advnets(fresh_venv, "list", "components", "--from", "dcgan", "--json").stdout)
    assert {(c["kind"], c["name"]) for c in components} == {("generator", "dcgan"), ("discriminator", "dcgan"), ("preset", "dcgan-mnist")}

    out = tmp_path / "run"
    trained = advnets(fresh_venv, "run", "dcgan-mnist", "--steps", "6", "--out", str(out), "--data-dir", str(mnist_dir), "--set", "eval.metrics={}")
    assert trained.returncode == 0, trained.stderr
    assert (out / "checkpoints" / "step-000000006.safetensors").is_file() and (out / "samples" / "step_000000006.png").is_file()

    pip(fresh_venv, "uninstall", "--yes", "advnets-dcgan")
    after = json.loads(advnets(fresh_venv, "list", "plugins", "--json").stdout)
    assert "dcgan" not in {p["name"] for p in after}
    gone = advnets(fresh_venv, "run", "dcgan-mnist", "--steps", "1")
    assert gone.returncode == 2 and "unknown preset 'dcgan-mnist'" in gone.stderr
