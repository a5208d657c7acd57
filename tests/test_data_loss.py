"""Data loss: what must never cost a run its checkpoints, its folder or its exit code.

Every test drives the real command line in a subprocess: damaged and foreign
checkpoints at resume, plugins that call sys.exit, files that are not files, two
processes on one folder, a full disk, and a config file that names a path.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from advnets.checkpoint import load_checkpoint, read_metadata, run_id_of, save_checkpoint, step_checkpoints
from advnets.cli import app

HERE = Path(__file__).resolve().parent
# toy-gaussian with a checkpoint every 50 steps, the newest 2 kept, no evaluations.
RUN = ["toy-gaussian", "--set", "checkpoint.every_steps=50", "--set", "checkpoint.every_epochs=0", "--set", "checkpoint.keep=2", "--set", "eval.every_epochs=0"]


def env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("ADVNETS_")}, "COLUMNS": "200", **extra}


def advnets(*args: str, cwd: Path | None = None, timeout: float = 120, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "advnets", *map(str, args)], env=env(**extra), cwd=cwd, capture_output=True, text=True, timeout=timeout)


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def one_line_error(result: subprocess.CompletedProcess, code: int = 2) -> str:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def tensors(path: Path) -> dict[str, torch.Tensor]:
    state, _ = load_checkpoint(path)
    flat = {}

    def walk(tree, prefix):
        if isinstance(tree, torch.Tensor):
            flat[prefix] = tree
        elif isinstance(tree, dict):
            for key, value in tree.items():
                walk(value, f"{prefix}.{key}")
        elif isinstance(tree, list):
            for i, value in enumerate(tree):
                walk(value, f"{prefix}.{i}")

    walk({k: state[k] for k in ("generator", "discriminator", "g_optimizer", "d_optimizer", "rng")}, "")
    return flat


def assert_same_weights(a: Path, b: Path) -> None:
    left, right = tensors(a), tensors(b)
    assert left.keys() == right.keys()
    assert all(torch.equal(left[k], right[k]) for k in left), [k for k in left if not torch.equal(left[k], right[k])]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (symlinks and pipes as such) with a digest of its bytes."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not path.is_file():
            found[str(path.relative_to(folder))] = "link" if path.is_symlink() else "not a file"
        else:
            found[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def ckpt(run: Path, step: int) -> Path:
    return run / "checkpoints" / f"step-{step:09d}.safetensors"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Run A to step 100, run B (another seed) to step 150, and A's straight run to step 200.

    Made in this process, which spares three process start-ups; every command a test checks runs
    in a subprocess, and what run A's copies resume to must equal the straight run bit for bit.
    """
    root = tmp_path_factory.mktemp("runs")
    made = {"a": (7, 100), "b": (8, 150), "straight": (7, 200)}
    no_advnets_variables = {k: None for k in os.environ if k.startswith("ADVNETS_")}
    for name, (seed, steps) in made.items():
        args = ["run", *RUN, "--seed", str(seed), "--steps", str(steps), "--out", str(root / name)]
        result = CliRunner().invoke(app, args, env=no_advnets_variables)
        assert result.exit_code == 0, result.output
    return {name: root / name for name in made}


def copy_run(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, symlinks=True)
    (target / ".lock").unlink(missing_ok=True)
    return target


# --- 1. resume with damaged or foreign checkpoints keeps every good one -------------


