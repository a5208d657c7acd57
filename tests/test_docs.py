"""The docs stay true: the site builds, the documented hooks and names are the real ones, the code runs."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

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


def test_the_settings_reference_is_current():
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_settings_docs.py"), "--check"], capture_output=True)
    assert result.returncode == 0, "docs/settings.md is out of date: run python scripts/gen_settings_docs.py"


def test_the_settings_reference_lists_every_core_setting():
    from advnets.config import core_defaults

    def dotted(node, prefix=""):
        return [k for key, v in node.items() for k in (dotted(v, f"{prefix}{key}.") if isinstance(v, dict) else [f"{prefix}{key}"])]

    listed = re.findall(r"^\| `([\w.]+)` \| `", (DOCS / "settings.md").read_text(), flags=re.M)
    assert listed == dotted(core_defaults())


def test_the_public_names_table_lists_exactly_the_exports():
    text = (DOCS / "python.md").read_text()
    rows = [line for line in text[text.index("## Public names") :].splitlines() if line.startswith("| `")]
    listed = {name for row in rows for name in re.findall(r"`(?:advnets\.)?(\w+)", row.split("|")[1])}
    assert listed == set(advnets.__all__)


def test_the_readme_python_examples_use_only_public_names():
    """What the README shows from Python is what python.md lists: advnets.NAME in __all__, no deeper imports."""
    blocks = code_blocks(REPO / "README.md", "python")
    assert blocks
    for code in blocks:
        assert not re.findall(r"from advnets\.\w+ import|import advnets\.\w+", code), code
        imported = {n.strip() for line in re.findall(r"from advnets import ([^\n]+)", code) for n in line.split(",")}
        used = set(re.findall(r"\badvnets\.(\w+)", code))
        assert (imported | used) <= set(advnets.__all__), (imported | used) - set(advnets.__all__)


@pytest.mark.parametrize("index", [pytest.param(i, marks=pytest.mark.slow) for i in range(3)])
def test_the_python_examples_run_as_written(tmp_path, monkeypatch, index):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ADVNETS_PLUGINS", raising=False)
    (tmp_path / "my_loss.py").write_text(next(b for b in code_blocks(REPO / "README.md", "python") if "class SoftHinge" in b))
    code = code_blocks(DOCS / "python.md", "python")[index]
    namespace: dict = {}
    exec(compile(code, f"docs/python.md block {index}", "exec"), namespace)  # noqa: S102 - the docs' own example
    if index == 0:
        assert namespace["resumed"].trainer.step == 12 * namespace["run"].trainer.steps_per_epoch
        assert namespace["samples"].shape == (1000, 1) and namespace["more"].shape == (5, 1)
    elif index == 1:  # the plugin file, recorded by the run and loaded again for its generator
        assert [r["path"] for r in namespace["run"].config["plugin_files"]] == [str(tmp_path / "my_loss.py")]
        assert namespace["run"].config["loss"] == {"name": "soft-hinge", "margin": 0.5}
        assert namespace["generator"].sample(3, seed=0).shape == (3, 1)
    else:
        assert namespace["trainer"].epoch == 5


# --- every command in the docs is run ------------------------------------------------------

# appended to long training commands: the same command, stopped early, without its closing evaluation
# (tests/test_mnist.py and test_mnist_metrics.py evaluate real runs; here each one would cost more than the run)
SHORT = ["--steps", "20", "--no-eval"]
# the same, with its closing evaluation on fewer samples: runs whose best.safetensors a later command reads
SHORT_EVAL = ["--steps", "20", "--set", "eval.n_samples=500"]
FEWER = ["--n", "500"]  # appended to evaluations: the same metrics on fewer samples
BF16 = ["--steps", "3", "--no-eval"]  # SHORT for bf16, which trains at ~120 samples/s on a CPU without bf16 units
RUN_DIR = "runs/mlp-mnist-20261130-101500"  # the example run folder the README's tour refers to
SECOND_RUN = "runs/mlp-mnist-20261201-090000"  # the second run the tour compares with it
# How each command of README.md and docs/*.md is exercised: run here as written ("run"), run
# with arguments that only shorten it ("run", extra), run by another test ("test", where),
# needing a GPU ("cuda": run here if there is one, else it must refuse cleanly), or not
# runnable on one machine ("elsewhere", why).
COMMANDS: dict[str, tuple] = {
    "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest": ("test", ".ci/run runs it word for word"),
    '.venv/bin/python -m pytest -m "not slow"': ("test", "the part of the suite not marked slow; .ci/run runs the whole suite"),
    "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/advnets run mlp-mnist": ("test", "its set-up is the test command's; the run is `advnets run mlp-mnist` below"),
    "advnets list components": ("run", []),
    "advnets list components --kind preset": ("run", []),
    "advnets list plugins": ("run", []),
    "advnets info loss wasserstein": ("run", []),
    "advnets run toy-gaussian": ("run", SHORT_EVAL),  # shortened: tests/test_gaussian.py trains the whole preset
    "advnets run mlp-mnist --epochs 1": ("test", "the example_run fixture below runs it, shortened, to make the tour's run folder"),
    "advnets run mlp-mnist --set loss=hinge --set trainer.k=2 --set g_optimizer.lr=2e-4": ("run", SHORT),
    f"advnets run {RUN_DIR}/config.json": ("run", SHORT),
    f"advnets run --resume {RUN_DIR} --epochs 5": ("run", ["--steps", "30"]),
    f"advnets run --resume {RUN_DIR} --epochs 8 --set g_optimizer.lr=1e-4 --logger csv": ("run", ["--steps", "40"]),
    f"advnets sample {RUN_DIR} --n 64 --out grid.png": ("run", []),
    f"advnets sample {RUN_DIR} --nearest --out nearest.png": ("run", []),
    f"advnets sample {RUN_DIR} --interpolate --out paths.png": ("run", []),
    f"advnets eval {RUN_DIR}": ("run", FEWER),
    "advnets eval --real mlp-mnist": ("run", FEWER),
    "advnets run mlp-mnist --seed 0 --out runs/mlp-mnist-0": ("run", SHORT_EVAL),
    "advnets eval runs/mlp-mnist-0/checkpoints/best.safetensors": ("run", FEWER),
    "advnets eval runs/mlp-mnist-0/checkpoints/best.safetensors --raw": ("run", FEWER),
    "advnets run mlp-mnist-lecture --seed 0 --out runs/lecture": ("run", SHORT),
    "advnets run cgan-mnist --seed 0 --out runs/cgan": ("run", SHORT_EVAL),
    "advnets run cgan-mnist --set discriminator=cond-mlp": ("run", SHORT),
    "advnets sample runs/cgan --n 100 --nrow 10 --out digits.png": ("run", []),
    "advnets sample runs/cgan --label 3 --n 64 --out threes.png": ("run", []),
    "advnets sample runs/cgan --interpolate --n 10 --nrow 10 --out digit-paths.png": ("run", []),
    "advnets eval runs/cgan/checkpoints/best.safetensors": ("run", FEWER),
    "advnets run cgan-mnist --plugin ~/one_hot.py --set generator=one-hot --set discriminator=one-hot": ("run", SHORT),
    "advnets eval runs/lecture": ("run", FEWER),
    f"advnets plot {RUN_DIR}": ("run", []),
    f"advnets compare {RUN_DIR} {SECOND_RUN}": ("run", []),
    "advnets run toy-gaussian --nproc 2": ("run", SHORT),
    "advnets run mlp-mnist --precision bf16 --logger tensorboard": ("run", BF16),
    "advnets config mlp-mnist --set trainer.k=2": ("run", []),
    "python benchmarks/startup.py": ("run", ["--repeats", "1", "--json", "startup.json"]),
    "advnets list components --kind loss --plugin ~/my_loss.py": ("run", []),
    "advnets run toy-gaussian --plugin ~/my_loss.py --set loss=soft-hinge --set loss.margin=0.5": ("run", SHORT),
    'advnets run toy-gaussian --plugin latent_regression.py --set objective=latent-regression --set \'players.encoder={"module": {"name": "mlp"}, "optimizer": {"name": "adam", "lr": 0.001}}\'': ("test", "tests/test_objectives.py::test_a_plugin_file_outside_the_repository_adds_an_objective_with_a_third_player, with a copy of docs/examples/latent_regression.py"),
    "advnets info dataset image-folder": ("run", []),
    "advnets info discriminator augmented": ("run", []),
    "advnets run mlp-mnist --set discriminator=augmented --set discriminator.discriminator=mlp --set discriminator.discriminator.dropout=0.3 --set discriminator.cutout=0.25": ("run", SHORT),
    "advnets run mlp-mnist --plugin ~/my_parts.py --set discriminator=spectral-norm --set discriminator.discriminator=mlp --set 'eval.metrics.mean-gap={}'": ("run", SHORT_EVAL),
    "advnets run mlp-mnist --set dataset=image-folder --data-dir ~/my-images --set dataset.size=28 --no-eval": ("test", "tests/test_streaming.py trains mlp-mnist on a folder of MNIST PNG files it writes, streamed"),
    "python benchmarks/previous.py --batch 32 256": ("test", "tests/test_benchmarks.py runs it with one short round"),
    "python benchmarks/stream_memory.py --steps 300": ("elsewhere", "writes 80,000 PNG files and trains twice (a few minutes); its numbers are in docs/performance.md"),
    "python benchmarks/throughput.py --bf16": ("test", "tests/test_benchmarks.py runs it with one short round"),
    "python benchmarks/profile_step.py --batch 32": ("run", ["--steps", "3"]),
    "python benchmarks/ablations.py --batch 32": ("run", ["--rounds", "1", "--steps", "5", "--json", "ablations.json"]),
    "pip install ./plugins/examples/advnets-dcgan": ("test", "tests/test_example_plugin.py"),
    "advnets list components --from dcgan": ("test", "tests/test_example_plugin.py"),
    "advnets run dcgan-mnist --epochs 1": ("test", "tests/test_example_plugin.py, shortened to 6 steps"),
    "advnets run bigan-mnist --seed 0 --out runs/bigan": ("test", "tests/test_bigan.py runs it through the CLI, shortened to 6 steps"),
    "advnets run mlp-mnist --device cuda": ("cuda", SHORT),
    "advnets run mlp-mnist --device cuda --precision bf16": ("cuda", SHORT),
    "advnets run mlp-mnist --nproc 4 --device cuda": ("cuda", SHORT),
    "torchrun --nproc-per-node 4 -m advnets run mlp-mnist --device cuda": ("cuda", SHORT),
    "torchrun --nnodes 2 --nproc-per-node 8 --node-rank 0 --rdzv-backend c10d --rdzv-endpoint node0:29500 --rdzv-id mnist-1 -m advnets run mlp-mnist --device cuda --out /shared/runs/mnist-1": ("elsewhere", "needs two machines with 8 GPUs; the same rendezvous on one machine is tested by tests/test_distributed.py"),
    "python benchmarks/gpu_check.py": ("test", "tests/test_benchmarks.py runs it with --device cpu --smoke; on a GPU it takes about 5 minutes"),
    "advnets run mlp-mnist --device cuda --precision bf16 --steps 20000": ("cuda", SHORT),
    "advnets run mlp-mnist --device cuda --steps 20000": ("cuda", SHORT),
    "advnets run mlp-mnist --nproc 1 --device cuda --steps 2000": ("cuda", SHORT),
}


def documented_commands() -> list[str]:
    commands = []
    for path in [REPO / "README.md", *sorted(DOCS.glob("*.md"))]:
        for block in code_blocks(path, "bash"):
            for line in block.replace("\\\n", " ").splitlines():
                line = " ".join(line.split("  #")[0].split())
                if line and not line.startswith("#"):
                    commands.append(line)
    return commands


def test_every_documented_command_is_accounted_for():
    documented = set(documented_commands())
    assert documented - set(COMMANDS) == set(), "a documented command that no test runs"
    assert set(COMMANDS) - documented == set(), "a command in this table that the docs no longer show"


def shell(command: str, extra: list[str], cwd: Path, home: Path, mnist: Path) -> subprocess.CompletedProcess:
    import shlex

    words = [str(home / w[2:]) if w.startswith("~/") else w for w in shlex.split(command)] + extra
    if words[0] == "advnets":
        words = [sys.executable, "-m", "advnets", *words[1:]]
    elif words[0] == "python":
        words = [sys.executable, str(REPO / words[1]), *words[2:]]
    elif words[0] == "torchrun":
        words = [sys.executable, "-m", "torch.distributed.run", *words[1:]]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ADVNETS_")}, "HOME": str(home), "ADVNETS_DATA_DIR": str(mnist)}
    return subprocess.run(words, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def tour(tmp_path_factory, mnist_dir):
    """A folder to run the docs' commands in, with the README's plugin in ~."""
    home = tmp_path_factory.mktemp("home")
    plugin = next(b for b in code_blocks(REPO / "README.md", "python") if "register_components" in b)
    (home / "my_loss.py").write_text(plugin)
    (home / "one_hot.py").write_text(code_blocks(DOCS / "conditional.md", "python")[0])  # docs/conditional.md's plugin
    (home / "my_parts.py").write_text(next(b for b in code_blocks(DOCS / "plugins.md", "python") if "class SpectralNorm" in b))
    cwd = tmp_path_factory.mktemp("cwd")
    return cwd, home, mnist_dir


def tour_run(tour, options: str, out: str) -> Path:
    """The tour's own `advnets run mlp-mnist --epochs 1` (shortened), with ``options``, into ``out``."""
    cwd, home, mnist = tour
    made = shell(f"advnets run mlp-mnist --epochs 1 {options}--out {out}", SHORT, cwd, home, mnist)
    assert made.returncode == 0, made.stderr
    return cwd / out


