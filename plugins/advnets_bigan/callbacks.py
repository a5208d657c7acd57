"""BiGAN's callbacks: reconstruction grids, and the 1-nearest-neighbour and linear probes of E's features.

Both need the encoder, which the metric contract (``metric(samples, data)``, G's
samples only) does not reach; a callback sees the whole trainer, players included.
The probe logs its numbers as an ``eval`` record, so they land in metrics.jsonl,
the console and every logger beside the other evaluations.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from advnets import AdversarialTrainer, Callback, Data
from advnets.errors import ConfigError
from advnets.files import check_folder_slot, write_rendered

from .probe import evaluating, features, freshly_initialised, linear_probe_accuracy, nearest_neighbour_accuracy


def _check_interval(owner: str, every_epochs: int, every_steps: int) -> None:
    if every_epochs < 0 or every_steps < 0:
        raise ConfigError(f"{owner}: every_epochs and every_steps must be >= 0 (0 turns one off)")


def _due(every: int, count: int) -> bool:
    return every > 0 and count % every == 0


def _require_encoder(trainer: AdversarialTrainer, owner: str) -> None:
    if "encoder" not in trainer.players:
        raise ConfigError(f"{owner} needs the player encoder (objective bigan); this run has {', '.join(trainer.players)}")


def to_unit(x: Tensor, data: Data) -> Tensor:
    """Model-space images on [0, 1] for display."""
    lo, hi = data.model_range
    return ((x.detach().float().cpu() - lo) / (hi - lo)).clamp_(0, 1)


class Reconstructions(Callback):
    """Real test images beside G(E(x)), in rows of pairs: ``reconstructions/step_*.png``.

    The first ``n`` test images (training images if there is no test set), with E's
    and G's moving averages where the run keeps them; at each interval and at the end.
    """

    def __init__(self, n: int = 32, pairs_per_row: int = 8, every_epochs: int = 1, every_steps: int = 0) -> None:
        if n < 1 or pairs_per_row < 1:
            raise ConfigError("bigan-reconstructions: n and pairs_per_row must be >= 1")
        _check_interval("bigan-reconstructions", every_epochs, every_steps)
        self.n, self.pairs_per_row = n, pairs_per_row
        self.every_epochs, self.every_steps = every_epochs, every_steps
        self._last_step = -1

    def check(self, trainer: AdversarialTrainer) -> None:
        _require_encoder(trainer, "bigan-reconstructions")
        if not trainer.data.is_image:
            raise ConfigError(f"bigan-reconstructions draws images; dataset {trainer.data.name!r} has shape {trainer.data.sample_shape}")
        check_folder_slot(trainer.require_run_dir("bigan-reconstructions") / "reconstructions", "the reconstruction grids")

    def on_fit_start(self, trainer: AdversarialTrainer) -> None:
        (trainer.require_run_dir("bigan-reconstructions") / "reconstructions").mkdir(exist_ok=True)
        if trainer.step == 0:
            self.save(trainer)

    def pairs(self, trainer: AdversarialTrainer) -> Tensor:
        """(2n, C, H, W) in model space: x_0, G(E(x_0)), x_1, G(E(x_1)), ..."""
        data = trainer.data
        raw = (data.test if data.test is not None else data.train)[: self.n]
        x = data.decode(raw.to(trainer.device))
        encoder = trainer.players["encoder"].sampling_module
        generator = trainer.sampling_generator
        with evaluating(encoder, generator), torch.no_grad():
            reconstructed = generator(encoder(x)).reshape(x.shape)
        return torch.stack((x, reconstructed), dim=1).flatten(0, 1)

    def save(self, trainer: AdversarialTrainer) -> None:
        from torchvision.utils import make_grid, save_image

        if trainer.step == self._last_step:
            return
        grid = make_grid(to_unit(self.pairs(trainer), trainer.data), nrow=2 * self.pairs_per_row, padding=2)
        path = trainer.run_dir / "reconstructions" / f"step_{trainer.step:09d}.png"
        write_rendered(path, lambda f, fmt: save_image(grid, f, format=fmt), "a reconstruction grid")
        trainer.log_image("reconstructions", grid)
        self._last_step = trainer.step

    def on_step_end(self, trainer: AdversarialTrainer) -> None:
        if _due(self.every_steps, trainer.step):
            self.save(trainer)

    def on_epoch_end(self, trainer: AdversarialTrainer) -> None:
        if _due(self.every_epochs, trainer.epoch):
            self.save(trainer)

    def on_fit_end(self, trainer: AdversarialTrainer) -> None:
        self.save(trainer)


CLASSIFIERS = {"nearest": "nn", "linear": "linear"}  # a classifier's name -> the prefix of its keys


class FeatureProbe(Callback):
    """Test accuracy of 1-nearest-neighbour and linear classifiers on E(x), on raw pixels and on a random E.

    Logged as an ``eval`` record at each interval and at the end of training, as
    fractions: ``nn_accuracy_encoder``, ``nn_accuracy_pixels`` and
    ``nn_accuracy_random_encoder`` for the classifier ``nearest`` (1-NN, Euclidean),
    ``linear_accuracy_*`` for ``linear`` (softmax regression on standardised
    features, ``linear_steps`` L-BFGS iterations at most with the penalty
    ``linear_l2``; see probe.py). ``classifiers`` chooses which run. The classifiers
    see the first ``n_train`` labelled training images and are scored on the first
    ``n_test`` test images. The two baselines do not change during a run: they are
    computed once. The random E has the encoder's layers, initialised afresh from
    ``seed``. An evaluation: ``advnets run --no-eval`` leaves it out.
    """

    evaluation = True

    def __init__(
        self,
        every_epochs: int = 0,
        every_steps: int = 0,
        n_train: int = 60000,
        n_test: int = 10000,
        seed: int = 0,
        classifiers: list[str] = ("nearest", "linear"),
        linear_steps: int = 100,
        linear_l2: float = 1e-4,
    ) -> None:
        _check_interval("bigan-probe", every_epochs, every_steps)
        if n_train < 1 or n_test < 1:
            raise ConfigError(f"bigan-probe: n_train and n_test must be >= 1, got {n_train} and {n_test}")
        classifiers = [classifiers] if isinstance(classifiers, str) else list(classifiers)
        known = all(isinstance(c, str) and c in CLASSIFIERS for c in classifiers)
        if not classifiers or not known or len(set(classifiers)) < len(classifiers):
            raise ConfigError(
                f"bigan-probe: classifiers must be one or more of {', '.join(map(repr, CLASSIFIERS))}, "
                f"each once; got {classifiers!r}"
            )
        if isinstance(linear_steps, bool) or not isinstance(linear_steps, int) or linear_steps < 1:
            raise ConfigError(f"bigan-probe: linear_steps must be an integer >= 1, got {linear_steps!r}")
        if isinstance(linear_l2, bool) or not isinstance(linear_l2, (int, float)) or not 0 <= linear_l2 < math.inf:
            raise ConfigError(f"bigan-probe: linear_l2 must be a finite number >= 0, got {linear_l2!r}")
        self.every_epochs, self.every_steps = every_epochs, every_steps
        self.n_train, self.n_test, self.seed = n_train, n_test, seed
        self.classifiers = classifiers
        self.linear_steps, self.linear_l2 = linear_steps, float(linear_l2)
        self._baselines: dict[str, float] = {}
        self._last_step = -1

    def check(self, trainer: AdversarialTrainer) -> None:
        _require_encoder(trainer, "bigan-probe")
        data = trainer.data
        if data.test is None or data.test_labels is None or data.train_labels is None:
            raise ConfigError(f"bigan-probe needs labelled training and test images; dataset {data.name!r} has none")

    def _accuracies(self, trainer: AdversarialTrainer, encoder: torch.nn.Module | None, row: str) -> dict[str, float]:
        """``{prefix}_accuracy_{row}`` for each chosen classifier on ``encoder``'s features (raw pixels for None)."""
        data, device = trainer.data, trainer.device
        train, test = data.train[: self.n_train], data.test[: self.n_test]
        if encoder is None:  # raw pixels, in the model's range
            train_features, test_features = data.decode(train.to(device)), data.decode(test.to(device))
        else:
            train_features, test_features = features(encoder, train, data, device), features(encoder, test, data, device)
        labels = data.train_labels[: self.n_train], data.test_labels[: self.n_test]
        found = {}
        for classifier in self.classifiers:
            if classifier == "nearest":
                accuracy = nearest_neighbour_accuracy(train_features, labels[0], test_features, labels[1])
            else:
                accuracy = linear_probe_accuracy(
                    train_features, labels[0], test_features, labels[1], steps=self.linear_steps, l2=self.linear_l2
                )
            found[f"{CLASSIFIERS[classifier]}_accuracy_{row}"] = accuracy
        return found

    def probe(self, trainer: AdversarialTrainer) -> dict[str, float]:
        encoder = trainer.players["encoder"]
        if not self._baselines:
            self._baselines = {
                **self._accuracies(trainer, None, "pixels"),
                **self._accuracies(trainer, freshly_initialised(encoder.module, self.seed), "random_encoder"),
            }
        found = {**self._accuracies(trainer, encoder.sampling_module, "encoder"), **self._baselines}
        # one classifier's three rows together, in the order of `classifiers`
        rows = ("encoder", "pixels", "random_encoder")
        keys = [f"{CLASSIFIERS[c]}_accuracy_{row}" for c in self.classifiers for row in rows]
        return {key: found[key] for key in keys}

    def describe(self, trainer: AdversarialTrainer) -> dict[str, dict[str, Any]]:
        """Every accuracy is better higher; E(x)'s are the headline numbers (the plot draws them)."""
        rows = ("encoder", "pixels", "random_encoder")
        return {
            f"{CLASSIFIERS[c]}_accuracy_{row}": {"direction": "max", "headline": row == "encoder"}
            for c in self.classifiers for row in rows
        }

    def _run(self, trainer: AdversarialTrainer) -> None:
        if trainer.step == self._last_step:
            return
        self._last_step = trainer.step
        record: dict[str, Any] = {"event": "eval", "step": trainer.step, "epoch": round(trainer.epoch_progress, 4)}
        trainer.log({**record, **self.probe(trainer)})

    def on_step_end(self, trainer: AdversarialTrainer) -> None:
        if _due(self.every_steps, trainer.step):
            self._run(trainer)

    def on_epoch_end(self, trainer: AdversarialTrainer) -> None:
        if _due(self.every_epochs, trainer.epoch):
            self._run(trainer)

    def on_fit_end(self, trainer: AdversarialTrainer) -> None:
        if not trainer.should_stop:  # interrupted or faulted: leave quickly
            self._run(trainer)
