"""The MNIST (and Fashion-MNIST) datasets: the four standard IDX files, found or downloaded.

Where the files are looked for, in order:

1. ``data_dir`` (``--data-dir``), else ``$ADVNETS_DATA_DIR``, else ``~/.cache/advnets``;
2. in that folder itself, in ``<folder>/<name>``, and in torchvision's layout
   ``<folder>/<Name>/raw``; each file either gzipped or not.

If none of the four files is there and ``download`` is on, torchvision downloads
them into ``<folder>`` and checks their MD5 sums. If some are there and others
are not, or the download fails, one error says which files to put where.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from advnets import Data
from advnets.errors import ConfigError, first_line

from .idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx

DATA_DIR_VAR = "ADVNETS_DATA_DIR"
VALID = slice(50000, 51000)
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class Source:
    name: str  # "mnist"
    torchvision_class: str  # "MNIST": also its folder name under the root
    train_size: int = 60000
    test_size: int = 10000


MNIST = Source("mnist", "MNIST")
FASHION_MNIST = Source("fashion-mnist", "FashionMNIST")


def data_root(data_dir: str | None) -> Path:
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get(DATA_DIR_VAR):
        return Path(os.environ[DATA_DIR_VAR]).expanduser()
    return Path.home() / ".cache" / "advnets"


def _find(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def locate(root: Path, source: Source) -> tuple[dict[str, Path] | None, list[str]]:
    """The four files in the first candidate folder that has any, and the ones it lacks."""
    for folder in (root, root / source.name, root / source.torchvision_class / "raw"):
        found = {key: _find(folder, stem) for key, stem in FILES.items()}
        if any(found.values()):
            missing = [f"{FILES[key]}.gz" for key, path in found.items() if path is None]
            return ({k: v for k, v in found.items() if v is not None}, [str(folder / m) for m in missing])
    return None, []


def _download(root: Path, source: Source) -> None:
    import torchvision.datasets

    dataset_class = getattr(torchvision.datasets, source.torchvision_class)
    try:
        root.mkdir(parents=True, exist_ok=True)
        for train in (True, False):
            dataset_class(root=str(root), train=train, download=True)  # checks each file's MD5
    except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError...
        reason = _download_reason(exc)
        raise ConfigError(
            f"{source.name}: not found in {root} and the download failed ({reason}); put "
            + ", ".join(f"{stem}.gz" for stem in FILES.values())
            + f" in {root} (or point --data-dir or {DATA_DIR_VAR} at a folder that has them)"
        ) from None


def _download_reason(exc: Exception) -> str:
    """One line for a failed download: torchvision's first line only names the file (and ends
    with a colon); its last says what went wrong, for the last mirror tried."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if len(lines) < 2:
        return first_line(exc)
    return f"{lines[0]} {lines[-1]}"


def _read_split(files: dict[str, Path], split: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    images = read_idx(files[f"{split}_images"], IMAGES_MAGIC)
    labels = read_idx(files[f"{split}_labels"], LABELS_MAGIC)
    path = files[f"{split}_images"]
    if images.dim() != 3 or tuple(images.shape[1:]) != (28, 28):
        raise ConfigError(f"{path}: expected 28x28 images, found shape {tuple(images.shape)}")
    if labels.dim() != 1 or len(labels) != len(images):
        raise ConfigError(f"{path}: {len(images)} images but {files[f'{split}_labels'].name} has {labels.numel()} labels")
    if len(images) != size:
        raise ConfigError(f"{path}: expected {size} {split} images, found {len(images)} (a file of another split?)")
    if len(labels) and int(labels.max()) >= CLASSES:
        raise ConfigError(f"{files[f'{split}_labels']}: a label is {int(labels.max())}, beyond the {CLASSES} classes")
    return images, labels.to(torch.int64)


CLASSES = 10  # digits 0-9, or Fashion-MNIST's ten kinds of clothing


def load(source: Source, data_dir: str | None, download: bool, n_train: int | None = None) -> Data:
    if data_dir is not None and not isinstance(data_dir, str):
        raise ConfigError(f"dataset.data_dir must be a folder name (a string), got {data_dir!r}")
    if n_train is not None and not 1 <= n_train <= source.train_size:
        raise ConfigError(f"dataset.n_train must be in 1..{source.train_size}, got {n_train}")
    root = data_root(data_dir)
    files, missing = locate(root, source)
    if files is None:
        if not download:
            raise ConfigError(
                f"{source.name}: no IDX files in {root}; put "
                + ", ".join(f"{stem}.gz" for stem in FILES.values())
                + f" there (or use --data-dir, or {DATA_DIR_VAR}, or dataset.download=true)"
            )
        _download(root, source)
        files, missing = locate(root, source)
    if missing or files is None:
        raise ConfigError(f"{source.name}: incomplete data folder, missing {', '.join(missing)}")
    train, train_labels = _read_split(files, "train", source.train_size)
    test, test_labels = _read_split(files, "test", source.test_size)
    has_valid = len(train) >= VALID.stop
    return Data(
        train=train[:n_train].unsqueeze(1),  # (N, 1, 28, 28) uint8: 47 MB for MNIST's training set
        test=test.unsqueeze(1),
        # The paper's validation images (its G trained on train[0:50000]); they stay the same
        # whatever n_train is, so Parzen's sigma is always chosen on the same images.
        valid=train[VALID].unsqueeze(1) if has_valid else None,
        train_labels=train_labels[:n_train],
        test_labels=test_labels,
        valid_labels=train_labels[VALID] if has_valid else None,
        num_classes=CLASSES,
        raw_range=(0.0, 255.0),
        model_range=(-1.0, 1.0),  # to match the generator's Tanh
        name=source.name,
    )


def mnist(data_dir: str | None = None, download: bool = True, n_train: int = 60000) -> Data:
    """MNIST handwritten digits (LeCun et al.): 60,000 training and 10,000 test images, 28x28.

    ``n_train`` trains on the first images only (the paper's model used 50,000).
    """
    return load(MNIST, data_dir, download, n_train)


def fashion_mnist(data_dir: str | None = None, download: bool = True, n_train: int = 60000) -> Data:
    """Fashion-MNIST (Xiao et al. 2017): MNIST's format with 10 classes of clothing."""
    return load(FASHION_MNIST, data_dir, download, n_train)
