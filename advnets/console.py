"""What a person sees while a run trains: a rich progress bar and a one-screen summary.

In a terminal the bar redraws in place, and shows which metric an evaluation is
computing; when output goes to a file or a CI log, a plain line is printed for
each training record (at most one every few seconds), for each metric an
evaluation starts, and for each evaluation's numbers.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .trainer import AdversarialTrainer, Callback

PLAIN_LINE_SECONDS = 5.0


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def metric_items(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("event", "step", "epoch", "time")}


SHORT_LABELS = {"d_real": "D(x)", "d_fake": "D(G(z))"}


def shown_stats(trainer: AdversarialTrainer, record: dict[str, Any], digits: int = 3) -> str:
    """The objective's diagnostics in a record, gradient norms left out: ``d_loss 1.386  D(x) 0.50 ...``."""
    parts = []
    for key, entry in trainer.objective.diagnostics(trainer).items():
        if entry.panel != "norms" and key in record:
            parts.append(f"{SHORT_LABELS.get(key, key)} {record[key]:.{digits}f}")
    return "  ".join(parts)


class ProgressDisplay(Callback):
    """Step, epoch, losses, D outputs and samples/s, as a bar or as log lines."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.progress: Progress | None = None
        self.task: Any = None
        self.last_train: dict[str, Any] = {}
        self.last_eval: dict[str, Any] = {}
        self.rates: list[float] = []
        self.started = time.perf_counter()
        self._last_draw = 0.0
        self._last_line = 0.0
        self._train_stats = ""

    def on_fit_start(self, trainer: AdversarialTrainer) -> None:
        self.started = time.perf_counter()
        if not self.console.is_terminal:
            self.console.print(f"training from step {trainer.step} to {trainer.target_step}", highlight=False)
            return
        self.progress = Progress(
            TextColumn("[bold]step"),
            MofNCompleteColumn(),
            BarColumn(),
            TextColumn("epoch {task.fields[epoch]}"),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("<"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.task = self.progress.add_task("train", total=trainer.target_step, completed=trainer.step, epoch="0", stats="")
        self.progress.start()

    def on_step_end(self, trainer: AdversarialTrainer) -> None:
        if self.progress is None:
            return
        now = time.perf_counter()
        if now - self._last_draw > 0.1:  # cheap: no tensor is read here
            self._last_draw = now
            self.progress.update(self.task, completed=trainer.step)

    def on_evaluating(self, trainer: AdversarialTrainer, metric: str) -> None:
        """An evaluation starts computing ``metric`` (called by the Evaluate callback)."""
        if self.progress is not None:
            self.progress.update(self.task, completed=trainer.step, stats=f"evaluating: {metric} ...")
            self.progress.refresh()
        else:
            self.console.print(f"evaluating {metric} at step {trainer.step} ...", highlight=False)

    def on_log(self, trainer: AdversarialTrainer, record: dict[str, Any]) -> None:
        if record.get("event") == "eval":
            self.last_eval = record
            text = "  ".join(f"{k} {_fmt(v)}" for k, v in metric_items(record).items())
            self.console.print(f"eval @ step {record['step']}: {text}", highlight=False)
            if self.progress is not None:  # the training numbers again, in place of the evaluation's status
                self.progress.update(self.task, stats=self._train_stats)
            return
        self.last_train = record
        self.rates.append(record.get("samples_per_s", 0.0))
        stats = f"{shown_stats(trainer, record)}  {record.get('samples_per_s', 0.0):,.0f} samples/s"
        self._train_stats = stats
        if self.progress is not None:
            self.progress.update(self.task, completed=trainer.step, epoch=f"{record['epoch']:.2f}", stats=stats)
            return
        now = time.perf_counter()
        if now - self._last_line >= PLAIN_LINE_SECONDS or trainer.step >= trainer.target_step:
            self._last_line = now
            self.console.print(f"step {trainer.step}/{trainer.target_step}  epoch {record['epoch']:.2f}  {stats}", highlight=False)

    def on_fit_end(self, trainer: AdversarialTrainer) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=trainer.step)
            self.progress.stop()
            self.progress = None


def summary_table(trainer: AdversarialTrainer, display: ProgressDisplay, run_dir: Any, checkpoint: Any) -> Table:
    """The one screen at the end: where the run went and how it ended."""
    elapsed = time.perf_counter() - display.started
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("run folder", str(run_dir))
    table.add_row("steps", f"{trainer.step} ({trainer.epoch_progress:.2f} epochs)")
    table.add_row("time", f"{elapsed:.1f} s")
    if display.rates:
        over = f"median of {len(display.rates)} logging intervals" if len(display.rates) > 1 else "one logging interval"
        table.add_row("samples/s", f"{statistics.median(display.rates):,.0f} ({over})")
    if trainer.device.type == "cuda":  # on, with how many steps were replays; or off, and why
        table.add_row("CUDA graphs", trainer.graph_report)
    train = display.last_train
    if train:
        equilibria = [
            f"{key} {entry.equilibrium:.4f}"
            for key, entry in trainer.objective.diagnostics(trainer).items()
            if entry.equilibrium is not None and key in train
        ]
        table.add_row(
            "final means",
            shown_stats(trainer, train, digits=4) + (f"  (at equilibrium: {', '.join(equilibria)})" if equilibria else ""),
        )
    if display.last_eval:
        table.add_row(
            "last evaluation",
            "  ".join(f"{k} {_fmt(v)}" for k, v in metric_items(display.last_eval).items()),
        )
    if checkpoint is not None:
        table.add_row("checkpoint", str(checkpoint))
    return table
