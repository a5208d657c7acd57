"""The docs stay true: the site builds, the documented hooks and names are the real ones, the code runs."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import advnets
from advnets import hookspecs

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


def code_blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(), flags=re.S)


def test_the_site_builds_without_warnings(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").is_file()


def test_every_docs_page_is_in_the_site():
    nav = (REPO / "mkdocs.yml").read_text()
    assert {p.name for p in DOCS.glob("*.md")} == set(re.findall(r"(\w+\.md)", nav))


def test_documented_hooks_are_the_real_hooks():
    documented = re.findall(r"^### `(\w+)\((.*?)\)`", (DOCS / "plugins.md").read_text(), flags=re.M)
    real = [
        (name, ", ".join(inspect.signature(function).parameters))
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(function, "advnets_spec")
    ]
    assert sorted(documented) == sorted(real)


def test_the_cli_reference_is_current():
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_cli_docs.py"), "--check"], capture_output=True)
    assert result.returncode == 0, "docs/cli.md is out of date: run python scripts/gen_cli_docs.py"


def test_the_public_names_table_lists_exactly_the_exports():
    text = (DOCS / "python.md").read_text()
    rows = [line for line in text[text.index("## Public names") :].splitlines() if line.startswith("| `")]
    listed = {name for row in rows for name in re.findall(r"`(?:advnets\.)?(\w+)", row.split("|")[1])}
    assert listed == set(advnets.__all__)


@pytest.mark.parametrize("index", [0, 1])
def test_the_python_examples_run_as_written(tmp_path, monkeypatch, index):
    monkeypatch.chdir(tmp_path)
    code = code_blocks(DOCS / "python.md", "python")[index]
    namespace: dict = {}
    exec(compile(code, f"docs/python.md block {index}", "exec"), namespace)  # noqa: S102 - the docs' own example
    if index == 0:
        assert namespace["resumed"].trainer.step == 12 * namespace["run"].trainer.steps_per_epoch
        assert namespace["samples"].shape == (1000, 1) and namespace["more"].shape == (5, 1)
    else:
        assert namespace["trainer"].epoch == 5
