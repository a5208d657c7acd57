"""Objectives: the body of a training step, as a component of kind ``objective``.

The trainer owns the clock (steps, epochs), the players' optimisers, devices,
precision, the NaN guard and the callbacks. An objective owns what one step
*does*: which batches and noise it draws, which passes it makes, and which
losses it asks the trainer to descend, for which players, in which order. It
sees the run through a :class:`StepContext`:

    def step(self, ctx):
        batch = ctx.batch()                       # Batch(x, labels) from the data
        z = ctx.noise(len(batch))                 # z ~ p_z
        loss = ...                                # any passes through ctx.players
        ctx.update("discriminator", loss)         # backward, guard, hooks, optimiser step
        return {"d_loss": loss.detach()}          # diagnostics: 0-d tensors, read only when logged

``update`` may name several players (``ctx.update(("generator", "encoder"), loss)``):
one backward pass, then each player's optimiser steps. The diagnostics a step
returns are averaged over the steps between log records, never read on the host
in between. ``diagnostics()`` says what they mean and where their equilibrium
lies, so that displays draw a reference line only where there is one.

The built-in :class:`GANObjective` is Algorithm 1 of Goodfellow et al. (2014).
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .errors import ConfigError
from .losses import GANLoss
from .players import call, is_conditional
from .sources import Batch

if TYPE_CHECKING:
    from .players import Players
    from .trainer import AdversarialTrainer


@dataclasses.dataclass(frozen=True)
class Diagnostic:
    """What one diagnostic number means: a label for plots and where the game's equilibrium puts it."""

    label: str
    equilibrium: float | None = None
    panel: str = "losses"
    """Which plot panel it belongs to: ``losses``, ``outputs`` (D's outputs) or ``norms``."""

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class StepContext:
    """What an objective may use during a step: data, noise, players, the loss, and updates."""

    def __init__(self, trainer: AdversarialTrainer) -> None:
        self._trainer = trainer

    @property
    def step(self) -> int:
        """Steps done before this one (0 in the first step)."""
        return self._trainer.step

    @property
    def players(self) -> Players:
        return self._trainer.players

    @property
    def loss(self) -> GANLoss:
        return self._trainer.loss

    @property
    def k(self) -> int:
        """Discriminator updates per generator update at this step (Algorithm 1's k)."""
        return self._trainer.k_at(self._trainer.step)

    @property
    def device(self) -> torch.device:
        return self._trainer.device

    @property
    def nan_guard(self) -> bool:
        """True if updates are checked (and their gradient norms measured); report norms only then."""
        return self._trainer.nan_guard

    def batch(self) -> Batch:
        """The next real minibatch of this epoch (this rank's share of it under torchrun)."""
        return self._trainer.source.next()

    def noise(self, n: int | None = None) -> Tensor:
        """Fresh z ~ p_z for n samples (default: the batch size); this rank's slice under torchrun."""
        return self._trainer.draw_noise(n)

    def fake_labels(self, n: int | None = None) -> Tensor:
        """Class labels for G's samples, drawn from the training set's class frequencies."""
        return self._trainer.draw_labels(n)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The run's precision for forward passes (losses are then computed in float32)."""
        return self._trainer.autocast()

    def update(self, players: str | tuple[str, ...], loss: Tensor) -> Tensor:
        """Descend ``loss`` for these players: backward, NaN guard, hooks, optimiser step(s).

        Only the named players' parameters receive gradients. Returns the gradient
        norm over their parameters (a 0-d tensor on the device; zero when the NaN
        guard is off). A skipped update leaves parameters and optimiser states as
        they were.
        """
        names = (players,) if isinstance(players, str) else tuple(players)
        if not (isinstance(loss, Tensor) and loss.numel() == 1 and loss.dtype.is_floating_point):  # shapes: no sync
            got = f"a {loss.dtype} tensor of shape {tuple(loss.shape)}" if isinstance(loss, Tensor) else f"a {type(loss).__name__}"
            raise ConfigError(
                f"the loss for {' and '.join(names)}'s update is {got}; it must be one number as a float tensor "
                "(a mean over the batch: the loss's discriminator_loss or generator_loss, or the objective, returned it)"
            )
        return self._trainer.update(names, loss)


class Objective:
    """The body of a training step. Subclass it and register a factory of kind ``objective``.

    ``players`` names the players the objective needs beyond none: the run must
    have each of them. ``batches_per_step`` says how many real batches the step at
    a given step number draws (the trainer ends an epoch before a step would run
    short). ``check`` runs once the trainer is built, before anything is written.
    """

    players: tuple[str, ...] = ("generator", "discriminator")

    capturable: bool = False
    """True if a step can be captured in a CUDA graph (:mod:`advnets.graphs`) and replayed: its
    work may depend on the batches, the noise, the players' tensors, ``ctx.k`` and the
    optimisers' settings, but on no other Python number that changes from step to step
    (``ctx.step`` included), and it reads no value on the host."""

    def batches_per_step(self, step: int, trainer: AdversarialTrainer) -> int:
        return 1

    def check(self, trainer: AdversarialTrainer) -> None: ...

    def diagnostics(self, trainer: AdversarialTrainer) -> dict[str, Diagnostic]:
        """The numbers ``step`` returns, with their meaning (shown in progress, metrics.jsonl and plots)."""
        return {}

    def step(self, ctx: StepContext) -> dict[str, Tensor]:
        raise NotImplementedError


