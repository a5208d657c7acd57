"""Loggers: components of kind ``logger`` that receive every log record (and sample grids).

``jsonl`` (``metrics.jsonl``) is always on: ``advnets plot`` and the training plots read
it. ``advnets run --logger tensorboard`` or ``--set logger=tensorboard`` adds another
(``csv``, ``tensorboard``, ``mlflow``), ``--set 'logger=["csv", "tensorboard"]'`` several. A
logger is a :class:`~advnets.trainer.Callback` that implements ``on_log`` (and
``on_image`` for pictures); only rank 0 logs.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import io
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from torch import Tensor

from .callbacks import Checkpointer
from .files import append_line, check_file_slot, jsonl_log_name, open_log, plain_file_name, to_json, write_json_atomic
from .errors import ConfigError, WriteError, first_line, writing
from .metrics import DIRECTIONS
from .trainer import AdversarialTrainer, Callback


def described(trainer: AdversarialTrainer) -> dict[str, dict[str, Any]]:
    """What the callbacks say of the numbers they log (``Callback.describe``), checked:
    ``{key: {"direction": "max" | "min", "headline": bool}}``; a callback that returns None says nothing."""
    evaluations: dict[str, dict[str, Any]] = {}
    for callback in trainer.callbacks:
        describe = getattr(callback, "describe", None)
        said = describe(trainer) if callable(describe) else None
        if said is None:
            continue
        ok = isinstance(said, dict) and all(
            isinstance(key, str) and isinstance(entry, dict) and entry.get("direction") in DIRECTIONS
            and isinstance(entry.get("headline", False), bool)
            for key, entry in said.items()
        )
        if not ok:
            raise ConfigError(
                f"callback {type(callback).__name__}: describe() must return {{key: {{\"direction\": \"max\" or \"min\", "
                f"\"headline\": true or false}}}}, got {said!r:.80}"
            )
        evaluations.update(said)
    return evaluations


class JsonlLogger(Callback):
    """Appends every record to metrics.jsonl, one JSON object per line (read by advnets plot)."""

    def __init__(self, filename: str = "metrics.jsonl") -> None:
        if not jsonl_log_name(filename):
            raise ConfigError(
                f"loggers.jsonl.filename must be a file name ending in .jsonl in the run folder, with no folder part; got {filename!r}"
            )
        self.filename = filename
        self._fd: int | None = None

    def check(self, trainer: AdversarialTrainer) -> None:
        if trainer.run_dir is not None:
            check_file_slot(trainer.run_dir / self.filename, "the metrics log")
        described(trainer)  # a callback that describes its numbers badly fails now, not after the first step

    def on_fit_start(self, trainer: AdversarialTrainer) -> None:
        self._described = False

    def _describe(self, trainer: AdversarialTrainer) -> None:
        """Before a fit's first record: what the objective's numbers mean and where their equilibria lie,
        and which way the evaluation numbers are better (plots and compare read them)."""
        if not getattr(self, "_described", True):
            self._described = True
            self.on_log(trainer, {"event": "diagnostics", "step": trainer.step, "diagnostics": trainer.diagnostics()})
            evaluations = described(trainer)
            if evaluations:
                self.on_log(trainer, {"event": "evaluations", "step": trainer.step, "evaluations": evaluations})

    def on_log(self, trainer: AdversarialTrainer, record: dict[str, Any]) -> None:
        self._describe(trainer)
        path = trainer.require_run_dir("the jsonl logger") / self.filename
        with writing(path, "the metrics log"):
            if self._fd is None:
                self._fd = open_log(path)
            append_line(self._fd, to_json(record) + "\n")

    def on_fit_end(self, trainer: AdversarialTrainer) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class CsvLogger(Callback):
    """Writes metrics-train.csv and metrics-eval.csv, one row per record; columns from each file's first row."""

    def __init__(self, prefix: str = "metrics") -> None:
        if not isinstance(prefix, str) or not plain_file_name(f"{prefix}-train.csv") or prefix.startswith("."):
            raise ConfigError(f"loggers.csv.prefix must start a file name in the run folder, with no folder part; got {prefix!r}")
        self.prefix = prefix
        self._files: dict[str, tuple[int, list[str]]] = {}

    def check(self, trainer: AdversarialTrainer) -> None:
        if trainer.run_dir is not None:
            for event in ("train", "eval"):
                check_file_slot(trainer.run_dir / f"{self.prefix}-{event}.csv", "the metrics log")

    def on_log(self, trainer: AdversarialTrainer, record: dict[str, Any]) -> None:
        event = str(record.get("event", "log"))
        path = trainer.require_run_dir("the csv logger") / f"{self.prefix}-{event}.csv"
        with writing(path, "the metrics log"):
            self._write(path, event, record)

    def _write(self, path: Path, event: str, record: dict[str, Any]) -> None:
        header = False
        if event not in self._files:
            fresh = not path.exists() or path.stat().st_size == 0
            if fresh:
                fields = [k for k in record if k != "event"]
            else:  # a resumed run appends under the header already there
                with open(path, encoding="utf-8", newline="") as existing:
                    fields = next(csv.reader(existing), [])
            self._files[event] = (open_log(path), fields)
            header = fresh
        fd, fields = self._files[event]
        row = io.StringIO()
        writer = csv.DictWriter(row, fieldnames=fields, extrasaction="ignore")
        if header:
            writer.writeheader()
        writer.writerow(record)
        append_line(fd, row.getvalue())

    def on_fit_end(self, trainer: AdversarialTrainer) -> None:
        for fd, _ in self._files.values():
            os.close(fd)
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


