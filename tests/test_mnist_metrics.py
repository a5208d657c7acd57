"""The shipped MNIST classifier and the metrics built on it; advnets eval end to end."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from typer.testing import CliRunner

from advnets import CheckpointError, ConfigError, Data
from advnets.cli import app
from advnets_mnist import classifier as classifier_module
from advnets_mnist.classifier import classifier_info, load_classifier
from advnets_mnist.data import mnist
from advnets_mnist.idx import LABELS_MAGIC, read_idx
from advnets.metrics import score
from advnets_mnist import metrics as metrics_module
from advnets_mnist.metrics import MnistCondAcc, MnistFID, MnistModes, MnistScore, digit_histogram, frechet_distance, inception_score


@pytest.mark.slow
def test_the_classifier_scores_at_least_99_percent_on_the_real_test_set(mnist_dir):
    model = load_classifier()  # checks the file's SHA-256 first
    data = mnist(str(mnist_dir), download=False)
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz", LABELS_MAGIC).long()
    with torch.no_grad():
        predictions = torch.cat([model(data.test[i : i + 2000].float() / 255).argmax(1) for i in range(0, 10000, 2000)])
    accuracy = (predictions == labels).float().mean().item()
    assert accuracy >= 0.99
    assert accuracy == pytest.approx(classifier_info()["test_accuracy"], abs=1e-4)  # what the training script recorded


def test_a_classifier_file_with_another_hash_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "mnist_classifier.safetensors"
    shutil.copy(classifier_module.WEIGHTS, copy)
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0xFF  # one flipped byte in a weight
    copy.write_bytes(bytes(data))
    monkeypatch.setattr(classifier_module, "WEIGHTS", copy)
    load_classifier.cache_clear()
    try:
        with pytest.raises(CheckpointError, match="SHA-256 .* is not the shipped classifier's"):
            load_classifier()
    finally:
        load_classifier.cache_clear()


def test_frechet_distance_known_answers():
    """Diagonal covariances: FD = ||mu1 - mu2||^2 + sum (sqrt(a) - sqrt(b))^2."""
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64), torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    a, b = torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64), torch.tensor([4.0, 4.0, 1.0], dtype=torch.float64)
    expected = 5.0 + (1 - 2) ** 2 + 0 + (3 - 1) ** 2
    assert frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b)) == pytest.approx(expected, rel=1e-12)
    g = torch.Generator().manual_seed(0)
    m1, m2 = torch.randn(6, 6, generator=g, dtype=torch.float64), torch.randn(6, 6, generator=g, dtype=torch.float64)
    c1, c2 = m1 @ m1.T + 0.1 * torch.eye(6, dtype=torch.float64), m2 @ m2.T
    assert frechet_distance(mu1.new_zeros(6), c1, mu1.new_zeros(6), c1) == pytest.approx(0.0, abs=1e-9)
    # Tr sqrt(C1 C2) = sum of square roots of the (real, non-negative) eigenvalues of C1 C2
    trace_root = torch.linalg.eigvals(c1 @ c2).real.clamp(min=0).sqrt().sum().item()
    expected = (c1.trace() + c2.trace()).item() - 2 * trace_root
    assert frechet_distance(mu1.new_zeros(6), c1, mu1.new_zeros(6), c2) == pytest.approx(expected, rel=1e-8)


def test_inception_score_bounds():
    one_hot = torch.eye(10, dtype=torch.float64).repeat(5, 1)
    assert inception_score(one_hot) == pytest.approx(10.0)
    assert inception_score(torch.eye(10, dtype=torch.float64)[[3] * 50]) == pytest.approx(1.0)
    assert inception_score(torch.full((50, 10), 0.1, dtype=torch.float64)) == pytest.approx(1.0)


def test_modes_and_kl_from_uniform():
    probabilities = torch.eye(10, dtype=torch.float64)[torch.tensor([0] * 500 + [1] * 495 + [2] * 5)]
    histogram = digit_histogram(probabilities)
    assert histogram[:3].tolist() == [0.5, 0.495, 0.005]
    metric = MnistModes()
    fake_images = torch.zeros(1000, 1, 28, 28)
    data = Data(train=torch.zeros(2, 1, 28, 28), raw_range=(0.0, 1.0), model_range=(0.0, 1.0))
    result = metric(fake_images, data)
    assert result["mnist_modes"] >= 1 and result["mnist_kl_uniform"] == pytest.approx(math.log(10), abs=1e-9)
    with pytest.raises(ConfigError, match="need 1x28x28 images"):
        metric(torch.zeros(5, 1), Data(train=torch.zeros(2, 1)))


def test_one_evaluation_classifies_its_samples_once_and_scores_as_if_each_metric_had(mnist_dir, monkeypatch):
    """mnist-fid, -score, -modes and -cond-acc share one classification of the same tensor, and nothing else."""
    data = mnist(str(mnist_dir), download=False)
    samples = data.decode(data.train[:600]) + 0.3 * torch.randn(600, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(600) % 10
    metrics = {"mnist-fid": MnistFID(), "mnist-score": MnistScore(), "mnist-modes": MnistModes(), "mnist-cond-acc": MnistCondAcc()}
    metrics["mnist-fid"](samples[:10].clone(), data)  # the test set's features, outside the count below
    # Each metric on its own, with a fresh cache every time: what sharing must not change.
    alone = {}
    for metric in metrics.values():
        monkeypatch.setattr(metrics_module, "classified", metrics_module._LastClassified())
        alone.update(metric(samples.clone(), data, labels=labels) if isinstance(metric, MnistCondAcc) else metric(samples.clone(), data))

    calls = []
    real_classify = metrics_module.classify
    monkeypatch.setattr(metrics_module, "classify", lambda images: calls.append(len(images)) or real_classify(images))
    monkeypatch.setattr(metrics_module, "classified", metrics_module._LastClassified())
    shared, _ = score(metrics, samples, data, labels)
    assert calls == [600]  # one classification for all four metrics
    assert shared == alone  # bit for bit
    score(metrics, samples.clone(), data, labels)  # equal values, another tensor: classified again
    assert calls == [600, 600]
    again = samples.clone()
    metrics["mnist-score"](again, data)
    again.add_(0.5)  # changed in place since: classified again, and the number moves
    changed = metrics["mnist-score"](again, data)
    assert calls == [600, 600, 600, 600] and changed["mnist_score"] != alone["mnist_score"]
    with torch.inference_mode():  # no version counter: classified every time, and no error
        frozen = samples.clone()
    assert metrics["mnist-score"](frozen, data) == metrics["mnist-score"](frozen, data) == {"mnist_score": alone["mnist_score"]}
    assert calls == [600] * 6


@pytest.fixture(scope="module")
def reference_row(mnist_dir):
    result = CliRunner().invoke(app, ["eval", "--real", "mlp-mnist", "--data-dir", str(mnist_dir), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.slow
def test_real_images_score_as_real_images(reference_row):
    """The reference row: 10,000 real training images against the test set."""
    results = reference_row["results"]
    assert results["mnist_modes"] == 10 and results["mnist_kl_uniform"] < 0.01
    assert results["mnist_score"] > 9.5
    assert results["mnist_fid"] < 10
    assert 225 < results["parzen"] < 260 and results["parzen_sigma"] == pytest.approx(0.1668, abs=1e-3)
    assert reference_row["real"] == "mnist train[0:10000]"


@pytest.mark.slow
def test_eval_of_a_run_writes_eval_json(mnist_dir, tmp_path):
    out = tmp_path / "run"
    runner = CliRunner()
    trained = runner.invoke(app, ["run", "mlp-mnist-lecture", "--steps", "20", "--out", str(out), "--data-dir", str(mnist_dir), "--set", "eval.metrics={}", "--set", "trainer.ema_decay=0.9"])
    assert trained.exit_code == 0, trained.output
    result = runner.invoke(app, ["eval", str(out), "--metric", "mnist-modes", "--metric", "mnist-score", "--n", "500", "--data-dir", str(mnist_dir)])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "eval.json").read_text())
    assert saved["generator"] == "moving average" and saved["n"] == 500 and saved["step"] == 20
    assert set(saved["results"]) == {"mnist_modes", "mnist_kl_uniform", "mnist_score"}
    assert "mnist_score" in result.stdout
    raw = runner.invoke(app, ["eval", str(out / "checkpoints" / "step-000000020.safetensors"), "--metric", "mnist-score", "--n", "200", "--raw", "--data-dir", str(mnist_dir), "--json"])
    assert json.loads(raw.stdout)["generator"] == "raw"
    bare = runner.invoke(app, ["eval", str(out), "--data-dir", str(mnist_dir)])
    assert bare.exit_code == 2 and "names no metrics" in bare.stderr
    both = runner.invoke(app, ["eval", str(out), "--real", "mlp-mnist"])
    assert both.exit_code == 2 and "not both" in both.stderr


def test_the_fid_reference_of_the_test_set_is_cached_by_content_and_rebuilt_when_unreadable(tmp_path, monkeypatch):
    """Every run and eval with mnist-fid needs the test set's feature moments (about 5 s of 10,000
    images on 2 cores): a file named by the classifier and the test set's bytes keeps them."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    g = torch.Generator().manual_seed(0)
    test = torch.randint(0, 256, (200, 1, 28, 28), dtype=torch.uint8, generator=g)
    data = Data(train=test[:100], test=test, raw_range=(0.0, 255.0), model_range=(-1.0, 1.0), name="tiny")
    computed = metrics_module._reference_moments(data)
    files = list((tmp_path / "cache" / "advnets" / "mnist-fid").glob("reference-*.safetensors"))
    assert len(files) == 1 and not list(files[0].parent.glob(".*"))  # no temporary file left
    read = metrics_module._reference_moments(data)
    assert all(torch.equal(a, b) for a, b in zip(computed, read))
    # what is read is the file's content: a marked file is returned as it is
    import safetensors.torch

    marked = {"mean": torch.full_like(computed[0], 7.0), "cov": computed[1]}
    files[0].write_bytes(safetensors.torch.save(marked))
    assert torch.equal(metrics_module._reference_moments(data)[0], marked["mean"])
    # damaged: computed again, and the file mended
    files[0].write_bytes(b"not a safetensors file")
    assert torch.equal(metrics_module._reference_moments(data)[0], computed[0])
    assert torch.equal(safetensors.torch.load_file(str(files[0]))["mean"], computed[0])
    # another test set (one pixel changed) or another model range: another file
    other = test.clone()
    other[0, 0, 0, 0] ^= 1
    metrics_module._reference_moments(Data(train=test[:100], test=other, raw_range=(0.0, 255.0), model_range=(-1.0, 1.0)))
    metrics_module._reference_moments(Data(train=test[:100], test=test, raw_range=(0.0, 255.0), model_range=(0.0, 1.0)))
    assert len(list(files[0].parent.glob("reference-*.safetensors"))) == 3
    # a cache that cannot be written changes nothing but the time
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a-file"))
    (tmp_path / "a-file").write_text("")
    assert all(torch.equal(a, b) for a, b in zip(metrics_module._reference_moments(data), computed))
