"""The trainer's speed-ups compute what the plain path computes (same seed, float tolerance)."""

from __future__ import annotations

import pytest
import torch

from advnets import AdversarialTrainer, Data
from advnets.losses import NonSaturatingLoss
from advnets.optim import adam
from advnets_mnist.models import MLPDiscriminator, MLPGenerator


def small_gan(seed: int = 0, **kwargs) -> AdversarialTrainer:
    torch.manual_seed(seed)
    generator = MLPGenerator(latent_dim=16, hidden=[32, 64], out_shape=[1, 8, 8])
    discriminator = MLPDiscriminator(in_shape=[1, 8, 8], hidden=[64, 32])
    data = Data(
        train=torch.randint(0, 256, (256, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(5)),
        raw_range=(0.0, 255.0),
        model_range=(-1.0, 1.0),
    )
    return AdversarialTrainer(generator, discriminator, NonSaturatingLoss(), data, batch_size=16, device="cpu", seed=seed, **kwargs)


def weights(trainer):
    return [p.detach().clone() for p in [*trainer.generator.parameters(), *trainer.discriminator.parameters()]]


@pytest.mark.parametrize("impl", ["fused", "foreach"])
def test_fused_and_foreach_adam_match_the_for_loop(impl):
    plain = small_gan(g_optimizer=adam(lr=1e-3, impl="for-loop"), d_optimizer=adam(lr=1e-3, impl="for-loop"))
    fast = small_gan(g_optimizer=adam(lr=1e-3, impl=impl), d_optimizer=adam(lr=1e-3, impl=impl))
    assert fast.g_optimizer.defaults.get(impl) is True and plain.g_optimizer.defaults.get("foreach") is False
    for _ in range(5):
        plain.train_step()
        fast.train_step()
        torch.testing.assert_close(fast._stats, plain._stats, rtol=1e-5, atol=1e-6)
    for a, b in zip(weights(fast), weights(plain)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_auto_picks_the_fused_kernel_on_the_cpu():
    assert small_gan(g_optimizer=adam(impl="auto")).g_optimizer.defaults["fused"] is True


def test_generator_update_needs_only_the_generators_gradients():
    """backward(inputs=G's parameters) gives G the same gradients as a full backward."""
    trainer = small_gan()
    z = torch.randn(16, 16)
    grads = []
    for inputs in (None, trainer.players.generator.params):
        trainer.generator.zero_grad(set_to_none=True)
        trainer.discriminator.zero_grad(set_to_none=True)
        loss = trainer.loss.generator_loss(trainer.discriminator(trainer.generator(z)))
        loss.backward(inputs=inputs)
        grads.append([p.grad.clone() for p in trainer.generator.parameters()])
        d_grads = [p.grad for p in trainer.discriminator.parameters()]
    assert all(g is None for g in d_grads)  # with inputs=G's parameters, D's were never computed
    for full, pruned in zip(*grads):
        torch.testing.assert_close(pruned, full, rtol=0, atol=0)


def test_batches_by_index_select_are_the_indexed_rows():
    trainer = small_gan()
    source = trainer.source
    source.order = torch.randperm(256, generator=torch.Generator().manual_seed(1))
    batch = source.next()
    expected = trainer.data.decode(trainer.data.train[source.order[:16]])
    assert torch.equal(batch.x, expected) and batch.labels is None


def test_bf16_autocast_runs_on_the_cpu_and_stays_close_to_float32():
    plain, half = small_gan(), small_gan(precision="bf16")
    plain.train_step()
    half.train_step()
    stats32, stats16 = plain.pop_stats(), half.pop_stats()
    for key in stats32:
        assert stats16[key] == pytest.approx(stats32[key], rel=0.05, abs=0.02), key
    assert all(p.dtype == torch.float32 for p in half.generator.parameters())  # weights stay float32
    half.fit(steps=20)
    assert all(torch.isfinite(p).all() for p in weights(half))


def test_float16_needs_cuda():
    from advnets import ConfigError

    with pytest.raises(ConfigError, match="needs CUDA; on cpu use bf16"):
        small_gan(precision="16")


# Ops that launch no kernel on a GPU: views, metadata, allocation without a fill.
NO_KERNEL = {
    "empty", "empty_strided", "empty_like", "view", "_unsafe_view", "t", "detach", "alias", "transpose", "expand",
    "as_strided", "reshape", "unsqueeze", "squeeze", "permute", "select", "slice", "_reshape_alias", "lift_fresh",
    "split", "unbind", "_record_function_enter_new", "_record_function_exit",
}


def kernels_per_step(step, steps: int = 4) -> float:
    """torch operators a step dispatches, views left out: on a GPU, about the kernels it launches."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        calls = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket.__name__ not in NO_KERNEL:
                Count.calls += 1
            return func(*args, **(kwargs or {}))

    for _ in range(2):
        step()
    with Count():
        for _ in range(steps):
            step()
    return Count.calls / steps


@pytest.mark.slow
def test_the_trainers_step_launches_about_as_many_kernels_as_a_hand_written_one(mnist_dir):
    """At small batches a GPU step costs per kernel (docs/performance.md): the trainer's step, with its
    NaN guard, counters, statistics and Algorithm 1's fresh noise for G, stays within 10% of the
    hand-written step of the same model (benchmarks/gpu_check.py's hand_step: no guard, no statistics)."""
    import sys
    from pathlib import Path

    benchmarks = str(Path(__file__).resolve().parents[1] / "benchmarks")
    sys.path.insert(0, benchmarks)
    try:
        from gpu_check import hand_step
        from throughput import TrainerRun
    finally:
        sys.path.remove(benchmarks)
    hand = kernels_per_step(hand_step(torch.device("cpu"), 32))
    run = TrainerRun(32, mnist_dir, torch.device("cpu"), settings={"callbacks": {}, "checkpoint.every_epochs": 0})
    try:
        trainer = kernels_per_step(run.trainer.train_step)
    finally:
        run.close()
    assert 150 < hand < 200  # the count is what it claims: the two MLPs' forward and backward, Adam
    assert trainer <= 1.1 * hand, (trainer, hand)