@pytest.fixture(scope="module")
def example_run(tour):
    """The run folder the README's tour refers to."""
    return tour_run(tour, "", RUN_DIR)


@pytest.fixture(scope="module")
def second_run(tour):
    """Another run with another seed: what the tour's `advnets compare` sets beside the first."""
    return tour_run(tour, "--seed 1 ", SECOND_RUN)


RUNNABLE = [c for c, (how, *_) in COMMANDS.items() if how in ("run", "cuda")]
# the commands that neither train nor evaluate nor launch anything: the fast loop (-m "not slow") runs these
QUICK = ("advnets list ", "advnets info ", "advnets config ")


@pytest.mark.parametrize(
    "command", [c if c.startswith(QUICK) and COMMANDS[c][0] == "run" else pytest.param(c, marks=pytest.mark.slow) for c in RUNNABLE]
)
def test_documented_command(command, tour, request):
    import torch

    cwd, home, mnist = tour
    if RUN_DIR in command:
        request.getfixturevalue("example_run")
    if SECOND_RUN in command:
        request.getfixturevalue("second_run")
    how, extra = COMMANDS[command]
    result = shell(command, extra, cwd, home, mnist)
    if how == "cuda" and not torch.cuda.is_available():
        assert result.returncode != 0 and "CUDA is not available here" in result.stdout + result.stderr
        return
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]


