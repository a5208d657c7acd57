"""Class-conditional GANs on MNIST (the paper's section 7): the models, mnist-cond-acc, the preset, sample --label."""

from __future__ import annotations

import json

import pytest
import safetensors.torch
import torch
from PIL import Image

from advnets import ConfigError, Data
from advnets.metrics import score
from advnets.players import is_conditional
from advnets.runs import load_generator
from advnets.trainer import generate
from advnets_mnist.data import mnist
from advnets_mnist.metrics import MnistCondAcc
from advnets_mnist.models import CondMLPDiscriminator, CondMLPGenerator, ProjectionMLPDiscriminator
from conftest import _cli

# --- the models ----------------------------------------------------------------------------


def test_the_conditional_generator_draws_images_that_depend_on_the_label():
    torch.manual_seed(0)
    generator = CondMLPGenerator().eval()
    z = torch.randn(6, 64)
    threes, sevens = generator(z, torch.full((6,), 3)), generator(z, torch.full((6,), 7))
    assert generator.num_classes == 10 and generator.latent_dim == 64 and is_conditional(generator)
    assert threes.shape == (6, 1, 28, 28) and threes.abs().max() <= 1  # Tanh
    assert (threes - sevens).abs().max() > 1e-3  # the same z, another digit: another image


@pytest.mark.parametrize("factory", [CondMLPDiscriminator, ProjectionMLPDiscriminator])
def test_the_conditional_discriminators_give_one_logit_that_depends_on_the_label(factory):
    torch.manual_seed(0)
    discriminator = factory().eval()
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    as_three, as_seven = discriminator(x, torch.full((5,), 3)), discriminator(x, torch.full((5,), 7))
    assert discriminator.num_classes == 10 and is_conditional(discriminator)
    assert as_three.shape == (5,)
    assert (as_three - as_seven).abs().max() > 1e-4  # the same image, another claimed digit: another logit


def test_the_number_of_classes_is_a_setting():
    assert CondMLPGenerator(num_classes=3).embed.num_embeddings == 3
    assert ProjectionMLPDiscriminator(num_classes=3).embed.num_embeddings == 3
    with pytest.raises(ConfigError, match="num_classes must be positive"):
        CondMLPDiscriminator(num_classes=0)


# --- the metric and how labels reach it -----------------------------------------------------


@pytest.fixture(scope="module")
def mnist_test(mnist_dir):
    data = mnist(str(mnist_dir), download=False)
    return data, data.decode(data.test[:3000]), data.test_labels[:3000]


def test_cond_acc_reads_the_labels(mnist_test):
    """Real test digits with their true labels score the classifier's accuracy; shuffled labels score chance."""
    data, images, labels = mnist_test
    metric = MnistCondAcc()
    true = metric(images, data, labels=labels)
    assert true["mnist_cond_acc"] > 0.99 and true["mnist_cond_acc_worst"] > 0.97
    shuffled = metric(images, data, labels=labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))])
    assert 0.05 < shuffled["mnist_cond_acc"] < 0.15


def test_cond_acc_refuses_samples_without_labels(mnist_test):
    data, images, _ = mnist_test
    with pytest.raises(ConfigError, match="needs the labels"):
        MnistCondAcc()(images, data)


def test_score_gives_labels_only_to_metrics_that_take_them():
    seen = {}

    def plain(samples, data):
        return {"n": len(samples)}

    def labelled(samples, data, labels=None):
        seen["labels"] = labels
        return {"first": int(labels[0])}

    labels = torch.tensor([4, 2])
    results, _ = score({"plain": plain, "labelled": labelled}, torch.zeros(2, 1), Data(train=torch.zeros(2, 1)), labels)
    assert results == {"n": 2, "first": 4} and seen["labels"] is labels


# --- the preset through the CLI ----------------------------------------------------------------

STEPS = 30


