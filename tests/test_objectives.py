"""The step as a component: the gan objective's bit-identity, extra players, hooks, labels, diagnostics."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from advnets import AdversarialTrainer, Callback, ConfigError, Data, Diagnostic, Objective, PlayerSpec
from advnets.checkpoint import load_checkpoint, save_checkpoint
from advnets.losses import HingeLoss, NonSaturatingLoss, RelativisticAverageLoss, WassersteinLoss
from advnets.trainer import generate_labelled

from test_trainer import Discriminator, Generator, make_trainer, params

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "reference"
EXAMPLE = REPO / "docs" / "examples" / "latent_regression.py"


PREVIOUS_TRAINER = "c37e44d"  # the trainer before the step became a component
COMPARED = ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm", "step", "epoch", "skipped_steps")


def reference_hashes(tree: Path | None = None) -> dict:
    """step_reference.py's hashes, run in a fresh process against ``tree`` (default: this checkout)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADVNETS_")}
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(tree), str(tree / "plugins")])
    out = subprocess.run(
        [sys.executable, str(REFERENCE / "step_reference.py")], capture_output=True, text=True, env=env, timeout=300,
        cwd=tree or REPO, check=True,
    )
    hashes = json.loads(out.stdout)
    trainer = Path(hashes.pop("_trainer"))
    assert trainer.is_relative_to(tree or REPO), trainer  # the trainer that was asked for, not an installed one
    return hashes


def same_training(before: dict, after: dict) -> list[str]:
    """The configurations whose weights, counters or logged numbers differ."""
    differ = []
    for name in before:
        if len(json.loads(before[name]["records"])) != len(json.loads(after[name]["records"])):
            differ.append(name)
            continue
        records = zip(json.loads(before[name]["records"]), json.loads(after[name]["records"]))
        if (before[name]["weights"] != after[name]["weights"] or before[name]["counters"] != after[name]["counters"]
                or any(a[key] != b[key] for a, b in records for key in COMPARED)):
            differ.append(name)
    return differ


def previous_trainer(tmp_path: Path) -> Path | None:
    """The previous trainer's source from this checkout's history, or None where the history is not here."""
    try:
        found = subprocess.run(["git", "cat-file", "-e", f"{PREVIOUS_TRAINER}^{{commit}}"], cwd=REPO, capture_output=True)
    except OSError:  # no git on this machine
        return None
    if found.returncode != 0:
        return None
    archive = subprocess.run(["git", "archive", PREVIOUS_TRAINER, "advnets", "plugins"], cwd=REPO, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tmp_path)], input=archive.stdout, check=True)
    return tmp_path


@pytest.mark.slow  # two fresh processes, about 25 s
def test_gan_objective_reproduces_the_previous_trainer_bit_for_bit(tmp_path):
    """Five configurations (k = 2 and 3, EMA, dropout, batch norm in D, gradient penalty, SGD,
    lr schedules), trained by the previous trainer and by this one on the same machine.

    Float results depend on the CPU's vector units (the same code gives other last bits on
    AVX-512 than on AVX2), so the previous trainer runs here, from the checkout's history.
    Without the history (a tarball, a shallow clone), the hashes it gave on the machines
    step_reference.json records stand in: this trainer must match one of them.
    """
    now = reference_hashes()
    old_tree = previous_trainer(tmp_path)
    if old_tree is not None:
        before = reference_hashes(old_tree)
        assert set(before) == set(now)
        assert same_training(before, now) == []
    else:
        stored = json.loads((REFERENCE / "step_reference.json").read_text())["machines"]
        assert any(set(s["hashes"]) == set(now) and same_training(s["hashes"], now) == [] for s in stored), "no stored machine matches"



# --- a third player ---------------------------------------------------------------------


class Encoder(nn.Module):
    def __init__(self, width: int = 2, latent_dim: int = 3) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(width, 16), nn.ReLU(), nn.Linear(16, latent_dim))

    def forward(self, x):
        return self.net(x)


