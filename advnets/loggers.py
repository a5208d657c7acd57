"""Loggers: components of kind ``logger`` that receive every log record (and sample grids).

``jsonl`` (``metrics.jsonl``) is always on: ``advnets plot`` and the training plots read
it. ``advnets run --logger tensorboard`` or ``--set logger=tensorboard`` adds another,
``--set 'logger=["csv", "tensorboard"]'`` several. A
logger is a :class:`~advnets.trainer.Callback` that implements ``on_log`` (and
``on_image`` for pictures); only rank 0 logs.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, TextIO

from torch import Tensor

from .errors import ConfigError, writing
from .trainer import AdversarialTrainer, Callback


class JsonlLogger(Callback):
    """Appends every record to metrics.jsonl, one JSON object per line (read by advnets plot)."""

    def __init__(self, filename: str = "metrics.jsonl") -> None:
        self.filename = filename
        self._file: TextIO | None = None

    def on_fit_start(self, trainer: AdversarialTrainer) -> None:
        self._described = False

    def _describe(self, trainer: AdversarialTrainer) -> None:
        """Before a fit's first record: what the objective's numbers mean and where their equilibria lie (plots read it)."""
        if not getattr(self, "_described", True):
            self._described = True
            self.on_log(trainer, {"event": "diagnostics", "step": trainer.step, "diagnostics": trainer.diagnostics()})

    def on_log(self, trainer: AdversarialTrainer, record: dict[str, Any]) -> None:
        self._describe(trainer)
        path = trainer.require_run_dir("the jsonl logger") / self.filename
        with writing(path, "the metrics log"):
            if self._file is None:
                self._file = open(path, "a", encoding="utf-8")
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()

    def on_fit_end(self, trainer: AdversarialTrainer) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class CsvLogger(Callback):
    """Writes metrics-train.csv and metrics-eval.csv, one row per record; columns from each file's first row."""

    def __init__(self, prefix: str = "metrics") -> None:
        self.prefix = prefix
        self._files: dict[str, tuple[TextIO, csv.DictWriter]] = {}

    def on_log(self, trainer: AdversarialTrainer, record: dict[str, Any]) -> None:
        event = str(record.get("event", "log"))
        path = trainer.require_run_dir("the csv logger") / f"{self.prefix}-{event}.csv"
        with writing(path, "the metrics log"):
            self._write(path, event, record)

    def _write(self, path: Path, event: str, record: dict[str, Any]) -> None:
        if event not in self._files:
            fresh = not path.exists() or path.stat().st_size == 0
            handle = open(path, "a", encoding="utf-8", newline="")
            if fresh:
                fields = [k for k in record if k != "event"]
            else:  # a resumed run appends under the header already there
                with open(path, encoding="utf-8", newline="") as existing:
                    fields = next(csv.reader(existing))
            writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
            if fresh:
                writer.writeheader()
            self._files[event] = (handle, writer)
        handle, writer = self._files[event]
        writer.writerow(record)
        handle.flush()

    def on_fit_end(self, trainer: AdversarialTrainer) -> None:
        for handle, _ in self._files.values():
            handle.close()
        self._files.clear()


class TensorBoardLogger(Callback):
    """Scalars and sample grids for TensorBoard, in RUN_DIR/tensorboard (pip install 'advnets[tensorboard]')."""

    def __init__(self, subdir: str = "tensorboard") -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError:
            raise ConfigError("the tensorboard logger needs TensorBoard: pip install 'advnets[tensorboard]'") from None
        self.subdir = subdir
        self._writer: Any = None

    def _open(self, trainer: AdversarialTrainer) -> Any:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(trainer.require_run_dir("the tensorboard logger") / self.subdir))
        return self._writer

    def on_log(self, trainer: AdversarialTrainer, record: dict[str, Any]) -> None:
        writer = self._open(trainer)
        event = record.get("event", "log")
        for key, value in record.items():
            if key not in ("event", "step", "time") and isinstance(value, (int, float)) and not isinstance(value, bool):
                writer.add_scalar(f"{event}/{key}", value, record["step"])
        writer.flush()

    def on_image(self, trainer: AdversarialTrainer, tag: str, image: Tensor) -> None:
        self._open(trainer).add_image(tag, image, trainer.step)

    def on_fit_end(self, trainer: AdversarialTrainer) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


BUILTIN_LOGGERS = {"jsonl": JsonlLogger, "csv": CsvLogger, "tensorboard": TensorBoardLogger}