@pytest.mark.slow
def test_resume_never_adopts_or_deletes_for_damaged_or_foreign_checkpoints(runs, tmp_path):
    run = copy_run(runs["a"], tmp_path / "a")
    own_id = json.loads((run / "config.json").read_text())["run_id"]
    config_before = (run / "config.json").read_bytes()
    shutil.copy(ckpt(runs["b"], 150), ckpt(run, 150))  # another run's, and newer
    ckpt(run, 250).write_bytes(ckpt(run, 100).read_bytes()[:5000])  # truncated
    ckpt(run, 300).write_bytes(b"")  # empty
    set_aside = {ckpt(run, s).name: ckpt(run, s).read_bytes() for s in (150, 250, 300)}

    resumed = advnets("run", "--resume", run, "--steps", "200")
    assert resumed.returncode == 0, resumed.stderr
    assert "from step-000000100.safetensors (step 100)" in resumed.stderr  # its own, not run B's
    assert "a checkpoint of another run" in resumed.stderr and "moved it aside to step-000000150.safetensors.other-run" in resumed.stderr
    assert "moved it aside to step-000000250.safetensors.damaged" in resumed.stderr
    assert "moved it aside to step-000000300.safetensors.damaged" in resumed.stderr
    for name, data in set_aside.items():  # moved, never deleted, byte for byte
        suffix = ".other-run" if name.startswith("step-000000150") else ".damaged"
        assert (run / "checkpoints" / (name + suffix)).read_bytes() == data
    # keep=2 of this run's own: 150 and 200, both written by this run, both whole
    assert [p.name for p in step_checkpoints(run / "checkpoints")] == [ckpt(run, 200).name, ckpt(run, 150).name]
    for step in (150, 200):
        assert run_id_of(read_metadata(ckpt(run, step))) == own_id
    assert json.loads((run / "config.json").read_text())["run_id"] == own_id
    assert json.loads(config_before)["run_id"] == own_id
    assert_same_weights(ckpt(run, 200), ckpt(runs["straight"], 200))


@pytest.mark.slow
def test_pruning_keeps_another_runs_older_checkpoint_and_a_damaged_one(runs, tmp_path):
    run = copy_run(runs["a"], tmp_path / "a")
    foreign, damaged = ckpt(run, 10), ckpt(run, 20)
    shutil.copy(ckpt(runs["b"], 150), foreign)
    damaged.write_bytes(b"\x00" * 64)
    resumed = advnets("run", "--resume", run, "--steps", "200")
    assert resumed.returncode == 0, resumed.stderr
    names = [p.name for p in step_checkpoints(run / "checkpoints")]
    assert names == [ckpt(run, s).name for s in (200, 150, 20, 10)]  # 100 pruned; the others never counted
    assert damaged.read_bytes() == b"\x00" * 64 and foreign.read_bytes() == ckpt(runs["b"], 150).read_bytes()


@pytest.mark.slow
def test_a_run_folder_whose_config_lost_its_id_takes_no_foreign_checkpoint(runs, tmp_path):
    """A run from before run ids: it resumes, and a checkpoint that has an id is another run's."""
    run = copy_run(runs["a"], tmp_path / "a")
    config = json.loads((run / "config.json").read_text())
    del config["run_id"]
    (run / "config.json").write_text(json.dumps(config))
    for step in (50, 100):
        state, metadata = load_checkpoint(ckpt(run, step))
        del metadata["config"]["run_id"]
        save_checkpoint(ckpt(run, step), state, metadata)
    shutil.copy(ckpt(runs["b"], 150), ckpt(run, 150))
    resumed = advnets("run", "--resume", run, "--steps", "250")
    assert resumed.returncode == 0, resumed.stderr
    assert "(step 100)" in resumed.stderr and "a checkpoint of another run" in resumed.stderr
    assert [p.name for p in step_checkpoints(run / "checkpoints")] == [ckpt(run, 250).name, ckpt(run, 200).name]
    assert json.loads((run / "config.json").read_text()).get("run_id") is None


# --- 2. a plugin that calls sys.exit fails loudly --------------------------------------

QUITTER = """
import sys
from advnets import Component, hookimpl
from advnets.losses import HingeLoss

{at_import}

def quitting_loss():
    \"\"\"A loss whose factory quits.\"\"\"
    sys.exit(0)

@hookimpl
def register_components(register):
    {in_hook}
    register(Component(kind="loss", name="{name}", factory={factory}))
"""


