"""Sample-quality metrics with the shipped MNIST classifier: FID, the Inception-score analogue, modes, labels.

- ``mnist-fid``: the Frechet distance between Gaussians fitted to the classifier's
  128-d penultimate features of G's samples and of the 10,000 test images.
- ``mnist-score``: exp(E_x KL(p(y|x) || p(y))), the Inception score with this
  classifier: 1 for samples that all look alike or look like nothing, at most 10.
- ``mnist-modes``: how many of the 10 digits G draws (a digit counts if at least 1%
  of the samples, a tenth of its fair share, are classified as it) and the KL
  divergence of the predicted-digit histogram from uniform (0 for a fair mix).
- ``mnist-cond-acc``: for a conditional G, the share of samples the classifier
  assigns to the digit they were drawn for (it takes the samples' ``labels``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import weakref
from pathlib import Path

import safetensors.torch
import torch
from torch import Tensor

from advnets import Data
from advnets.data import to_unit
from advnets.errors import ConfigError

from .classifier import WEIGHTS_SHA256, load_classifier


def _unit_images(samples: Tensor, data: Data) -> Tensor:
    if data.sample_shape != (1, 28, 28):
        raise ConfigError(f"the MNIST classifier metrics need 1x28x28 images; dataset {data.name!r} gives {data.sample_shape}")
    return to_unit(samples.detach().float().cpu(), data.model_range)


@torch.no_grad()
def classify(images: Tensor, chunk: int = 1000) -> tuple[Tensor, Tensor]:
    """(features, class probabilities) of images on [0, 1], in float64."""
    model = load_classifier()
    features, probabilities = [], []
    for start in range(0, len(images), chunk):
        f = model.features(images[start : start + chunk])
        features.append(f.double())
        probabilities.append(torch.softmax(model.head(f), dim=1).double())
    return torch.cat(features), torch.cat(probabilities)


class _LastClassified:
    """The classifier's view of the last sample tensor it saw, so the metrics of one evaluation share it.

    mnist-fid, mnist-score, mnist-modes and mnist-cond-acc each need the same
    classification of the same samples; an evaluation hands them one tensor, so
    the first metric classifies it and the others reuse the result (the
    classifier is about 4 s of 10,000 samples on a 2-core CPU). The entry is
    found only for the very same tensor object, unchanged since (its in-place
    version counter), with the same model range; it holds the tensor weakly.
    Tensors made under ``torch.inference_mode`` have no version counter and are
    classified each time. (The per-metric seconds of an evaluation charge the
    classification to the first of these metrics.)
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._sample_ref: weakref.ref | None = None
        self._result: tuple[Tensor, Tensor] | None = None

    def __call__(self, samples: Tensor, data: Data) -> tuple[Tensor, Tensor]:
        if samples.is_inference():  # no version counter to tell a change by: classify every time
            return classify(_unit_images(samples, data))
        key = (samples._version, tuple(samples.shape), samples.dtype, str(samples.device), data.model_range)
        if self._sample_ref is not None and self._sample_ref() is samples and self._key == key:
            return self._result
        self._sample_ref, self._key, self._result = None, None, None
        result = classify(_unit_images(samples, data))
        self._sample_ref, self._key, self._result = weakref.ref(samples), key, result
        return result


classified = _LastClassified()