class GANObjective(Objective):
    """Algorithm 1: k discriminator updates on fresh batches and noise, then one generator update.

    With a discriminator whose outputs do not couple the samples of a batch, real
    and fake go through D in one pass (``joint_d_forward``): the same maths at half
    the kernel launches. Labels, when the data and G have them, go to G and D
    (a conditional GAN, the paper's section 7).
    """

    capturable = True

    def __init__(self, joint_d_forward: bool | None = None) -> None:
        self.joint_d_forward = joint_d_forward

    def batches_per_step(self, step: int, trainer: AdversarialTrainer) -> int:
        return trainer.k_at(step)

    def check(self, trainer: AdversarialTrainer) -> None:
        from .trainer import has_batch_coupling

        discriminator = trainer.players.discriminator.module
        if self.joint_d_forward is None:
            self.joint_d_forward = not has_batch_coupling(discriminator)
        if trainer.world_size > 1 and not self.joint_d_forward:  # DDP reduces once per forward pass
            raise ConfigError("under torchrun the discriminator must see real and fake in one pass (no batch norm in D)")
        self.conditional = is_conditional(trainer.players.generator.module)
        if self.conditional and not trainer.data.labelled:
            raise ConfigError(
                f"the generator is conditional (num_classes {trainer.players.generator.module.num_classes}), but "
                f"dataset {trainer.data.name!r} has no labels"
            )
        if self.conditional != is_conditional(discriminator):
            which = "generator" if self.conditional else "discriminator"
            raise ConfigError(f"only the {which} is conditional: a conditional GAN gives labels to both G and D")
        if self.conditional and trainer.players.generator.module.num_classes != trainer.data.num_classes:
            raise ConfigError(
                f"the generator has {trainer.players.generator.module.num_classes} classes, "
                f"dataset {trainer.data.name!r} has {trainer.data.num_classes}"
            )
        self._dry_pass(trainer)

    def _dry_pass(self, trainer: AdversarialTrainer) -> None:
        """One forward pass of G and D on two samples, before anything is written: shapes that do
        not fit fail here with one line, not steps later. Eval mode and no gradients: no batch-norm
        statistics move and no random number is drawn."""
        from .trainer import eval_mode

        generator, discriminator = trainer.players.generator.module, trainer.players.discriminator.module
        labels = torch.zeros(2, dtype=torch.int64, device=trainer.device) if self.conditional else None
        z = torch.zeros(2, trainer.latent_dim, device=trainer.device)
        with torch.no_grad(), eval_mode(generator), eval_mode(discriminator):
            fake = call(generator, z, labels)
            _check_output("generator", fake)
            shape = tuple(trainer.data.sample_shape)
            if tuple(fake.shape[1:]) != shape:
                raise ConfigError(
                    f"the generator makes samples of shape {tuple(fake.shape[1:])}, the dataset's are {shape}; "
                    "set the generator's output shape to match"
                )
            logits = call(discriminator, fake, labels)
            _check_output("discriminator", logits)
            if logits.numel() != 2:
                raise ConfigError(
                    f"the discriminator gave {tuple(logits.shape)} for 2 samples: it must return one logit per "
                    "sample, shape (n,) or (n, 1)"
                )
            _check_loss(trainer.loss)

    def diagnostics(self, trainer: AdversarialTrainer) -> dict[str, Diagnostic]:
        loss = trainer.loss
        found: dict[str, Diagnostic] = {
            "d_loss": Diagnostic("D's loss", loss.equilibrium),
            "g_loss": Diagnostic("G's loss"),
        }
        if loss.probabilities:
            # D(x) = sigmoid(logit) is a probability: at the equilibrium it is 1/2 everywhere (Theorem 1).
            found["d_real"] = Diagnostic("mean D(x)", 0.5, "outputs")
            found["d_fake"] = Diagnostic("mean D(G(z))", 0.5, "outputs")
        else:
            found["real_score"] = Diagnostic("mean score of x", loss.score_equilibrium, "outputs")
            found["fake_score"] = Diagnostic("mean score of G(z)", loss.score_equilibrium, "outputs")
        if trainer.nan_guard:  # the guard measures the gradient norms
            found["d_grad_norm"] = Diagnostic("|grad| of D", None, "norms")
            found["g_grad_norm"] = Diagnostic("|grad| of G", None, "norms")
        return found

    def _d_logits(self, ctx: StepContext, real: Tensor, fake: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor]:
        discriminator = ctx.players.discriminator
        if self.joint_d_forward:
            # One pass over [real; fake]: the same maths as two passes when no layer
            # couples samples within a batch, at half the kernel launches.
            both = None if labels is None else torch.cat((labels, labels))
            logits = call(discriminator.update_module, torch.cat((real, fake)), both).reshape(-1)
            return logits[: len(real)], logits[len(real) :]
        plain = discriminator.module
        return call(plain, real, labels).reshape(-1), call(plain, fake, labels).reshape(-1)

    def step(self, ctx: StepContext) -> dict[str, Tensor]:
        generator, discriminator, loss = ctx.players.generator, ctx.players.discriminator, ctx.loss

        # Discriminator: k updates, each ascending (1/m) sum[log D(x) + log(1 - D(G(z)))],
        # i.e. descending the loss's discriminator_loss, on a fresh real batch and
        # fresh noise. G is held fixed: its samples are made without a graph.
        for _ in range(ctx.k):
            batch = ctx.batch()
            labels = batch.labels if self.conditional else None  # G draws the batch's classes
            with ctx.autocast():
                with torch.no_grad():
                    fake = call(generator.module, ctx.noise(), labels)
                real_logits, fake_logits = self._d_logits(ctx, batch.x, fake, labels)
                critic = discriminator.module if labels is None else (lambda x: discriminator.module(x, labels))
                penalty = loss.discriminator_penalty(critic, batch.x, fake)
            # Losses in float32 whatever the precision of the passes (a no-op at 32).
            d_loss = loss.discriminator_loss(real_logits.float(), fake_logits.float())
            if penalty is not None:
                d_loss = d_loss + penalty.float()
            d_norm = ctx.update("discriminator", d_loss)

        # Generator: one update descending (1/m) sum log(1 - D(G(z))) for the minimax
        # loss, or ascending log D(G(z)) for the non-saturating one, on fresh noise.
        # Only theta_g receives gradients: D is fixed here.
        g_labels = ctx.fake_labels() if self.conditional else None
        with ctx.autocast():
            fake_logits_g = call(discriminator.module, call(generator.update_module, ctx.noise(), g_labels), g_labels)
            fake_logits_g = fake_logits_g.reshape(-1)
            real_logits_g = None
            if loss.generator_uses_real:  # relativistic losses compare with D's view of real data
                with torch.no_grad():
                    real_logits_g = call(discriminator.module, batch.x, labels).reshape(-1).float()
        if real_logits_g is None:  # the one-argument form of the first release's losses
            g_loss = loss.generator_loss(fake_logits_g.float())
        else:
            g_loss = loss.generator_loss(fake_logits_g.float(), real_logits_g)
        g_norm = ctx.update("generator", g_loss)

        with torch.no_grad():
            real_logits, fake_logits = real_logits.detach(), fake_logits.detach()
            if loss.probabilities:
                outputs = {"d_real": torch.sigmoid(real_logits).mean(), "d_fake": torch.sigmoid(fake_logits).mean()}
            else:
                outputs = {"real_score": real_logits.float().mean(), "fake_score": fake_logits.float().mean()}
        diagnostics = {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), **outputs}
        if ctx.nan_guard:
            diagnostics.update(d_grad_norm=d_norm, g_grad_norm=g_norm)
        return diagnostics