class Recover(Objective):
    """G and E trained together to make E(G(z)) = z, beside Algorithm 1's D update."""

    players = ("generator", "discriminator", "encoder")

    def diagnostics(self, trainer):
        return {"d_loss": Diagnostic("D's loss"), "z_error": Diagnostic("z error", 0.0)}

    def step(self, ctx):
        G, D, E = ctx.players.generator, ctx.players.discriminator, ctx.players.encoder
        batch = ctx.batch()
        with torch.no_grad():
            fake = G.module(ctx.noise())
        d_loss = ctx.loss.discriminator_loss(D.module(batch.x).reshape(-1), D.module(fake).reshape(-1))
        ctx.update("discriminator", d_loss)
        z = ctx.noise()
        sample = G.update_module(z)
        z_error = (E.update_module(sample) - z).square().mean()
        ctx.update(("generator", "encoder"), ctx.loss.generator_loss(D.module(sample).reshape(-1)) + z_error)
        return {"d_loss": d_loss.detach(), "z_error": z_error.detach()}


def three_players(seed=3, **kwargs):
    torch.manual_seed(seed)
    encoder = Encoder()
    return make_trainer(seed=seed, objective=Recover(), players={"encoder": PlayerSpec(encoder, ema_decay=0.9)}, **kwargs)


def test_a_third_player_trains_and_resumes_bit_identically(tmp_path):
    straight = three_players().fit(steps=21)
    first = three_players().fit(steps=9)  # mid-epoch (8 steps per epoch)
    save_checkpoint(tmp_path / "c.safetensors", first.state_dict(), {})
    state, _ = load_checkpoint(tmp_path / "c.safetensors")
    assert "players.encoder" in state and "optimizers.encoder" in state and "averages.encoder" in state
    resumed = three_players()
    resumed.load_state_dict(state)
    resumed.fit(steps=21)
    for name in ("generator", "discriminator", "encoder"):
        a, b = straight.players[name], resumed.players[name]
        assert all(torch.equal(x, y) for x, y in zip(params(a.module), params(b.module))), name
    assert all(torch.equal(x, y) for x, y in zip(params(straight.players.encoder.ema), params(resumed.players.encoder.ema)))
    # the encoder moved: it was trained, not just carried
    untouched = three_players().players.encoder.module
    assert not all(torch.equal(x, y) for x, y in zip(params(untouched), params(straight.players.encoder.module)))


def test_a_checkpoint_with_other_players_is_refused(tmp_path):
    save_checkpoint(tmp_path / "c.safetensors", three_players().fit(steps=2).state_dict(), {})
    with pytest.raises(ConfigError, match="players generator, discriminator, encoder"):
        make_trainer().load_state_dict(load_checkpoint(tmp_path / "c.safetensors")[0])


def test_an_objective_needs_its_players():
    with pytest.raises(ConfigError, match="needs the player\\(s\\) encoder"):
        make_trainer(objective=Recover())


def test_a_player_the_objective_does_not_play_is_refused():
    """It would be built, checkpointed and never trained (players.encoder under objective gan was accepted)."""
    with pytest.raises(ConfigError) as caught:
        make_trainer(players={"encoder": PlayerSpec(Encoder())})
    assert str(caught.value) == (
        "players.encoder: objective GANObjective does not play it (it plays generator, discriminator); "
        "choose an objective that does, or leave the player out"
    )


