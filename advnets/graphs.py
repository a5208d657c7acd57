"""CUDA graphs for the training step: record a step's kernels once, replay them with one launch.

At small batch sizes a GAN step on a GPU is bound by the host launching a few
hundred small kernels, not by the GPU (docs/performance.md: 6-8 ms a step from
batch 32 to 4096 on an H200, against 0.8-3.6 ms for the same step captured in a
graph). A captured step reads its inputs from fixed device memory and has every
Python number baked into its kernels, so:

- What changes every step lives in device tensors that are refilled before each
  replay: the step number (the NaN guard's record of where a run of bad steps
  began) and the data cursor (which slice of the epoch's order the batches are).
  The epoch's order is drawn into one fixed buffer, outside the graph.
- What changes only sometimes is the step's *signature*: k, each moving average's
  weight at this step, and every optimiser setting, learning rates included. A
  graph is captured once a signature has held for ``WARMUP_STEPS`` steps in a row
  (run eagerly, on a side stream, as torch asks before a capture) and replayed
  while it holds; any other step runs eagerly. So a learning rate that changes
  every step (``lr_schedule`` linear or cosine) keeps the step eager. A rate held
  in a tensor would be captured, but torch's fused optimisers read a tensor rate
  as float32 where they read a Python rate as a double, and the run would no
  longer be the eager run.
- The noise generator is registered with each graph, so a replay draws the numbers
  the eager step would have drawn, and replays and eager steps interleave freely.

A step is captured only where that can be right: on CUDA, in one process, at
precision 32 or bf16, with the tensor-resident data, torch's fused optimisers,
no callback on the per-update hooks, and an objective that declares
``capturable = True`` (the built-in ``gan`` does). A module or a loss can opt
out with ``capturable = False``. :func:`why_not` says which of these
failed. The last warm-up step runs under torch's sync debug mode: a step that
reads a value on the host is never captured (``auto`` goes on eagerly). A
capture that fails anyway stops the run with one line: torch leaves its random
generators in capture mode after a failed capture, so no eager step may follow.

On the CPU nothing is captured. :class:`Rehearsal` stands in for a graph in the
tests (:func:`rehearse`): it "replays" by running the step with the Python state
frozen at its capture (the step number, the data cursor, the optimisers'
settings), so a step that read a Python number where it should read a fed
tensor trains differently from the eager run, and the tests see it.
"""

from __future__ import annotations

import contextlib
import numbers
import warnings
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

from .errors import CaptureError, ConfigError

if TYPE_CHECKING:
    from .trainer import AdversarialTrainer

MODES = ("auto", "on", "off")
WARMUP_STEPS = 3
"""Eager steps with one signature before it is captured (torch's examples warm up 3)."""
SYNC_WARNING = "called a synchronizing CUDA operation"
"""What torch's sync debug mode "warn" says at each host read (c10/cuda/CUDAFunctions.cpp)."""
MAX_GRAPHS = 4
"""Captured signatures kept at once; the least recently replayed is dropped for a new one."""


def why_not(trainer: AdversarialTrainer, need_cuda: bool = True) -> str | None:
    """Why this run's steps cannot be captured in a CUDA graph; None if they can."""
    if need_cuda and trainer.device.type != "cuda":
        return f"CUDA graphs need a CUDA device; this run is on {trainer.device.type}"
    if trainer.world_size > 1:
        return "under torchrun each step all-reduces gradients across processes, which is not captured"
    if trainer.precision == "16":
        return "precision 16's gradient scaler keeps Python state for every step"
    if not getattr(trainer.source, "capturable", False):
        return "streamed data comes through a DataLoader on the host"
    objective = trainer.objective
    if not getattr(objective, "capturable", False):
        return f"objective {type(objective).__name__} does not declare capturable = True"
    for name, player in trainer.players.items():
        if not player.params:
            continue
        if not all(group.get("fused") for group in player.optimizer.param_groups):
            return f"player {name}'s optimizer is not one of torch's fused kernels (impl=fused)"
        if _opted_out(player.module):
            return f"player {name}'s module says capturable = False"
    if getattr(trainer.loss, "capturable", True) is False:
        return f"loss {type(trainer.loss).__name__} says capturable = False"
    hooked = sorted({type(c).__name__ for callbacks in trainer._hot_callbacks.values() for c in callbacks})
    if hooked:
        return f"callback {', '.join(hooked)} runs Python at every update"
    return None