def gan() -> GANObjective:
    """Algorithm 1 (Goodfellow et al. 2014): k D updates, then one G update; labels for conditional GANs.

    Its settings are the trainer's: ``trainer.k`` and ``trainer.joint_d_forward``.
    """
    return GANObjective()


BUILTIN_OBJECTIVES = {"gan": gan}


def _check_output(player: str, output: Any) -> None:
    """What a player's forward returned is a float tensor of the data's float32 (one line, not a crash steps later)."""
    if not isinstance(output, torch.Tensor):
        raise ConfigError(f"the {player} returned {type(output).__name__}, not a tensor: its forward must return one tensor")
    if output.dtype == torch.float64 or not output.dtype.is_floating_point:
        raise ConfigError(
            f"the {player} returned a {output.dtype} tensor; the data and the other player are float32 (no .double() in the module)"
        )


def _check_loss(loss: Any) -> None:
    """The loss is a GANLoss. (What its methods return is checked at each update, from shapes alone:
    calling them here would move the state of a loss that keeps one.)"""
    if not isinstance(loss, GANLoss):
        raise ConfigError(
            f"the loss is a {type(loss).__name__}, not a GANLoss (from advnets import GANLoss): "
            "it needs discriminator_loss(real_logits, fake_logits) and generator_loss(fake_logits)"
        )
