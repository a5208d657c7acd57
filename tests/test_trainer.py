"""AdversarialTrainer: Algorithm 1's order of updates, fresh data and noise, determinism, state."""

from __future__ import annotations

import copy
import dataclasses
import functools
import math

import pytest
import torch
from torch import nn

from advnets import AdversarialTrainer, Callback, ConfigError, Data
from advnets.checkpoint import load_checkpoint, save_checkpoint
from advnets.losses import NonSaturatingLoss, WassersteinLoss
from advnets.players import call
from advnets.trainer import NORM_STATS_SEED


class Generator(nn.Module):
    def __init__(self, latent_dim: int = 3, out: int = 2) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.net = nn.Sequential(nn.Linear(latent_dim, 16), nn.ReLU(), nn.Linear(16, out))

    def forward(self, z):
        return self.net(z)


class Discriminator(nn.Module):
    def __init__(self, width: int = 2, batchnorm: bool = False) -> None:
        super().__init__()
        layers = [nn.Linear(width, 16)] + ([nn.BatchNorm1d(16)] if batchnorm else []) + [nn.ReLU(), nn.Linear(16, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x).squeeze(-1)


@dataclasses.dataclass
class RecordingData(Data):
    """Data whose decode remembers every real minibatch the trainer draws."""

    seen: list = dataclasses.field(default_factory=list)

    def decode(self, raw):
        self.seen.append(raw.clone())
        return super().decode(raw)


def make_trainer(seed=0, n=64, batch_size=8, k=1, data=None, **kwargs):
    torch.manual_seed(seed)
    data = data or Data(train=torch.randn(n, 2, generator=torch.Generator().manual_seed(99)))
    return AdversarialTrainer(
        Generator(), Discriminator(**kwargs.pop("d_kwargs", {})), kwargs.pop("loss", NonSaturatingLoss()), data,
        batch_size=batch_size, k=k, seed=seed, **{"device": "cpu", **kwargs},
    )


def counting(counter: dict, key: str):
    def make(params):
        optimizer = torch.optim.Adam(params, lr=1e-3)
        step = optimizer.step

        @functools.wraps(step)
        def counted(*args, **kw):
            counter[key] += 1
            return step(*args, **kw)

        optimizer.step = counted
        return optimizer

    return make


@pytest.mark.parametrize("k", [1, 3])
def test_k_discriminator_updates_per_generator_update(k):
    counts = {"d": 0, "g": 0}
    trainer = make_trainer(k=k, batch_size=4, g_optimizer=counting(counts, "g"), d_optimizer=counting(counts, "d"))
    trainer.fit(steps=5)
    assert counts == {"d": 5 * k, "g": 5}


def test_every_discriminator_update_draws_a_fresh_minibatch():
    n, batch, k = 48, 4, 3
    data = RecordingData(train=torch.arange(n, dtype=torch.float32).unsqueeze(1).expand(n, 2).contiguous())
    trainer = make_trainer(data=data, n=n, batch_size=batch, k=k)
    assert trainer.steps_per_epoch == (n // batch) // k == 4
    trainer.fit(epochs=2)
    indices = [b[:, 0].long() for b in data.seen]
    assert len(indices) == 2 * 4 * k  # k real minibatches per step, 4 steps per epoch
    for epoch in range(2):
        drawn = torch.cat(indices[epoch * 12 : (epoch + 1) * 12])
        assert len(set(drawn.tolist())) == len(drawn) == n  # no sample twice within an epoch
    assert not torch.equal(torch.cat(indices[:12]), torch.cat(indices[12:]))  # a new order each epoch
    assert trainer.epoch == 2 and trainer.step == 8


def test_every_update_draws_fresh_noise():
    trainer = make_trainer(k=2, batch_size=4)
    noises = []
    trainer.generator.register_forward_pre_hook(lambda module, args: noises.append(args[0].clone()))
    trainer.fit(steps=3)
    assert len(noises) == 3 * (2 + 1)  # k D updates and one G update per step, each with its own z
    assert len({tuple(z.flatten().tolist()) for z in noises}) == len(noises)


def test_each_player_updates_only_its_own_parameters():
    trainer = make_trainer(batch_size=8)
    g_before = [p.detach().clone() for p in trainer.generator.parameters()]
    d_after_d_step = []
    d_step = trainer.d_optimizer.step

    def spy(*args, **kwargs):
        # While D updates, G has not moved
        assert all(torch.equal(a, b) for a, b in zip(g_before, trainer.generator.parameters()))
        result = d_step(*args, **kwargs)
        d_after_d_step[:] = [p.detach().clone() for p in trainer.discriminator.parameters()]
        return result

    trainer.d_optimizer.step = spy
    trainer.train_step()
    # The G update moved G, and did not touch D (nor compute D's weight gradients)
    assert not all(torch.equal(a, b) for a, b in zip(g_before, trainer.generator.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(d_after_d_step, trainer.discriminator.parameters()))
    g_grads = [p.grad for p in trainer.generator.parameters()]
    assert all(g is not None for g in g_grads)


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def test_same_seed_same_weights_bit_for_bit():
    a = make_trainer(seed=5).fit(steps=20)
    b = make_trainer(seed=5).fit(steps=20)
    c = make_trainer(seed=6).fit(steps=20)
    assert all(torch.equal(x, y) for x, y in zip(params(a.generator), params(b.generator)))
    assert all(torch.equal(x, y) for x, y in zip(params(a.discriminator), params(b.discriminator)))
    assert not all(torch.equal(x, y) for x, y in zip(params(a.generator), params(c.generator)))


@pytest.mark.parametrize("loss", [NonSaturatingLoss(), WassersteinLoss(gradient_penalty=10.0)])
def test_joint_discriminator_pass_computes_the_same_as_two_passes(loss):
    # Plain SGD: Adam's first steps turn last-bit differences of near-zero gradients into +-lr.
    sgd = functools.partial(torch.optim.SGD, lr=0.05)
    joint = make_trainer(seed=1, joint_d_forward=True, loss=loss, g_optimizer=sgd, d_optimizer=sgd)
    separate = make_trainer(seed=1, joint_d_forward=False, loss=loss, g_optimizer=sgd, d_optimizer=sgd)
    for trainer in (joint, separate):
        torch.manual_seed(7)  # the gradient penalty draws its mixing weights from torch's global RNG
        trainer.fit(steps=10)
    for x, y in zip(params(joint.discriminator) + params(joint.generator), params(separate.discriminator) + params(separate.generator)):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(joint._stats, separate._stats, rtol=1e-5, atol=1e-6)


def test_joint_pass_is_off_for_batch_coupled_discriminators():
    assert make_trainer().joint_d_forward is True
    assert make_trainer(d_kwargs={"batchnorm": True}).joint_d_forward is False


def test_generator_moving_average():
    decay = 0.9
    trainer = make_trainer(ema_decay=decay, ema_start=2)
    initial = params(trainer.generator_ema)
    trainer.fit(steps=2)  # before ema_start the average copies G
    assert all(torch.equal(a, b) for a, b in zip(params(trainer.generator_ema), params(trainer.generator)))
    assert not all(torch.equal(a, b) for a, b in zip(initial, params(trainer.generator_ema)))
    before = params(trainer.generator_ema)
    trainer.fit(steps=3)
    for avg, old, new in zip(params(trainer.generator_ema), before, params(trainer.generator)):
        torch.testing.assert_close(avg, decay * old + (1 - decay) * new)
    assert trainer.sampling_generator is trainer.generator_ema
    assert not trainer.generator_ema.training


def test_moving_average_warm_up_before_ema_start_and_the_same_average_after_it():
    """ema_warmup W: before ema_start a short average, decay (1 + t) / (W + 1 + t); from ema_start on as without it."""
    decay, start, warmup = 0.9, 6, 2
    trainer = make_trainer(ema_decay=decay, ema_start=start, ema_warmup=warmup)
    expected = params(trainer.generator_ema)
    for step in range(start + 2):
        trainer.fit(steps=step + 1)
        current = params(trainer.generator)
        if step >= start:
            weight = 1 - decay
        elif 0 < step < start - 1:
            weight = warmup / (warmup + 1 + step)  # 1 - (1 + t) / (W + 1 + t)
        else:
            weight = 1.0  # the first step, and the restart just before ema_start: a copy of G
        expected = [(1 - weight) * e + weight * c for e, c in zip(expected, current)]
        for average, e in zip(params(trainer.generator_ema), expected):
            torch.testing.assert_close(average, e, rtol=1e-6, atol=1e-7)
        if step == start - 2:  # a smoothed G, not G itself
            assert not all(torch.equal(a, b) for a, b in zip(params(trainer.generator_ema), current))

    plain = make_trainer(ema_decay=decay, ema_start=start)
    plain.fit(steps=start + 2)
    # Training never reads the average, and it restarts at ema_start: after it, W changes nothing.
    for a, b in zip(params(plain.generator) + params(plain.generator_ema), params(trainer.generator) + params(trainer.generator_ema)):
        assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="ema_warmup must be >= 0, got -1"):
        make_trainer(ema_decay=decay, ema_warmup=-1)


class NormGenerator(Generator):
    """The toy G with batch norm after its hidden layer (and a conditional version)."""

    def __init__(self, num_classes: int = 0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
        if num_classes:
            self.num_classes = num_classes
            self.embed = nn.Embedding(num_classes, 3)

    def forward(self, z, y=None):
        return self.net(z if y is None else z + self.embed(y))


class CondDiscriminator(Discriminator):
    num_classes = 3

    def forward(self, x, y):
        return super().forward(x)


def norm_stats(module):
    norm = module.net[1]
    return norm.running_mean.clone(), norm.running_var.clone()


@pytest.mark.parametrize("conditional", [False, True])
def test_the_averages_batch_norm_statistics_fit_its_own_weights(conditional, tmp_path):
    """G's running statistics follow its last few steps; the average's weights are a mean over many. The
    average's statistics are recomputed for its own weights (from fixed noise) whenever it is used, and
    checkpoints carry the recomputed ones; 0 batches keeps the old behaviour, a copy of G's."""
    labels = dict(train_labels=torch.arange(64) % 3, num_classes=3) if conditional else {}
    data = Data(train=torch.randn(64, 2, generator=torch.Generator().manual_seed(99)), **labels)

    def make(**kwargs):
        torch.manual_seed(0)
        return AdversarialTrainer(
            NormGenerator(3 if conditional else 0), CondDiscriminator() if conditional else Discriminator(), NonSaturatingLoss(), data,
            batch_size=8, seed=0, device="cpu", ema_decay=0.9, **kwargs,
        )

    trainer = make(ema_norm_batches=4).fit(steps=12)
    live = norm_stats(trainer.generator)
    average = trainer.sampling_generator
    assert not average.training and not average.net[1].training
    recomputed = norm_stats(average)
    assert not torch.allclose(recomputed[0], live[0])  # not G's

    # By hand: the plain mean of the batch statistics of 4 batches of the fixed noise, through the average.
    by_hand = copy.deepcopy(average)
    by_hand.net[1].reset_running_stats()
    by_hand.net[1].momentum = None
    by_hand.net[1].train()
    rng = torch.Generator().manual_seed(NORM_STATS_SEED)
    with torch.no_grad():
        for _ in range(4):
            z = torch.randn(8, 3, generator=rng)
            labels = torch.multinomial(data.class_frequencies().float(), 8, replacement=True, generator=rng) if conditional else None
            call(by_hand, z, labels)
    for ours, theirs in zip(recomputed, norm_stats(by_hand)):
        torch.testing.assert_close(ours, theirs)

    # Checkpoints carry the recomputed statistics; the old behaviour copies G's.
    state = trainer.state_dict()
    assert torch.equal(state["generator_ema"]["net.1.running_mean"], recomputed[0])
    copied = make(ema_norm_batches=0).fit(steps=12)
    assert torch.equal(norm_stats(copied.sampling_generator)[0], norm_stats(copied.generator)[0])
    with pytest.raises(ConfigError, match="ema_norm_batches must be in"):
        make(ema_norm_batches=-1)


def test_statistics_are_means_since_the_last_read():
    trainer = make_trainer()
    trainer.fit(steps=3)
    assert trainer.pop_stats() == {}  # fit logs the last partial interval itself
    trainer.train_step()
    trainer.train_step()
    stats = trainer.pop_stats()
    assert set(stats) == {"d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm"}
    assert 0 < stats["d_real"] < 1 and 0 < stats["d_fake"] < 1
    assert stats["d_grad_norm"] > 0 and stats["g_grad_norm"] > 0
    unguarded = make_trainer(nan_guard=False)
    unguarded.train_step()
    assert set(unguarded.pop_stats()) == {"d_loss", "g_loss", "d_real", "d_fake"}


def test_state_round_trip_through_a_checkpoint_file_resumes_exactly(tmp_path):
    straight = make_trainer(seed=3, k=2, ema_decay=0.5).fit(steps=11)
    first = make_trainer(seed=3, k=2, ema_decay=0.5).fit(steps=4)  # stops mid-epoch (2 steps per epoch... )
    save_checkpoint(tmp_path / "c.safetensors", first.state_dict(), {"note": "test"})
    state, metadata = load_checkpoint(tmp_path / "c.safetensors")
    assert metadata == {"note": "test"}
    resumed = make_trainer(seed=123, k=2, ema_decay=0.5)  # another seed: everything must come from the state
    resumed.load_state_dict(state)
    resumed.fit(steps=11)
    for module in ("generator", "discriminator", "generator_ema"):
        for x, y in zip(params(getattr(straight, module)), params(getattr(resumed, module))):
            assert torch.equal(x, y), module
    assert (resumed.step, resumed.epoch) == (straight.step, straight.epoch)


def test_resume_in_the_middle_of_an_epoch(tmp_path):
    straight = make_trainer(seed=4, n=64, batch_size=8).fit(steps=13)  # 8 steps per epoch
    first = make_trainer(seed=4, n=64, batch_size=8).fit(steps=5)
    assert first.source.cursor == 5 and first.source.order is not None
    save_checkpoint(tmp_path / "c.safetensors", first.state_dict(), {})
    resumed = make_trainer(seed=4, n=64, batch_size=8)
    resumed.load_state_dict(load_checkpoint(tmp_path / "c.safetensors")[0])
    resumed.fit(steps=13)
    assert all(torch.equal(x, y) for x, y in zip(params(straight.generator), params(resumed.generator)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"k": 0}, "k \\(discriminator steps per generator step\\) must be >= 1"),
        ({"noise": "laplace"}, "noise must be one of normal, uniform"),
        ({"batch_size": 40, "k": 2}, "fewer than one step needs"),
        ({"ema_decay": 1.0}, "ema_decay must be in \\[0, 1\\)"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
    ],
)
def test_bad_settings_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make_trainer(**kwargs)


def test_generator_needs_a_latent_dim():
    generator = nn.Linear(2, 2)
    with pytest.raises(ConfigError, match="latent_dim"):
        AdversarialTrainer(generator, Discriminator(), NonSaturatingLoss(), Data(train=torch.randn(10, 2)), device="cpu")


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_learning_rate_schedules_decay_to_zero_and_resume_exactly(tmp_path, schedule):
    lrs = []

    class Record(Callback):
        def on_step_end(self, trainer):
            lrs.append(trainer.g_optimizer.param_groups[0]["lr"])

    trainer = make_trainer(lr_schedule=schedule, callbacks=[Record()])
    base = trainer.g_optimizer.param_groups[0]["lr"]
    trainer.fit(steps=10)
    expected = [base * (1 - s / 10) if schedule == "linear" else base * 0.5 * (1 + math.cos(math.pi * s / 10)) for s in range(10)]
    assert lrs == pytest.approx(expected)
    straight = make_trainer(lr_schedule=schedule, seed=2).fit(steps=10)
    first = make_trainer(lr_schedule=schedule, seed=2).fit(steps=10)
    half = make_trainer(lr_schedule=schedule, seed=2)
    half.target_step = 10
    for _ in range(4):
        half.train_step()
    save_checkpoint(tmp_path / "c.safetensors", half.state_dict(), {})
    resumed = make_trainer(lr_schedule=schedule, seed=2)
    resumed.load_state_dict(load_checkpoint(tmp_path / "c.safetensors")[0])
    resumed.fit(steps=10)
    assert all(torch.equal(x, y) for x, y in zip(params(straight.generator), params(resumed.generator)))
    assert all(torch.equal(x, y) for x, y in zip(params(first.generator), params(straight.generator)))


def test_moving_average_with_frozen_generator_parameters():
    torch.manual_seed(0)
    generator = Generator()
    generator.net[0].requires_grad_(False)  # a frozen first layer
    trainer = AdversarialTrainer(
        generator, Discriminator(), NonSaturatingLoss(), Data(train=torch.randn(64, 2)), device="cpu", batch_size=8, ema_decay=0.5
    )
    frozen = trainer.generator_ema.net[0].weight.clone()
    trainer.fit(steps=3)
    assert torch.equal(trainer.generator_ema.net[0].weight, frozen)
    assert not torch.equal(trainer.generator_ema.net[2].weight, trainer.generator.net[2].weight)  # averaged, lagging


def test_a_callback_drawing_from_the_global_rng_does_not_shift_training():
    class Noisy(Callback):
        def on_step_end(self, trainer):
            torch.rand(100)  # a careless callback or metric

    quiet = make_trainer(seed=8, loss=WassersteinLoss(gradient_penalty=10.0))  # the penalty draws from torch's RNG
    noisy = make_trainer(seed=8, loss=WassersteinLoss(gradient_penalty=10.0), callbacks=[Noisy()])
    for trainer in (quiet, noisy):
        torch.manual_seed(3)
        trainer.fit(steps=6)
    assert all(torch.equal(x, y) for x, y in zip(params(quiet.discriminator), params(noisy.discriminator)))


def test_checks_before_training_that_draw_from_the_global_rng_do_not_shift_training():
    """Callbacks' checks run before training (mnist-fid builds its classifier there): eval on or off, the same run."""

    class DrawsInItsCheck(Callback):
        def check(self, trainer):
            torch.rand(100)  # a metric building a network with torch's default initialisation

    trained = []
    for callbacks in ([], [DrawsInItsCheck()]):
        # the penalty draws from torch's RNG in training; nothing reseeds between building and fitting
        trainer = make_trainer(seed=8, loss=WassersteinLoss(gradient_penalty=10.0), callbacks=callbacks)
        trained.append((torch.get_rng_state(), trainer.fit(steps=6)))
    (state, quiet), (state_checked, checked) = trained
    assert torch.equal(state, state_checked)
    assert all(torch.equal(x, y) for x, y in zip(params(quiet.discriminator), params(checked.discriminator)))


@pytest.mark.parametrize("evaluation", [True, False])
def test_callbacks_that_evaluate_stay_quiet_when_evaluation_is_off(evaluation):
    class Probe(Callback):
        evaluation = True

        def __init__(self):
            self.heard = []

        def on_fit_start(self, trainer):
            self.heard.append("fit_start")

        def on_step_end(self, trainer):
            self.heard.append("step")

        def on_epoch_end(self, trainer):
            self.heard.append("epoch")

        def on_fit_end(self, trainer):
            self.heard.append("fit_end")

        def check(self, trainer):
            self.heard.append("check")

        def on_after_backward(self, trainer, players):
            self.heard.append("backward")

        def on_log(self, trainer, record):
            self.heard.append("log")

    probe, plain = Probe(), Probe()
    plain.evaluation = False  # an ordinary callback hears everything either way
    trainer = make_trainer(n=16, callbacks=[probe, plain], evaluation=evaluation, log_every=2)
    trainer.fit(steps=2)
    assert plain.heard == ["check", "fit_start", "backward", "backward", "step", "backward", "backward", "log", "step", "epoch", "fit_end"]
    assert probe.heard == (plain.heard if evaluation else [])


class StatefulCallback(Callback):
    def __init__(self, state):
        self.state = state

    def state_dict(self):
        return self.state


@pytest.mark.parametrize(
    "state, message",
    [
        ({"seen": {1, 2}}, "callback StatefulCallback's state_dict(): cannot store a set in a checkpoint (at callbacks.StatefulCallback.seen)"),
        ([1, 2], "callback StatefulCallback: state_dict() must return a dict or None, got a list"),
        ({"model": object()}, "callback StatefulCallback's state_dict(): cannot store an object in a checkpoint (at callbacks.StatefulCallback.model)"),
    ],
    ids=["a set", "a list", "an object"],
)
def test_callback_state_a_checkpoint_cannot_store_or_resume_is_refused_before_training(state, message):
    """Found at the first checkpoint, it had lost every step trained so far; a list was saved but never resumed."""
    with pytest.raises(ConfigError) as caught:
        make_trainer(callbacks=[StatefulCallback(state)])
    assert str(caught.value) == message
    make_trainer(callbacks=[StatefulCallback({"seen": [1, 2], "count": torch.tensor(3), "nested": {"a": None}})])


class ListD(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(2, 1)

    def forward(self, x):
        return [self.net(x)]


class DoubleG(nn.Module):
    latent_dim = 4

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 2).double()

    def forward(self, z):
        return self.net(z.double())


@pytest.mark.parametrize(
    "players, message",
    [
        ((Generator, ListD), "the discriminator returned list, not a tensor: its forward must return one tensor"),
        ((DoubleG, Discriminator), "the generator returned a torch.float64 tensor; the data and the other player are float32 (no .double() in the module)"),
    ],
    ids=["D returns a list", "G returns float64"],
)
def test_players_that_return_what_training_cannot_use_are_one_line_before_training(players, message):
    """They had been an AttributeError inside the check, and a dtype mismatch at the first step."""
    data = Data(train=torch.randn(16, 2))
    with pytest.raises(ConfigError) as caught:
        AdversarialTrainer(players[0](), players[1](), NonSaturatingLoss(), data, batch_size=8, device="cpu")
    assert str(caught.value) == message


class VectorLoss(NonSaturatingLoss):
    def discriminator_loss(self, real_logits, fake_logits):
        return real_logits - fake_logits  # forgot the mean


class FloatLoss(NonSaturatingLoss):
    def generator_loss(self, fake_logits, real_logits=None):
        return float(fake_logits.mean())


class NotALoss:
    pass


def test_a_loss_that_is_not_a_gan_loss_is_one_line_before_training():
    with pytest.raises(ConfigError) as caught:
        make_trainer(loss=NotALoss())
    assert str(caught.value) == (
        "the loss is a NotALoss, not a GANLoss (from advnets import GANLoss): "
        "it needs discriminator_loss(real_logits, fake_logits) and generator_loss(fake_logits)"
    )


@pytest.mark.parametrize(
    "loss, got",
    [(VectorLoss(), "discriminator's update is a torch.float32 tensor of shape (8,)"), (FloatLoss(), "generator's update is a float")],
    ids=["a vector", "a float"],
)
def test_a_loss_that_is_not_one_number_is_one_line_at_its_update(loss, got):
    """Checked from shapes at each update (no host sync), not by calling the loss before training."""
    trainer = make_trainer(loss=loss)
    with pytest.raises(ConfigError) as caught:
        trainer.fit(steps=1)
    assert str(caught.value) == (
        f"the loss for {got}; it must be one number as a float tensor (a mean over the batch: "
        "the loss's discriminator_loss or generator_loss, or the objective, returned it)"
    )