def plugin_source(name="quitter", at_import="", in_hook="pass", factory="HingeLoss") -> str:
    return QUITTER.format(name=name, at_import=at_import, in_hook=in_hook, factory=factory)


@pytest.mark.slow
@pytest.mark.parametrize(
    "source, message",
    [
        (plugin_source(at_import="sys.exit(0)"), "SystemExit: the plugin called sys.exit(0)"),
        (plugin_source(in_hook="sys.exit()"), "SystemExit: the plugin called sys.exit(None)"),
        (plugin_source(in_hook="raise SystemExit(3)"), "SystemExit: the plugin called sys.exit(3)"),
    ],
    ids=["at import", "in its hook", "SystemExit(3) in its hook"],
)
def test_a_plugin_file_that_calls_sys_exit_is_an_error(tmp_path, source, message):
    path = tmp_path / "quitter.py"
    path.write_text(source)
    # the same loader reads --plugin and ADVNETS_PLUGINS: list plugins through one, run through the other
    line = one_line_error(advnets("list", "plugins", "--plugin", path))
    assert str(path) in line and message in line
    line = one_line_error(advnets("run", "toy-gaussian", "--steps", "1", "--out", tmp_path / "run", ADVNETS_PLUGINS=str(path)))
    assert str(path) in line and message in line
    assert not (tmp_path / "run").exists()


def test_a_component_that_calls_sys_exit_when_built_is_an_error(tmp_path):
    path = tmp_path / "quitter.py"
    path.write_text(plugin_source(factory="quitting_loss"))
    line = one_line_error(advnets("run", "toy-gaussian", "--set", "loss=quitter", "--steps", "1", "--out", tmp_path / "run", "--plugin", path))
    assert "loss 'quitter' of plugin 'quitter' called sys.exit(0) when built" in line
    assert not (tmp_path / "run").exists()


MID_RUN_QUITTERS = """
import sys
from advnets import Callback, Component, hookimpl
from advnets.losses import NonSaturatingLoss


class QuittingLoss(NonSaturatingLoss):
    \"\"\"The non-saturating loss, whose discriminator loss quits at its third call.\"\"\"

    calls = 0

    def discriminator_loss(self, real_logits, fake_logits):
        QuittingLoss.calls += 1
        if QuittingLoss.calls == 3:
            sys.exit(0)
        return super().discriminator_loss(real_logits, fake_logits)


class QuitAtStep(Callback):
    \"\"\"Quits at the end of step 3.\"\"\"

    def on_step_end(self, trainer):
        if trainer.step == 3:
            sys.exit()


def fails_later():
    \"\"\"A metric that works when checked before training and fails at the closing evaluation.\"\"\"
    calls = []

    def metric(samples, data):
        calls.append(len(samples))
        if len(calls) > 1:
            raise RuntimeError("the metric broke")
        return {"mean": float(samples.mean())}

    return metric


@hookimpl
def register_components(register):
    register(Component(kind="loss", name="quits", factory=QuittingLoss))
    register(Component(kind="callback", name="quits", factory=QuitAtStep))
    register(Component(kind="metric", name="fails-later", factory=fails_later))
"""


