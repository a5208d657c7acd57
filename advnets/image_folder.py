"""The ``image-folder`` dataset: a folder of your own images, streamed or loaded into memory.

The layout is torchvision's ``ImageFolder``: one sub-folder per class, whose
sorted names become the labels 0, 1, ...; a folder of images with no
sub-folders is unlabelled. Every image is read with Pillow, converted to grey
(``channels=1``) or RGB (``channels=3``), and, with ``size`` set, resized so its
shorter side is ``size`` and cropped to the centre square. Pixels stay uint8
until a batch reaches the device, where they are scaled to [-1, 1].

``stream=true`` (the default) keeps only the file names in memory and reads
each batch's images as training goes (DataLoader workers, see
:class:`advnets.sources.StreamSource`), so memory does not grow with the
number of images; ``stream=false`` reads them all once into one tensor, the
fast path for data that fits.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from .data import Data
from .errors import ConfigError

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
DATA_DIR_VAR = "ADVNETS_DATA_DIR"


def _images_in(folder: Path) -> list[Path]:
    """The images of a folder; hidden files are left out, as hidden folders are (macOS's ``._x.png``
    are not images)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES and not p.name.startswith(".") and p.is_file())


def scan(root: Path, labels: bool) -> tuple[list[Path], list[int] | None, list[str]]:
    """(image files, their labels or None, the class names) in ImageFolder's layout."""
    if not root.is_dir():
        raise ConfigError(f"image-folder: {root} is not a folder (give it with --data-dir or dataset.data_dir)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    top = _images_in(root)
    if classes and top:
        raise ConfigError(
            f"image-folder: {root} has both images and sub-folders; put every image in a class "
            "sub-folder, or use a flat folder of images with no sub-folders"
        )
    if not classes:
        if not top:
            raise ConfigError(f"image-folder: no images ({', '.join(SUFFIXES)}) in {root}")
        return top, None, []
    files: list[Path] = []
    found: list[int] = []
    for label, name in enumerate(classes):
        images = _images_in(root / name)
        files += images
        found += [label] * len(images)
    if not files:
        raise ConfigError(f"image-folder: the class folders of {root} hold no images ({', '.join(SUFFIXES)})")
    return files, (found if labels else None), (classes if labels else [])


def read_image(path: Path, channels: int, size: int) -> Tensor:
    """One image as a uint8 tensor (channels, H, W); a clear error for a file Pillow cannot read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            if size:
                scale = size / min(image.size)
                width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
                image = image.resize((width, height), Image.BILINEAR)
                left, top = (width - size) // 2, (height - size) // 2
                image = image.crop((left, top, left + size, top + size))
            pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
            return pixels.view(image.height, image.width, channels).permute(2, 0, 1).contiguous()
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise ConfigError(f"image-folder: cannot read {path} ({type(exc).__name__}: {exc})") from None


class ImageFiles(torch.utils.data.Dataset):
    """Image files read on demand: items are a uint8 (C, H, W) tensor, or (tensor, label)."""

    def __init__(self, files: list[Path], labels: list[int] | None, channels: int, size: int, shape: tuple[int, ...]) -> None:
        self.files, self.labels = files, labels
        self.channels, self.size, self.shape = channels, size, shape

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        image = read_image(self.files[index], self.channels, self.size)
        if tuple(image.shape) != self.shape:
            raise ConfigError(
                f"image-folder: {self.files[index]} is {tuple(image.shape[1:])}, the first image is "
                f"{self.shape[1:]}; set dataset.size to resize every image"
            )
        return image if self.labels is None else (image, self.labels[index])


def _stack(dataset: ImageFiles, indices: list[int]) -> Tensor:
    return torch.stack([dataset[i] if dataset.labels is None else dataset[i][0] for i in indices])


def image_folder(
    data_dir: str | None = None,
    size: int = 0,
    channels: int = 1,
    stream: bool = True,
    workers: int = 2,
    labels: bool = True,
    test_size: int = 0,
    valid_size: int = 0,
    split_seed: int = 0,
) -> Data:
    """Your own images in ImageFolder's layout (class sub-folders become labels); streamed by default.

    ``size`` (0: keep the images' size, which must then be the same for all) resizes
    and centre-crops every image to size x size; ``channels`` 1 (grey) or 3 (RGB);
    ``stream`` reads batches as training goes with ``workers`` processes, or (false)
    loads everything into memory once; ``labels`` uses class sub-folders as labels;
    ``test_size`` and ``valid_size`` images, picked by a shuffle with ``split_seed``,
    are held out as the test and validation splits that metrics use (loaded into memory).
    """
    if channels not in (1, 3):
        raise ConfigError(f"dataset.channels must be 1 (grey) or 3 (RGB), got {channels}")
    for key, value in (("size", size), ("workers", workers), ("test_size", test_size), ("valid_size", valid_size)):
        if value < 0:
            raise ConfigError(f"dataset.{key} must be >= 0, got {value}")
    folder = data_dir or os.environ.get(DATA_DIR_VAR)
    if not folder:
        raise ConfigError("image-folder: name the folder of images with --data-dir DIR (or dataset.data_dir, or ADVNETS_DATA_DIR)")
    files, found, classes = scan(Path(folder).expanduser(), labels)
    held = test_size + valid_size
    if held >= len(files):
        raise ConfigError(f"image-folder: test_size + valid_size = {held} leaves no training images of {len(files)}")
    first = read_image(files[0], channels, size)
    every = ImageFiles(files, found, channels, size, tuple(first.shape))
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(split_seed)).tolist()
    test_ids, valid_ids, train_ids = order[:test_size], order[test_size:held], sorted(order[held:])

    def labels_of(ids: list[int]) -> Tensor | None:
        return None if found is None or not ids else torch.tensor([found[i] for i in ids], dtype=torch.int64)

    train_files = [files[i] for i in train_ids]
    train_labels = None if found is None else [found[i] for i in train_ids]
    train = ImageFiles(train_files, train_labels, channels, size, tuple(first.shape))
    common = dict(
        test=_stack(every, test_ids) if test_ids else None,
        test_labels=labels_of(test_ids),
        valid=_stack(every, valid_ids) if valid_ids else None,
        valid_labels=labels_of(valid_ids),
        num_classes=len(classes) if found is not None else None,
        raw_range=(0.0, 255.0),
        model_range=(-1.0, 1.0),
        name="image-folder",
        meta={"folder": str(folder), "classes": classes, "images": len(files)},
    )
    if stream:
        counts = None if train_labels is None else torch.bincount(torch.tensor(train_labels), minlength=len(classes))
        return Data(train=train, stream_workers=workers, sample_size=tuple(first.shape), train_class_counts=counts, **common)
    return Data(train=_stack(train, list(range(len(train)))), train_labels=labels_of(train_ids), **common)
