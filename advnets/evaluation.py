"""``advnets eval``: metrics on a trained generator, or on real data as the reference row.

Metrics are components of kind ``metric``: a factory returns a callable
``metric(samples, data) -> {name: number}`` that scores G's samples (in the model's
space) against the dataset; one with a ``labels`` parameter also gets the classes
the samples were drawn for. An evaluation builds the run's dataset, draws
``n`` samples from G's moving average (or G itself; a conditional G for labels
drawn from the training set's class frequencies), runs each metric, and records
the numbers with what produced them.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from pathlib import Path
from typing import Any

import torch

from .files import write_json_atomic
from .config import resolve
from .data import Data
from .errors import ConfigError
from .metrics import score
from .registry import Registry, settings_of
from .runs import load_generator
from .trainer import generate_labelled, resolve_device

EVAL_NAME = "eval.json"


@dataclasses.dataclass
class Evaluation:
    """Numbers from one evaluation, and what they were computed on."""

    results: dict[str, float]
    seconds: dict[str, float]
    source: str
    info: dict[str, Any]
    notes: list[str] = dataclasses.field(default_factory=list)  # newer checkpoints skipped as damaged, and why

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            **self.info,
            "results": self.results,
            "seconds": self.seconds,
            "when": _dt.datetime.now().isoformat(timespec="seconds"),
        }


def run_metrics(
    registry: Registry, metrics: dict[str, dict], samples: torch.Tensor, data: Data, labels: torch.Tensor | None = None
) -> tuple[dict, dict]:
    built = {name: registry.build("metric", name, **settings) for name, settings in metrics.items()}
    return score(built, samples, data, labels)


def _metric_settings(config: dict[str, Any], names: list[str] | None) -> dict[str, dict]:
    configured = dict(config.get("eval", {}).get("metrics") or {})
    if names:
        return {name: configured.get(name, {}) for name in names}
    if not configured:
        raise ConfigError("this run names no metrics (eval.metrics); choose some with --metric NAME")
    return configured


def run_dataset(registry: Registry, config: dict[str, Any], data_dir: str | None) -> Data:
    """The dataset a run's config names, from ``data_dir`` if given (else where the config says)."""
    settings = settings_of(config["dataset"])
    if data_dir is not None:
        settings["data_dir"] = data_dir
    return registry.build("dataset", config["dataset"]["name"], **settings)


def evaluate_generator(
    registry: Registry,
    source: str | Path,
    *,
    metrics: list[str] | None = None,
    n: int = 10000,
    seed: int = 0,
    use_average: bool = True,
    data_dir: str | None = None,
    device: str = "auto",
) -> Evaluation:
    """Evaluate G from a run folder (its newest checkpoint) or a checkpoint file."""
    if n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    loaded = load_generator(registry, source, use_average=use_average)
    config = loaded.metadata["config"]
    chosen = _metric_settings(config, metrics)
    data = run_dataset(registry, config, data_dir)
    dev = resolve_device(device)
    class_weights = data.class_frequencies() if data.labelled else None
    samples, labels = generate_labelled(
        loaded.generator.to(dev), n, noise=loaded.noise, seed=seed, device=dev, class_weights=class_weights
    )
    results, seconds = run_metrics(registry, chosen, samples, data, labels)
    info = {
        "checkpoint": str(loaded.path),
        "step": loaded.metadata.get("step"),
        "generator": "moving average" if loaded.averaged else "raw",
        "n": n,
        "seed": seed,
    }
    return Evaluation(results, seconds, str(source), info, loaded.skipped)


def evaluate_real(
    registry: Registry,
    preset: str,
    *,
    metrics: list[str] | None = None,
    n: int = 10000,
    data_dir: str | None = None,
) -> Evaluation:
    """The reference row: the first ``n`` training images of a preset's dataset, scored like G's samples.

    Every metric compares its samples with the test set, so real training images
    show what a perfect generator would score (and a kernel estimate keeps a fair footing:
    its kernel centres are not the images it scores).
    """
    if n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    config = resolve(registry, preset=preset)
    chosen = _metric_settings(config, metrics)
    data = run_dataset(registry, config, data_dir)
    if n > len(data.train):
        raise ConfigError(f"--n {n} is more than the {len(data.train)} training images")
    samples = data.decode(data.train[:n])
    labels = None if data.train_labels is None else data.train_labels[:n]
    results, seconds = run_metrics(registry, chosen, samples, data, labels)
    info = {"real": f"{data.name} train[0:{n}]", "n": n}
    return Evaluation(results, seconds, f"real:{preset}", info)


def eval_file_for(source: str | Path) -> Path | None:
    """Where eval.json goes: the run folder of a run or of a checkpoint inside one."""
    path = Path(source)
    if path.is_dir():
        return path / EVAL_NAME
    if path.parent.name == "checkpoints":
        return path.parent.parent / EVAL_NAME
    return None


def save_evaluation(evaluation: Evaluation, path: Path) -> None:
    write_json_atomic(path, evaluation.as_json())