@pytest.mark.slow  # three short runs through the command line
def test_plugin_code_that_exits_or_fails_mid_run_fails_the_command_and_keeps_the_trained_steps(tmp_path):
    """sys.exit(0) in a loss or a callback is not a silent success: exit code 1 and one line naming where.
    Between steps (a callback's hook, the closing evaluation's metric) the state is whole, and the
    steps trained since the last checkpoint are saved; inside a step they cannot be."""
    path = tmp_path / "quitters.py"
    path.write_text(MID_RUN_QUITTERS)
    lines = MID_RUN_QUITTERS.splitlines()
    common = ["run", "toy-gaussian", "--steps", "5", "--plugin", path, "--set", "checkpoint.every_steps=2"]
    cases = [
        ("loss=quits", f"plugin code called sys.exit(0) in discriminator_loss ({path}:{lines.index('            sys.exit(0)') + 1}):"
         " a plugin cannot end a command, so it failed (exit code 1)", [2]),
        ("callbacks.quits={}", f"plugin code called sys.exit(None) in on_step_end ({path}:{lines.index('            sys.exit()') + 1}):"
         " a plugin cannot end a command, so it failed (exit code 1); training stopped at step 3: saved in {ckpt3}", [2, 3]),
        ('eval.metrics={"fails-later": {}}', "RuntimeError: the metric broke; training stopped at step 5: saved in {ckpt5}", [4, 5]),  # keep: 2
    ]
    for setting, message, kept in cases:
        run = tmp_path / setting.split("=")[0]
        result = advnets(*common, "--set", setting, "--out", run)
        assert result.returncode == 1, result.stderr
        message = message.format(ckpt3=ckpt(run, 3), ckpt5=ckpt(run, 5))
        if kept[-1] != 2:
            message += f"; resume with: advnets run --resume {run}"
        assert error_lines(result) == [f"error: {message}"], result.stderr
        assert ("Traceback" in result.stderr) == ("RuntimeError" in message)  # a bug in code shows where it is
        assert [p.name for p in step_checkpoints(run / "checkpoints")] == [ckpt(run, s).name for s in reversed(kept)]
    completion = subprocess.run([sys.executable, "-m", "advnets", "--show-completion", "bash"], env=env(), capture_output=True, text=True)
    assert completion.returncode == 0 and "complete" in completion.stdout, completion.stderr
    # rich's own exit on a closed pipe (`| head -1`) is not blamed on a plugin
    piped = subprocess.run(["bash", "-c", f"'{sys.executable}' -m advnets info preset mlp-mnist | head -1 > /dev/null"],
                           env=env(), capture_output=True, text=True)
    assert "plugin code" not in piped.stderr, piped.stderr


def install_distribution(folder: Path, modules: dict[str, str]) -> None:
    """An installed distribution (a .dist-info folder, as pip leaves it) with one entry point per module."""
    for module, source in modules.items():
        (folder / f"{module}.py").write_text(textwrap.dedent(source))
    info = folder / "advnets_quitters-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: advnets-quitters\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[advnets]\n" + "".join(f"{m.replace('_', '-')} = {m}\n" for m in modules))


