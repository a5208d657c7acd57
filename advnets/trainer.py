"""AdversarialTrainer: Algorithm 1 of Goodfellow et al. (2014), on any device.

The trainer owns the order of updates, the optimisers, the device, the data
order, the random number generators and the step counter. The loss owns the
maths; callbacks own everything the user sees (logs, grids, checkpoints). The
trainer itself prints nothing.

One training *step* is one iteration of Algorithm 1's outer loop: k updates of
the discriminator, each on a fresh real minibatch and fresh noise, then one
update of the generator on fresh noise. An *epoch* is one pass over a fresh
random order of the training set, counted in real minibatches, so with k > 1 an
epoch has fewer steps.
"""

from __future__ import annotations

import contextlib
import copy
import math
import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from . import distributed, failpoints
from .data import Data
from .errors import ConfigError
from .losses import GANLoss
from .optim import OptimizerMaker, adam

NOISE_KINDS = ("normal", "uniform")
LR_SCHEDULES = ("constant", "linear", "cosine")
PRECISIONS = ("32", "bf16", "16")
"""float32; bfloat16 autocast (CPU and CUDA); float16 autocast with gradient scaling (CUDA)."""
STAT_NAMES = ("d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm")
"""Running means kept on the device: both losses, mean D(x) and mean D(G(z)) (of the last D update
of each step), and both players' gradient norms (measured by the NaN guard)."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; anything else must be available."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but CUDA is not available here")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r} asked for, but MPS is not available here")
    return resolved


def draw_noise(
    n: int, latent_dim: int, kind: str, generator: torch.Generator, device: torch.device
) -> Tensor:
    """z ~ p_z: standard normal, or uniform on [-1, 1] (the paper's Figure 1 draws z uniformly)."""
    if kind == "normal":
        return torch.randn(n, latent_dim, generator=generator, device=device)
    return torch.rand(n, latent_dim, generator=generator, device=device).mul_(2).sub_(1)


def latent_dim_of(generator: nn.Module) -> int:
    latent_dim = getattr(generator, "latent_dim", None)
    if not isinstance(latent_dim, int) or isinstance(latent_dim, bool) or latent_dim < 1:
        raise ConfigError(
            f"generator {type(generator).__name__} must have a positive integer attribute latent_dim "
            f"(the size of z), found {latent_dim!r}"
        )
    return latent_dim


@contextlib.contextmanager
def eval_mode(module: nn.Module):
    """``module`` in eval mode (no dropout, running batch-norm statistics) for the block, then as it was."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


@torch.no_grad()
def generate(
    generator: nn.Module,
    n: int,
    *,
    noise: str = "normal",
    seed: int | None = None,
    device: torch.device | None = None,
    chunk: int = 1000,
) -> Tensor:
    """n samples of G in eval mode, from a private RNG (training's RNG streams are untouched)."""
    device = device or next(generator.parameters()).device
    rng = torch.Generator(device=device)
    rng.manual_seed(secrets.randbits(63) if seed is None else seed)
    latent_dim = latent_dim_of(generator)
    with eval_mode(generator):
        return torch.cat(
            [generator(draw_noise(min(chunk, n - i), latent_dim, noise, rng, device)) for i in range(0, n, chunk)]
        )


def has_batch_coupling(module: nn.Module) -> bool:
    """True if a sample's output can depend on the rest of its batch (batch norm and the like).

    Such a discriminator must see real and fake minibatches separately; others can
    take both in one forward pass. A module can declare ``batch_coupled = True``.
    """
    return any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) or getattr(m, "batch_coupled", False)
        for m in module.modules()
    )


