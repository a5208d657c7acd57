"""Start-up cost of the command line: whole `advnets` processes, timed from outside.

    python benchmarks/startup.py [--repeats 7] [--json FILE] [--baseline DIR]

Each command runs as a fresh process (``python -m advnets ...``) ``--repeats`` times,
interleaved, so that whatever else the machine does hits them alike. For each
command the table gives the median and the minimum wall time, the peak resident
memory (the child's own ``ru_maxrss``, read with ``os.wait4``) and whether the
process imported torch (one extra run with ``python -X importtime``). Two
reference rows show the floor: an empty Python, and Python importing torch.

``--baseline DIR`` times the same commands from another checkout too (say the main
branch, exported with ``git worktree add`` or ``git archive``), interleaved with this
one's, so that a change's before and after meet the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {
    "advnets --help": ["-m", "advnets", "--help"],
    "advnets --version": ["-m", "advnets", "--version"],
    "advnets run --help": ["-m", "advnets", "run", "--help"],
    "advnets list components": ["-m", "advnets", "list", "components"],
    "advnets info loss hinge": ["-m", "advnets", "info", "loss", "hinge"],
}
REFERENCES = {
    "python -c pass": ["-c", "pass"],
    "python -c 'import torch'": ["-c", "import torch"],
}


def _environment(repo: Path = REPO) -> dict[str, str]:
    """The caller's environment, with the checkout ``repo`` first on the path and no extra plugins."""
    paths = [str(repo), str(repo / "plugins"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADVNETS_")}
    return {**env, "PYTHONPATH": os.pathsep.join(paths), "COLUMNS": "120"}


def time_once(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak resident MiB of one ``python ARGS`` process."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"python {' '.join(args)} exited with {process.returncode}")
    return wall, usage.ru_maxrss / 1024  # Linux reports KiB


def imports_torch(args: list[str], env: dict[str, str]) -> bool:
    """Did ``python ARGS`` import torch? Read off ``-X importtime``'s list of imported modules."""
    result = subprocess.run([sys.executable, "-X", "importtime", *args], env=env, capture_output=True, text=True)
    return any(line.split("|")[-1].strip() == "torch" for line in result.stderr.splitlines())


def measure(commands: dict[str, tuple[list[str], dict[str, str]]], repeats: int) -> dict[str, dict]:
    """Each command's times and memory; ``commands`` maps a row's name to its arguments and environment."""
    walls: dict[str, list[float]] = {name: [] for name in commands}
    peaks: dict[str, list[float]] = {name: [] for name in commands}
    for name, (args, env) in commands.items():  # one untimed run each: the file cache is warm for all alike
        time_once(args, env)
    for _ in range(repeats):
        for name, (args, env) in commands.items():
            wall, peak = time_once(args, env)
            walls[name].append(wall)
            peaks[name].append(peak)
    return {
        name: {
            "median_s": round(statistics.median(walls[name]), 4),
            "min_s": round(min(walls[name]), 4),
            "peak_rss_mib": round(max(peaks[name]), 1),
            "imports_torch": imports_torch(args, env),
            "runs": repeats,
        }
        for name, (args, env) in commands.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of each command")
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "startup.json"))
    parser.add_argument("--baseline", type=Path, metavar="DIR", help="also time the commands from this checkout, marked (baseline)")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.baseline is not None and not (args.baseline / "advnets" / "__init__.py").is_file():
        parser.error(f"--baseline {args.baseline}: not a checkout of advnets")
    env = _environment()
    baseline_env = None if args.baseline is None else _environment(args.baseline.resolve())
    commands = {}
    for name, argv in COMMANDS.items():  # each command beside its baseline
        commands[name] = (argv, env)
        if baseline_env is not None:
            commands[f"{name} (baseline)"] = (argv, baseline_env)
    commands.update({name: (argv, env) for name, argv in REFERENCES.items()})
    load_before = os.getloadavg()
    results = measure(commands, args.repeats)

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"start-up: wall seconds over {args.repeats} runs each")
    for column in ("command", "median s", "min s", "peak RSS MiB", "imports torch"):
        table.add_column(column, justify="left" if column == "command" else "right", no_wrap=column == "command")
    for name, row in results.items():
        table.add_row(name, f"{row['median_s']:.3f}", f"{row['min_s']:.3f}", f"{row['peak_rss_mib']:.0f}", "yes" if row["imports_torch"] else "no")
    console = Console()
    console.print(table)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "repeats": args.repeats,
        "load_average_1_5_15_min": {  # of the whole machine, before and after the measurement
            "before": [round(load, 2) for load in load_before],
            "after": [round(load, 2) for load in os.getloadavg()],
        },
        "baseline": None if args.baseline is None else str(args.baseline.resolve()),
        "results": results,
    }
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