@pytest.fixture(scope="module")
def cgan_run(tmp_path_factory, mnist_dir):
    """A short cgan-mnist run through the CLI, on real MNIST."""
    out = tmp_path_factory.mktemp("cgan") / "run"
    result = _cli(
        "run", "cgan-mnist", "--steps", str(STEPS), "--seed", "0", "--out", str(out), "--data-dir", str(mnist_dir),
        "--set", "eval.n_samples=1000",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.mark.slow
def test_a_cgan_run_draws_one_row_per_class_and_scores_its_labels(cgan_run):
    grid = Image.open(cgan_run / "samples" / f"step_{STEPS:09d}.png")
    assert grid.size == (10 * 30 + 2, 10 * 30 + 2)  # 10 classes x 10 samples, 28 px and 2 px of padding each
    records = [json.loads(line) for line in (cgan_run / "metrics.jsonl").read_text().splitlines()]
    final = [r for r in records if r.get("event") == "eval"][-1]
    assert final["step"] == STEPS and 0 <= final["mnist_cond_acc"] <= 1
    assert {"parzen", "parzen_valid", "mnist_fid", "mnist_score", "mnist_modes", "mnist_cond_acc_worst"} <= set(final)


@pytest.mark.slow
def test_sample_label_draws_that_class_and_rows_of_classes_without_it(cgan_run, registry, tmp_path):
    generator = load_generator(registry, cgan_run).generator
    one = _cli("sample", str(cgan_run), "--label", "3", "--n", "12", "--seed", "5", "--out", str(tmp_path / "three.safetensors"))
    assert one.returncode == 0, one.stderr
    expected = generate(generator, 12, seed=5, labels=torch.full((12,), 3))
    assert torch.equal(safetensors.torch.load_file(tmp_path / "three.safetensors")["samples"], expected)

    rows = _cli("sample", str(cgan_run), "--n", "20", "--nrow", "5", "--seed", "5", "--out", str(tmp_path / "rows.safetensors"))
    assert rows.returncode == 0, rows.stderr
    by_row = torch.tensor([0] * 5 + [1] * 5 + [2] * 5 + [3] * 5)  # row r: class r
    assert torch.equal(safetensors.torch.load_file(tmp_path / "rows.safetensors")["samples"], generate(generator, 20, seed=5, labels=by_row))
    png = _cli("sample", str(cgan_run), "--n", "100", "--nrow", "10", "--out", str(tmp_path / "grid.png"))
    assert png.returncode == 0 and Image.open(tmp_path / "grid.png").size == (302, 302)


@pytest.mark.slow
def test_interpolate_of_a_conditional_run_keeps_one_class_along_each_path(cgan_run, registry, tmp_path):
    """Figure 3 of a cGAN: path r is class r (or --label's), z along the same lines as an unconditional run's."""
    from advnets.callbacks import save_grid
    from advnets.samples import images_of, interpolation_noise

    loaded = load_generator(registry, cgan_run)
    z = interpolation_noise(loaded.generator, 3, 5, loaded.noise, 7, torch.device("cpu"))
    for extra, labels in (([], torch.tensor([0] * 5 + [1] * 5 + [2] * 5)), (["--label", "4"], torch.full((15,), 4))):
        out = tmp_path / f"paths{len(extra)}.png"
        result = _cli("sample", str(cgan_run), "--interpolate", "--n", "3", "--nrow", "5", "--seed", "7", *extra, "--out", str(out))
        assert result.returncode == 0, result.stderr
        assert "3 paths of 5 points in z, one class each" in result.stderr
        expected = tmp_path / f"expected{len(extra)}.png"
        save_grid(images_of(loaded.generator, z, labels), loaded.metadata["data"]["model_range"], expected, nrow=5)
        assert Image.open(out).size == (5 * 30 + 2, 3 * 30 + 2)
        assert Image.open(out).tobytes() == Image.open(expected).tobytes()
    other = images_of(loaded.generator, z, torch.full((15,), 4))  # the class matters: not the first figure's images
    assert not torch.equal(other, images_of(loaded.generator, z, torch.tensor([0] * 5 + [1] * 5 + [2] * 5)))


@pytest.mark.slow
@pytest.mark.parametrize("label", ["10", "-1"])
def test_a_label_beyond_the_classes_is_one_line_and_exit_2(cgan_run, tmp_path, label):
    result = _cli("sample", str(cgan_run), f"--label={label}", "--out", str(tmp_path / "x.png"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: --label {label} is not a class of this run's generator (0 to 9)"
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow
def test_eval_of_a_conditional_run_gives_its_labels_to_the_metric(cgan_run, mnist_dir):
    result = _cli("eval", str(cgan_run), "--metric", "mnist-cond-acc", "--metric", "mnist-modes", "--n", "500", "--json", "--data-dir", str(mnist_dir))
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)["results"]
    assert 0 <= results["mnist_cond_acc"] <= 1 and "mnist_modes" in results


@pytest.mark.slow
def test_the_real_reference_row_scores_the_training_labels(mnist_dir):
    result = _cli("eval", "--real", "cgan-mnist", "--metric", "mnist-cond-acc", "--n", "2000", "--json", "--data-dir", str(mnist_dir))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["results"]["mnist_cond_acc"] > 0.99


@pytest.mark.slow
def test_label_and_cond_acc_on_an_unconditional_run_are_one_line_and_exit_2(tmp_path, mnist_dir):
    out = tmp_path / "toy"
    assert _cli("run", "toy-gaussian", "--steps", "5", "--out", str(out), "--set", "eval.metrics={}").returncode == 0
    result = _cli("sample", str(out), "--label", "3", "--out", str(tmp_path / "x.png"))
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --label needs a conditional run; this run's generator has no classes"
    refused = _cli("run", "mlp-mnist", "--steps", "1", "--out", str(tmp_path / "mlp"), "--data-dir", str(mnist_dir), "--set", 'eval.metrics={"mnist-cond-acc": {}}')
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "mnist-cond-acc needs the labels" in refused.stderr and not (tmp_path / "mlp").exists()
