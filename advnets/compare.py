"""Runs side by side (``advnets compare RUN RUN ...``): their final and best numbers, and one plot of their curves.

Each run folder is read as ``advnets plot`` reads it: ``config.json`` for what the
run is, ``metrics.jsonl`` through :func:`advnets.plots.read_metrics` (damaged lines
are skipped and counted; a resumed run's repeated steps count once). Nothing is
built and torch is not imported.

Which value of an evaluation number is the *best* one: the way the metric that
reports it declares (its ``directions``, which the run records in metrics.jsonl's
``evaluations`` record), and for ``eval.best`` the run's ``eval.mode`` where it
says. A number with no declared direction (a standard error, a chosen bandwidth,
or any number of a run from before metrics declared them) shows its lowest and
its highest value, each with its step, and neither is called best. The metrics'
headline numbers come first.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from .files import no_run_folder, write_rendered
from .errors import AdvnetsError, first_line, writing
from .plots import is_number, diagnostics_of, eval_keys, evaluations_of, metrics_path, read_metrics


@dataclasses.dataclass
class Point:
    """One value of a number and the step it was logged at."""

    value: float
    step: int

    def as_json(self) -> dict[str, Any]:
        return {"value": self.value, "step": self.step}


@dataclasses.dataclass
class Evaluated:
    """One evaluation number of a run: its last value, its extremes, and its best one where the run says which way is better."""

    final: Point
    lowest: Point | None  # None when no value was finite
    highest: Point | None
    mode: str | None  # "min" or "max": which way is better (declared by its metric, or eval.mode); None: not said

    @property
    def best(self) -> Point | None:
        if self.mode is None:
            return None
        return self.lowest if self.mode == "min" else self.highest

    def as_json(self) -> dict[str, Any]:
        def point(p: Point | None) -> dict[str, Any] | None:
            return None if p is None else p.as_json()

        best = None if self.best is None else {**self.best.as_json(), "mode": self.mode}
        return {"final": self.final.as_json(), "best": best, "lowest": point(self.lowest), "highest": point(self.highest)}


@dataclasses.dataclass
class RunSummary:
    """What compare reads from one run folder."""

    label: str  # the folder as the user named it
    path: Path
    config: dict[str, Any]
    diagnostics: dict[str, dict[str, Any]]  # the objective's description of its training numbers
    train: list[dict[str, Any]]  # the training records, in step order
    evals: list[dict[str, Any]]  # the evaluation records, in step order
    damaged: list[int]  # numbers of the metrics.jsonl lines skipped
    evaluations: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # declared directions and headline keys

    @property
    def steps(self) -> int:
        """The last step the run logged."""
        return max((r["step"] for r in self.train + self.evals), default=0)

    @property
    def epoch(self) -> float | None:
        last = max(self.train + self.evals, key=lambda r: r["step"], default={})
        return last.get("epoch") if is_number(last.get("epoch")) else None

    @property
    def final(self) -> tuple[int, dict[str, float]] | None:
        """The last training record's step and its diagnostics (losses, D's outputs, ...)."""
        if not self.train:
            return None
        last = self.train[-1]
        return last["step"], {k: last[k] for k in self.diagnostics if is_number(last.get(k))}

    def curve(self, key: str, event: str = "train") -> list[Point]:
        records = self.train if event == "train" else self.evals
        return [Point(r[key], r["step"]) for r in records if is_number(r.get(key))]

    @property
    def eval_keys(self) -> list[str]:
        """The evaluation numbers, headline ones first."""
        logged = eval_keys(self.evals)
        headline = [k for k, v in self.evaluations.items() if v.get("headline") and k in logged]
        return headline + [k for k in logged if k not in headline]

    def direction(self, key: str) -> str | None:
        """"min" or "max" where the run says which way ``key`` is better: eval.mode for eval.best, else its metric."""
        eval_config = self.config.get("eval") if isinstance(self.config.get("eval"), dict) else {}
        if eval_config.get("best") == key and eval_config.get("mode") in ("min", "max"):
            return eval_config["mode"]
        return self.evaluations.get(key, {}).get("direction")

    def evaluated(self, key: str) -> Evaluated:
        points = self.curve(key, "eval")
        finite = [p for p in points if math.isfinite(p.value)]
        mode = self.direction(key)
        return Evaluated(
            final=points[-1],
            lowest=min(finite, key=lambda p: p.value, default=None),  # the first of equal values, as eval.best keeps it
            highest=max(finite, key=lambda p: p.value, default=None),
            mode=mode if mode in ("min", "max") else None,
        )

    def as_json(self) -> dict[str, Any]:
        final = self.final
        return {
            "run": self.label,
            "preset": self.config.get("preset"),
            "run_id": self.config.get("run_id"),
            "steps": self.steps,
            "epoch": self.epoch,
            "final": None if final is None else {"step": final[0], **final[1]},
            "eval": {key: self.evaluated(key).as_json() for key in self.eval_keys},
            "skipped_lines": self.damaged,
        }


def read_run(run_dir: Path, label: str | None = None) -> RunSummary:
    """A run folder's configuration and records; bad input raises an AdvnetsError naming the file."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise AdvnetsError(no_run_folder(run_dir, "compare"))
    path = run_dir / "config.json"
    if not path.is_file():
        raise AdvnetsError(f"{run_dir}: not a run folder (no config.json)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise AdvnetsError(f"{path}: not a readable run configuration ({first_line(exc)})") from None
    if not isinstance(config, dict):
        raise AdvnetsError(f"{path}: not a run configuration (a JSON object of settings)")
    records, damaged = read_metrics(run_dir)
    diagnostics = diagnostics_of(records, None)
    train = [r for r in records if r.get("event") == "train" and any(is_number(r.get(k)) for k in diagnostics)]
    evals = [r for r in records if r.get("event") == "eval"]
    if not train and not evals:
        raise AdvnetsError(f"{metrics_path(run_dir)}: no training or evaluation records yet")
    return RunSummary(label or str(run_dir), run_dir, config, diagnostics, train, evals, damaged, evaluations_of(records))


@dataclasses.dataclass
class Comparison:
    """Several runs, and the curves they all have: the losses and the evaluation numbers."""

    runs: list[RunSummary]
    losses: list[str]  # training numbers on the objective's "losses" panel that every run logged
    evaluations: list[str]  # evaluation numbers every run logged

    def as_json(self) -> dict[str, Any]:
        return {"runs": [run.as_json() for run in self.runs], "shared": {"losses": self.losses, "eval": self.evaluations}}


def compare_runs(run_dirs: list[Path]) -> Comparison:
    """Read the runs and find the curves they share; fewer than two runs, the same run twice or nothing shared is an error."""
    if len(run_dirs) < 2:
        raise AdvnetsError("compare needs two or more run folders")
    seen: dict[Path, Path] = {}
    for run_dir in run_dirs:
        key = Path(run_dir).resolve()
        if key in seen:
            raise AdvnetsError(f"{seen[key]} and {run_dir} are the same run folder; name each run once")
        seen[key] = run_dir
    runs = [read_run(Path(run_dir), str(run_dir)) for run_dir in run_dirs]
    first = runs[0]
    losses = [
        key for key, entry in first.diagnostics.items()
        if entry.get("panel") == "losses" and all(key in run.diagnostics and run.curve(key) for run in runs)
    ]
    evaluations = [key for key in first.eval_keys if all(key in run.eval_keys for run in runs)]
    if not losses and not evaluations:
        raise AdvnetsError(f"{', '.join(r.label for r in runs)}: no losses or evaluation numbers in common to compare")
    return Comparison(runs, losses, evaluations)


def plot_comparison(comparison: Comparison, path: Path) -> Path:
    """One panel per shared loss and evaluation number, one colour per run, written to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("train", key) for key in comparison.losses] + [("eval", key) for key in comparison.evaluations]
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.4 * rows), squeeze=False)
    colours = plt.get_cmap("tab10").colors
    try:
        for ax, (event, key) in zip(axes.flat, panels):
            for run, colour in zip(comparison.runs, colours * (len(comparison.runs) // len(colours) + 1)):
                points = run.curve(key, event)
                style = {"marker": "o", "ms": 3} if event == "eval" else {}
                ax.plot([p.step for p in points], [p.value for p in points], color=colour, lw=1.2, label=run.label, **style)
            if event == "train":
                entries = [run.diagnostics[key] for run in comparison.runs]
                levels = {entry.get("equilibrium") for entry in entries}
                if len(levels) == 1 and None not in levels:
                    ax.axhline(levels.pop(), ls=":", color="k", lw=1, label="at equilibrium")
                ax.set_title(f"{entries[0].get('label', key)} ({key})", fontsize=10)
            else:
                ax.set_title(f"evaluation: {key}", fontsize=10)
            ax.set_xlabel("step")
        for ax in list(axes.flat)[len(panels) :]:
            ax.set_visible(False)
        axes.flat[0].legend(fontsize=8, frameon=False)
        fig.tight_layout()
        with writing(path, "the comparison plot"):
            write_rendered(path, lambda f, fmt: fig.savefig(f, dpi=110, format=fmt), "the comparison plot")
    finally:
        plt.close(fig)
    return path


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.5g}"


def _at(point: Point | None) -> str:
    return "-" if point is None else f"{_number(point.value)} (step {point.step})"


def comparison_table(comparison: Comparison) -> Any:
    """A rich table: one column per run, one row per number (``-`` where a run has none)."""
    from rich.markup import escape
    from rich.table import Table

    runs = comparison.runs
    table = Table(title=f"{len(runs)} runs", caption=None)
    table.add_column("")
    for run in runs:
        table.add_column(escape(run.label), overflow="fold")

    def row(label: str, cells: list[str]) -> None:
        table.add_row(escape(label), *map(escape, cells))

    row("preset", [str(run.config.get("preset") or "-") for run in runs])
    row("steps", [f"{run.steps}" + ("" if run.epoch is None else f" (epoch {run.epoch:g})") for run in runs])
    finals = [run.final for run in runs]
    row("last training record", ["-" if f is None else f"step {f[0]}" for f in finals])
    keys = list(dict.fromkeys(key for run in runs for key in run.diagnostics))
    for key in keys:
        if any(f is not None and key in f[1] for f in finals):
            row(f"  {key}", ["-" if f is None or key not in f[1] else _number(f[1][key]) for f in finals])
    directed = False
    for key in dict.fromkeys(key for run in runs for key in run.eval_keys):
        summaries = [run.evaluated(key) if key in run.eval_keys else None for run in runs]
        row(f"{key} last evaluated", [_at(s and s.final) for s in summaries])  # not always at the last step
        if any(s is not None and s.mode for s in summaries):
            directed = True
            row(f"{key} best", ["-" if s is None or s.best is None else f"{_at(s.best)}, {s.mode}" for s in summaries])
        if any(s is not None and not s.mode for s in summaries):
            row(f"{key} lowest / highest", ["-" if s is None or s.mode else f"{_at(s.lowest)} / {_at(s.highest)}" for s in summaries])
    if directed:
        table.caption = "best: the higher (max) or lower (min) value, as the run's metrics declare (eval.mode for eval.best)"
    return table