@pytest.mark.slow
def test_a_plugin_file_outside_the_repository_adds_an_objective_with_a_third_player(tmp_path, cli):
    plugin = tmp_path / "elsewhere" / "latent_regression.py"
    plugin.parent.mkdir()
    shutil.copy(EXAMPLE, plugin)
    run = tmp_path / "run"
    result = cli(
        "run", "toy-gaussian", "--plugin", str(plugin), "--set", "objective=latent-regression",
        "--set", 'players.encoder={"module": {"name": "mlp"}, "optimizer": {"name": "adam", "lr": 0.001}}',
        "--steps", "300", "--set", "trainer.log_every=50", "--set", "eval.n_samples=500", "--seed", "1", "--out", str(run), cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["objective"] == {"name": "latent-regression", "weight": 1.0}
    assert config["players"]["encoder"]["optimizer"]["lr"] == 0.001
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    described = next(r for r in records if r["event"] == "diagnostics")["diagnostics"]
    assert set(described) == {"d_loss", "g_loss", "z_error"}
    train = [r for r in records if r["event"] == "train"]
    assert train and all("z_error" in r for r in train)
    assert train[-1]["z_error"] < train[0]["z_error"]  # the encoder learns to recover z
    state, _ = load_checkpoint(sorted((run / "checkpoints").glob("step-*.safetensors"))[-1])
    assert "players.encoder" in state
    # a misspelled player setting is one line, exit 2
    bad = cli("run", "toy-gaussian", "--plugin", str(plugin), "--set", "players.encoder.modul=mlp", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "a player has" in bad.stderr and "Traceback" not in bad.stderr
    # an encoder whose code is not G's latent size is refused by the objective's check
    wide = cli("run", "toy-gaussian", "--plugin", str(plugin), "--set", "objective=latent-regression",
               "--set", 'players.encoder={"module": {"name": "mlp", "latent_dim": 3}, "optimizer": {"name": "adam"}}',
               "--out", str(tmp_path / "wide"))
    assert wide.returncode == 2, wide.stderr
    assert wide.stderr.strip().endswith("the encoder gives codes of shape (3,); G's latent_dim is 1: set players.encoder.module.latent_dim=1")
    assert not (tmp_path / "wide").exists()


# --- hooks --------------------------------------------------------------------------------


class Clip(Callback):
    """WGAN's weight clipping, done through the hook after D's optimiser step."""

    state_key = "clip"

    def __init__(self, bound: float) -> None:
        self.bound = bound
        self.calls: list[tuple[str, str]] = []

    def on_after_backward(self, trainer, players):
        self.calls.append(("backward", "+".join(players)))

    def on_before_optimizer_step(self, trainer, player):
        self.calls.append(("before", player))

    def on_after_optimizer_step(self, trainer, player):
        self.calls.append(("after", player))
        if player == "discriminator":
            with torch.no_grad():
                for p in trainer.discriminator.parameters():
                    p.clamp_(-self.bound, self.bound)


def test_hooks_run_around_each_update_and_clip_the_critic():
    clip = Clip(0.01)
    trainer = make_trainer(loss=WassersteinLoss(gradient_penalty=0.0), k=2, callbacks=[clip]).fit(steps=3)
    per_step = [("backward", "discriminator"), ("before", "discriminator"), ("after", "discriminator")] * 2 + [
        ("backward", "generator"), ("before", "generator"), ("after", "generator")
    ]
    assert clip.calls == per_step * 3
    assert all(p.abs().max() <= 0.01 for p in trainer.discriminator.parameters())


def test_on_exception_is_told_why_training_stopped():
    seen = []

    class Watch(Callback):
        def on_exception(self, trainer, exception):
            seen.append(type(exception))

    class Boom(Callback):
        def on_step_end(self, trainer):
            if trainer.step == 2:
                raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        make_trainer(callbacks=[Watch(), Boom()]).fit(steps=5)
    assert seen == [RuntimeError]


class Counter(Callback):
    def __init__(self, key=None):
        self.state_key = key
        self.count = 0

    def on_step_end(self, trainer):
        self.count += 1

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


def test_callback_state_follows_its_key_not_its_position():
    class Other(Counter):
        pass

    trainer = make_trainer(callbacks=[Counter("a"), Other("b")]).fit(steps=4)
    state = trainer.state_dict()
    fresh_b, fresh_a = Other("b"), Counter("a")
    make_trainer(callbacks=[fresh_b, fresh_a]).load_state_dict(state)  # another order, as on another rank
    assert (fresh_a.count, fresh_b.count) == (4, 4)
    with pytest.raises(ConfigError, match="two callbacks keep their state under 'Counter'"):
        make_trainer(callbacks=[Counter(), Counter()])


def test_raising_k_during_a_run_ends_the_epoch_instead_of_drawing_empty_batches():
    class RaiseK(Callback):
        def on_step_end(self, trainer):
            if trainer.step == 5:
                trainer.k = 3

    data = Data(train=torch.randn(64, 2, generator=torch.Generator().manual_seed(0)))
    seen = []
    original = data.decode
    data.decode = lambda raw: (seen.append(len(raw)), original(raw))[1]
    trainer = make_trainer(data=data, callbacks=[RaiseK()]).fit(steps=9)
    assert set(seen) == {8}  # every real batch full
    # 5 steps of 1 batch, then 3-batch steps: 5 + 3 = 8 batches ends epoch 1 at step 6, and epoch 2
    # (8 batches: two steps of 3, two left over) at step 8
    assert trainer.epoch == 2 and trainer.step == 9 and trainer.source.cursor == 3


# --- losses, diagnostics ------------------------------------------------------------------


def test_diagnostics_show_probabilities_only_for_probability_losses():
    ns = make_trainer(loss=NonSaturatingLoss()).fit(steps=2)
    assert {"d_real", "d_fake"} <= set(ns.pop_stats() or ns.diagnostics())
    hinge = make_trainer(loss=HingeLoss())
    hinge.train_step()
    stats = hinge.pop_stats()
    assert "d_real" not in stats and {"real_score", "fake_score"} <= set(stats)
    assert hinge.diagnostics()["real_score"]["equilibrium"] == 0.0
    assert ns.diagnostics()["d_real"]["equilibrium"] == 0.5


def test_relativistic_loss_trains_through_the_gan_objective_with_real_logits():
    seen = []

    class Spy(RelativisticAverageLoss):
        def generator_loss(self, fake_logits, real_logits=None):
            seen.append(real_logits)
            return super().generator_loss(fake_logits, real_logits)

    trainer = make_trainer(loss=Spy()).fit(steps=3)
    assert len(seen) == 3 and all(r is not None and r.shape == (8,) and not r.requires_grad for r in seen)
    assert trainer.step == 3


# --- labels and conditional models --------------------------------------------------------


class CondGenerator(Generator):
    num_classes = 3

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(3, 3)

    def forward(self, z, labels):
        return super().forward(z + self.embed(labels))


class CondDiscriminator(Discriminator):
    num_classes = 3

    def __init__(self):
        super().__init__(width=5)

    def forward(self, x, labels):
        return super().forward(torch.cat((x, nn.functional.one_hot(labels, 3).float()), 1))


def labelled_data(n=64):
    rng = torch.Generator().manual_seed(5)
    labels = torch.randint(0, 3, (n,), generator=rng)
    return Data(train=torch.randn(n, 2, generator=rng) + labels[:, None].float(), train_labels=labels, num_classes=3)


def conditional_trainer(data=None, **kwargs):
    torch.manual_seed(0)
    return AdversarialTrainer(
        CondGenerator(), CondDiscriminator(), NonSaturatingLoss(), data or labelled_data(),
        batch_size=8, seed=0, device="cpu", **kwargs,
    )


def test_labels_reach_the_conditional_generator_and_discriminator():
    seen = []

    class Spy(CondDiscriminator):
        def forward(self, x, labels):
            seen.append(labels)
            return super().forward(x, labels)

    torch.manual_seed(0)
    data = labelled_data()
    trainer = AdversarialTrainer(CondGenerator(), Spy(), NonSaturatingLoss(), data, batch_size=8, seed=0, device="cpu")
    seen.clear()  # the dry pass's check of shapes
    trainer.fit(steps=2)
    joint = seen[0]  # the joint D pass: the real batch's labels, twice (G drew the same classes)
    assert joint.shape == (16,) and torch.equal(joint[:8], joint[8:])
    order = trainer.source.order
    assert torch.equal(joint[:8], data.train_labels[order[:8]])
    samples, labels = generate_labelled(trainer.generator, 30, seed=1, labels=torch.arange(3).repeat(10))
    assert samples.shape == (30, 2) and torch.equal(labels, torch.arange(3).repeat(10))


@pytest.mark.parametrize(
    "case, message",
    [
        ("unlabelled data", "the generator is conditional"),
        ("only G conditional", "only the generator is conditional"),
        ("class count differs", "the generator has 3 classes"),
        ("label out of range", "label is out of range"),
    ],
)
def test_conditional_misuse_is_one_clear_error(case, message):
    rng = torch.Generator().manual_seed(0)
    with pytest.raises(ConfigError, match=message):
        if case == "unlabelled data":
            conditional_trainer(data=Data(train=torch.randn(64, 2)))
        elif case == "only G conditional":
            AdversarialTrainer(CondGenerator(), Discriminator(), NonSaturatingLoss(), labelled_data(), batch_size=8, device="cpu")
        elif case == "class count differs":
            labels = torch.randint(0, 4, (64,), generator=rng)
            conditional_trainer(data=Data(train=torch.randn(64, 2), train_labels=labels, num_classes=4))
        else:
            Data(train=torch.randn(4, 2), train_labels=torch.tensor([0, 1, 2, 7]), num_classes=3)


def test_fake_labels_follow_the_class_frequencies():
    labels = torch.tensor([0] * 48 + [1] * 12 + [2] * 4)
    trainer = conditional_trainer(data=Data(train=torch.randn(64, 2), train_labels=labels, num_classes=3))
    drawn = trainer.draw_labels(6000)
    shares = torch.bincount(drawn, minlength=3).double() / 6000
    assert torch.allclose(shares, torch.tensor([0.75, 0.1875, 0.0625], dtype=torch.float64), atol=0.02)


# --- schedules ----------------------------------------------------------------------------


def test_a_k_schedule_sets_the_batches_of_each_step_and_the_epochs_stay_right():
    data = Data(train=torch.randn(64, 2, generator=torch.Generator().manual_seed(0)))  # 8 batches an epoch
    seen = []
    original = data.decode
    data.decode = lambda raw: (seen.append(len(raw)), original(raw))[1]
    trainer = make_trainer(data=data, k_schedule=[[0, 3], [4, 1]])
    draws = []

    class Count(Callback):
        def on_step_end(self, t):
            draws.append(len(seen))

    trainer.callbacks.append(Count())
    target = trainer.steps_for(epochs=2)
    trainer.fit(epochs=2)
    per_step = [b - a for a, b in zip([0, *draws], draws)]
    # epoch 1: steps 0-1 draw 3 batches each (2 left over < 3), epoch 2: steps 2, 3 draw 3, then k = 1 ...
    assert per_step[:4] == [3, 3, 3, 3] and set(per_step[4:]) == {1}
    assert trainer.epoch == 2 and trainer.step == target == 2 + 2 + 2  # 2 steps, then 2 of 3 + 2 of 1
    with pytest.raises(ConfigError, match="must start at step 0"):
        make_trainer(k_schedule=[[5, 2]])
    with pytest.raises(ConfigError, match="every k must be >= 1"):
        make_trainer(k_schedule=[[0, 1], [3, 0]])


def test_warmup_cosine_follows_its_formula():
    from advnets.schedules import warmup_cosine

    lrs = []

    class Record(Callback):
        def on_step_end(self, trainer):
            lrs.append(trainer.d_optimizer.param_groups[0]["lr"])

    make_trainer(lr_scheduler=warmup_cosine(warmup_steps=4), callbacks=[Record()], d_optimizer=None).fit(steps=12)
    base = 2e-4  # the trainer's default Adam
    expected = [base * (s + 2) / 4 if s + 1 < 4 else base * 0.5 * (1 + math.cos(math.pi * (s + 1 - 4) / 8)) for s in range(12)]
    assert lrs == pytest.approx(expected, rel=1e-12)


def test_warmup_cosine_with_decay_steps_ends_there_whatever_the_runs_length():
    """A run stopped early follows the start of the full run's curve; a longer one stays at min_factor."""
    from advnets.schedules import warmup_cosine

    def curve(steps):
        lrs = []

        class Record(Callback):
            def on_step_end(self, trainer):
                lrs.append(trainer.d_optimizer.param_groups[0]["lr"])

        schedule = warmup_cosine(min_factor=0.3, decay_steps=10)
        make_trainer(lr_scheduler=schedule, callbacks=[Record()], d_optimizer=None).fit(steps=steps)
        return lrs

    base = 2e-4
    full = [base * (0.3 + 0.7 * 0.5 * (1 + math.cos(math.pi * min((s + 1) / 10, 1.0)))) for s in range(16)]
    assert curve(16) == pytest.approx(full, rel=1e-12)
    assert curve(4) == pytest.approx(full[:4], rel=1e-12)
    assert full[-1] == pytest.approx(0.3 * base) and full[9] == pytest.approx(0.3 * base)
    with pytest.raises(ConfigError, match="decay_steps must be 0"):
        warmup_cosine(warmup_steps=5, decay_steps=5)


def test_three_players_a_k_schedule_and_an_lr_scheduler_resume_bit_identically(tmp_path):
    from advnets.schedules import torch_scheduler

    def build():
        return three_players(k_schedule=[[0, 2], [5, 1]], lr_scheduler=torch_scheduler("CosineAnnealingLR", {"T_max": "total_steps"}))

    class StopAt(Callback):  # an interrupted run: its target stays 17, it stops at 7
        def on_step_end(self, trainer):
            trainer.should_stop = trainer.step >= 7

    straight = build().fit(steps=17)
    half = build()
    half.callbacks.append(StopAt())
    half.fit(steps=17)
    assert half.step == 7
    save_checkpoint(tmp_path / "c.safetensors", half.state_dict(), {})
    resumed = build()
    resumed.load_state_dict(load_checkpoint(tmp_path / "c.safetensors")[0])
    resumed.fit(steps=17)
    for name in ("generator", "discriminator", "encoder"):
        a, b = straight.players[name], resumed.players[name]
        assert all(torch.equal(x, y) for x, y in zip(params(a.module), params(b.module))), name
        assert a.optimizer.param_groups[0]["lr"] == b.optimizer.param_groups[0]["lr"]
    assert straight.players.encoder.optimizer.param_groups[0]["lr"] < 1e-6  # the cosine reached its end


@pytest.mark.slow
def test_sigkill_and_resume_with_three_players_a_k_schedule_and_an_lr_scheduler(tmp_path, cli):
    plugin = tmp_path / "latent_regression.py"
    shutil.copy(EXAMPLE, plugin)
    args = [
        "run", "toy-gaussian", "--plugin", str(plugin), "--set", "objective=latent-regression",
        "--set", 'players.encoder={"module": {"name": "mlp"}}', "--set", "trainer.k_schedule=[[0, 2], [100, 1]]",
        "--set", "lr_scheduler=warmup-cosine", "--set", "lr_scheduler.warmup_steps=50", "--set", "eval.metrics={}",
        "--set", "callbacks={}", "--set", "checkpoint.every_steps=60", "--set", "checkpoint.every_epochs=0",
        "--steps", "240", "--seed", "4",
    ]
    straight = cli(*args, "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr
    killed = cli(*args, "--out", str(tmp_path / "killed"), env={"ADVNETS_FAILPOINTS": "step=150"})
    assert killed.returncode == -9, killed.stderr
    resumed = cli("run", "--resume", str(tmp_path / "killed"), "--plugin", str(plugin))
    assert resumed.returncode == 0 and "step 120" in resumed.stderr, resumed.stderr
    a, _ = load_checkpoint(tmp_path / "straight" / "checkpoints" / "step-000000240.safetensors")
    b, _ = load_checkpoint(tmp_path / "killed" / "checkpoints" / "step-000000240.safetensors")
    for key in ("generator", "discriminator", "players.encoder"):
        assert a[key].keys() == b[key].keys() and all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    assert a["lr_schedulers"] == b["lr_schedulers"] and a["progress"] == b["progress"]


@pytest.mark.slow
def test_the_weight_clip_callback_makes_the_original_wgan(cli, tmp_path):
    """WGAN with weight clipping through the hook, as a component: every critic weight ends within the clip."""
    out = tmp_path / "wgan"
    result = cli(
        "run", "toy-gaussian", "--set", "loss=wasserstein", "--set", "loss.gradient_penalty=0",
        "--set", "d_optimizer=rmsprop", "--set", "g_optimizer=rmsprop", "--set", "callbacks.weight-clip={}",
        "--set", "eval.metrics={}", "--steps", "50", "--seed", "0", "--out", str(out),
    )
    assert result.returncode == 0, result.stderr
    state, _ = load_checkpoint(out / "checkpoints" / "step-000000050.safetensors")
    critic = torch.cat([t.reshape(-1) for t in state["discriminator"].values()])
    assert critic.abs().max() <= 0.01 and (critic.abs() == 0.01).any()  # clipped, and the clip was reached
    bad = cli("run", "toy-gaussian", "--set", 'callbacks.weight-clip={"player": "critic"}', "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "weight-clip: no player 'critic'" in bad.stderr


def test_a_discriminator_with_more_than_one_logit_per_sample_is_caught_before_training():
    class Wide(Discriminator):
        def forward(self, x):
            return self.net(x).repeat(1, 3)

    torch.manual_seed(0)
    data = Data(train=torch.randn(64, 2))
    with pytest.raises(ConfigError, match=r"the discriminator gave \(2, 3\) for 2 samples"):
        AdversarialTrainer(Generator(), Wide(), NonSaturatingLoss(), data, batch_size=8, device="cpu")
