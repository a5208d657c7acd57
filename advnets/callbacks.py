"""The built-in callbacks: the metrics log, fixed-noise sample grids, checkpoints, evaluation.

Each writes into the trainer's ``run_dir``; none changes what training computes
(sampling and evaluation use private random streams).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .checkpoint import BEST_NAME, checkpoint_name, prune_step_checkpoints, run_id_of, save_checkpoint
from .data import is_finite_number, to_unit
from .metrics import Metric, declared_all, score
from .files import check_file_slot, check_folder_slot, write_rendered
from .errors import AdvnetsError, ConfigError, WriteError, writing
from .players import call, row_labels
from .trainer import AdversarialTrainer, Callback, draw_noise, eval_mode


def _check_interval(owner: str, every_epochs: int, every_steps: int) -> None:
    if every_epochs < 0 or every_steps < 0:
        raise ConfigError(f"{owner}: every_epochs and every_steps must be >= 0 (0 turns one off)")


class Interval:
    """Fires every N epochs and/or every M steps (0 turns either off)."""

    def __init__(self, every_epochs: int, every_steps: int) -> None:
        self.every_epochs, self.every_steps = every_epochs, every_steps

    def at_step(self, trainer: AdversarialTrainer) -> bool:
        return self.every_steps > 0 and trainer.step % self.every_steps == 0

    def at_epoch(self, trainer: AdversarialTrainer) -> bool:
        return self.every_epochs > 0 and trainer.epoch % self.every_epochs == 0


def save_grid(samples: Tensor, model_range: Any, path: Path, nrow: int = 8) -> Tensor:
    """Image samples in model space to a PNG grid on the [0, 1] scale; returns the grid (C, H, W)."""
    from torchvision.utils import make_grid, save_image

    grid = make_grid(to_unit(samples.detach().float().cpu(), model_range), nrow=nrow, padding=2)
    write_rendered(path, lambda f, fmt: save_image(grid, f, format=fmt), "a sample grid")
    return grid


class SampleGrid(Callback):
    """A grid of G's samples from the same fixed noise at each interval, ``samples/step_*.png``.

    For a conditional G the grid has one row of ``nrow`` samples per class.
    """

    def __init__(self, n: int = 64, nrow: int = 8, every_epochs: int = 1, every_steps: int = 0) -> None:
        if n < 1 or nrow < 1:
            raise ConfigError("sample-grid: n and nrow must be >= 1")
        _check_interval("sample-grid", every_epochs, every_steps)
        self.n, self.nrow = n, nrow
        self.interval = Interval(every_epochs, every_steps)
        self._z: Tensor | None = None
        self._labels: Tensor | None = None
        self._last_step = -1

    def check(self, trainer: AdversarialTrainer) -> None:
        if not trainer.data.is_image:
            raise ConfigError(
                f"sample-grid needs image data (C, H, W) with a value range; dataset "
                f"{trainer.data.name!r} gives samples of shape {trainer.data.sample_shape}"
            )
        check_folder_slot(trainer.require_run_dir("sample-grid") / "samples", "the sample grids")

    def on_fit_start(self, trainer: AdversarialTrainer) -> None:
        folder = trainer.require_run_dir("sample-grid") / "samples"
        with writing(folder, "the sample grids' folder"):
            folder.mkdir(exist_ok=True)
        # Fixed noise, drawn on the CPU from the run's seed: the same grid positions on any device.
        rng = torch.Generator().manual_seed(trainer.seed)
        n = self.n
        if trainer.conditional:  # one row per class
            n = trainer.generator.num_classes * self.nrow
            self._labels = row_labels(n, self.nrow, trainer.generator.num_classes, trainer.device)
        self._z = draw_noise(n, trainer.latent_dim, trainer.noise, rng, torch.device("cpu")).to(trainer.device)
        if trainer.step == 0:
            self._save(trainer)

    def _save(self, trainer: AdversarialTrainer) -> None:
        if trainer.step == self._last_step:
            return
        with eval_mode(trainer.sampling_generator) as generator, torch.no_grad():
            samples = call(generator, self._z, self._labels)
        path = trainer.run_dir / "samples" / f"step_{trainer.step:09d}.png"
        with writing(path, "a sample grid"):
            grid = save_grid(samples, trainer.data.model_range, path, self.nrow)
        trainer.log_image("samples", grid)
        self._last_step = trainer.step

    def on_step_end(self, trainer: AdversarialTrainer) -> None:
        if self.interval.at_step(trainer):
            self._save(trainer)

    def on_epoch_end(self, trainer: AdversarialTrainer) -> None:
        if self.interval.at_epoch(trainer):
            self._save(trainer)

    def on_fit_end(self, trainer: AdversarialTrainer) -> None:
        self._save(trainer)


class Checkpointer(Callback):
    """Saves the trainer's whole state at each interval and at the end; keeps this run's newest ``keep``."""

    def __init__(self, every_epochs: int = 1, every_steps: int = 0, keep: int = 3) -> None:
        _check_interval("checkpoint", every_epochs, every_steps)
        if keep < 1:
            raise ConfigError(f"checkpoint.keep must be >= 1, got {keep}")
        self.interval = Interval(every_epochs, every_steps)
        self.keep = keep
        self.last_path: Path | None = None

    @staticmethod
    def folder(trainer: AdversarialTrainer) -> Path:
        return trainer.require_run_dir("checkpointing") / "checkpoints"

    def check(self, trainer: AdversarialTrainer) -> None:
        check_folder_slot(self.folder(trainer), "the checkpoints")

    def on_fit_start(self, trainer: AdversarialTrainer) -> None:
        with writing(self.folder(trainer), "the checkpoints' folder"):
            self.folder(trainer).mkdir(exist_ok=True)

    def save(self, trainer: AdversarialTrainer, name: str | None = None) -> Path:
        path = self.folder(trainer) / (name or checkpoint_name(trainer.step))
        metadata = {**trainer.metadata, "step": trainer.step}
        save_checkpoint(path, trainer.state_dict(), metadata)
        if name is None:
            self.last_path = path
            prune_step_checkpoints(path.parent, path, self.keep, run_id_of(metadata))
        return path

    def on_step_end(self, trainer: AdversarialTrainer) -> None:
        if self.interval.at_step(trainer):
            self.save(trainer)

    def on_epoch_end(self, trainer: AdversarialTrainer) -> None:
        if self.interval.at_epoch(trainer) and self.last_path != self.folder(trainer) / checkpoint_name(trainer.step):
            self.save(trainer)

    def on_fit_end(self, trainer: AdversarialTrainer) -> None:
        if self.last_path is None or self.last_path.name != checkpoint_name(trainer.step):
            self.save(trainer)


class Evaluate(Callback):
    """Runs metrics on ``n_samples`` of G at each interval and at the end; logs them as ``eval`` records.

    With ``best`` set to one of the reported numbers, keeps ``checkpoints/best.safetensors``
    for the best value seen: the higher or the lower one, as the metric that reports it
    declares (``mode``: ``min`` or ``max`` says it instead). ``at_end=False`` skips the
    closing evaluation. Before each metric runs, every callback with an
    ``on_evaluating(trainer, metric)`` method hears its name (the progress display shows it).
    """

    def __init__(
        self,
        metrics: Mapping[str, Metric],
        *,
        n_samples: int = 10000,
        seed: int = 0,
        every_epochs: int = 1,
        every_steps: int = 0,
        best: str | None = None,
        mode: str | None = None,
        at_end: bool = True,
        checkpointer: Checkpointer | None = None,
    ) -> None:
        _check_interval("eval", every_epochs, every_steps)
        if n_samples < 1:
            raise ConfigError(f"eval.n_samples must be >= 1, got {n_samples}")
        if mode not in (None, "min", "max"):
            raise ConfigError(f"eval.mode must be min, max or null (the metric's own direction), got {mode!r}")
        if best is not None and checkpointer is None:
            raise ConfigError("eval.best keeps a best checkpoint: it needs checkpointing on")
        self.metrics = dict(metrics)
        self.declared = declared_all(self.metrics)
        if best is not None and mode is None:
            mode = self.declared.directions.get(best)
        self.n_samples, self.seed = n_samples, seed
        self.interval = Interval(every_epochs, every_steps)
        self.best, self.mode, self.checkpointer = best, mode, checkpointer
        self.at_end = at_end
        self.best_value: float | None = None
        self._last_step = -1

    def evaluate(self, trainer: AdversarialTrainer, n: int | None = None) -> dict[str, float]:
        """The metrics on n samples (default ``n_samples``), with their labels for a conditional G."""
        samples, labels = trainer.sample_labelled(n or self.n_samples, seed=self.seed)
        results: dict[str, float] = {}
        for name, metric in self.metrics.items():
            for callback in trainer.callbacks:
                if hasattr(callback, "on_evaluating"):
                    callback.on_evaluating(trainer, name)
            results.update(score({name: metric}, samples, trainer.data, labels)[0])
        return results

    def check(self, trainer: AdversarialTrainer) -> None:
        """Score a handful of samples now, so that a metric that cannot work fails before training."""
        if not (self.at_end or self.interval.every_epochs or self.interval.every_steps):
            return  # evaluation is off (advnets run --no-eval): the metrics never run
        samples, labels = trainer.sample_labelled(min(self.n_samples, 64), seed=self.seed)
        results = score(self.metrics, samples, trainer.data, labels)[0]
        if self.best is not None and self.best not in results:
            raise ConfigError(f"eval.best is {self.best!r}, but the metrics report only {', '.join(results)}")
        if self.best is not None and self.mode is None:
            raise ConfigError(f"eval.best is {self.best!r}, and no metric says which way it is better: set eval.mode to min or max")

    def describe(self, trainer: AdversarialTrainer) -> dict[str, dict[str, Any]]:
        """Which way each reported number is better, and the headline ones (what the metrics declare, and eval.mode)."""
        described = self.declared.as_json()
        if self.best is not None and self.mode is not None:
            described[self.best] = {**described.get(self.best, {"headline": False}), "direction": self.mode}
        return described

    def _run(self, trainer: AdversarialTrainer) -> None:
        if trainer.step == self._last_step:
            return
        self._last_step = trainer.step
        results = self.evaluate(trainer)
        trainer.log({"event": "eval", "step": trainer.step, "epoch": round(trainer.epoch_progress, 4), **results})
        if self.best is None:
            return
        value = results[self.best]
        better = self.best_value is None or (value < self.best_value if self.mode == "min" else value > self.best_value)
        if better and math.isfinite(value):
            self.best_value = value
            self.checkpointer.save(trainer, BEST_NAME)

    def on_step_end(self, trainer: AdversarialTrainer) -> None:
        if self.interval.at_step(trainer):
            self._run(trainer)

    def on_epoch_end(self, trainer: AdversarialTrainer) -> None:
        if self.interval.at_epoch(trainer):
            self._run(trainer)

    def on_fit_end(self, trainer: AdversarialTrainer) -> None:
        if self.at_end and not trainer.should_stop:  # interrupted or faulted: leave quickly
            self._run(trainer)

    def state_dict(self) -> dict[str, Any] | None:
        return {"best_value": self.best_value}

    def check_state(self, state: dict[str, Any]) -> None:
        value = state.get("best_value")
        if value is not None and not is_finite_number(value):
            raise ValueError(f"best_value must be a finite number or null, found {value!r}")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_value = state.get("best_value")


class TrainingPlots(Callback):
    """At the end of a run: training.png (losses and D's outputs over the steps) and samples.gif."""

    def check(self, trainer: AdversarialTrainer) -> None:
        run_dir = trainer.require_run_dir("the training plots")
        check_file_slot(run_dir / "training.png", "the training plot")
        check_file_slot(run_dir / "samples.gif", "the animation of the sample grids")

    def on_fit_end(self, trainer: AdversarialTrainer) -> None:
        """Damaged side files (a line of metrics.jsonl or a grid cut short) are left out, with a note on stderr."""
        from .plots import plot_run

        run_dir = trainer.require_run_dir("the training plots")
        notes: list[str] = []
        try:
            with writing(run_dir / "training.png", "the training plots"):
                plot_run(run_dir, getattr(trainer.loss, "equilibrium", None), notes=notes)
        except WriteError:
            raise
        except AdvnetsError:  # nothing logged yet: no picture, and no reason to fail the run
            pass
        for note in notes:
            print(note, file=sys.stderr)


class WeightClip(Callback):
    """Clamp a player's weights to [-clip, clip] after each of its optimiser steps (WGAN, Arjovsky et al. 2017).

    The original Wasserstein GAN keeps its critic Lipschitz this way; use it with
    ``--set loss=wasserstein --set loss.gradient_penalty=0`` (and RMSprop, as the
    paper did). It runs in the ``on_after_optimizer_step`` hook, so a skipped
    update clips nothing.
    """

    def __init__(self, clip: float = 0.01, player: str = "discriminator") -> None:
        if not clip > 0:
            raise ConfigError(f"weight-clip: clip must be > 0, got {clip}")
        self.clip, self.player = clip, player
        self.all_ranks = True  # every rank clips its own copy, or the copies drift apart

    def check(self, trainer: AdversarialTrainer) -> None:
        if self.player not in trainer.players:
            raise ConfigError(f"weight-clip: no player {self.player!r}; the players are {', '.join(trainer.players)}")

    def on_after_optimizer_step(self, trainer: AdversarialTrainer, player: str) -> None:
        if player == self.player:
            with torch.no_grad():
                torch._foreach_clamp_min_(trainer.players[player].params, -self.clip)
                torch._foreach_clamp_max_(trainer.players[player].params, self.clip)
