"""The BiGAN plugin: its objective on real MNIST, the 1-NN and linear probes, reconstruction grids, the preset."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import torch

from advnets import AdversarialTrainer, Callback, ConfigError, PlayerSpec
from advnets_bigan.callbacks import FeatureProbe, Reconstructions
from advnets_bigan.models import JointDiscriminator, MLPEncoder
from advnets_bigan.objective import BiGANObjective
from advnets_bigan.probe import (
    LINEAR_L2,
    LINEAR_STEPS,
    linear_probe_accuracy,
    linear_probe_labels,
    nearest_neighbour_accuracy,
    nearest_neighbour_labels,
)
from advnets_mnist.data import mnist
from advnets_mnist.models import MLPDiscriminator, MLPGenerator

REPO = Path(__file__).resolve().parents[1]
# Loads the plugin by import, so that the tests need no reinstall of the package and never
# meet a second, installed copy (ADVNETS_LOAD_PLUGINS=mnist keeps installed plugins to mnist).
SHIM = "from advnets_bigan import register_components  # noqa: F401\n"


def test_pyproject_installs_the_plugin_through_the_entry_point_group():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["advnets"]["bigan"] == "advnets_bigan"
    assert "advnets_bigan" in project["tool"]["setuptools"]["packages"]
    assert project["tool"]["setuptools"]["package-dir"]["advnets_bigan"] == "plugins/advnets_bigan"


# --- the 1-nearest-neighbour classifier -------------------------------------------------------


def test_nearest_neighbour_matches_a_hand_computed_example():
    train = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    labels = torch.tensor([3, 1, 2, 4])
    test = torch.tensor(
        [
            [1.0, 1.0],  # nearest (0, 0): squared distances 2, 82, 82, 162
            [9.0, 2.0],  # (10, 0): 85, 5, 145, 65
            [6.0, 5.9],  # (10, 10): 32.81, 50.81, 52.81 and 70.81 to the others
            [5.0, 5.0],  # equidistant from all four: the first, (0, 0)
            [2.0, 7.0],  # (0, 10): 53, 113, 13, 73
        ]
    )
    # chunk 2: the test rows go through in three chunks, the last one short
    assert nearest_neighbour_labels(train, labels, test, chunk=2).tolist() == [3, 1, 4, 3, 2]
    assert nearest_neighbour_accuracy(train, labels, test, torch.tensor([3, 1, 2, 3, 0])) == pytest.approx(3 / 5)


def test_nearest_neighbour_of_a_training_point_is_itself_even_for_images():
    images = torch.rand(50, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(50)
    assert torch.equal(nearest_neighbour_labels(images, labels, images[[7, 0, 49]]), torch.tensor([7, 0, 49]))



# --- the linear classifier --------------------------------------------------------------------


def test_the_linear_probe_separates_what_a_line_separates_and_not_xor():
    g = torch.Generator().manual_seed(0)
    points = torch.rand(400, 2, generator=g) * 2 - 1
    # two classes on either side of a line that misses the origin, with a margin of 0.1 (points
    # closer to the line are dropped) and the features on very different scales
    distance = points[:, 0] + 2 * points[:, 1] - 0.3
    kept = points[distance.abs() > 0.1 * 5**0.5]
    side = (kept[:, 0] + 2 * kept[:, 1] > 0.3).long()
    scaled = kept * torch.tensor([1000.0, 0.001])
    assert linear_probe_accuracy(scaled[:250], side[:250], scaled[250:], side[250:]) == 1.0
    # XOR (the sign of x * y): no line does better than about 2/3, 1-NN does it nearly perfectly
    xor = (points[:, 0] * points[:, 1] > 0).long()
    assert linear_probe_accuracy(points[:300], xor[:300], points[300:], xor[300:]) < 0.7
    assert nearest_neighbour_accuracy(points[:300], xor[:300], points[300:], xor[300:]) > 0.9


def test_the_linear_probe_reads_mnist_pixels_and_nothing_from_random_labels(mnist_data):
    train, test = mnist_data.decode(mnist_data.train[:2000]), mnist_data.decode(mnist_data.test[:1000])
    train_labels, test_labels = mnist_data.train_labels[:2000], mnist_data.test_labels[:1000]
    # softmax regression on 2,000 training images: 83.7% of these 1,000 test images (92.6% with all 60,000)
    predicted = linear_probe_labels(train, train_labels, test)
    assert 0.80 < float((predicted == test_labels).double().mean()) < 0.88
    assert torch.equal(linear_probe_labels(train, train_labels, test), predicted)  # zero start, no random draws
    shuffled = torch.randint(0, 10, (2000,), generator=torch.Generator().manual_seed(0))
    assert 0.05 < linear_probe_accuracy(train, shuffled, test, test_labels) < 0.15  # chance is 0.1 +- 0.01
    with pytest.raises(ValueError, match="steps >= 1 and l2 >= 0"):
        linear_probe_labels(train, train_labels, test, steps=0)


@pytest.mark.slow
def test_the_linear_probe_on_all_of_mnist_pixels(mnist_data):
    # 12 s with one thread; logistic regression on raw MNIST pixels is known to reach about 92%
    train, test = mnist_data.decode(mnist_data.train), mnist_data.decode(mnist_data.test)
    accuracy = linear_probe_accuracy(train, mnist_data.train_labels, test, mnist_data.test_labels)
    assert 0.92 < accuracy < 0.93

# --- the objective on real MNIST --------------------------------------------------------------


def small_bigan(data, loss, run_dir=None, callbacks=(), seed=0, discriminator=None):
    torch.manual_seed(seed)
    generator = MLPGenerator(latent_dim=8, hidden=[64], batchnorm=True)
    discriminator = discriminator or JointDiscriminator(latent_dim=8, x_hidden=[64], z_hidden=[16], joint_hidden=[32])
    encoder = PlayerSpec(MLPEncoder(latent_dim=8, hidden=[64], output="tanh"))
    return AdversarialTrainer(
        generator, discriminator, loss, data, batch_size=32, noise="uniform", device="cpu", seed=seed,
        objective=BiGANObjective(), players={"encoder": encoder}, run_dir=run_dir, callbacks=callbacks,
    )


@pytest.fixture(scope="module")
def mnist_data(mnist_dir):
    return mnist(data_dir=str(mnist_dir), download=False)


def weights(module):
    return [p.detach().clone() for p in module.parameters()]


def test_the_objective_trains_all_three_players_on_mnist(mnist_data, registry):
    trainer = small_bigan(mnist_data, registry.build("loss", "non-saturating"))
    before = {name: weights(player.module) for name, player in trainer.players.items()}
    for _ in range(5):
        trainer.train_step()
    for name, player in trainer.players.items():
        after = weights(player.module)
        assert all(torch.isfinite(p).all() for p in after), name
        assert all(not torch.equal(a, b) for a, b in zip(before[name], after)), f"some weights of {name} did not move"
    stats = trainer.pop_stats()
    assert set(stats) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert 0 < stats["d_real"] < 1 and 0 < stats["d_fake"] < 1
    assert trainer.diagnostics()["d_real"] == {"label": "mean D(x, E(x))", "equilibrium": 0.5, "panel": "outputs"}


def test_bigan_steps_replayed_from_a_capture_train_exactly_as_eager_steps(mnist_data, registry):
    """The objective says capturable = True: with the CPU stand-in for a CUDA graph (tests/test_graphs.py),
    which replays with the Python state frozen at the capture, three players train bit for bit as eagerly."""
    from advnets import graphs
    from test_sync_free import tensors

    runs = []
    for rehearse in (False, True):
        trainer = small_bigan(mnist_data, registry.build("loss", "non-saturating"))
        if rehearse:
            graphs.rehearse(trainer)
        runs.append(trainer.fit(steps=30))
    eager, replayed = runs
    assert replayed.graph_report == "on: 27 of 30 steps were replays of 1 captured graph"
    a, b = tensors(eager), tensors(replayed)
    assert any(key.startswith("encoder.") for key in a) and a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def test_the_objective_takes_the_runs_loss_and_refuses_what_cannot_play(mnist_data, registry):
    hinge = small_bigan(mnist_data, registry.build("loss", "hinge"))
    hinge.train_step()
    assert {"real_score", "fake_score"} <= set(hinge.pop_stats())
    small_bigan(mnist_data, registry.build("loss", "wasserstein")).fit(steps=2)  # the gradient penalty on (x, z) pairs
    with pytest.raises(ConfigError, match="not symmetric in real and fake"):
        small_bigan(mnist_data, registry.build("loss", "least-squares"))
    with pytest.raises(ConfigError, match="judges \\(x, z\\) pairs, like bigan-mlp; MLPDiscriminator takes one input"):
        small_bigan(mnist_data, registry.build("loss", "non-saturating"), discriminator=MLPDiscriminator(hidden=[8]))


# --- the reconstruction grid ------------------------------------------------------------------


def test_the_reconstruction_grid_shows_each_test_image_beside_its_reconstruction(mnist_data, registry, tmp_path):
    from torchvision.io import read_image

    grids = Reconstructions(n=6, pairs_per_row=4, every_epochs=0)
    trainer = small_bigan(mnist_data, registry.build("loss", "non-saturating"), tmp_path, [grids]).fit(steps=3)
    assert sorted(p.name for p in (tmp_path / "reconstructions").iterdir()) == ["step_000000000.png", "step_000000003.png"]
    image = read_image(str(tmp_path / "reconstructions" / "step_000000003.png")).float() / 255
    # 6 pairs, 4 pairs (8 images) a row: 2 rows of 28x28 cells with 2-pixel borders
    assert image.shape == (3, 2 * 30 + 2, 8 * 30 + 2)

    def cell(row, column):
        top, left = 2 + 30 * row, 2 + 30 * column
        return image[0, top : top + 28, left : left + 28]

    x = mnist_data.decode(mnist_data.test[:6])
    with torch.no_grad():
        encoder, generator = trainer.players.encoder.module.eval(), trainer.generator.eval()
        reconstructed = generator(encoder(x))
    for i in range(6):
        row, column = divmod(2 * i, 8)
        assert torch.allclose(cell(row, column), (x[i, 0] + 1) / 2, atol=1 / 255), f"real image {i}"
        assert torch.allclose(cell(row, column + 1), (reconstructed[i, 0] + 1) / 2, atol=1 / 255), f"reconstruction {i}"
    assert cell(1, 4).max() == 0 and cell(1, 7).max() == 0  # the second row holds 2 pairs, then nothing



# --- the probe callback -----------------------------------------------------------------------


class Records(Callback):
    def __init__(self):
        self.records = []

    def on_log(self, trainer, record):
        self.records.append(dict(record))


def test_the_probe_logs_both_classifiers_on_the_three_kinds_of_features(mnist_data, registry):
    probe, records = FeatureProbe(n_train=1000, n_test=300), Records()
    small_bigan(mnist_data, registry.build("loss", "non-saturating"), callbacks=[probe, records]).fit(steps=2)
    [record] = [r for r in records.records if r["event"] == "eval"]
    assert record["step"] == 2
    rows = ["encoder", "pixels", "random_encoder"]
    accuracies = {k: v for k, v in record.items() if "_accuracy_" in k}
    assert list(accuracies) == [f"nn_accuracy_{row}" for row in rows] + [f"linear_accuracy_{row}" for row in rows]
    assert all(0.1 < v <= 1 for v in accuracies.values())
    # the pixel rows are the two classifiers on the same 1,000 + 300 images in the model's range
    pixels = mnist_data.decode(mnist_data.train[:1000]), mnist_data.decode(mnist_data.test[:300])
    labels = mnist_data.train_labels[:1000], mnist_data.test_labels[:300]
    assert record["nn_accuracy_pixels"] == nearest_neighbour_accuracy(pixels[0], labels[0], pixels[1], labels[1])
    assert record["linear_accuracy_pixels"] == linear_probe_accuracy(pixels[0], labels[0], pixels[1], labels[1])
    assert record["linear_accuracy_pixels"] > 0.75


def test_the_probe_runs_only_the_classifiers_it_is_given(mnist_data, registry):
    probe = FeatureProbe(n_train=500, n_test=100, classifiers=["linear"], linear_steps=5, linear_l2=0.01)
    records = Records()
    small_bigan(mnist_data, registry.build("loss", "non-saturating"), callbacks=[probe, records]).fit(steps=1)
    [record] = [r for r in records.records if r["event"] == "eval"]
    rows = ["encoder", "pixels", "random_encoder"]
    assert [k for k in record if "_accuracy_" in k] == [f"linear_accuracy_{row}" for row in rows]
    # it says which way its numbers are better, for eval.best, the plot and compare
    assert probe.describe(None) == {
        "linear_accuracy_encoder": {"direction": "max", "headline": True},
        "linear_accuracy_pixels": {"direction": "max", "headline": False},
        "linear_accuracy_random_encoder": {"direction": "max", "headline": False},
    }
    pixels = mnist_data.decode(mnist_data.train[:500]), mnist_data.decode(mnist_data.test[:100])
    labels = mnist_data.train_labels[:500], mnist_data.test_labels[:100]
    expected = linear_probe_accuracy(pixels[0], labels[0], pixels[1], labels[1], steps=5, l2=0.01)
    assert record["linear_accuracy_pixels"] == expected


def test_the_probe_defaults_are_the_linear_probes_and_bad_settings_are_one_line(registry):
    component = registry.get("callback", "bigan-probe")
    assert component.defaults["classifiers"] == ["nearest", "linear"]
    assert (component.defaults["linear_steps"], component.defaults["linear_l2"]) == (LINEAR_STEPS, LINEAR_L2)
    bad = {
        "classifiers": ([], ["knn"], ["linear", "linear"]),
        "linear_steps": (0, 2.5),
        "linear_l2": (-1.0, float("nan")),
        "n_train": (0,),
    }
    for name, values in bad.items():
        for value in values:
            with pytest.raises(ConfigError, match=f"^bigan-probe: {name}") as error:
                FeatureProbe(**{name: value})
            assert "\n" not in str(error.value)

# --- the preset through the command line ------------------------------------------------------


@pytest.mark.slow
def test_bigan_mnist_runs_through_the_cli_and_logs_the_probe(cli, tmp_path, mnist_dir):
    shim = tmp_path / "bigan_plugin.py"
    shim.write_text(SHIM)
    run = tmp_path / "run"
    result = cli(
        "run", "bigan-mnist", "--plugin", str(shim), "--steps", "6", "--seed", "0", "--out", str(run),
        "--set", "callbacks.bigan-probe.n_train=2000", "--set", "callbacks.bigan-probe.n_test=500",
        env={"ADVNETS_LOAD_PLUGINS": "mnist", "ADVNETS_DATA_DIR": str(mnist_dir)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((run / "config.json").read_text())
    assert config["objective"]["name"] == "bigan" and config["trainer"]["noise"] == "uniform"
    assert config["players"]["encoder"]["module"]["latent_dim"] == config["generator"]["latent_dim"] == 50
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    probe = [r for r in records if r["event"] == "eval"]
    assert len(probe) == 1 and probe[0]["step"] == 6
    accuracies = {k: v for k, v in probe[0].items() if "_accuracy_" in k}
    rows = ["encoder", "pixels", "random_encoder"]
    assert set(accuracies) == {f"{classifier}_accuracy_{row}" for classifier in ("nn", "linear") for row in rows}
    assert all(0.1 < v <= 1 for v in accuracies.values())
    assert accuracies["nn_accuracy_pixels"] > 0.85  # 1-NN on raw MNIST pixels is a strong baseline
    assert accuracies["linear_accuracy_pixels"] > 0.8  # softmax regression on 2,000 images
    assert (run / "reconstructions" / "step_000000006.png").is_file()
    assert "nn_accuracy_encoder" in result.stderr  # the console shows the evaluation
    # --no-eval leaves the probe out too: it is an evaluation (evaluation = True)
    result = cli("run", "--resume", str(run), "--steps", "8", "--no-eval", "--plugin", str(shim),
                 env={"ADVNETS_LOAD_PLUGINS": "mnist", "ADVNETS_DATA_DIR": str(mnist_dir)})
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["event"] == "eval"] == [6] and records[-1]["step"] == 8