@pytest.mark.slow
def test_installed_plugins_that_exit_or_take_a_builtin_name_are_reported_and_left_out(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    install_distribution(
        site,
        {
            "exits_at_import": plugin_source(name="never-a", at_import="sys.exit(0)"),
            "exits_in_hook": plugin_source(name="never-b", in_hook="sys.exit(0)"),
            "takes_hinge": plugin_source(name="hinge"),
            "good_one": plugin_source(name="still-here"),
        },
    )
    extra = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    listed = advnets("list", "plugins", "--json", **extra)
    assert listed.returncode == 0, listed.stderr
    infos = {info["name"]: info for info in json.loads(listed.stdout)}
    assert infos["exits-at-import"]["error"] == "failed to import: SystemExit: the plugin called sys.exit(0)"
    assert infos["exits-in-hook"]["error"] == "register_components failed: SystemExit: the plugin called sys.exit(0)"
    assert "loss 'hinge' is registered by two plugins: 'advnets' and 'takes-hinge'" in infos["takes-hinge"]["error"]
    assert infos["good-one"]["error"] is None and infos["good-one"]["components"] == 1
    for name in ("exits-at-import", "exits-in-hook", "takes-hinge"):
        assert f"warning: plugin '{name}' not loaded" in listed.stderr
    losses = advnets("list", "components", "--kind", "loss", "--json", **extra)
    assert losses.returncode == 0, losses.stderr
    plugins_of = {c["name"]: c["plugin"] for c in json.loads(losses.stdout)}
    assert plugins_of["hinge"] == "advnets" and plugins_of["still-here"] == "good-one"
    assert "never-a" not in plugins_of and "never-b" not in plugins_of
    trained = advnets("run", "toy-gaussian", "--set", "loss=hinge", "--steps", "2", "--set", "eval.metrics={}", "--out", tmp_path / "run", **extra)
    assert trained.returncode == 0, trained.stderr


# --- 3. files that are not files ----------------------------------------------------


@pytest.mark.slow
def test_a_fifo_a_device_and_a_huge_sparse_file_are_refused_at_once(runs, tmp_path):
    run = copy_run(runs["a"], tmp_path / "a")
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    device = tmp_path / "zero.safetensors"
    device.symlink_to("/dev/zero")
    sparse = tmp_path / "sparse.safetensors"
    shutil.copy(ckpt(run, 100), sparse)
    os.truncate(sparse, 64 * 2**30)  # 64 GiB, all but the first few hundred KB a hole
    cases = {fifo: "not a regular file (a named pipe)", device: "not a regular file (a device)", sparse: "bytes after the last tensor"}
    for path, message in cases.items():
        for command in (["sample", path, "--out", tmp_path / "s.png"], ["eval", path, "--n", "10"]):
            started = time.monotonic()
            line = one_line_error(advnets(*command, timeout=60))
            assert str(path) in line and message in line
            assert time.monotonic() - started < 30
    assert not (tmp_path / "s.png").exists()


@pytest.mark.slow
def test_resume_and_sample_pass_over_odd_files_with_a_checkpoints_name(runs, tmp_path):
    run = copy_run(runs["a"], tmp_path / "a")
    os.mkfifo(ckpt(run, 400))
    ckpt(run, 300).symlink_to("/dev/zero")
    shutil.copy(ckpt(run, 100), ckpt(run, 200))
    os.truncate(ckpt(run, 200), 64 * 2**30)
    sampled = advnets("sample", run, "--n", "16", "--out", tmp_path / "s.png", timeout=60)
    assert sampled.returncode == 0, sampled.stderr
    assert "step-000000100.safetensors" in sampled.stderr
    resumed = advnets("run", "--resume", run, "--steps", "150", timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert "(step 100)" in resumed.stderr
    for step, what in ((400, "a named pipe"), (300, "a device")):
        assert f"not a regular file ({what}); moved it aside to step-{step:09d}.safetensors.damaged" in resumed.stderr
    assert (run / "checkpoints" / "step-000000300.safetensors.damaged").is_symlink()
    assert os.path.getsize(run / "checkpoints" / "step-000000200.safetensors.damaged") == 64 * 2**30


# --- 4. one owner per run folder -----------------------------------------------------


@pytest.mark.slow
def test_a_live_runs_folder_cannot_be_claimed_by_a_second_process(tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "advnets", "run", *RUN, "--epochs", "1000", "--out", str(out)], env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not step_checkpoints(out / "checkpoints"):
            assert time.time() < deadline and first.poll() is None
            time.sleep(0.02)
        first.send_signal(signal.SIGSTOP)  # hold the folder still while the others try
        before = snapshot(out)
        second = advnets("run", *RUN, "--steps", "10", "--out", out)
        assert f"is in use by a running advnets process (pid {first.pid})" in one_line_error(second)
        resumed = advnets("run", "--resume", out, "--steps", "10")
        assert f"is in use by a running advnets process (pid {first.pid})" in one_line_error(resumed)
        assert snapshot(out) == before
    finally:
        first.kill()  # SIGKILL: the OS lets go of the lock
        first.wait()
    resumed = advnets("run", "--resume", out, "--epochs", "2")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr


@pytest.mark.slow
def test_two_runs_started_together_on_one_folder_leave_one_owner(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "advnets", "run", *RUN, "--steps", "100", "--out", str(out)]
    both = [subprocess.Popen(command, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in both]
    assert sorted(code for code, _ in results) == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "in use by a running advnets process" in loser or "already exists and is not empty" in loser
    run_id = json.loads((out / "config.json").read_text())["run_id"]
    assert all(run_id_of(read_metadata(p)) == run_id for p in step_checkpoints(out / "checkpoints"))


# --- 5. a write that fails ends the run cleanly ----------------------------------------


@pytest.mark.parametrize(
    "name, kind, message",
    [
        ("metrics.jsonl", "folder", "the metrics log is written here, but this is a folder"),
        pytest.param("training.png", "folder", "the training plot is written here, but this is a folder", marks=pytest.mark.slow),
        pytest.param("samples.gif", "dangling link", "is written here, but this is a link to nothing", marks=pytest.mark.slow),
        pytest.param("figure1.png", "folder", "figure-1's picture is written here, but this is a folder", marks=pytest.mark.slow),
        ("checkpoints", "file", "the checkpoints are kept here, but this is a file, not a folder"),
    ],
)
def test_a_side_file_that_is_not_a_file_is_refused_before_anything_is_written(runs, tmp_path, name, kind, message):
    """A run writes its metrics, plots and checkpoints in its folder: a folder, a pipe or a dangling link where a
    file goes (or a file where a folder goes) is one line and exit 2 before a step is taken, not a traceback
    or a run that stops half-way."""
    run = copy_run(runs["a"], tmp_path / "a")
    target = run / name
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)
    {"folder": target.mkdir, "file": lambda: target.write_text("x"), "dangling link": lambda: target.symlink_to(tmp_path / "nowhere")}[kind]()
    before = snapshot(run)
    refused = advnets("run", "--resume", run, "--steps", "200")
    line = one_line_error(refused)
    assert f"{target}: " in line and message in line, line
    after = snapshot(run)
    after.pop(".lock", None)  # the owner's lock, taken and let go
    assert after == before


def test_a_damaged_metrics_line_is_skipped_with_a_note_and_the_next_record_starts_a_line(runs, tmp_path):
    """A crash can cut the metrics log's last line short: the resumed run starts its first record on a new
    line (so no good record joins the damaged one), and at its end the plot leaves the line out and says so."""
    run = copy_run(runs["a"], tmp_path / "a")
    with open(run / "metrics.jsonl", "a") as log:
        log.write('{"event": "train", "st')  # cut short, no newline
    damaged = len((run / "metrics.jsonl").read_text().splitlines())
    resumed = advnets("run", "--resume", run, "--steps", "150")
    assert resumed.returncode == 0, resumed.stderr
    assert f"note: {run / 'metrics.jsonl'}: skipped damaged line ({damaged})" in resumed.stderr
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert lines[damaged - 1] == '{"event": "train", "st'
    assert all(json.loads(line)["step"] >= 100 for line in lines[damaged:])  # every later record whole
    assert (run / "training.png").stat().st_size > 0
    plotted = advnets("plot", run)
    assert plotted.returncode == 0 and f"skipped damaged line ({damaged})" in plotted.stderr


def test_a_metrics_record_the_disk_takes_only_part_of_is_taken_back(tmp_path):
    """A write that fails part-way (here past the process's file-size limit, the same EFBIG/ENOSPC path as a
    full disk) leaves the log as it was before the record, not with half a line."""
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 1}\n')
    script = textwrap.dedent(
        f"""
        import resource, sys
        from advnets.files import append_line, open_log
        fd = open_log({str(log)!r})
        resource.setrlimit(resource.RLIMIT_FSIZE, (30, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        try:
            append_line(fd, '{{"step": 2, "loss": 0.123456789}}\\n')
        except OSError as exc:
            print(exc.errno)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "27"  # EFBIG: the first 18 bytes went in, the rest was refused
    assert log.read_text() == '{"step": 1}\n'


def test_pictures_are_written_whole_or_not_at_all(tmp_path):
    """Grids, plots and figures are drawn in memory and renamed into place: a failure while drawing leaves
    the old picture as it was and no temporary file behind."""
    from advnets.files import write_rendered

    picture = tmp_path / "training.png"
    picture.write_bytes(b"old picture")

    def fails(buffer, fmt):
        buffer.write(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_rendered(picture, fails)
    assert picture.read_bytes() == b"old picture" and sorted(p.name for p in tmp_path.iterdir()) == ["training.png"]
    write_rendered(picture, lambda buffer, fmt: buffer.write(fmt.encode()))
    assert picture.read_bytes() == b"png"


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (root only); skipped with the reason where it cannot be mounted."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({(result.stderr or result.stdout).strip() or result.returncode})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_a_full_disk_keeps_the_last_good_checkpoint_and_exits_1(runs, small_disk):
    out = small_disk / "run"
    stopped = advnets("run", *RUN, "--seed", "7", "--steps", "200", "--out", out)
    assert stopped.returncode == 1, stopped.stderr
    [line] = error_lines(stopped)
    assert "No space left on device" in line and "training stopped at step" in line, line
    assert "Traceback" not in stopped.stderr
    good = step_checkpoints(out / "checkpoints")
    assert good, "the last good checkpoint must be kept"
    assert str(good[0]) in line
    load_checkpoint(good[0])
    assert not list((out / "checkpoints").glob(".*.tmp-*"))
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    finished = advnets("run", "--resume", out)
    assert finished.returncode == 0, finished.stderr
    assert_same_weights(ckpt(out, 200), ckpt(runs["straight"], 200))


@pytest.mark.slow
def test_a_full_disk_under_torchrun_stops_every_rank_together_with_one_line(small_disk):
    """Only rank 0 writes, so a write fails on rank 0 alone: the ranks agree to stop at the same step
    (the others would otherwise wait in the next all-reduce until the group's timeout), rank 0 says
    which write failed in one line, and torchrun's own report of the failed worker is left out."""
    out = small_disk / "run"
    start = time.time()
    stopped = advnets(
        "run", *RUN, "--seed", "7", "--steps", "3000", "--nproc", "2", "--out", out, timeout=240, ADVNETS_DIST_TIMEOUT="600"
    )
    assert time.time() - start < 120  # no wait for a timeout
    assert stopped.returncode == 1, stopped.stderr[-3000:]
    [line] = error_lines(stopped)
    assert "No space left on device" in line and "training stopped at step" in line, line
    assert "Traceback" not in stopped.stderr and "ChildFailedError" not in stopped.stderr, stopped.stderr[-3000:]
    good = step_checkpoints(out / "checkpoints")
    assert good and str(good[0]) in line
    load_checkpoint(good[0])


# --- 6. a config file cannot choose where files go ---------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["../../escaped", "/tmp/advnets-escaped", "toy-gaussian/../../x", "no-such-preset", 7, "[/bold]"])
def test_a_config_files_preset_never_chooses_the_run_folder(runs, tmp_path, preset):
    config = json.loads((runs["a"] / "config.json").read_text())
    config["preset"] = preset
    config["trainer"]["steps"] = 2
    work = tmp_path / "work" / "deep"
    work.mkdir(parents=True)
    (work / "config.json").write_text(json.dumps(config))
    before = snapshot(tmp_path)
    result = advnets("run", "config.json", cwd=work)
    made = set(snapshot(tmp_path)) - set(before)
    # a config file is laid over the preset it names, so a preset that is not a registered one's
    # name is refused (one line, nothing written); either way nothing lands outside runs/run-*
    if result.returncode == 2:
        assert len(result.stderr.strip().splitlines()) == 1 and "preset" in result.stderr and not made, result.stderr
        assert not Path("/tmp/advnets-escaped").exists() and not list(Path("/tmp").glob("advnets-escaped*"))
        return
    assert result.returncode == 0, result.stderr
    assert made and all(name == "work/deep/runs" or name.startswith("work/deep/runs/run-") for name in made), sorted(made)
    assert not Path("/tmp/advnets-escaped").exists() and not list(Path("/tmp").glob("advnets-escaped*"))