MLFLOW_RUN_FILE = "mlflow.json"
"""In a run folder: which MLflow run the mlflow logger writes to, so that a resumed run goes on in it."""

MLFLOW_PARAM_LENGTH = 6000  # MLflow refuses longer parameter values
MLFLOW_BATCH = 100  # parameters per log_batch call, MLflow's limit


def flat_settings(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """A configuration as MLflow parameters: dotted keys, values as JSON text (strings as they are)."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(flat_settings(value, f"{prefix}{key}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            flat[f"{prefix}{key}"] = text[:MLFLOW_PARAM_LENGTH]
    return flat


class MlflowLogger(Callback):
    """Metrics, settings, sample grids and the final checkpoint in MLflow, by default in RUN_DIR/mlflow (pip install 'advnets[mlflow]').

    ``tracking_uri`` null keeps a store of the run's own in ``RUN_DIR/mlflow`` (SQLite
    in ``mlflow.db``, artifacts under ``artifacts/``; no server, works offline); any
    MLflow tracking URI (``http://host:5000``, ``sqlite:///path/mlflow.db``) sends the
    run there instead. ``experiment`` is the MLflow experiment's name, made if it is
    new. Each record becomes metrics named ``EVENT/KEY`` (``train/d_loss``,
    ``eval/KEY``) at its step; the run's resolved configuration, flattened, becomes
    the parameters (``trainer.k``, ``loss.name``); ``config.json``, every sample grid
    (``samples/step_*.png``) and, with ``log_checkpoint``, the final checkpoint
    (``checkpoints/``) become artifacts. The MLflow run's id is kept in
    ``RUN_DIR/mlflow.json``: ``advnets run --resume`` goes on in the same MLflow run
    (its status back to RUNNING; parameters that changed, such as a longer
    ``trainer.steps``, keep their first value there, as MLflow never changes one).
    """

    def __init__(self, tracking_uri: str | None = None, experiment: str = "advnets", log_checkpoint: bool = True) -> None:
        needed = ["mlflow"] if tracking_uri is not None else ["mlflow", "sqlalchemy", "alembic"]  # the own store is SQLite
        for module in needed:
            try:
                importlib.import_module(module)
            except ImportError:
                raise ConfigError(f"the mlflow logger needs {module}: pip install 'advnets[mlflow]'") from None
        if tracking_uri is not None and not (isinstance(tracking_uri, str) and tracking_uri):
            raise ConfigError(f"the mlflow logger: tracking_uri must be an MLflow tracking URI or null, got {tracking_uri!r}")
        if not experiment:
            raise ConfigError("the mlflow logger: experiment must be a name, got an empty string")
        self.tracking_uri, self.experiment, self.log_checkpoint = tracking_uri, experiment, log_checkpoint
        self._client: Any = None
        self._run_id: str | None = None
        self._uri = ""

    @contextlib.contextmanager
    def _recording(self, what: str) -> Iterator[None]:
        """MLflow's errors as a WriteError: training then stops with a final checkpoint and one line."""
        from mlflow.exceptions import MlflowException

        try:
            yield
        except (MlflowException, OSError) as exc:
            raise WriteError(f"{self._uri}: MLflow could not record {what} ({first_line(exc)})") from None

    def check(self, trainer: AdversarialTrainer) -> None:
        """A tracking URI that MLflow has no store for is refused before the run folder is made."""
        if self.tracking_uri is None:
            return  # the run's own store, made with the run folder
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        try:
            MlflowClient(tracking_uri=self.tracking_uri)  # picks the store by the URI's scheme; no request is sent
        except MlflowException as exc:
            raise ConfigError(f"the mlflow logger: tracking_uri {self.tracking_uri!r}: {first_line(exc)}") from None

    def on_fit_start(self, trainer: AdversarialTrainer) -> None:
        self._open(trainer)

    def _open(self, trainer: AdversarialTrainer) -> None:
        """Start or continue the MLflow run, at whichever comes first: the fit's start, a record or a picture.

        (A grid of step 0 may come before this logger's ``on_fit_start``, from a callback listed before it.)
        """
        if self._run_id is not None:
            return
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        run_dir = trainer.require_run_dir("the mlflow logger")
        own = run_dir.resolve() / "mlflow"
        self._uri = self.tracking_uri or f"sqlite:///{own / 'mlflow.db'}"
        if self.tracking_uri is None:
            for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):  # a new store's set-up is no news
                logging.getLogger(name).setLevel(logging.WARNING)
        config = trainer.metadata.get("config") or {}
        with self._recording("the start of the run"):
            if self.tracking_uri is None:
                own.mkdir(exist_ok=True)
            self._client = MlflowClient(tracking_uri=self._uri)
            self._run_id = self._continued(run_dir)
            if self._run_id is None:
                self._run_id = self._create(run_dir, config, None if self.tracking_uri else (own / "artifacts").as_uri())
            else:
                self._client.update_run(self._run_id, status="RUNNING")
            known = self._client.get_run(self._run_id).data.params
            params = [Param(k, v) for k, v in flat_settings(config).items() if k not in known]
            for start in range(0, len(params), MLFLOW_BATCH):
                self._client.log_batch(self._run_id, params=params[start : start + MLFLOW_BATCH])
            if (run_dir / "config.json").is_file():
                self._client.log_artifact(self._run_id, str(run_dir / "config.json"))

    def _continued(self, run_dir: Path) -> str | None:
        """The MLflow run this run folder wrote to before, if it is still there under the same tracking URI."""
        from mlflow.exceptions import MlflowException

        try:
            saved = json.loads((run_dir / MLFLOW_RUN_FILE).read_text())
            run = self._client.get_run(saved["run_id"]) if saved.get("tracking_uri") == self.tracking_uri else None
        except (OSError, ValueError, TypeError, KeyError, AttributeError, MlflowException):
            return None  # none recorded, or the store has lost it: a new MLflow run
        return run.info.run_id if run is not None and run.info.lifecycle_stage == "active" else None

    def _create(self, run_dir: Path, config: dict[str, Any], artifacts: str | None) -> str:
        experiment = self._client.get_experiment_by_name(self.experiment)
        if experiment is None:
            experiment_id = self._client.create_experiment(self.experiment, artifact_location=artifacts)
        else:
            experiment_id = experiment.experiment_id
        tags = {"advnets.run_dir": str(run_dir.resolve())}
        for key, tag in (("run_id", "advnets.run_id"), ("preset", "advnets.preset")):
            if isinstance(config.get(key), str):
                tags[tag] = config[key]
        run_id = self._client.create_run(experiment_id, run_name=run_dir.name, tags=tags).info.run_id
        record = {"tracking_uri": self.tracking_uri, "experiment_id": experiment_id, "run_id": run_id}
        write_json_atomic(run_dir / MLFLOW_RUN_FILE, record)
        return run_id

    def on_log(self, trainer: AdversarialTrainer, record: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        self._open(trainer)
        event = record.get("event", "log")
        stamp = int(1000 * record.get("time", time.time()))
        metrics = [
            Metric(f"{event}/{key}", float(value), stamp, record["step"])
            for key, value in record.items()
            if key not in ("event", "step", "time") and isinstance(value, (int, float)) and not isinstance(value, bool)
        ]
        if metrics:
            with self._recording(f"the {event} record of step {record['step']}"):
                self._client.log_batch(self._run_id, metrics=metrics)

    def on_image(self, trainer: AdversarialTrainer, tag: str, image: Tensor) -> None:
        from torchvision.utils import save_image

        self._open(trainer)
        with tempfile.TemporaryDirectory() as folder, self._recording(f"the {tag} picture of step {trainer.step}"):
            path = Path(folder) / f"step_{trainer.step:09d}.png"
            save_image(image, str(path))
            self._client.log_artifact(self._run_id, str(path), tag)

    def on_fit_end(self, trainer: AdversarialTrainer) -> None:
        if self._run_id is None:
            return
        last = next((c.last_path for c in trainer.callbacks if isinstance(c, Checkpointer) and c.last_path), None)
        with self._recording("the end of the run"):
            if self.log_checkpoint and last is not None and last.is_file():
                self._client.log_artifact(self._run_id, str(last), "checkpoints")
            finished = trainer.step >= trainer.target_step  # else stopped early (a signal): resume goes on
            self._client.set_terminated(self._run_id, "FINISHED" if finished else "KILLED")
        self._run_id = None

    def on_exception(self, trainer: AdversarialTrainer, exception: BaseException) -> None:
        if self._run_id is None:
            return
        run_id, self._run_id = self._run_id, None
        try:
            self._client.set_terminated(run_id, "KILLED" if isinstance(exception, KeyboardInterrupt) else "FAILED")
        except Exception:  # noqa: BLE001 - the training's own error is the one to see, not a failure to mark the run
            pass


BUILTIN_LOGGERS = {"jsonl": JsonlLogger, "csv": CsvLogger, "tensorboard": TensorBoardLogger, "mlflow": MlflowLogger}
