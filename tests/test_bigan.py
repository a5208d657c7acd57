"""The BiGAN plugin: the three-player objective on real MNIST, the 1-NN probe, reconstruction grids, the preset."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import torch

from advnets import AdversarialTrainer, ConfigError, PlayerSpec
from advnets_bigan.callbacks import Reconstructions
from advnets_bigan.models import JointDiscriminator, MLPEncoder
from advnets_bigan.objective import BiGANObjective
from advnets_bigan.probe import nearest_neighbour_accuracy, nearest_neighbour_labels
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
    accuracies = {k: v for k, v in probe[0].items() if k.startswith("nn_accuracy_")}
    assert set(accuracies) == {"nn_accuracy_encoder", "nn_accuracy_pixels", "nn_accuracy_random_encoder"}
    assert all(0.1 < v <= 1 for v in accuracies.values())
    assert accuracies["nn_accuracy_pixels"] > 0.85  # 1-NN on raw MNIST pixels is a strong baseline
    assert (run / "reconstructions" / "step_000000006.png").is_file()
    assert "nn_accuracy_encoder" in result.stderr  # the console shows the evaluation
