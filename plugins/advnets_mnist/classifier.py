"""A small convolutional MNIST classifier, shipped with its weights, for the sample-quality metrics.

The weights (``mnist_classifier.safetensors``, next to this file) were trained by
``scripts/train_mnist_classifier.py`` on the MNIST training set; their SHA-256 is
checked every time they load, so the metrics always come from the same network.
Nothing is downloaded.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import safetensors.torch
import torch
from torch import Tensor, nn

from advnets.errors import CheckpointError

WEIGHTS = Path(__file__).with_name("mnist_classifier.safetensors")
WEIGHTS_SHA256 = "22998904c399dcd28f221acdee9eda35cd2faad25197a0c4ccf7efcd2fb1fb0a"
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
FEATURES = 128


class MnistClassifier(nn.Module):
    """conv 32 - pool - conv 64 - pool - fc 128 (the features) - fc 10. Input: images on [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, FEATURES),
            nn.ReLU(),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(FEATURES, 10)

    def features(self, images: Tensor) -> Tensor:
        """The penultimate layer: what the Frechet distance compares."""
        return self.body((images.reshape(-1, 1, 28, 28) - MNIST_MEAN) / MNIST_STD)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.dropout(self.features(images)))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@functools.lru_cache(maxsize=None)
def load_classifier() -> MnistClassifier:
    """The shipped classifier in eval mode, its file's hash checked first."""
    if not WEIGHTS.is_file():
        raise CheckpointError(f"{WEIGHTS}: the MNIST classifier's weights are missing from the package")
    found = sha256(WEIGHTS)
    if found != WEIGHTS_SHA256:
        raise CheckpointError(f"{WEIGHTS}: SHA-256 {found} is not the shipped classifier's {WEIGHTS_SHA256}")
    model = MnistClassifier()
    model.load_state_dict(safetensors.torch.load_file(WEIGHTS))
    return model.eval().requires_grad_(False)


def classifier_info() -> dict:
    """What the weights file says about its training (test accuracy, epochs, seed)."""
    with safetensors.safe_open(str(WEIGHTS), framework="pt") as f:
        return json.loads((f.metadata() or {}).get("training", "{}"))