def _opted_out(module: nn.Module) -> bool:
    return any(getattr(m, "capturable", True) is False for m in module.modules())


def _number_like(value: Any) -> bool:
    if isinstance(value, (tuple, list)):
        return all(_number_like(v) for v in value)
    return isinstance(value, (numbers.Number, str)) or value is None


def _param_groups(trainer: AdversarialTrainer) -> list[dict[str, Any]]:
    return [group for player in trainer.players.values() for group in player.optimizer.param_groups]


def _settings(group: dict[str, Any]) -> dict[str, Any]:
    """An optimiser group's numbers (lr, betas, eps...): what a captured step bakes in."""
    return {key: value for key, value in group.items() if key not in ("params", "capturable") and _number_like(value)}


def _hashable(value: Any) -> Any:
    """Lists as tuples (a resumed optimiser's betas come back from JSON as a list)."""
    return tuple(_hashable(v) for v in value) if isinstance(value, (tuple, list)) else value


def _python_numbers(owner: Any) -> dict[str, Any]:
    """The number-like attributes an object keeps in Python (a counter, a flag): a replay never changes them."""
    return {key: value for key, value in vars(owner).items() if _number_like(value)} if hasattr(owner, "__dict__") else {}


class _CudaGraph:
    """One step captured in a ``torch.cuda.CUDAGraph``, on the trainer's device (``cuda:N`` too)."""

    def __init__(self, trainer: AdversarialTrainer, body: Callable[[], None]) -> None:
        self.device = trainer.device
        batches, cursor = trainer.objective.batches_per_step(trainer.step, trainer), trainer.source.cursor
        with torch.cuda.device(self.device):
            self.graph = torch.cuda.CUDAGraph()
            # The noise stream is not the device's default generator: register it, so that each
            # replay advances it as the eager step would (the default one is registered by torch).
            self.graph.register_generator_state(trainer._noise_rng)
            with torch.cuda.graph(self.graph, stream=torch.cuda.Stream(self.device)):
                body()
        drawn = trainer.source.cursor - cursor
        if drawn != batches:
            raise ConfigError(f"the step drew {drawn} batches where batches_per_step says {batches}")
        # A replay writes the gradients into the tensors the capture made: point .grad at them
        # again after each replay, for callbacks that read them between steps.
        self.grads = [(p, p.grad) for group in _param_groups(trainer) for p in group["params"]]

    def replay(self, trainer: AdversarialTrainer, body: Callable[[], None]) -> None:
        with torch.cuda.device(self.device):
            self.graph.replay()
        for param, grad in self.grads:
            param.grad = grad


class Rehearsal:
    """Stands in for a CUDA graph where there is none (the CPU tests).

    Capturing runs nothing and remembers the Python state; a replay runs the
    step with that state put back (the step number and the data cursor as they
    were at capture), then restores the real one. A graph would have baked the
    capture's numbers in: anything that read them instead of the fed tensors
    trains differently here too.
    """

    def __init__(self, trainer: AdversarialTrainer, body: Callable[[], None]) -> None:
        self.frozen = (trainer.step, trainer.source.cursor)
        self.groups = [(group, _settings(group)) for group in _param_groups(trainer)]
        self.batches = trainer.objective.batches_per_step(trainer.step, trainer)

    def replay(self, trainer: AdversarialTrainer, body: Callable[[], None]) -> None:
        now = (trainer.step, trainer.source.cursor)
        settings_now = [_settings(group) for group, _ in self.groups]
        owners = {type(o).__name__: o for o in (trainer.objective, trainer.loss)}
        before = {name: _python_numbers(owner) for name, owner in owners.items()}
        trainer.step, trainer.source.cursor = self.frozen
        for group, frozen in self.groups:
            group.update(frozen)
        try:
            body()
            drawn = trainer.source.cursor - self.frozen[1]
            assert drawn == self.batches, f"the step drew {drawn} batches where batches_per_step says {self.batches}"
            for name, owner in owners.items():
                after = _python_numbers(owner)
                changed = sorted(k for k in before[name].keys() | after.keys() if before[name].get(k) != after.get(k))
                assert not changed, (
                    f"the step changed {name}.{changed[0]} in Python; a CUDA graph's replay would not "
                    "(keep it in a device tensor, or declare capturable = False)"
                )
        finally:
            trainer.step, trainer.source.cursor = now
            for (group, _), settings in zip(self.groups, settings_now):
                group.update(settings)


