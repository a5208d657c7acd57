"""The MNIST plugin: the IDX loader on files written here, the real MNIST, the lecture's model."""

from __future__ import annotations

import gzip
import json
import shutil
import struct

import pytest
import torch

from advnets import ConfigError
from advnets.config import resolve
from advnets_mnist.data import FILES, MNIST, Source, load, mnist
from advnets_mnist.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from advnets_mnist.models import MLPDiscriminator, MLPGenerator
from advnets_parzen.metrics import Parzen

TINY = Source("mnist", "MNIST", train_size=12, test_size=4)


def idx_bytes(array: torch.Tensor, magic: int) -> bytes:
    dims = tuple(array.shape)
    return struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims) + array.to(torch.uint8).numpy().tobytes()


def write_tiny_mnist(folder, compress=True, train=12, test=4):
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    arrays = {
        "train_images": (torch.randint(0, 256, (train, 28, 28), generator=g), IMAGES_MAGIC),
        "train_labels": (torch.randint(0, 10, (train,), generator=g), LABELS_MAGIC),
        "test_images": (torch.randint(0, 256, (test, 28, 28), generator=g), IMAGES_MAGIC),
        "test_labels": (torch.randint(0, 10, (test,), generator=g), LABELS_MAGIC),
    }
    for key, (array, magic) in arrays.items():
        data = idx_bytes(array, magic)
        if compress:
            (folder / f"{FILES[key]}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / FILES[key]).write_bytes(data)
    return arrays


@pytest.mark.parametrize("compress", [True, False])
def test_loader_reads_idx_files_it_did_not_write(tmp_path, compress):
    arrays = write_tiny_mnist(tmp_path, compress=compress)
    data = load(TINY, str(tmp_path), download=False)
    assert data.train.shape == (12, 1, 28, 28) and data.train.dtype == torch.uint8
    assert torch.equal(data.train[:, 0], arrays["train_images"][0].to(torch.uint8))
    assert torch.equal(data.test[:, 0], arrays["test_images"][0].to(torch.uint8))
    assert torch.equal(data.train_labels, arrays["train_labels"][0]) and data.train_labels.dtype == torch.int64
    assert torch.equal(data.test_labels, arrays["test_labels"][0]) and data.num_classes == 10
    decoded = data.decode(data.train[:2])
    assert decoded.dtype == torch.float32 and decoded.min() >= -1 and decoded.max() <= 1
    torch.testing.assert_close(decoded, data.train[:2].float() / 127.5 - 1)


def test_loader_finds_torchvisions_layout(tmp_path):
    write_tiny_mnist(tmp_path / "MNIST" / "raw")
    assert load(TINY, str(tmp_path), download=False).train.shape[0] == 12


def test_mislabelled_truncated_and_missing_files(tmp_path):
    write_tiny_mnist(tmp_path)
    images = tmp_path / f"{FILES['train_images']}.gz"
    labels = tmp_path / f"{FILES['train_labels']}.gz"
    good_images = images.read_bytes()
    shutil.copy(labels, images)  # a label file under the images' name
    with pytest.raises(ConfigError, match="expected an IDX image file \\(magic 2051\\), found magic 2049 \\(a label file\\)"):
        load(TINY, str(tmp_path), download=False)
    images.write_bytes(good_images[: len(good_images) // 2])
    with pytest.raises(ConfigError, match="truncated"):
        load(TINY, str(tmp_path), download=False)
    images.write_bytes(gzip.compress(gzip.decompress(good_images)[:-50]))
    with pytest.raises(ConfigError, match="IDX image file is truncated or padded"):
        load(TINY, str(tmp_path), download=False)
    images.unlink()
    with pytest.raises(ConfigError, match="incomplete data folder, missing .*train-images-idx3-ubyte.gz"):
        load(TINY, str(tmp_path), download=False)


def test_counts_that_do_not_match(tmp_path):
    write_tiny_mnist(tmp_path, train=10)
    with pytest.raises(ConfigError, match="expected 12 train images, found 10"):
        load(TINY, str(tmp_path), download=False)
    labels = tmp_path / f"{FILES['train_labels']}.gz"
    labels.write_bytes(gzip.compress(idx_bytes(torch.zeros(7), LABELS_MAGIC)))
    with pytest.raises(ConfigError, match="10 images but train-labels-idx1-ubyte.gz has 7 labels"):
        load(TINY, str(tmp_path), download=False)


def test_no_files_and_no_download_says_where_to_put_them(tmp_path):
    with pytest.raises(ConfigError, match=f"no IDX files in {tmp_path}; put train-images-idx3-ubyte.gz"):
        load(MNIST, str(tmp_path), download=False)


def test_read_idx_rejects_non_idx(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"\x00\x01")
    with pytest.raises(ConfigError, match="too short"):
        read_idx(path, IMAGES_MAGIC)


def test_the_real_mnist(mnist_dir):
    data = mnist(str(mnist_dir), download=False)
    assert data.train.shape == (60000, 1, 28, 28) and data.test.shape == (10000, 1, 28, 28)
    # the published statistics of MNIST on the [0, 1] scale
    assert (data.train.double() / 255).mean().item() == pytest.approx(0.1307, abs=1e-4)
    assert (data.train.double() / 255).std().item() == pytest.approx(0.3081, abs=1e-4)
    assert (data.test.double() / 255).mean().item() == pytest.approx(0.1325, abs=1e-4)
    # the labels keep their images' order: MNIST's first ten training digits, and its class counts
    assert data.train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert torch.bincount(data.train_labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert torch.bincount(data.test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_the_lectures_model():
    g, d = MLPGenerator(), MLPDiscriminator()
    widths = [m.out_features for m in g.net if isinstance(m, torch.nn.Linear)]
    assert g.net[0].in_features == 64 and widths == [64, 128, 256, 512, 1024, 784]
    assert isinstance(g.net[-1], torch.nn.Tanh)
    assert [m.out_features for m in d.net if isinstance(m, torch.nn.Linear)] == [1024, 512, 256, 128, 1]
    assert not any(isinstance(m, torch.nn.Sigmoid) for m in d.modules())  # D gives logits
    z = torch.randn(5, 64)
    assert g(z).shape == (5, 1, 28, 28) and d(g(z)).shape == (5,)


def test_the_lecture_preset_is_the_seeds_recipe(registry):
    config = resolve(registry, preset="mlp-mnist-lecture")
    assert config["loss"]["name"] == "non-saturating"
    assert config["trainer"]["batch_size"] == 32 and config["trainer"]["epochs"] == 100 and config["trainer"]["k"] == 1
    assert config["generator"]["latent_dim"] == 64
    for side in ("g_optimizer", "d_optimizer"):
        assert config[side]["name"] == "adam" and config[side]["lr"] == 1e-4 and config[side]["betas"] == [0.9, 0.999]
    assert not config["generator"]["batchnorm"] and config["trainer"]["ema_decay"] == 0


def test_mlp_mnist_is_the_lectures_networks_with_settings_that_learn(registry):
    config = resolve(registry, preset="mlp-mnist")
    lecture = resolve(registry, preset="mlp-mnist-lecture")
    assert config["generator"] == {**lecture["generator"], "batchnorm": True}
    assert config["discriminator"] == {**lecture["discriminator"], "dropout": 0.3}
    assert config["trainer"]["batch_size"] == 128 and config["trainer"]["epochs"] == 36
    # a cosine down to 0.3x that ends with the 36th epoch of 390 steps, whatever --epochs says
    assert config["lr_scheduler"] == {"name": "warmup-cosine", "warmup_steps": 0, "min_factor": 0.3, "decay_steps": 36 * (50000 // 128)}
    for side in ("g_optimizer", "d_optimizer"):
        assert config[side]["lr"] == 3e-4 and config[side]["betas"] == [0.5, 0.999]
    # the moving average starts after two epochs of 390 steps (50,000 images in batches of 128)
    assert config["trainer"]["ema_decay"] == 0.9995 and config["trainer"]["ema_start"] == 2 * (50000 // 128)
    assert config["trainer"]["ema_warmup"] == 9  # before it, a short average (a one-epoch run's grid)
    # its old name still runs it, and a run records the preset's own name
    old = resolve(registry, preset="mlp-mnist-fast", overrides=[(("seed",), config["seed"])])
    assert old == config and old["preset"] == "mlp-mnist"


def test_mlp_mnist_never_trains_on_its_parzen_validation_images(registry, mnist_dir):
    config = resolve(registry, preset="mlp-mnist")
    assert config["eval"]["best"] == "parzen_valid" and config["eval"]["mode"] is None  # parzen says: higher is better
    assert Parzen.directions["parzen_valid"] == "max"
    assert set(config["eval"]["metrics"]) == {"parzen", "mnist-fid", "mnist-score", "mnist-modes"}
    settings = {k: v for k, v in config["dataset"].items() if k not in ("name", "data_dir")}
    data = registry.build("dataset", "mnist", **{**settings, "data_dir": str(mnist_dir), "download": False})
    full = mnist(str(mnist_dir), download=False)
    assert len(data.train) == 50000 and torch.equal(data.train, full.train[:50000])
    assert torch.equal(data.valid, full.train[50000:51000])  # what parzen picks sigma and best.safetensors by


@pytest.mark.slow
def test_a_short_real_run_from_the_command_line(mnist_dir, tmp_path, cli):
    """A few hundred steps of `advnets run mlp-mnist` on the real data, through the real CLI."""
    out = tmp_path / "run"
    # the closing evaluation on 1,000 samples instead of the preset's 10,000: this checks that it runs, not its numbers
    settings = ["--set", "trainer.log_every=100", "--set", "eval.n_samples=1000"]
    result = cli("run", "mlp-mnist", "--steps", "300", "--seed", "0", "--out", str(out), *settings, env={"ADVNETS_DATA_DIR": str(mnist_dir)})
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    records = [r for r in lines if r["event"] == "train"]
    assert [r["step"] for r in records] == [100, 200, 300]
    assert all(r["samples_per_s"] > 0 and 0 < r["d_real"] < 1 for r in records)
    # D tells real from generated early on: the game has started
    assert records[-1]["d_real"] > records[-1]["d_fake"]
    # the preset's metrics ran at the end of the run
    (evaluation,) = [r for r in lines if r["event"] == "eval"]
    assert evaluation["step"] == 300
    assert {"parzen", "parzen_se", "parzen_sigma", "parzen_valid", "mnist_fid", "mnist_score", "mnist_modes", "mnist_kl_uniform"} <= set(evaluation)
    assert (out / "samples" / "step_000000300.png").is_file() and (out / "samples" / "step_000000000.png").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"]["data_dir"] is None and config["trainer"]["steps"] == 300
    assert (out / "checkpoints" / "step-000000300.safetensors").is_file()
    assert "run folder" in result.stderr and "samples/s" in result.stderr


def test_nearest_training_images_searches_every_chunk():
    from advnets import Data
    from advnets.samples import nearest_training_images

    g = torch.Generator().manual_seed(0)
    data = Data(torch.randint(0, 256, (50, 1, 4, 4), generator=g, dtype=torch.uint8), raw_range=(0, 255), model_range=(-1, 1))
    samples = torch.rand(9, 1, 4, 4, generator=g) * 2 - 1
    brute = torch.cdist(samples.flatten(1).double(), data.decode(data.train).flatten(1).double()).argmin(dim=1)
    assert torch.equal(nearest_training_images(samples, data, chunk=7), brute)
    assert brute.max() >= 7  # the answer is not all in the first chunk


def png(path):
    import numpy
    from PIL import Image

    return torch.tensor(numpy.asarray(Image.open(path))[..., 0], dtype=torch.int32)  # the grids are grey: one channel of three


def cell(image, x, y, size=28):
    return image[y : y + size, x : x + size]


@pytest.fixture(scope="module")
def tiny_mnist_run(tmp_path_factory, mnist_dir, cli):
    """Five steps of `advnets run mlp-mnist` on the real MNIST, no evaluation, no grids.

    The data folder comes from the environment, so the run's config does not record it.
    """
    out = tmp_path_factory.mktemp("tiny") / "run"
    settings = ["--set", "eval.metrics={}", "--set", "eval.best=null", "--set", "callbacks={}"]
    made = cli("run", "mlp-mnist", "--steps", "5", "--seed", "0", "--out", str(out), *settings, env={"ADVNETS_DATA_DIR": str(mnist_dir)})
    assert made.returncode == 0, made.stderr
    return out


@pytest.mark.slow
def test_sample_nearest_puts_each_sample_beside_its_nearest_training_image(tiny_mnist_run, tmp_path, cli, mnist_dir):
    """The paper's Figure 2 through the real CLI: pairs of (sample, nearest of the run's 50,000 training images)."""
    from advnets.samples import PAIR_GAP

    figure, grid = tmp_path / "nearest.png", tmp_path / "grid.png"
    drawn = cli("sample", str(tiny_mnist_run), "--nearest", "--n", "6", "--nrow", "3", "--seed", "0", "--out", str(figure), "--data-dir", str(mnist_dir))
    assert drawn.returncode == 0, drawn.stderr
    assert "each beside its nearest of 50000 training images" in drawn.stderr
    assert cli("sample", str(tiny_mnist_run), "--n", "6", "--nrow", "6", "--seed", "0", "--out", str(grid)).returncode == 0
    pairs, samples = png(figure), png(grid)
    pair_w, pair_h = 2 * 28 + 3 * 2, 28 + 2 * 2
    assert pairs.shape == (PAIR_GAP + 2 * (pair_h + PAIR_GAP), PAIR_GAP + 3 * (pair_w + PAIR_GAP))
    train = mnist(str(mnist_dir), download=False).train[:50000].flatten(1).double() / 255
    for k in range(6):
        x, y = PAIR_GAP + (k % 3) * (pair_w + PAIR_GAP) + 2, PAIR_GAP + (k // 3) * (pair_h + PAIR_GAP) + 2
        sample = cell(samples, 2 + 30 * k, 2)
        assert torch.equal(cell(pairs, x, y), sample)  # left: the same sample `advnets sample` draws
        neighbour = cell(pairs, x + 30, y).flatten().double() / 255
        assert (train == neighbour).all(dim=1).any()  # right: a training image, exactly
        distances = torch.cdist(sample.flatten().double()[None] / 255, train)[0]
        nearest = torch.dist(sample.flatten().double() / 255, neighbour)
        # ... and the nearest one (the PNG's 8-bit sample moves distances by at most 0.06)
        assert nearest <= distances.min() + 0.12, (k, nearest.item(), distances.min().item())


@pytest.mark.slow
def test_sample_interpolate_draws_straight_paths_between_seeded_draws(tiny_mnist_run, tmp_path, cli):
    """The paper's Figure 3 through the real CLI: each row runs from draw 2i to draw 2i+1 of the seed."""
    figure, grid = tmp_path / "paths.png", tmp_path / "ends.png"
    drawn = cli("sample", str(tiny_mnist_run), "--interpolate", "--n", "3", "--nrow", "5", "--seed", "1", "--out", str(figure))
    assert drawn.returncode == 0, drawn.stderr
    assert cli("sample", str(tiny_mnist_run), "--n", "6", "--nrow", "6", "--seed", "1", "--out", str(grid)).returncode == 0
    paths, ends = png(figure), png(grid)
    assert paths.shape == (2 + 3 * 30, 2 + 5 * 30)
    for row in range(3):
        first, middle, last = (cell(paths, 2 + 30 * j, 2 + 30 * row) for j in (0, 2, 4))
        assert (first - cell(ends, 2 + 30 * 2 * row, 2)).abs().max() <= 2  # batch size may move a grey level
        assert (last - cell(ends, 2 + 30 * (2 * row + 1), 2)).abs().max() <= 2
        assert (middle - first).abs().max() > 2 and (middle - last).abs().max() > 2
