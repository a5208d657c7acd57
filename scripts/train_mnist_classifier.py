"""Train the MNIST classifier behind mnist-fid, mnist-score and mnist-modes, and ship its weights.

    python scripts/train_mnist_classifier.py [--data-dir DIR] [--epochs 8] [--seed 0]

Trains advnets_mnist.classifier.MnistClassifier on the 60,000 training images
(random shifts of up to 2 pixels), reports its accuracy on the 10,000 test
images, writes plugins/advnets_mnist/mnist_classifier.safetensors and puts the
file's SHA-256 into classifier.py. Deterministic on the CPU for a given seed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import safetensors.torch
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))
from advnets_mnist.classifier import WEIGHTS, MnistClassifier, sha256  # noqa: E402
from advnets_mnist.data import mnist  # noqa: E402
from advnets_mnist.idx import LABELS_MAGIC, read_idx  # noqa: E402


def shifted(images: torch.Tensor, generator: torch.Generator, pixels: int = 2) -> torch.Tensor:
    """Each image moved by up to ``pixels`` in x and y (zero padding): cheap augmentation."""
    n = len(images)
    padded = F.pad(images, (pixels,) * 4)
    dx = torch.randint(0, 2 * pixels + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * pixels + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(28)[None, :])[:, None, :, None].expand(n, 1, 28, 28 + 2 * pixels)
    cropped = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(28)[None, :])[:, None, None, :].expand(n, 1, 28, 28)
    return cropped.gather(3, cols)


@torch.no_grad()
def accuracy(model: MnistClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    predictions = torch.cat([model(images[i : i + 1000]).argmax(1) for i in range(0, len(images), 1000)])
    return (predictions == labels).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    data = mnist(args.data_dir, download=False)
    folder = Path(args.data_dir)
    train_labels = read_idx(folder / "train-labels-idx1-ubyte.gz", LABELS_MAGIC).long()
    test_labels = read_idx(folder / "t10k-labels-idx1-ubyte.gz", LABELS_MAGIC).long()
    train, test = data.train.float() / 255, data.test.float() / 255
    model = MnistClassifier()
    steps_per_epoch = len(train) // 128
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=args.epochs * steps_per_epoch)
    rng = torch.Generator().manual_seed(args.seed)
    start = time.time()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(train), generator=rng)
        for step in range(steps_per_epoch):
            index = order[step * 128 : (step + 1) * 128]
            loss = F.cross_entropy(model(shifted(train[index], rng)), train_labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        print(f"epoch {epoch + 1}: test accuracy {accuracy(model, test, test_labels):.4f} ({time.time() - start:.0f} s)", flush=True)
    test_accuracy = accuracy(model, test, test_labels)
    info = {"test_accuracy": test_accuracy, "epochs": args.epochs, "seed": args.seed, "script": "scripts/train_mnist_classifier.py"}
    safetensors.torch.save_file(model.state_dict(), WEIGHTS, metadata={"training": json.dumps(info)})
    digest = sha256(WEIGHTS)
    source = Path(sys.modules[MnistClassifier.__module__].__file__)
    text = re.sub(r'WEIGHTS_SHA256 = "[^"]*"', f'WEIGHTS_SHA256 = "{digest}"', source.read_text())
    source.write_text(text)
    print(f"test accuracy {test_accuracy:.4f}; wrote {WEIGHTS} (SHA-256 {digest})")


if __name__ == "__main__":
    main()