def rehearse(trainer: AdversarialTrainer) -> None:
    """Make ``trainer``'s fits replay captured steps through :class:`Rehearsal`, on any device.

    For a plugin's tests: an objective that declares ``capturable = True`` should train
    bit for bit as it does eagerly (``cuda_graphs="off"``) under the rehearsal.
    """
    trainer._graph_recorder = Rehearsal


class StepGraphs:
    """Runs each training step: a captured graph's replay where the signature has one, else eagerly."""

    def __init__(self, trainer: AdversarialTrainer, mode: str, recorder: type = _CudaGraph) -> None:
        self.trainer, self.mode, self.recorder = trainer, mode, recorder
        self.graphs: dict[tuple, Any] = {}
        self._last: tuple | None = None
        self._seen = 0  # steps in a row with the last signature
        self.failed: str | None = None  # why capturing stopped (a capture raised)
        self.steps = 0  # steps run
        self.replayed = 0  # steps that were replays
        self.captured = 0  # graphs captured
        self._side = torch.cuda.Stream(trainer.device) if recorder is _CudaGraph else None
        self._step_t = torch.zeros((), dtype=torch.int64, device=trainer.device)
        trainer.source.set_static(True)

    def close(self) -> str:
        """Drop the graphs (their memory), go back to plain steps; what happened, in words."""
        self.graphs.clear()
        self.trainer.source.set_static(False)
        graphs = "graph" if self.captured == 1 else "graphs"
        report = f"on: {self.replayed:,} of {self.steps:,} steps were replays of {self.captured} captured {graphs}"
        return report if self.failed is None else f"{report}; then {self.failed}"

    def signature(self) -> tuple:
        """The Python numbers a captured step bakes in: k and the batches it draws, the averages'
        weights at this step, and every optimiser setting (learning rates included)."""
        trainer = self.trainer
        settings = tuple(_hashable(tuple(_settings(group).items())) for group in _param_groups(trainer))
        weights = tuple(player.average_weight(trainer.step) for player in trainer.players.values())
        batches = trainer.objective.batches_per_step(trainer.step, trainer)
        return (trainer.k_at(trainer.step), batches, weights, settings)

    def step(self) -> None:
        """One step, replayed or eager; the step counter is the trainer's to advance."""
        self.check_refused()
        signature = self.signature()
        graph = self.graphs.get(signature)
        if graph is None:
            self._seen = self._seen + 1 if signature == self._last else 1
            self._last = signature
            can_capture = self.failed is None
            if not can_capture or self._seen < WARMUP_STEPS:
                with self._on_side_stream(can_capture and self._seen > 1):
                    self.trainer._step_body()
                self.steps += 1
                return
            if self._seen == WARMUP_STEPS:  # the last warm-up step: does it read anything on the host?
                with self._on_side_stream(True):
                    self._check_for_host_reads()
                self.steps += 1
                return
            graph = self._capture(signature)
        else:
            self.graphs[signature] = self.graphs.pop(signature)  # the most recently replayed last
            self._last = signature
        self._feed()
        graph.replay(self.trainer, self._captured_body)
        self.trainer.source.cursor += signature[1]
        self.steps += 1
        self.replayed += 1

    def check_refused(self) -> None:
        """With ``on``, a step found unfit for capture is an error, raised between steps (that one is whole)."""
        if self.failed is not None and self.mode == "on":
            raise CaptureError(f"trainer.cuda_graphs is on, but {self.failed}")

    def _feed(self) -> None:
        self._step_t.fill_(self.trainer.step)
        self.trainer.source.feed()

    def _captured_body(self) -> None:
        """The step as captured: the step number and the data cursor read from device memory."""
        trainer = self.trainer
        trainer._static_step, trainer.source.reading_static = self._step_t, True
        try:
            trainer._step_body()
        finally:
            trainer._static_step, trainer.source.reading_static = None, False

    def _check_for_host_reads(self) -> None:
        """Run a step with torch's sync debug mode warning at each host read; if there is one, never capture.

        A capture stops at a host read with an error that torch does not undo (its random
        generators stay in capture mode), so the read is found in an eager step first.
        """
        if self.recorder is not _CudaGraph:
            self.trainer._step_body()
            return
        was = torch.cuda.get_sync_debug_mode()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")  # its first call warns that the mode is a prototype: not a read
            try:
                self.trainer._step_body()
            finally:
                torch.cuda.set_sync_debug_mode(was)
        reads = [w for w in caught if str(w.message).startswith(SYNC_WARNING)]
        for warning in caught:  # other warnings were not ours to swallow
            if warning not in reads and not str(warning.message).startswith("Synchronization debug mode"):
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        if reads:
            where = f"{reads[0].filename}:{reads[0].lineno}"  # the Python line that made the read
            self.failed = f"the step reads a value on the host at {where} (torch: {str(reads[0].message).strip().splitlines()[0]})"

    def _capture(self, signature: tuple) -> Any:
        trainer = self.trainer
        if len(self.graphs) >= MAX_GRAPHS:
            del self.graphs[next(iter(self.graphs))]  # the least recently replayed, and its memory
        self._feed()  # the order buffer holds this epoch's order before the capture reads it
        cursor = trainer.source.cursor
        groups = _param_groups(trainer)
        absent = object()
        capturable = [group.get("capturable", absent) for group in groups]
        for group in groups:
            group["capturable"] = True  # torch's check before a captured optimiser step; fused kernels ignore it
        try:
            graph = self.recorder(trainer, self._captured_body)
        except Exception as exc:
            # torch leaves its random generators in capture mode after a failed capture, so no
            # eager step may follow in this process: stop, between steps, with the state whole.
            first = exc.__context__ or exc  # the step's own error, where ending the capture raised another
            text = str(first).strip().splitlines()[0] if str(first).strip() else type(first).__name__
            raise CaptureError(f"capturing the training step in a CUDA graph failed ({text})") from None
        finally:
            for group, was in zip(groups, capturable):
                if was is absent:
                    del group["capturable"]
                else:
                    group["capturable"] = was
            trainer.source.cursor = cursor  # a capture runs nothing: no batch was drawn
            trainer._step_ok = None
        self.graphs[signature] = graph
        self.captured += 1
        return graph

    @contextlib.contextmanager
    def _on_side_stream(self, warming: bool):
        """The warm-up steps before a capture run on a side stream, as torch asks (lazy set-up happens there)."""
        if not warming or self._side is None:
            yield
            return
        main = torch.cuda.current_stream(self.trainer.device)
        self._side.wait_stream(main)
        with torch.cuda.stream(self._side):
            yield
        main.wait_stream(self._side)


def make(trainer: AdversarialTrainer, mode: str, recorder: type | None = None) -> tuple[StepGraphs | None, str | None]:
    """The run's step graphs, or None and why not (None with ``off``).

    ``on`` where they cannot apply is one line saying why. ``recorder`` replaces
    the CUDA graph (:class:`Rehearsal`, in the tests, on any device).
    """
    if mode == "off":
        return None, None
    reason = why_not(trainer, need_cuda=recorder is None)
    if reason is None:
        return StepGraphs(trainer, mode, recorder or _CudaGraph), None
    if mode == "on":
        raise ConfigError(f"trainer.cuda_graphs is on, but {reason}")
    return None, reason
