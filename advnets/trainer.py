"""AdversarialTrainer: the loop that plays a game between players, on any device.

The trainer owns the clock (steps and epochs), the players' optimisers, the
device and precision, the data order, the random number generators, the NaN
guard and the callbacks. The *objective* owns what one step does (by default
Algorithm 1 of Goodfellow et al. 2014: see :mod:`advnets.objectives`); the
*loss* owns the maths; callbacks own everything the user sees (logs, grids,
checkpoints). The trainer itself prints nothing.

One training *step* is one call of the objective: for Algorithm 1, k updates of
the discriminator, each on a fresh real minibatch and fresh noise, then one
update of the generator on fresh noise. An *epoch* is one pass over a fresh
random order of the training set, counted in real minibatches: it ends before a
step that would need more batches than the epoch has left, so with k > 1 an
epoch has fewer steps.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from . import distributed, failpoints, graphs
from .data import Data
from .errors import ConfigError, WriteError
from .losses import GANLoss
from .objectives import GANObjective, Objective, StepContext
from .optim import OptimizerMaker, adam
from .players import Player, Players, PlayerSpec, call, check_average, is_conditional
from .schedules import SchedulerMaker, check_k_schedule, k_at
from .sources import make_source
from .validate import validate_state

NOISE_KINDS = ("normal", "uniform")
LR_SCHEDULES = ("constant", "linear", "cosine")
PRECISIONS = ("32", "bf16", "16")
"""float32; bfloat16 autocast (CPU and CUDA); float16 autocast with gradient scaling (CUDA)."""
HOT_HOOKS = ("on_after_backward", "on_before_optimizer_step", "on_after_optimizer_step")
"""Callback hooks inside a step: called only for the callbacks that override them."""


MAX_STEPS = 2**62
"""The most steps a run may ask for: counters, data order and checkpoints hold steps as int64."""
MAX_NORM_BATCHES = 100_000
NORM_STATS_SEED = 20140610  # the fixed noise that recomputes the batch-norm statistics of G's average


def check_world_size(progress: Any, world_size: int) -> None:
    """A checkpoint resumes only with the number of processes that trained it (the data order is sharded by it)."""
    saved = progress.get("world_size", 1) if isinstance(progress, Mapping) else 1
    if saved != world_size:
        raise ConfigError(
            f"the checkpoint was trained by {saved} process(es); resume it with the same number (--nproc {saved}), not {world_size}"
        )


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
    if resolved.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device {device!r} cannot train or sample; use auto, cpu, cuda, cuda:N or mps")
    if resolved.type == "cuda" and resolved.index is not None and torch.cuda.is_available():
        if resolved.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r} asked for, but this machine has {torch.cuda.device_count()} CUDA device(s)")
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


def draw_labels(n: int, generator: nn.Module, rng: torch.Generator, device: torch.device, class_weights: Tensor | None = None) -> Tensor:
    """n class labels for a conditional G: from ``class_weights`` (e.g. the training set's frequencies), else uniform."""
    if class_weights is None:
        return torch.randint(generator.num_classes, (n,), generator=rng, device=device)
    return torch.multinomial(class_weights.to(device, torch.float32), n, replacement=True, generator=rng)


@torch.no_grad()
def generate(
    generator: nn.Module,
    n: int,
    *,
    noise: str = "normal",
    seed: int | None = None,
    device: torch.device | None = None,
    chunk: int = 1000,
    labels: Tensor | None = None,
    class_weights: Tensor | None = None,
) -> Tensor:
    """n samples of G in eval mode, from a private RNG (training's RNG streams are untouched).

    A conditional G (one with ``num_classes``) is given ``labels``; without them,
    labels are drawn from ``class_weights`` (uniform without those) and can be
    read back with :func:`generate_labelled`.
    """
    return generate_labelled(
        generator, n, noise=noise, seed=seed, device=device, chunk=chunk, labels=labels, class_weights=class_weights
    )[0]


@torch.no_grad()
def generate_labelled(
    generator: nn.Module,
    n: int,
    *,
    noise: str = "normal",
    seed: int | None = None,
    device: torch.device | None = None,
    chunk: int = 1000,
    labels: Tensor | None = None,
    class_weights: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    """(n samples of G, the labels they were drawn for, or None for an unconditional G)."""
    device = device or next(generator.parameters()).device
    rng = torch.Generator(device=device)
    rng.manual_seed(secrets.randbits(63) if seed is None else seed)
    latent_dim = latent_dim_of(generator)
    if is_conditional(generator):
        if labels is None:
            labels = draw_labels(n, generator, rng, device, class_weights)
        labels = labels.to(device, torch.int64)
        if labels.shape != (n,) or int(labels.min()) < 0 or int(labels.max()) >= generator.num_classes:
            raise ConfigError(f"labels must be {n} class numbers in [0, {generator.num_classes})")
    elif labels is not None:
        raise ConfigError("labels were given, but this generator is not conditional (it has no num_classes)")
    with eval_mode(generator):
        parts = [
            call(
                generator,
                draw_noise(min(chunk, n - i), latent_dim, noise, rng, device),
                None if labels is None else labels[i : i + chunk],
            )
            for i in range(0, n, chunk)
        ]
    return torch.cat(parts), labels


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
    ``load_state_dict``; the state is stored under ``state_key`` (default: the
    class name), which must be unique among a run's callbacks and does not depend
    on their order or on the rank. Under torchrun callbacks run on rank 0 only,
    unless they set ``all_ranks = True``. A callback that scores the model (a probe, an
    extra metric) sets ``evaluation = True``: with evaluation off (``advnets run
    --no-eval``, the trainer's ``evaluation=False``) neither its check nor any of its
    hooks is called, and its state, if any, is kept.

    Three hooks run inside a step, in the training's own random streams, and only
    for callbacks that override them: ``on_after_backward`` (gradients are in
    ``.grad``, before the NaN guard looks at them), ``on_before_optimizer_step``
    and ``on_after_optimizer_step`` (once per player an update steps, with the
    player's name: clip weights here, say). ``on_exception`` runs when training
    stops on an exception, before it propagates.
    """

    state_key: str | None = None
    all_ranks: bool = False
    evaluation: bool = False

    def check(self, trainer: AdversarialTrainer) -> None: ...

    def on_fit_start(self, trainer: AdversarialTrainer) -> None: ...

    def on_step_end(self, trainer: AdversarialTrainer) -> None: ...

    def on_epoch_end(self, trainer: AdversarialTrainer) -> None: ...

    def on_fit_end(self, trainer: AdversarialTrainer) -> None: ...

    def on_exception(self, trainer: AdversarialTrainer, exception: BaseException) -> None: ...

    def on_after_backward(self, trainer: AdversarialTrainer, players: tuple[str, ...]) -> None: ...

    def on_before_optimizer_step(self, trainer: AdversarialTrainer, player: str) -> None: ...

    def on_after_optimizer_step(self, trainer: AdversarialTrainer, player: str) -> None: ...

    def on_log(self, trainer: AdversarialTrainer, record: dict[str, Any]) -> None:
        """A record for the logs: training statistics every ``log_every`` steps, or an evaluation."""

    def on_image(self, trainer: AdversarialTrainer, tag: str, image: Tensor) -> None:
        """A picture for the logs (C, H, W on [0, 1]): the fixed-noise sample grid, say."""

    def describe(self, trainer: AdversarialTrainer) -> dict[str, dict[str, Any]]:
        """The numbers this callback logs in ``eval`` records that have a better side:
        ``{key: {"direction": "max" | "min", "headline": bool}}``. metrics.jsonl records them
        once per fit; the training plot draws the headline keys, and ``advnets compare``
        gives each key's best value."""
        return {}

    def state_dict(self) -> dict[str, Any] | None:
        return None

    def check_state(self, state: dict[str, Any]) -> None:
        """Raise ValueError or TypeError (one line: what is wrong) if a checkpoint's ``state`` for this
        callback cannot be loaded. Called before anything of the checkpoint is loaded, so a resume of a
        damaged file is refused with the trainer as it was; the default accepts any table."""

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def _json_safe(state: dict[str, Any]) -> dict[str, Any]:
    """A scheduler's state without functions (LambdaLR saves None for its lambdas: the config rebuilds them)."""
    return {k: v for k, v in state.items() if not callable(v)}


def _overrides(callback: Callback, hook: str) -> bool:
    return getattr(type(callback), hook, None) is not getattr(Callback, hook)


def check_callback_state(callback: Callback) -> None:
    """A callback's ``state_dict()`` is one a checkpoint can store and a resume can load: said
    before training, not at the first checkpoint, when the steps trained so far would be lost."""
    from .checkpoint import encode_state

    state = callback.state_dict()
    if state is None:
        return
    key = callback_key(callback)
    if not isinstance(state, dict):
        raise ConfigError(f"callback {key}: state_dict() must return a dict or None, got a {type(state).__name__}")
    try:
        encode_state(state, {}, f"callbacks.{key}")
    except TypeError as exc:
        raise ConfigError(f"callback {key}'s state_dict(): {exc}") from None


def callback_key(callback: Callback) -> str:
    return callback.state_key or type(callback).__name__


class AdversarialTrainer:
    """Plays an adversarial game between named players; by default Algorithm 1 between G and D.

    Args:
        generator: maps z of shape (n, ``generator.latent_dim``) to samples shaped like the data
            (and labels to samples, ``G(z, y)``, when it has ``num_classes``).
        discriminator: maps samples (and labels, if conditional) to logits of shape (n,) or (n, 1).
        loss: the value function (see :mod:`advnets.losses`).
        data: the training set as tensors (see :class:`advnets.data.Data`).
        g_optimizer, d_optimizer: makers ``params -> Optimizer`` (default: Adam, lr 2e-4).
        batch_size: m, the minibatch size, for real and for fake samples alike.
        k: discriminator updates per generator update; the paper uses k = 1.
        noise: p_z, ``normal`` or ``uniform`` (on [-1, 1]).
        device: ``auto`` (cuda, then mps, then cpu), or a torch device string.
        seed: seeds the noise and data-order streams; model weights are seeded by whoever builds them.
        callbacks: objects with the :class:`Callback` hooks.
        log_every: steps between training records (the objective's diagnostics, samples/s) sent to ``on_log``.
        run_dir: the folder callbacks write into (samples, checkpoints); None for none.
        metadata: JSON-able facts about the run that checkpoints carry (the CLI puts the config here).
        joint_d_forward: run D once on real and fake concatenated; ``None`` decides from D's layers.
        ema_decay: keep an exponential moving average of G's weights with this decay (0: off);
            sampling and evaluation then use the average, which is usually much better than the last G.
        ema_start: the step from which the average starts (before it, the average copies G,
            or follows ``ema_warmup``).
        ema_warmup: before ``ema_start``, 0 copies G; W > 0 keeps a short average instead,
            decay (1 + t) / (W + 1 + t) at step t from step 1 to ``ema_start`` - 2, so that
            samples drawn early are smoothed; the average restarts as a copy of G at step
            ``ema_start`` - 1. It does nothing without an average (``ema_decay`` 0) or
            with ``ema_start`` of 2 or less.
        ema_norm_batches: where G has batch norm, the average's running statistics are recomputed
            for the average's own weights before each use (sampling, evaluation, checkpoints), from
            this many batches of fixed noise; 0 copies G's statistics at every step instead, which
            do not fit the averaged weights (docs/results.md measures the difference).
        precision: ``32``; ``bf16`` (autocast to bfloat16 for the passes, losses and
            weights in float32); ``16`` (float16 autocast with gradient scaling, CUDA only).
        nan_guard: check every update's loss and gradients; skip the ones that are not finite.
        max_bad_steps: stop (``fault`` says why) after this many steps in a row had a skipped update.
        lr_schedule: ``constant``, or every player's learning rates decayed towards 0 over the steps
            up to the end of ``fit``, ``linear``ly or along a half ``cosine``; a function of the
            step, so a resumed run follows the same schedule.
        objective: the body of a step (default: :class:`~advnets.objectives.GANObjective`, Algorithm 1).
        players: players beyond G and D, by name: :class:`~advnets.players.PlayerSpec` or a bare module.
        k_schedule: ``[[step, k], ...]``: k as a piecewise-constant function of the step (overrides ``k``).
        lr_scheduler: a maker ``(optimizer, total_steps) -> torch LRScheduler`` (see
            :mod:`advnets.schedules`), one per player, stepped once per step and saved in checkpoints.
        cuda_graphs: ``auto`` captures steps in CUDA graphs where they can be (see
            :mod:`advnets.graphs`) and runs them eagerly elsewhere; ``on`` is an error where they
            cannot; ``off`` never captures.
        evaluation: False leaves out the hooks of callbacks that declare ``evaluation = True``.
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
        ema_warmup: int = 0,
        ema_norm_batches: int = 50,
        precision: str = "32",
        nan_guard: bool = True,
        max_bad_steps: int = 10,
        lr_schedule: str = "constant",
        objective: Objective | None = None,
        players: Mapping[str, PlayerSpec | nn.Module] | None = None,
        k_schedule: list | None = None,
        lr_scheduler: SchedulerMaker | None = None,
        cuda_graphs: str = "auto",
        evaluation: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if k < 1:
            raise ConfigError(f"k (discriminator steps per generator step) must be >= 1, got {k}")
        check_average(ema_decay, ema_start, ema_warmup)
        if not 0 <= ema_norm_batches <= MAX_NORM_BATCHES:
            raise ConfigError(f"ema_norm_batches must be in [0, {MAX_NORM_BATCHES}], got {ema_norm_batches}")
        self.ema_norm_batches = ema_norm_batches
        self._norms_step = -1  # the step at which the average's batch-norm statistics were last recomputed
        if max_bad_steps < 1:
            raise ConfigError(f"max_bad_steps must be >= 1, got {max_bad_steps}")
        if log_every < 1:
            raise ConfigError(f"log_every must be >= 1, got {log_every}")
        if lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {lr_schedule!r}")
        if lr_schedule != "constant" and lr_scheduler is not None:
            raise ConfigError("trainer.lr_schedule and lr_scheduler both set a learning-rate schedule; choose one")
        self.k_schedule = check_k_schedule(k_schedule)
        self._lr_maker = lr_scheduler
        self._lr_schedulers: dict[str, Any] = {}
        self._lr_scheduler_state: dict[str, Any] | None = None  # from a checkpoint, until fit makes them
        if noise not in NOISE_KINDS:
            raise ConfigError(f"noise must be one of {', '.join(NOISE_KINDS)}, got {noise!r}")
        self.device = resolve_device(device)
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if precision == "16" and self.device.type != "cuda":
            raise ConfigError(f"precision 16 (float16 with gradient scaling) needs CUDA; on {self.device.type} use bf16")
        self.precision = precision
        self._autocast_dtype = {"bf16": torch.bfloat16, "16": torch.float16}.get(precision)
        # float16 gradients can underflow: scale the losses, one scaler per update (a player or a group).
        self._scalers: dict[str, torch.amp.GradScaler] = {}
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

        # Separate random streams for noise and for the data order, so that sampling and
        # evaluation in callbacks never shift what training sees. Both are the same on
        # every rank: ranks take different slices of what they draw.
        self._noise_rng = torch.Generator(device=self.device)
        self._noise_rng.manual_seed(self.seed + 1)
        self._data_rng = torch.Generator(device=self.device)
        self._data_rng.manual_seed(self.seed + 2)
        # Data lives on the device; batches are drawn by index there.
        self.source = make_source(data, batch_size, self.device, self._data_rng, self.seed, self.rank, self.world_size)
        self._class_weights = data.class_frequencies().to(self.device) if data.labelled else None

        # The players: G and D, then any others, each with its optimiser and moving average.
        specs: dict[str, PlayerSpec] = {
            "generator": PlayerSpec(generator, g_optimizer, ema_decay, ema_start, ema_warmup),
            "discriminator": PlayerSpec(discriminator, d_optimizer),
        }
        for name, spec in (players or {}).items():
            if name in specs:
                raise ConfigError(f"player {name!r} is given twice")
            specs[name] = spec if isinstance(spec, PlayerSpec) else PlayerSpec(spec)
            check_average(specs[name].ema_decay, specs[name].ema_start, specs[name].ema_warmup, f"players.{name}")
        self.players = Players([self._make_player(name, spec) for name, spec in specs.items()])
        self.objective = objective if objective is not None else GANObjective()
        if isinstance(self.objective, GANObjective) and self.objective.joint_d_forward is None:
            self.objective.joint_d_forward = joint_d_forward
        missing = [name for name in self.objective.players if name not in self.players]
        if missing:
            raise ConfigError(
                f"objective {type(self.objective).__name__} needs the player(s) {', '.join(missing)}; "
                f"this run has {', '.join(self.players)}"
            )
        unplayed = [name for name in self.players if name not in self.objective.players]
        if unplayed:  # it would be built, checkpointed and never trained
            raise ConfigError(
                f"players.{unplayed[0]}: objective {type(self.objective).__name__} does not play it (it plays "
                f"{', '.join(self.objective.players)}); choose an objective that does, or leave the player out"
            )
        self.lr_schedule = lr_schedule
        self._ctx = StepContext(self)

        self.step = 0  # objective steps done: Algorithm 1's outer iterations
        self.epoch = 0  # complete passes over the training set
        self._stat_names: tuple[str, ...] | None = None  # the objective's diagnostics, fixed at the first step
        self._stats: Tensor | None = None  # their running sums on the device
        self._stats_steps = 0  # applied steps in the running sums (as of the last read of the counters)
        self._zero = torch.zeros((), device=self.device)
        # The NaN guard: skip updates with non-finite losses or gradients; stop after
        # max_bad_steps steps in a row had one. It decides on the device: the host learns
        # of skipped steps when the counters are read (at each training record and
        # checkpoint), so a step makes no host-device sync.
        self.nan_guard, self.max_bad_steps = nan_guard, max_bad_steps
        self._step_ok: Tensor | None = None  # every update of the current step was applied (device bool)
        self._skipped = 0  # steps with a skipped update since the last record (as of the last read)
        self._bad_run = 0  # such steps in a row, up to now (as of the last read)
        self._trip_first = -1  # the first step (1-based) of the run of bad steps that stopped training
        # The same counters on the device, updated every step: [applied steps, skipped steps,
        # bad steps in a row, first step of the tripping run or -1].
        self._counters = torch.tensor([0, 0, 0, -1], dtype=torch.int64, device=self.device)
        self.fault: str | None = None
        self.target_step = 0
        self.should_stop = False
        self.between_steps = True
        """False only while a step runs: an error raised when it is True (a callback's hook, a
        metric) leaves the state whole, at a step boundary, so it can still be checkpointed."""
        self._in_loop = False  # inside fit's loop, where a failed write under torchrun is deferred
        self._write_failure: BaseException | None = None
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
        self.evaluation = evaluation
        with self._own_rng():  # a check that draws (D's dropout, a metric building its network) leaves training's streams alone
            self.objective.check(self)
        self.steps_per_epoch = self.source.batches_per_epoch // self.objective.batches_per_step(0, self)
        self.check_data_for(self.world_size)
        self._check_state_keys()
        self._find_hot_callbacks()
        # CUDA graphs (advnets.graphs): made at each fit, dropped at its end.
        if cuda_graphs not in graphs.MODES:
            raise ConfigError(f"trainer.cuda_graphs must be one of {', '.join(graphs.MODES)}, got {cuda_graphs!r}")
        self.cuda_graphs = cuda_graphs
        if cuda_graphs == "on" and (reason := graphs.why_not(self)) is not None:
            raise ConfigError(f"trainer.cuda_graphs is on, but {reason}")
        self._graphs: graphs.StepGraphs | None = None
        self._graph_recorder: type | None = None  # the tests' stand-in for a CUDA graph (graphs.Rehearsal)
        self._static_step: Tensor | None = None  # the step number on the device, while a step is captured
        self.graph_report = "off" if cuda_graphs == "off" else "not started"
        """What the last fit did with CUDA graphs, in words (shown at the end of a run)."""
        with self._own_rng():
            for callback in self._hooked:
                callback.check(self)
        for callback in self.callbacks:
            check_callback_state(callback)

    def _own_rng(self) -> contextlib.AbstractContextManager:
        """Torch's global random streams (the CPU's and this device's) as they were, afterwards."""
        return torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else [], device_type=self.device.type)

    def check_data_for(self, world_size: int) -> None:
        """One line if the training set has fewer samples than one step takes from ``world_size``
        processes (the launcher asks for the world size torchrun is about to start)."""
        need = self.objective.batches_per_step(0, self) * self.batch_size * world_size
        if len(self.data.train) < need:
            raise ConfigError(
                f"the training set has {len(self.data.train)} samples, fewer than one step needs (k * batch_size * processes = {need})"
            )

    def _find_hot_callbacks(self) -> None:
        self._hot_callbacks = {hook: [c for c in self._hooked if _overrides(c, hook)] for hook in HOT_HOOKS}

    @property
    def _hooked(self) -> list[Callback]:
        """The callbacks whose hooks run: all, less those that evaluate while evaluation is off
        (their state is still saved and loaded)."""
        return [c for c in self.callbacks if self.evaluation or not c.evaluation]

    def _make_player(self, name: str, spec: PlayerSpec) -> Player:
        if not isinstance(spec.module, nn.Module):
            raise ConfigError(f"player {name!r} must be a torch.nn.Module, got {type(spec.module).__name__}")
        module = spec.module.to(self.device)
        params = [p for p in module.parameters() if p.requires_grad]
        maker = spec.optimizer or adam(lr=2e-4, betas=(0.5, 0.999))
        # The module whose updates average gradients over ranks: a DDP wrapper under
        # torchrun, the module itself otherwise. Passes that must not start a gradient
        # reduction (G's samples for D's update, D inside G's update, the gradient
        # penalty, sampling) use the plain module.
        update_module = module
        if self.world_size > 1 and params:
            ids = [self.device.index] if self.device.type == "cuda" else None
            update_module = DistributedDataParallel(module, device_ids=ids)
        recompute = name == "generator" and self.ema_norm_batches > 0
        return Player(
            name,
            module,
            maker(params),
            params,
            update_module,
            spec.ema_decay,
            spec.ema_start,
            spec.ema_warmup,
            recompute_norms=recompute,
        )

    def _check_state_keys(self) -> None:
        seen: dict[str, Callback] = {}
        for callback in self.callbacks:
            if not _overrides(callback, "state_dict"):
                continue
            key = callback_key(callback)
            if key in seen:
                raise ConfigError(
                    f"two callbacks keep their state under {key!r}; give each its own state_key"
                )
            seen[key] = callback

    # --- the two players of the 2014 game, by their old names ---------------------------

    @property
    def generator(self) -> nn.Module:
        return self.players.generator.module

    @property
    def discriminator(self) -> nn.Module:
        return self.players.discriminator.module

    @property
    def g_optimizer(self) -> torch.optim.Optimizer:
        return self.players.generator.optimizer

    @property
    def d_optimizer(self) -> torch.optim.Optimizer:
        return self.players.discriminator.optimizer

    @property
    def generator_ema(self) -> nn.Module | None:
        return self.players.generator.ema

    @property
    def ema_decay(self) -> float:
        return self.players.generator.ema_decay

    @property
    def joint_d_forward(self) -> bool | None:
        return getattr(self.objective, "joint_d_forward", None)

    @property
    def conditional(self) -> bool:
        return is_conditional(self.generator)

    def require_run_dir(self, who: str) -> Path:
        """The run folder, for a callback that writes files; a clear error if there is none."""
        if self.run_dir is None:
            raise ConfigError(f"{who} writes files: give the trainer a run_dir")
        return self.run_dir

    # --- what an objective draws ---------------------------------------------------------

    def k_at(self, step: int) -> int:
        """Discriminator updates per generator update at ``step``."""
        return self.k if self.k_schedule is None else k_at(self.k_schedule, step)

    def draw_noise(self, n: int | None = None) -> Tensor:
        """z ~ p_z, fresh for every pass; under torchrun, this rank's slice of the global batch's noise."""
        n = self.batch_size if n is None else n
        z = draw_noise(n * self.world_size, self.latent_dim, self.noise, self._noise_rng, self.device)
        return z if self.world_size == 1 else z[self.rank * n : (self.rank + 1) * n]

    def draw_labels(self, n: int | None = None) -> Tensor:
        """Labels for G's samples from the training set's class frequencies (this rank's slice)."""
        if self._class_weights is None:
            raise ConfigError(f"dataset {self.data.name!r} has no labels to draw")
        n = self.batch_size if n is None else n
        labels = torch.multinomial(self._class_weights, n * self.world_size, replacement=True, generator=self._noise_rng)
        return labels if self.world_size == 1 else labels[self.rank * n : (self.rank + 1) * n]

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self._autocast_dtype is None:
            return contextlib.nullcontext()
        # A captured step must not keep autocast's cache of cast weights (torch.cuda.graph's rule).
        return torch.autocast(self.device.type, dtype=self._autocast_dtype, cache_enabled=self._static_step is None)

    # --- one step -----------------------------------------------------------------------

    def train_step(self) -> bool:
        """One call of the objective (for Algorithm 1: k D updates, then one G update).

        Advances the step counter; returns True if this step finished an epoch.
        """
        if self.lr_schedule != "constant":
            self._set_learning_rates()
        if self._graphs is None:
            self._step_body()
        else:
            self._graphs.step()  # a captured step's replay, or the same step eagerly

        for scheduler in self._lr_schedulers.values():
            scheduler.step()
        self.step += 1
        if self.source.remaining() >= self.objective.batches_per_step(self.step, self):
            return False
        # Epoch done; the leftover (fewer batches than the next step needs) waits for the next order.
        self.epoch += 1
        self.source.new_epoch()
        return True

    def _step_body(self) -> None:
        """The objective's step and its counting: what a CUDA graph captures."""
        self._step_ok = None
        diagnostics = self.objective.step(self._ctx) or {}
        self._count_step(self._step_ok, diagnostics)

    def _count_step(self, ok: Tensor | None, diagnostics: Mapping[str, Tensor]) -> None:
        """Count the step on the device: applied or skipped, the run of bad steps, the trip.

        ``ok`` is None when no update of the step was checked (the NaN guard is off).
        Nothing here reads a value on the host.
        """
        with torch.no_grad():
            if ok is None:
                self._counters[0] += 1
                self._counters[2] = 0
                self._accumulate(diagnostics, None)
                return
            counters = self._counters
            bad = (~ok).long()
            bad_run = (counters[2] + 1) * bad
            tripping = (bad_run >= self.max_bad_steps) & (counters[3] < 0)
            step = self.step if self._static_step is None else self._static_step  # a replay reads it from memory
            first = torch.where(tripping, step + 2 - bad_run, counters[3])
            counters.copy_(torch.stack((counters[0] + ok.long(), counters[1] + bad, bad_run, first)))
            self._accumulate(diagnostics, ok)

    def _read_counters(self) -> None:
        """Bring the device's step counters to the host (a host-device sync); stop if the guard tripped."""
        applied, skipped, bad_run, first = self._counters.tolist()
        self._stats_steps, self._skipped, self._bad_run = applied, skipped, bad_run
        if first >= 0 and self._trip_first < 0:
            self._trip_first = first
            last = first + self.max_bad_steps - 1
            stopped = (
                "their updates were skipped"
                if last == self.step
                else f"their updates and every one after, up to step {self.step} where the run stopped, were skipped"
            )
            self.fault = (
                f"{self.max_bad_steps} steps in a row had non-finite losses or gradients (steps {first} to "
                f"{last}); {stopped}, so the weights are those of step {first - 1}"
            )
            self.should_stop = True

    @property
    def _not_tripped(self) -> Tensor:
        """False (on the device) once max_bad_steps steps in a row were bad: no update is applied after."""
        return self._counters[3] < 0

    def _accumulate(self, diagnostics: Mapping[str, Tensor], ok: Tensor | None) -> None:
        """Running sums of the diagnostics of applied steps, on the device; read only when logged."""
        if not diagnostics:
            return
        names = tuple(diagnostics)
        if self._stat_names is None or self._stats is None:
            self._stat_names = names
            self._stats = torch.zeros(len(names), device=self.device)
        elif names != self._stat_names:
            raise ConfigError(
                f"objective {type(self.objective).__name__} returned diagnostics {', '.join(names)} after "
                f"{', '.join(self._stat_names)}: a step must return the same names every time"
            )
        with torch.no_grad():
            values = torch.stack([value.detach().float().reshape(()) for value in diagnostics.values()])
            self._stats += values if ok is None else torch.where(ok, values, 0.0)

    def update(self, names: tuple[str, ...], loss: Tensor) -> Tensor:
        """One optimiser step for each named player on ``loss``'s gradient; the gradient norm.

        With the NaN guard on, a loss or gradient that is not finite skips the
        update: parameters, optimiser states and moving averages stay exactly as
        they were, and the step counts as skipped. The decision is made on the
        device: torch's fused optimisers (the default for Adam and SGD) read it as
        ``found_inf`` and skip inside their kernel, so the host never waits. An
        optimiser without that ability, or one not yet initialised (its first
        update), is decided on the host: one sync for that update. At float16 the
        gradient scaler's overflow check is the same test on the unscaled gradients.
        """
        players = [self.players[name] for name in names]
        params = [p for player in players for p in player.params]
        scaler = self._scaler(names)
        for player in players:
            player.optimizer.zero_grad(set_to_none=True)
        # backward(inputs=...) computes gradients for these players only: the others are fixed here.
        (loss if scaler is None else scaler.scale(loss)).backward(inputs=params)
        if scaler is not None:
            for player in players:
                scaler.unscale_(player.optimizer)  # on the device; records the overflow for scaler.update
        self._hot("on_after_backward", names)
        if not (self.nan_guard or scaler is not None):
            for player in players:
                self._hot("on_before_optimizer_step", player.name)
                player.optimizer.step()
            for player in players:
                self._hot("on_after_optimizer_step", player.name)
                player.update_average(self.step)
            return self._zero
        norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
        # isfinite in one kernel for a norm (>= 0, or nan or inf: nan < inf is False), two for the loss;
        # torch.isfinite is four (eq, abs, ne, and), and on a GPU each small kernel costs microseconds
        finite = norm < math.inf
        if self.nan_guard:
            finite &= loss.detach().abs() < math.inf
        # Under torchrun every rank takes the same decision, or their weights drift apart.
        ok = distributed.all_true(finite) & self._not_tripped
        self._step_ok = ok if self._step_ok is None else self._step_ok & ok
        on_device = all(player.skips_on_device and player.optimizer.state for player in players)
        if not on_device and not bool(ok):  # a host-device sync: this optimiser cannot skip by itself
            for player in players:
                player.optimizer.zero_grad(set_to_none=True)
                player.update_average(self.step, ok)  # as on the device: unchanged, unless it is a copy
            if scaler is not None:
                scaler.update()
            return norm
        found_inf = (~ok).float() if on_device else None
        for player in players:
            self._hot("on_before_optimizer_step", player.name)
            if found_inf is not None:
                player.optimizer.found_inf = found_inf  # fused kernels leave everything as it was when 1
            try:
                player.optimizer.step()
            finally:
                if found_inf is not None:
                    del player.optimizer.found_inf
        if scaler is not None:
            scaler.update()
        for player in players:
            self._hot("on_after_optimizer_step", player.name)
            player.update_average(self.step, ok)
        return norm

    def _scaler(self, names: tuple[str, ...]) -> Any:
        if self.precision != "16":
            return None
        key = "+".join(names)
        if key not in self._scalers:
            self._scalers[key] = torch.amp.GradScaler("cuda")
        return self._scalers[key]

    def _hot(self, hook: str, argument: Any) -> None:
        for callback in self._hot_callbacks[hook]:
            getattr(callback, hook)(self, argument)

    def _set_learning_rates(self) -> None:
        """Learning rates for this step: the configured ones scaled down towards 0 at the last step."""
        done = min(self.step / max(self.target_step, 1), 1.0)
        factor = 1.0 - done if self.lr_schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * done))
        for player in self.players.values():
            for group, base in zip(player.optimizer.param_groups, player.base_lrs):
                group["lr"] = base * factor

    def pop_stats(self) -> dict[str, float]:
        """Means over the applied steps since the last call. A host-device sync point."""
        self._read_counters()
        applied, self._stats_steps = self._stats_steps, 0
        self._counters[0] = 0
        if applied == 0 or self._stats is None or self._stat_names is None:
            return {}
        values = dict(zip(self._stat_names, distributed.mean_over_ranks(self._stats / applied).tolist()))
        self._stats.zero_()
        return values

    def steps_for(self, *, steps: int | None = None, epochs: int | None = None) -> int:
        """The absolute step at which ``fit`` stops: ``steps`` wins over ``epochs``."""
        if steps is not None:
            if not 1 <= steps <= MAX_STEPS:
                raise ConfigError(f"steps must be in [1, 2**62] (the step counters are 64-bit), got {steps}")
            return steps
        if epochs is None or epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {epochs}")
        if epochs * max(self.steps_per_epoch, 1) > MAX_STEPS:
            raise ConfigError(f"epochs: {epochs} epochs are more than 2**62 steps (the step counters are 64-bit)")
        if self.k_schedule is None and isinstance(self.objective, GANObjective):
            return epochs * self.steps_per_epoch  # the same number of batches every step
        return self._steps_for_epochs(epochs)

    def _steps_for_epochs(self, epochs: int) -> int:
        """Count the steps of ``epochs`` epochs when a step's batches may change with the step (a k schedule)."""
        step = cursor = epoch = 0
        batches = self.source.batches_per_epoch
        while epoch < epochs:
            cursor += self.objective.batches_per_step(step, self)
            step += 1
            if batches - cursor < self.objective.batches_per_step(step, self):
                epoch, cursor = epoch + 1, 0
        return step

    def fit(self, *, steps: int | None = None, epochs: int | None = None) -> AdversarialTrainer:
        """Train until the step counter reaches the target (absolute, so a resumed run ends where it would have)."""
        self.target_step = self.steps_for(steps=steps, epochs=epochs)
        self.should_stop = False
        self.between_steps = True
        self._in_loop, self._write_failure = False, None
        self._find_hot_callbacks()  # callbacks may have been added since the trainer was built
        self._make_lr_schedulers()
        self._graphs, why_not = graphs.make(self, self.cuda_graphs, self._graph_recorder)
        if why_not is not None:
            self.graph_report = f"off: {why_not}"
        try:
            self._notify("on_fit_start")
            for player in self.players.values():
                player.module.train()
            self._clock = (time.perf_counter(), self.step)
            self._in_loop = True
            while self.step < self.target_step:
                if self.should_stop and self.world_size == 1:
                    break
                # Under torchrun, ranks agree on stopping at each record (an all-reduce and a host
                # read), not every step: a stop asked for on one rank takes effect at the next record.
                if self.world_size > 1 and self.step % self.log_every == 0:
                    if distributed.all_agree(self.should_stop, self.device):
                        self.should_stop = True  # also on the ranks that did not ask: they stop alike
                        break
                self.between_steps = False
                epoch_done = self.train_step()
                self.between_steps = True
                failpoints.hit("step")
                if self.step % self.log_every == 0:
                    self._log_training()
                self._notify("on_step_end")
                if epoch_done:
                    self._notify("on_epoch_end")
            self._in_loop = False
            if self._write_failure is not None:
                raise self._write_failure  # the ranks have stopped together (_deferring_write_failures)
            if self._graphs is not None:
                self._graphs.check_refused()  # cuda_graphs on, and the fit's last step found a host read
            if self.step > self._clock[1]:
                self._log_training()  # the last, partial interval
            self._notify("on_fit_end")
        except BaseException as exc:
            self._in_loop = False
            for callback in self._hooked:
                callback.on_exception(self, exc)
            raise
        finally:
            self._close_graphs()
        return self

    def _close_graphs(self) -> None:
        """Drop the fit's CUDA graphs (a checkpoint loaded later may replace the tensors they read)."""
        if self._graphs is None:
            return
        found, self._graphs = self._graphs, None
        self.graph_report = found.close()

    def change_learning_rate(self, player: str, old: float, new: float) -> None:
        """After a resume with ``--set``: ``player``'s learning rate is ``new`` where it was ``old``.

        The rates the checkpoint's optimiser reached are scaled by new/old, and so is its
        schedule (the legacy ``lr_schedule`` scales the player's ``base_lrs``, built from the
        new configuration; a scheduler's saved ``base_lrs`` and last rates are scaled before it
        is rebuilt), so a warm-up or a decay goes on from where it was, towards the new rate.
        """
        if not (math.isfinite(new) and new >= 0 and old > 0):
            raise ConfigError(f"{player}: cannot change the learning rate from {old} to {new}")

        def scaled(lr: float) -> float:  # exactly the new rate where the old one stood
            return new if lr == old else lr * (new / old)

        for group in self.players[player].optimizer.param_groups:
            for key in ("lr", "initial_lr"):
                if key in group:
                    group[key] = scaled(group[key])
        saved = (self._lr_scheduler_state or {}).get(player)
        if isinstance(saved, dict):
            for key in ("base_lrs", "_last_lr"):
                if isinstance(saved.get(key), list):
                    saved[key] = [scaled(lr) for lr in saved[key]]

    def _make_lr_schedulers(self) -> None:
        """One scheduler per player, for this fit's last step; a resumed run takes up the saved state."""
        if self._lr_maker is None:
            return
        for name, player in self.players.items():
            if name in self._lr_schedulers:
                continue
            scheduler = self._lr_maker(player.optimizer, self.target_step)
            if self._lr_scheduler_state and name in self._lr_scheduler_state:
                scheduler.load_state_dict(self._lr_scheduler_state[name])
                # a new scheduler set its step-0 rate: put back the rate the saved run had reached
                for group, lr in zip(player.optimizer.param_groups, scheduler.get_last_lr()):
                    group["lr"] = lr
            self._lr_schedulers[name] = scheduler

    def _log_training(self) -> None:
        stats = self.pop_stats()  # the host-device sync of the interval: counters and statistics
        now = time.perf_counter()
        then, step_then = self._clock
        self._clock = (now, self.step)
        batches = self.objective.batches_per_step(self.step, self)
        samples = (self.step - step_then) * batches * self.batch_size * self.world_size  # all ranks
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
        self._counters[1] = 0
        self._skipped = 0

    def log(self, record: dict[str, Any]) -> None:
        """Send a record to every callback's ``on_log`` (loggers, progress bars)."""
        record.setdefault("step", self.step)
        record["time"] = time.time()
        for callback in self._hooked:
            with self._deferring_write_failures():
                callback.on_log(self, record)

    def log_image(self, tag: str, image: Tensor) -> None:
        """Send a picture (C, H, W on [0, 1]) to every callback's ``on_image``."""
        for callback in self._hooked:
            callback.on_image(self, tag, image)

    def _notify(self, hook: str) -> None:
        # Callbacks sample with private generators; fork torch's global CPU stream too, so
        # that a callback or metric drawing from it cannot shift dropout or the gradient
        # penalty's draws in training.
        with torch.random.fork_rng(devices=[]):
            for callback in self._hooked:
                with self._deferring_write_failures():
                    getattr(callback, hook)(self)

    @contextlib.contextmanager
    def _deferring_write_failures(self):
        """Under torchrun, inside the training loop: a failed write stops the ranks together.

        A write fails on rank 0 alone (only it writes): leaving the loop at once would leave
        the other ranks waiting in the next step's all-reduce until the group's timeout. The
        failure is kept and a stop asked for instead; the ranks agree at the next record, stop
        at the same step, and then :meth:`fit` raises it on rank 0.
        """
        try:
            yield
        except (WriteError, OSError) as exc:
            if self.world_size == 1 or not self._in_loop:
                raise
            self._write_failure = self._write_failure or exc
            self.should_stop = True

    def diagnostics(self) -> dict[str, Any]:
        """What the objective's numbers mean, as JSON (loggers record it, plots draw from it)."""
        return {name: d.as_json() for name, d in self.objective.diagnostics(self).items()}

    @property
    def epoch_progress(self) -> float:
        """Epochs done, with the current one as a fraction."""
        return self.epoch + self.source.cursor / (self.objective.batches_per_step(self.step, self) * self.steps_per_epoch)

    @property
    def sampling_generator(self) -> nn.Module:
        """G's moving average when there is one (its batch-norm statistics recomputed for this step's
        average, see ``ema_norm_batches``), else G."""
        self._refresh_average_norms()
        return self.players.generator.sampling_module

    def _refresh_average_norms(self) -> None:
        """Recompute the batch-norm statistics of G's average if they are not this step's."""
        if self.players.generator.recompute_norms and self._norms_step != self.step:
            self._recompute_average_norms()

    @torch.no_grad()
    def _recompute_average_norms(self) -> None:
        """The running statistics of the average's batch-norm layers, for the average's own weights.

        The average's weights are a mean over thousands of steps, while G's running statistics follow
        the last few: copied, they do not fit. Recomputed here as the plain mean over
        ``ema_norm_batches`` batches of noise from a fixed seed, with only the norm layers in training
        mode: a function of the average's weights alone, so a resumed run gets the same numbers.
        """
        player = self.players.generator
        norms, ema = player.norm_layers, player.ema
        momenta = [m.momentum for m in norms]
        rng = torch.Generator(device=self.device)
        rng.manual_seed(NORM_STATS_SEED)
        latent_dim = latent_dim_of(ema)
        try:
            for m in norms:
                m.reset_running_stats()
                m.momentum = None  # a cumulative mean over the batches
                m.train()
            for _ in range(self.ema_norm_batches):
                z = draw_noise(self.batch_size, latent_dim, self.noise, rng, self.device)
                labels = draw_labels(self.batch_size, ema, rng, self.device, self._class_weights) if is_conditional(ema) else None
                call(ema, z, labels)
        finally:
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
                m.eval()
        self._norms_step = self.step

    def sample(self, n: int, seed: int | None = None, raw: bool = False, labels: Tensor | None = None) -> Tensor:
        """n samples (eval mode, no gradients, a private RNG) of G's average, or of G itself if ``raw``.

        A conditional G draws for ``labels``, or for labels drawn from the training set's class frequencies.
        """
        return self.sample_labelled(n, seed, raw, labels)[0]

    def sample_labelled(
        self, n: int, seed: int | None = None, raw: bool = False, labels: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """(samples, the labels they were drawn for or None), as :meth:`sample`."""
        generator = self.generator if raw else self.sampling_generator
        return generate_labelled(
            generator, n, noise=self.noise, seed=seed, device=self.device, labels=labels, class_weights=self._class_weights
        )

    # --- state for checkpoints ---------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything the next step depends on: weights, optimiser states, counters, data order, RNGs."""
        self._refresh_average_norms()  # checkpoints carry statistics that fit the saved average
        rng: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "noise": self._noise_rng.get_state(),
            "data": self._data_rng.get_state(),
        }
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        self._read_counters()
        state: dict[str, Any] = {}
        for player in self.players.values():
            state.update(player.state_dict())
        source = self.source.state_dict()
        state.update(
            {
                "progress": {
                    **{k: v for k, v in source.items() if k != "order"},
                    "step": self.step,
                    "epoch": self.epoch,
                    "seed": self.seed,
                    "stats_steps": self._stats_steps,
                    "stat_names": None if self._stat_names is None else list(self._stat_names),
                    "skipped": self._skipped,
                    "bad_run": self._bad_run,
                    "trip_first": self._trip_first,
                    "device_type": self.device.type,
                    "world_size": self.world_size,
                    "players": list(self.players),
                },
                "rng": rng,
                "callbacks": {},
            }
        )
        if self._stats is not None:
            state["stats"] = self._stats
        if "order" in source:
            state["order"] = source["order"]
        if self._scalers:
            state["scalers"] = {key: scaler.state_dict() for key, scaler in self._scalers.items()}
        if self._lr_schedulers:
            state["lr_schedulers"] = {name: _json_safe(s.state_dict()) for name, s in self._lr_schedulers.items()}
        for callback in self.callbacks:
            callback_state = callback.state_dict()
            if callback_state is not None:
                state["callbacks"][callback_key(callback)] = callback_state
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        progress = state["progress"]
        check_world_size(progress, self.world_size)
        saved_players = progress.get("players", ["generator", "discriminator"])
        if list(saved_players) != list(self.players):
            raise ConfigError(
                f"the checkpoint has the players {', '.join(saved_players)}; this run has {', '.join(self.players)}"
            )
        validate_state(state, self)  # everything below reads only what this has checked
        for player in self.players.values():
            player.load_state_dict(state)
        self._norms_step = -1
        scalers = state.get("scalers")
        if self.precision == "16" and scalers:
            if isinstance(scalers, list):  # the first release kept (D's, G's)
                scalers = dict(zip(("discriminator", "generator"), scalers))
            for key, scaler_state in scalers.items():
                self._scaler(tuple(key.split("+"))).load_state_dict(scaler_state)
        self.step, self.epoch = progress["step"], progress["epoch"]
        self.seed = progress["seed"]
        self._lr_scheduler_state = state.get("lr_schedulers")
        self._lr_schedulers = {}
        self.source.load_state_dict({**progress, "order": state.get("order")})
        self._load_stats(state.get("stats"), progress)
        self._skipped, self._bad_run = progress["skipped"], progress["bad_run"]
        self._trip_first = progress.get("trip_first", -1)
        self._counters = torch.tensor(
            [self._stats_steps, self._skipped, self._bad_run, self._trip_first], dtype=torch.int64, device=self.device
        )
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
        by_class = {key.partition(":")[2]: value for key, value in saved.items() if ":" in key}  # first release: "i:Class"
        for callback in self.callbacks:
            key = callback_key(callback)
            if key in saved:
                callback.load_state_dict(saved[key])
            elif type(callback).__name__ in by_class:
                callback.load_state_dict(by_class[type(callback).__name__])

    def _load_stats(self, sums: Tensor | None, progress: Mapping[str, Any]) -> None:
        self._stats_steps = progress["stats_steps"]
        names = progress.get("stat_names")
        if sums is None or (names is None and self._stats_steps == 0):
            self._stat_names, self._stats = (None, None) if names is None else (tuple(names), None)
            return
        if names is None:  # the first release: a fixed vector, read as this objective's first diagnostics
            names = list(self.objective.diagnostics(self))
            sums = sums[: len(names)]
        self._stat_names = tuple(names)
        self._stats = sums.to(self.device, torch.float32).clone()
