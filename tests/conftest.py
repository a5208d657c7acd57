"""Shared fixtures: the real MNIST files, a registry, a way to run the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# One thread per process, set before torch is imported, and inherited by every subprocess the
# tests start (CLI runs, torchrun workers, benchmarks). The suite's models are small: with two
# threads each, two processes at once, or any other load on the machine, make every tiny op wait
# for a descheduled thread (python.md's 13-second quickstart took 425 s that way). Tests of
# --threads set their own. A run's results depend on its thread count only through the order of
# floating-point sums, and every comparison in the suite is between runs made here alike.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The command line's consoles take their width from COLUMNS when advnets.cli is imported: the same
# 200 columns in every pytest worker (whatever terminal started it) and in every subprocess.
os.environ["COLUMNS"] = "200"

import pytest  # noqa: E402

from advnets.plugins import load_plugins  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def _mnist_candidates() -> list[Path]:
    found = [Path(os.environ["ADVNETS_TEST_MNIST"])] if os.environ.get("ADVNETS_TEST_MNIST") else []
    return found + [REPO.parent / "shared" / "data" / "mnist", Path.home() / ".cache" / "advnets" / "MNIST" / "raw"]


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The four real MNIST files. CI sets ADVNETS_TEST_MNIST; elsewhere, tests skip without them."""
    for folder in _mnist_candidates():
        if all((folder / name).is_file() for name in MNIST_FILES):
            return folder
    if os.environ.get("ADVNETS_TEST_MNIST"):
        pytest.fail(f"ADVNETS_TEST_MNIST={os.environ['ADVNETS_TEST_MNIST']} does not hold the four MNIST files")
    pytest.skip("the MNIST IDX files are not here; set ADVNETS_TEST_MNIST to their folder")


@pytest.fixture(scope="session")
def plugins():
    return load_plugins(environ={})


@pytest.fixture(scope="session")
def registry(plugins):
    return plugins.registry


def _cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m advnets ARGS`` as a real subprocess, free of the caller's ADVNETS_* variables."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("ADVNETS_")}
    full_env = {**inherited, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "advnets", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def cli():
    """``cli("run", ...)`` runs the real command line in a subprocess."""
    return _cli


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory, cli):
    """30 steps of toy-gaussian without its figure, through the CLI: its folder, and what the command printed."""
    out = tmp_path_factory.mktemp("toy") / "run"
    made = cli("run", "toy-gaussian", "--steps", "30", "--out", str(out), "--set", "callbacks={}")
    assert made.returncode == 0, made.stderr
    return out, made