def frechet_distance(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    """||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)), with Tr (C1 C2)^(1/2) from a symmetric eigenproblem.

    C1 C2 is similar to C1^(1/2) C2 C1^(1/2), which is symmetric positive
    semi-definite, so the trace of the square root is the sum of the square roots
    of that matrix's eigenvalues: no general (and unstable) matrix square root.
    """
    values, vectors = torch.linalg.eigh(cov1)
    root1 = (vectors * values.clamp(min=0).sqrt()) @ vectors.T
    middle = root1 @ cov2 @ root1
    trace_root = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    return float((mu1 - mu2).square().sum() + cov1.trace() + cov2.trace() - 2 * trace_root)


class _TestFeatures:
    """The classifier's view of the test set, computed once per dataset."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[Tensor, Tensor]] = {}

    def moments(self, data: Data) -> tuple[Tensor, Tensor]:
        key = id(data.test)
        if key not in self._cache:
            if data.test is None:
                raise ConfigError(f"mnist-fid needs a test set; dataset {data.name!r} has none")
            self._cache = {key: _reference_moments(data)}
        return self._cache[key]


def cache_folder() -> Path:
    """Where the test set's FID reference is kept between processes: ``$XDG_CACHE_HOME/advnets``
    (``~/.cache/advnets`` without it), in ``mnist-fid/``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "advnets" / "mnist-fid"


def _reference_moments(data: Data) -> tuple[Tensor, Tensor]:
    """The mean and covariance of the classifier's features of the test set.

    Classifying the 10,000 test images takes about 5 s on a 2-core CPU, and every run
    and every ``advnets eval`` with mnist-fid needs them: they are kept in a file named by
    a SHA-256 of the classifier's weights and of the test set (its bytes, dtype, shape and
    value ranges), so only exactly this computation's result is ever read back. A cache
    file that cannot be read is computed again; one that cannot be written is skipped.
    """
    test = data.test.detach().cpu().contiguous()
    digest = hashlib.sha256(WEIGHTS_SHA256.encode())
    digest.update(json.dumps([str(test.dtype), list(test.shape), data.raw_range, data.model_range]).encode())
    digest.update(test.reshape(-1).view(torch.uint8).numpy().tobytes())
    path = cache_folder() / f"reference-{digest.hexdigest()[:32]}.safetensors"
    if path.is_file():
        try:
            saved = safetensors.torch.load_file(str(path))
            mean, cov = saved["mean"], saved["cov"]
            if mean.dtype == cov.dtype == torch.float64 and mean.dim() == 1 and cov.shape == (len(mean), len(mean)):
                return mean, cov
        except Exception:  # noqa: BLE001 - a damaged cache file: compute it again
            pass
    features, _ = classify(_unit_images(data.decode(test), data))
    mean, cov = features.mean(0), torch.cov(features.T)
    # Written and renamed here, not with advnets.files.write_atomic: that one raises WriteError (a
    # cache must never fail a command) and counts as a checkpoint write for the tests' failpoints.
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(safetensors.torch.save({"mean": mean.contiguous(), "cov": cov.contiguous()}))
        os.replace(tmp, path)
    except OSError:  # a read-only or full cache: the numbers are the same without it
        with contextlib.suppress(OSError):
            tmp.unlink()
    return mean, cov


class MnistFID:
    """Frechet distance between classifier features of G's samples and of the MNIST test set (lower is better)."""

    directions = {"mnist_fid": "min"}
    headline = ("mnist_fid",)

    def __init__(self) -> None:
        self._test = _TestFeatures()

    def __call__(self, samples: Tensor, data: Data) -> dict[str, float]:
        features, _ = classified(samples, data)
        mu, cov = self._test.moments(data)
        return {"mnist_fid": frechet_distance(features.mean(0), torch.cov(features.T), mu, cov)}


def inception_score(probabilities: Tensor) -> float:
    marginal = probabilities.mean(0, keepdim=True)
    kl = (probabilities * (probabilities.clamp_min(1e-30).log() - marginal.clamp_min(1e-30).log())).sum(1)
    return float(kl.mean().exp())


class MnistScore:
    """The Inception score computed with the MNIST classifier: 1 to 10, higher is better."""

    directions = {"mnist_score": "max"}
    headline = ("mnist_score",)

    def __call__(self, samples: Tensor, data: Data) -> dict[str, float]:
        _, probabilities = classified(samples, data)
        return {"mnist_score": inception_score(probabilities)}


def digit_histogram(probabilities: Tensor) -> Tensor:
    return torch.bincount(probabilities.argmax(1), minlength=10).double() / len(probabilities)


class MnistModes:
    """How many of the 10 digits G draws, and the KL divergence of its digit histogram from uniform."""

    directions = {"mnist_modes": "max", "mnist_kl_uniform": "min"}

    def __init__(self, min_share: float = 0.01) -> None:
        if not 0 < min_share < 0.1:
            raise ConfigError(f"mnist-modes: min_share must be in (0, 0.1), got {min_share}")
        self.min_share = min_share

    def __call__(self, samples: Tensor, data: Data) -> dict[str, float]:
        _, probabilities = classified(samples, data)
        histogram = digit_histogram(probabilities)
        present = histogram[histogram > 0]
        return {
            "mnist_modes": int((histogram >= self.min_share).sum()),
            "mnist_kl_uniform": float((present * (present / 0.1).log()).sum()),
        }



class MnistCondAcc:
    """How often the MNIST classifier names the digit a conditional G was asked for (0 to 1, higher is better).

    Reports ``mnist_cond_acc``, the share of samples classified as the label they
    were drawn for, and ``mnist_cond_acc_worst``, that share for the worst class
    among the labels drawn. It needs the labels: give it samples of a
    conditional G (or real images with their labels).
    """

    directions = {"mnist_cond_acc": "max", "mnist_cond_acc_worst": "max"}
    headline = ("mnist_cond_acc",)

    def __call__(self, samples: Tensor, data: Data, labels: Tensor | None = None) -> dict[str, float]:
        if labels is None:
            raise ConfigError("mnist-cond-acc needs the labels the samples were drawn for: a conditional generator")
        if labels.shape != (len(samples),):
            raise ConfigError(f"mnist-cond-acc: {len(samples)} samples but labels of shape {tuple(labels.shape)}")
        if data.num_classes != 10:
            raise ConfigError(f"mnist-cond-acc needs the 10 MNIST classes; dataset {data.name!r} has {data.num_classes}")
        _, probabilities = classified(samples, data)
        labels = labels.cpu()
        hits = (probabilities.argmax(1) == labels).double()
        per_class = [hits[labels == c].mean() for c in labels.unique()]
        return {"mnist_cond_acc": float(hits.mean()), "mnist_cond_acc_worst": float(min(per_class))}