def test_the_table_of_kinds_in_writing_plugins_lists_every_installed_kind(registry):
    """docs/plugins.md says what each kind's factory returns: every kind the shipped plugins register
    (a player's kind, like bigan's encoder, under "any player's kind")."""
    rows = re.findall(r"^\| `([a-z-]+)` \|", (DOCS / "plugins.md").read_text(), flags=re.MULTILINE)
    listed = set(rows) | {"encoder"}  # the row "any player's kind (`encoder`, ...)"
    assert "any player's kind (`encoder`, ...)" in (DOCS / "plugins.md").read_text()
    assert set(registry.kinds()) - listed == set()


def test_the_dataset_plugin_in_your_own_data_builds(tmp_path):
    from advnets.plugins import load_plugins

    plugin = tmp_path / "rings.py"
    plugin.write_text(code_blocks(DOCS / "data.md", "python")[0])
    data = load_plugins([plugin], environ={}).registry.build("dataset", "rings", n=500)
    assert data.train.shape == (500, 2) and data.test.shape == (500, 2)
    assert torch.allclose(data.train.norm(dim=1), torch.full((500,), 2.0))


def test_the_lazy_plugin_in_writing_plugins_lists_without_importing_its_losses(tmp_path, monkeypatch):
    """docs/plugins.md's my_plugin, with the README's SoftHinge as its losses.py."""
    from advnets.plugins import load_plugins

    package = tmp_path / "my_plugin"
    package.mkdir()
    registration = next(b for b in code_blocks(DOCS / "plugins.md", "python") if '"my_plugin.losses:SoftHinge"' in b)
    (package / "__init__.py").write_text(registration)
    (package / "losses.py").write_text(next(b for b in code_blocks(REPO / "README.md", "python") if "class SoftHinge" in b))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        registry = load_plugins([package / "__init__.py"], environ={}).registry
        loss = registry.get("loss", "soft-hinge")
        assert (loss.summary, loss.defaults) == ("Hinge loss with softplus instead of relu.", {"margin": 1.0})
        assert "my_plugin.losses" not in sys.modules
        assert registry.build("loss", "soft-hinge", margin=0.5).margin == 0.5
    finally:
        for name in ("my_plugin", "my_plugin.losses"):
            sys.modules.pop(name, None)