class Callback:
    """Hooks the trainer calls; override the ones you need.

    ``check`` runs when the trainer is built, before anything is written: raise a
    ConfigError there for settings that cannot work (so a run fails at once, not
    hours in). A callback that keeps state across a resume returns it from
    ``state_dict`` (tensors and JSON-able values) and takes it back in
    ``load_state_dict``. Under torchrun callbacks run on rank 0 only, unless they
    set ``all_ranks = True``.
    """

    def check(self, trainer: AdversarialTrainer) -> None: ...

    def on_fit_start(self, trainer: AdversarialTrainer) -> None: ...

    def on_step_end(self, trainer: AdversarialTrainer) -> None: ...

    def on_epoch_end(self, trainer: AdversarialTrainer) -> None: ...

    def on_fit_end(self, trainer: AdversarialTrainer) -> None: ...

    def on_log(self, trainer: AdversarialTrainer, record: dict[str, Any]) -> None:
        """A record for the logs: training statistics every ``log_every`` steps, or an evaluation."""

    def on_image(self, trainer: AdversarialTrainer, tag: str, image: Tensor) -> None:
        """A picture for the logs (C, H, W on [0, 1]): the fixed-noise sample grid, say."""

    def state_dict(self) -> dict[str, Any] | None:
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class AdversarialTrainer:
    """Plays the minimax game between a generator and a discriminator (Algorithm 1).

    Args:
        generator: maps z of shape (n, ``generator.latent_dim``) to samples shaped like the data.
        discriminator: maps samples to logits of shape (n,) or (n, 1); D(x) = sigmoid(logit).
        loss: the value function (see :mod:`advnets.losses`).
        data: the training set as tensors (see :class:`advnets.data.Data`).
        g_optimizer, d_optimizer: makers ``params -> Optimizer`` (default: Adam, lr 2e-4).
        batch_size: m, the minibatch size, for real and for fake samples alike.
        k: discriminator updates per generator update; the paper uses k = 1.
        noise: p_z, ``normal`` or ``uniform`` (on [-1, 1]).
        device: ``auto`` (cuda, then mps, then cpu), or a torch device string.
        seed: seeds the noise and data-order streams; model weights are seeded by whoever builds them.
        callbacks: objects with the :class:`Callback` hooks.
        log_every: steps between training records (mean losses, D outputs, samples/s) sent to ``on_log``.
        run_dir: the folder callbacks write into (samples, checkpoints); None for none.
        metadata: JSON-able facts about the run that checkpoints carry (the CLI puts the config here).
        joint_d_forward: run D once on real and fake concatenated; ``None`` decides from D's layers.
        ema_decay: keep an exponential moving average of G's weights with this decay (0: off);
            sampling and evaluation then use the average, which is usually much better than the last G.
        ema_start: the step from which the average starts (before it, the average copies G).
        precision: ``32``; ``bf16`` (autocast to bfloat16 for the passes, losses and
            weights in float32); ``16`` (float16 autocast with gradient scaling, CUDA only).
        nan_guard: check every update's loss and gradients; skip the ones that are not finite.
        max_bad_steps: stop (``fault`` says why) after this many steps in a row had a skipped update.
        lr_schedule: ``constant``, or both players' learning rates decayed towards 0 over the steps
            up to the end of ``fit``, ``linear``ly or along a half ``cosine``; a function of the
            step, so a resumed run follows the same schedule.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: GANLoss,
        data: Data,
        *,
        g_optimizer: OptimizerMaker | None = None,
        d_optimizer: OptimizerMaker | None = None,
        batch_size: int = 64,
        k: int = 1,
        noise: str = "normal",
        device: str | torch.device = "auto",
        seed: int | None = None,
        callbacks: Iterable[Callback] = (),
        log_every: int = 100,
        run_dir: str | Path | None = None,
        metadata: dict[str, Any] | None = None,
        joint_d_forward: bool | None = None,
        ema_decay: float = 0.0,
        ema_start: int = 0,
        precision: str = "32",
        nan_guard: bool = True,
        max_bad_steps: int = 10,
        lr_schedule: str = "constant",
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if k < 1:
            raise ConfigError(f"k (discriminator steps per generator step) must be >= 1, got {k}")
        if not 0 <= ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1), got {ema_decay}")
        if ema_start < 0:
            raise ConfigError(f"ema_start must be >= 0, got {ema_start}")
        if max_bad_steps < 1:
            raise ConfigError(f"max_bad_steps must be >= 1, got {max_bad_steps}")
        if log_every < 1:
            raise ConfigError(f"log_every must be >= 1, got {log_every}")
        if lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {lr_schedule!r}")
        if noise not in NOISE_KINDS:
            raise ConfigError(f"noise must be one of {', '.join(NOISE_KINDS)}, got {noise!r}")
        self.device = resolve_device(device)
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if precision == "16" and self.device.type != "cuda":
            raise ConfigError(f"precision 16 (float16 with gradient scaling) needs CUDA; on {self.device.type} use bf16")
        self.precision = precision
        self._autocast_dtype = {"bf16": torch.bfloat16, "16": torch.float16}.get(precision)
        # float16 gradients can underflow: scale the losses, one scaler per player.
        self._scalers = (
            (torch.amp.GradScaler("cuda"), torch.amp.GradScaler("cuda")) if precision == "16" else (None, None)
        )
        self.generator = generator.to(self.device)
        self.discriminator = discriminator.to(self.device)
        self.latent_dim = latent_dim_of(generator)
        self.loss = loss
        self.data = data
        self.batch_size = batch_size
        self.k = k
        self.noise = noise
        self.seed = secrets.randbits(63) if seed is None else seed

        # Under torchrun, each of world_size processes takes its shard of every
        # global minibatch of world_size * batch_size samples.
        self.world_size, self.rank = distributed.world_size(), distributed.rank()

        # Data lives on the device; batches are drawn by index there.
        self._train = data.train.to(self.device)
        self.batches_per_epoch = len(self._train) // (batch_size * self.world_size)
        self.steps_per_epoch = self.batches_per_epoch // k
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"the training set has {len(self._train)} samples, fewer than one step needs "
                f"(k * batch_size * processes = {k * batch_size * self.world_size})"
            )

        default = adam(lr=2e-4, betas=(0.5, 0.999))
        self._g_params = [p for p in self.generator.parameters() if p.requires_grad]
        self._d_params = [p for p in self.discriminator.parameters() if p.requires_grad]
        self.g_optimizer = (g_optimizer or default)(self._g_params)
        self.d_optimizer = (d_optimizer or default)(self._d_params)
        self.lr_schedule = lr_schedule
        self._base_lrs = [[group["lr"] for group in opt.param_groups] for opt in (self.g_optimizer, self.d_optimizer)]
        # The modules whose updates average gradients over ranks: DDP wrappers under
        # torchrun, the modules themselves otherwise. Passes that must not start a
        # gradient reduction (G's samples for D's update, D inside G's update, the
        # gradient penalty, sampling) use the plain modules.
        self._g_update, self._d_update = self.generator, self.discriminator
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self._g_update = DistributedDataParallel(self.generator, device_ids=ids)
            self._d_update = DistributedDataParallel(self.discriminator, device_ids=ids)

        # Separate random streams for noise and for the data order, so that sampling and
        # evaluation in callbacks never shift what training sees. Both are the same on
        # every rank: ranks take different slices of what they draw.
        self._noise_rng = torch.Generator(device=self.device)
        self._noise_rng.manual_seed(self.seed + 1)
        self._data_rng = torch.Generator(device=self.device)
        self._data_rng.manual_seed(self.seed + 2)

        self.step = 0  # generator updates done: Algorithm 1's outer iterations
        self.epoch = 0  # complete passes over the training set
        self._cursor = 0  # real minibatches drawn in the current epoch
        self._order: Tensor | None = None  # this epoch's permutation of the training set
        self._stats = torch.zeros(len(STAT_NAMES), device=self.device)
        self._stats_steps = 0  # applied steps in the running sums
        self._zero = torch.zeros((), device=self.device)
        # The NaN guard: skip updates with non-finite losses or gradients; stop after
        # max_bad_steps steps in a row had one.
        self.nan_guard, self.max_bad_steps = nan_guard, max_bad_steps
        self._skipped = 0  # steps with a skipped update since the last record
        self._bad_run = 0  # such steps in a row, up to now
        self.fault: str | None = None
        self.target_step = 0
        self.should_stop = False
        self.joint_d_forward = (
            not has_batch_coupling(self.discriminator) if joint_d_forward is None else joint_d_forward
        )
        if self.world_size > 1 and not self.joint_d_forward:  # DDP reduces once per forward pass
            raise ConfigError("under torchrun the discriminator must see real and fake in one pass (no batch norm in D)")
        # G's exponential moving average: a copy that tracks G slowly (sampling uses it).
        self.ema_decay, self.ema_start = ema_decay, ema_start
        self.generator_ema: nn.Module | None = None
        if ema_decay > 0:
            self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False).eval()
            trained = [p.requires_grad for p in self.generator.parameters()]  # frozen ones never move
            averaged = [q for q, t in zip(self.generator_ema.parameters(), trained) if t]
            self._ema_pairs = (averaged, self._g_params)
        self.callbacks: list[Callback] = list(callbacks)
        self.log_every = log_every
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.metadata: dict[str, Any] = {
            "data": data.info(),
            "noise": noise,
            "latent_dim": self.latent_dim,
            "world_size": self.world_size,
            **(metadata or {}),
        }
        self._clock: tuple[float, int] = (time.perf_counter(), 0)  # (time, step) at the last record
        for callback in self.callbacks:
            callback.check(self)

    def require_run_dir(self, who: str) -> Path:
        """The run folder, for a callback that writes files; a clear error if there is none."""
        if self.run_dir is None:
            raise ConfigError(f"{who} writes files: give the trainer a run_dir")
        return self.run_dir

    # --- data and noise -------------------------------------------------------

    def _next_real_batch(self) -> Tensor:
        """x(1..m) ~ p_data: the next minibatch of this epoch's random order."""
        if self._order is None:
            self._order = torch.randperm(len(self._train), generator=self._data_rng, device=self.device)
        start = (self._cursor * self.world_size + self.rank) * self.batch_size
        self._cursor += 1
        return self.data.decode(torch.index_select(self._train, 0, self._order[start : start + self.batch_size]))

    def _noise(self) -> Tensor:
        """z(1..m) ~ p_z, fresh for every update; under torchrun, this rank's slice of the global batch's noise."""
        z = draw_noise(self.batch_size * self.world_size, self.latent_dim, self.noise, self._noise_rng, self.device)
        return z if self.world_size == 1 else z[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]

    def _d_logits(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        if self.joint_d_forward:
            # One pass over [real; fake]: the same maths as two passes when no layer
            # couples samples within a batch, at half the kernel launches.
            logits = self._d_update(torch.cat((real, fake))).reshape(-1)
            return logits[: len(real)], logits[len(real) :]
        return self.discriminator(real).reshape(-1), self.discriminator(fake).reshape(-1)

    # --- Algorithm 1 ------------------------------------------------------------

    def train_step(self) -> bool:
        """One iteration of Algorithm 1: k discriminator updates, then one generator update.

        Advances the step counter; returns True if this step finished an epoch.
        """
        generator, discriminator, loss = self.generator, self.discriminator, self.loss
        d_scaler, g_scaler = self._scalers
        if self.lr_schedule != "constant":
            self._set_learning_rates()

        # Discriminator: k steps, each ascending (1/m) sum[log D(x) + log(1 - D(G(z)))],
        # i.e. descending the loss's discriminator_loss. G is held fixed: its samples
        # are made without a graph, so no gradient reaches theta_g.
        applied = True
        for _ in range(self.k):
            real = self._next_real_batch()
            with self._autocast():
                with torch.no_grad():
                    fake = generator(self._noise())
                real_logits, fake_logits = self._d_logits(real, fake)
                penalty = loss.discriminator_penalty(discriminator, real, fake)
            # Losses in float32 whatever the precision of the passes (a no-op at 32).
            d_loss = loss.discriminator_loss(real_logits.float(), fake_logits.float())
            if penalty is not None:
                d_loss = d_loss + penalty.float()
            d_norm = self._update(d_loss, self.d_optimizer, d_scaler, self._d_params)
            applied &= d_norm is not None

        # Generator: one step descending (1/m) sum log(1 - D(G(z))) for the minimax
        # loss, or ascending log D(G(z)) for the non-saturating one, on fresh noise.
        # backward(inputs=theta_g) leaves D's weight gradients uncomputed: D is fixed here.
        with self._autocast():
            fake_logits_g = discriminator(self._g_update(self._noise())).reshape(-1)
        g_loss = loss.generator_loss(fake_logits_g.float())
        g_norm = self._update(g_loss, self.g_optimizer, g_scaler, self._g_params, inputs=self._g_params)
        applied &= g_norm is not None
        if g_norm is not None and self.generator_ema is not None:
            self._update_ema()

        if applied:
            self._bad_run = 0
            # Running sums on the device; read (a host-device sync) only when logged.
            with torch.no_grad():
                self._stats += torch.stack(
                    (
                        d_loss.detach(),
                        g_loss.detach(),
                        torch.sigmoid(real_logits.detach()).mean(),
                        torch.sigmoid(fake_logits.detach()).mean(),
                        d_norm,
                        g_norm,
                    )
                )
            self._stats_steps += 1
        else:
            self._skipped += 1
            self._bad_run += 1
            if self._bad_run >= self.max_bad_steps:
                first = self.step + 1 - self._bad_run
                self.fault = (
                    f"{self._bad_run} steps in a row had non-finite losses or gradients (steps {first + 1} to "
                    f"{self.step + 1}); their updates were skipped, so the weights are those of step {first}"
                )
                self.should_stop = True

        self.step += 1
        if self._cursor < self.k * self.steps_per_epoch:
            return False
        # Epoch done; the leftover (fewer than k * batch_size samples) waits for the next order.
        self.epoch += 1
        self._cursor = 0
        self._order = None
        return True

    def _update(
        self,
        loss: Tensor,
        optimizer: torch.optim.Optimizer,
        scaler: Any,
        params: list[Tensor],
        inputs: list[Tensor] | None = None,
    ) -> Tensor | None:
        """One optimiser step on ``loss``'s gradient; the gradient norm, or None if the step was skipped.

        With the NaN guard on, a loss or gradient that is not finite skips the
        step: parameters and optimiser state stay as they were. At float16 the
        gradient scaler skips steps whose scaled gradients overflowed by itself.
        """
        optimizer.zero_grad(set_to_none=True)
        (loss if scaler is None else scaler.scale(loss)).backward(inputs=inputs)
        norm = self._zero
        if self.nan_guard:
            norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
            finite = torch.isfinite(loss.detach())
            if scaler is None:
                finite &= torch.isfinite(norm)
            else:  # overflowing scaled gradients are the scaler's to skip; the loss is ours
                norm = norm / scaler.get_scale()
            # A host-device sync per update: the price of never applying a bad step. Under
            # torchrun every rank must take the same decision, or their weights drift apart.
            if not distributed.all_agree(bool(finite), self.device, require_all=True):
                optimizer.zero_grad(set_to_none=True)
                return None
        if scaler is None:
            optimizer.step()
            return norm
        scale = scaler.get_scale()
        scaler.step(optimizer)
        scaler.update()
        return norm if scaler.get_scale() >= scale else None  # a lowered scale: the step was skipped

    def _set_learning_rates(self) -> None:
        """Learning rates for this step: the configured ones scaled down towards 0 at the last step."""
        done = min(self.step / max(self.target_step, 1), 1.0)
        factor = 1.0 - done if self.lr_schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * done))
        for optimizer, bases in zip((self.g_optimizer, self.d_optimizer), self._base_lrs):
            for group, base in zip(optimizer.param_groups, bases):
                group["lr"] = base * factor

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self._autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self._autocast_dtype)

    @torch.no_grad()
    def _update_ema(self) -> None:
        """theta_ema <- decay * theta_ema + (1 - decay) * theta_g; a plain copy before ema_start."""
        averaged, current = self._ema_pairs
        weight = 1.0 if self.step < self.ema_start else 1.0 - self.ema_decay
        torch._foreach_lerp_(averaged, current, weight)
        for ema_buffer, buffer in zip(self.generator_ema.buffers(), self.generator.buffers()):
            ema_buffer.copy_(buffer)

    def pop_stats(self) -> dict[str, float]:
        """Means over the applied steps since the last call. A host-device sync point."""
        if self._stats_steps == 0:
            return {}
        values = dict(zip(STAT_NAMES, distributed.mean_over_ranks(self._stats / self._stats_steps).tolist()))
        self._stats.zero_()
        self._stats_steps = 0
        if not self.nan_guard:  # gradient norms are measured by the guard
            del values["d_grad_norm"], values["g_grad_norm"]
        return values

    def steps_for(self, *, steps: int | None = None, epochs: int | None = None) -> int:
        """The absolute step at which ``fit`` stops: ``steps`` wins over ``epochs``."""
        if steps is not None:
            if steps < 1:
                raise ConfigError(f"steps must be >= 1, got {steps}")
            return steps
        if epochs is None or epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {epochs}")
        return epochs * self.steps_per_epoch

    def fit(self, *, steps: int | None = None, epochs: int | None = None) -> AdversarialTrainer:
        """Train until the step counter reaches the target (absolute, so a resumed run ends where it would have)."""
        self.target_step = self.steps_for(steps=steps, epochs=epochs)
        self.should_stop = False
        self._notify("on_fit_start")
        self.generator.train()
        self.discriminator.train()
        self._clock = (time.perf_counter(), self.step)
        while self.step < self.target_step:
            if distributed.all_agree(self.should_stop, self.device):
                self.should_stop = True  # also on the ranks that did not ask: they stop alike
                break
            epoch_done = self.train_step()
            failpoints.hit("step")
            if self.step % self.log_every == 0:
                self._log_training()
            self._notify("on_step_end")
            if epoch_done:
                self._notify("on_epoch_end")
        if self._stats_steps or self._skipped:
            self._log_training()  # the last, partial interval
        self._notify("on_fit_end")
        return self

    def _log_training(self) -> None:
        stats = self.pop_stats()  # host-device sync (besides the NaN guard's, one per update)
        now = time.perf_counter()
        then, step_then = self._clock
        self._clock = (now, self.step)
        samples = (self.step - step_then) * self.k * self.batch_size * self.world_size  # all ranks
        self.log(
            {
                "event": "train",
                "step": self.step,
                "epoch": round(self.epoch_progress, 4),
                **stats,
                "skipped_steps": self._skipped,
                "samples_per_s": samples / (now - then) if now > then else 0.0,
            }
        )
        self._skipped = 0

    def log(self, record: dict[str, Any]) -> None:
        """Send a record to every callback's ``on_log`` (loggers, progress bars)."""
        record.setdefault("step", self.step)
        record["time"] = time.time()
        for callback in self.callbacks:
            callback.on_log(self, record)

    def log_image(self, tag: str, image: Tensor) -> None:
        """Send a picture (C, H, W on [0, 1]) to every callback's ``on_image``."""
        for callback in self.callbacks:
            callback.on_image(self, tag, image)

    def _notify(self, hook: str) -> None:
        # Callbacks sample with private generators; fork torch's global CPU stream too, so
        # that a callback or metric drawing from it cannot shift dropout or the gradient
        # penalty's draws in training.
        with torch.random.fork_rng(devices=[]):
            for callback in self.callbacks:
                getattr(callback, hook)(self)

    @property
    def epoch_progress(self) -> float:
        """Epochs done, with the current one as a fraction."""
        return self.epoch + self._cursor / (self.k * self.steps_per_epoch)

    @property
    def sampling_generator(self) -> nn.Module:
        """G's moving average when there is one, else G."""
        return self.generator if self.generator_ema is None else self.generator_ema

    def sample(self, n: int, seed: int | None = None, raw: bool = False) -> Tensor:
        """n samples (eval mode, no gradients, a private RNG) of G's average, or of G itself if ``raw``."""
        generator = self.generator if raw else self.sampling_generator
        return generate(generator, n, noise=self.noise, seed=seed, device=self.device)

    # --- state for checkpoints ---------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything the next step depends on: weights, optimiser states, counters, data order, RNGs."""
        rng: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "noise": self._noise_rng.get_state(),
            "data": self._data_rng.get_state(),
        }
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        state: dict[str, Any] = {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "g_optimizer": self.g_optimizer.state_dict(),
            "d_optimizer": self.d_optimizer.state_dict(),
            "progress": {
                "step": self.step,
                "epoch": self.epoch,
                "cursor": self._cursor,
                "seed": self.seed,
                "stats_steps": self._stats_steps,
                "skipped": self._skipped,
                "bad_run": self._bad_run,
                "device_type": self.device.type,
                "world_size": self.world_size,
            },
            "stats": self._stats,
            "rng": rng,
            "callbacks": {},
        }
        if self._order is not None:
            state["order"] = self._order
        if self.generator_ema is not None:
            state["generator_ema"] = self.generator_ema.state_dict()
        if self._scalers[0] is not None:
            state["scalers"] = [scaler.state_dict() for scaler in self._scalers]
        for i, callback in enumerate(self.callbacks):
            callback_state = callback.state_dict()
            if callback_state is not None:
                state["callbacks"][f"{i}:{type(callback).__name__}"] = callback_state
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        if self.generator_ema is not None:
            self.generator_ema.load_state_dict(state.get("generator_ema", state["generator"]))
        self.discriminator.load_state_dict(state["discriminator"])
        self.g_optimizer.load_state_dict(state["g_optimizer"])
        self.d_optimizer.load_state_dict(state["d_optimizer"])
        if self._scalers[0] is not None and "scalers" in state:
            for scaler, scaler_state in zip(self._scalers, state["scalers"]):
                scaler.load_state_dict(scaler_state)
        progress = state["progress"]
        if progress.get("world_size", 1) != self.world_size:
            raise ConfigError(
                f"the checkpoint was trained by {progress.get('world_size', 1)} process(es); resume it with "
                f"the same number (--nproc {progress.get('world_size', 1)}), not {self.world_size}"
            )
        self.step, self.epoch, self._cursor = progress["step"], progress["epoch"], progress["cursor"]
        self.seed = progress["seed"]
        self._stats.copy_(state["stats"])
        self._stats_steps = progress["stats_steps"]
        self._skipped, self._bad_run = progress["skipped"], progress["bad_run"]
        order = state.get("order")
        self._order = None if order is None else order.to(self.device)
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if progress.get("device_type", self.device.type) == self.device.type:
            self._noise_rng.set_state(rng["noise"])
            self._data_rng.set_state(rng["data"])
        else:  # generator states do not carry across device types: derive fresh streams
            self._noise_rng.manual_seed(self.seed + 1 + 1000003 * self.step)
            self._data_rng.manual_seed(self.seed + 2 + 1000003 * self.step)
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        saved = state.get("callbacks", {})
        for i, callback in enumerate(self.callbacks):
            key = f"{i}:{type(callback).__name__}"
            if key in saved:
                callback.load_state_dict(saved[key])
