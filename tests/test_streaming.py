"""The streamed data source and the image-folder dataset: sharding, exact resume, labels, bad input."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from advnets.checkpoint import load_checkpoint
from advnets.image_folder import image_folder
from advnets.sources import StreamSource

HERE = Path(__file__).resolve().parent
INDEXED = HERE / "plugins" / "indexed_points.py"
# the toy's networks on samples 0..999, streamed; 1000 // (2 ranks * 64) = 7 batches an epoch
TOY = [
    "toy-gaussian", "--seed", "3", "--plugin", str(INDEXED), "--set", "dataset=indexed-points",
    "--set", "callbacks={}", "--set", 'callbacks.record-samples={}', "--set", "eval.metrics={}",
    "--set", "trainer.batch_size=64",
]


def env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("ADVNETS_")}, "ADVNETS_DIST_TIMEOUT": "60", **extra}


def run(command: list[str], timeout: float = 240, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env(**extra), capture_output=True, text=True, timeout=timeout)


def check_each_sample_once_per_epoch(out: Path, ranks: int, per_rank_batches: int, batch: int = 64) -> None:
    seen = [json.loads((out / f"seen-rank{r}.json").read_text()) for r in range(ranks)]
    epochs = sorted(seen[0], key=int)
    assert len(epochs) >= 2
    for epoch in epochs:
        shards = [s[epoch] for s in seen]
        assert all(len(shard) == per_rank_batches * batch for shard in shards)
        together = [i for shard in shards for i in shard]
        assert len(together) == len(set(together)), f"epoch {epoch}: a sample was seen twice"
        assert set(together) <= set(range(1000))
    assert seen[0][epochs[0]] != seen[0][epochs[1]]  # a fresh order every epoch


@pytest.mark.slow
def test_nproc_2_shards_every_epoch_with_no_sample_seen_twice(tmp_path):
    out = tmp_path / "run"
    result = run([sys.executable, "-m", "advnets", "run", *TOY, "--nproc", "2", "--steps", "21", "--out", str(out)])
    assert result.returncode == 0, result.stderr
    check_each_sample_once_per_epoch(out, ranks=2, per_rank_batches=7)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_shard_every_epoch_with_no_sample_seen_twice(tmp_path):
    """Two torchrun launchers as two nodes (c10d rendezvous on 127.0.0.1), one process each."""
    out = tmp_path / "run"
    port = _free_port()
    launchers = [
        subprocess.Popen(
            [
                sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node-rank={node}",
                "--nproc-per-node=1", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=advnets-test",
                "-m", "advnets", "run", *TOY, "--steps", "21", "--out", str(out),
            ],
            env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for node in (0, 1)
    ]
    outputs = [p.communicate(timeout=240) for p in launchers]
    assert [p.returncode for p in launchers] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    check_each_sample_once_per_epoch(out, ranks=2, per_rank_batches=7)


# --- image folders -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory, mnist_dir) -> Path:
    """The first 700 MNIST training images as PNG files in class sub-folders."""
    from PIL import Image

    root = tmp_path_factory.mktemp("digits")
    images = gzip.open(mnist_dir / "train-images-idx3-ubyte.gz").read()[16:]
    labels = gzip.open(mnist_dir / "train-labels-idx1-ubyte.gz").read()[8:]
    for i in range(700):
        folder = root / str(labels[i])
        folder.mkdir(exist_ok=True)
        Image.frombytes("L", (28, 28), images[i * 784 : (i + 1) * 784]).save(folder / f"{i:05d}.png")
    return root


def test_an_image_folder_reads_the_pixels_and_labels_it_was_written_with(digit_folder, mnist_dir):
    (digit_folder / "3" / "._00007.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble: not an image")  # hidden: left out
    data = image_folder(str(digit_folder), workers=0)
    assert data.streamed and data.sample_shape == (1, 28, 28) and data.num_classes == 10 and len(data.train) == 700
    labels = gzip.open(mnist_dir / "train-labels-idx1-ubyte.gz").read()[8:708]
    images = gzip.open(mnist_dir / "train-images-idx3-ubyte.gz").read()[16 : 16 + 700 * 784]
    for k in (0, 123, 699):
        x, y = data.train[k]
        index = int(data.train.files[k].stem)
        assert y == labels[index]
        assert torch.equal(
            x.reshape(-1), torch.tensor(list(images[index * 784 : (index + 1) * 784]), dtype=torch.uint8)
        )
    counts = torch.bincount(torch.tensor(list(labels)), minlength=10).double()
    assert torch.allclose(data.class_frequencies(), counts / counts.sum())
    memory = image_folder(str(digit_folder), stream=False, test_size=100)
    assert not memory.streamed and memory.train.shape == (600, 1, 28, 28) and memory.test.shape == (100, 1, 28, 28)
    assert memory.train_labels.shape == (600,) and memory.test_labels.shape == (100,)


def test_the_nearest_training_images_of_a_streamed_folder_are_those_of_the_same_folder_in_memory(digit_folder):
    """sample --nearest (the paper's Figure 2) searches a streamed training set too, a block at a time."""
    from advnets.samples import nearest_training_images

    streamed, resident = image_folder(str(digit_folder), workers=0), image_folder(str(digit_folder), stream=False)
    assert streamed.streamed and not resident.streamed
    samples = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    samples[:3] = resident.decode(resident.train[[5, 250, 699]])  # three training images are their own nearest
    found = {}
    for data in (streamed, resident):
        index = nearest_training_images(samples, data, chunk=64)
        found[data.streamed] = data.train_samples(index)
        assert found[data.streamed].shape == (6, 1, 28, 28) and found[data.streamed].dtype == torch.uint8
    assert torch.equal(found[True], found[False])
    assert torch.equal(resident.decode(found[True][:3]), samples[:3])


# slow: its two sources are dropped mid-epoch, and torch's DataLoader then waits 5 s for each of
# their 4 worker processes to stop (about 20 s, charged to whichever later test collects them)
@pytest.mark.slow
def test_streamed_batches_follow_the_order_and_resume_where_they_stopped(digit_folder):
    data = image_folder(str(digit_folder), workers=2)
    straight = StreamSource(data, 32, torch.device("cpu"), seed=9)
    first = [straight.next() for _ in range(5)]
    later = StreamSource(data, 32, torch.device("cpu"), seed=9)
    later.load_state_dict({"cursor": 3, "source_epoch": 0})
    assert torch.equal(later.next().x, first[3].x) and torch.equal(later.next().labels, first[4].labels)
    order = straight.order()[:32].tolist()
    expected = data.decode(torch.stack([data.train[i][0] for i in order]))
    assert torch.equal(first[0].x, expected)


def test_a_dataset_of_one_tensor_streams_its_samples_without_labels():
    """A TensorDataset of one tensor gives (x,) tuples: samples, no labels (it used to be an IndexError)."""
    from advnets import Data

    train = torch.randn(96, 2, generator=torch.Generator().manual_seed(3))
    source = StreamSource(Data(train=torch.utils.data.TensorDataset(train)), 32, torch.device("cpu"), seed=9)
    batch = source.next()
    assert batch.labels is None
    assert torch.equal(batch.x, train[source.order()[:32]])


class LabelledItems(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.zeros(2), i % 2


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"raw_range": (0, 0), "model_range": (-1, 1)}, "raw_range's two ends are the same (0): no range to map"),
        ({"raw_range": (0, 255), "model_range": (-1, float("nan"))}, "model_range must be two finite numbers (low, high), got (-1, nan)"),
        ({"raw_range": (0, 255, 1), "model_range": (-1, 1)}, "raw_range must be two finite numbers (low, high), got (0, 255, 1)"),
        ({"train": LabelledItems(), "num_classes": 2}, "num_classes is set, but there are no labels: give train_class_counts (samples per class)"),
        ({"num_classes": 2}, "num_classes is set, but there are no labels: give train_labels"),
    ],
    ids=["raw range of no width", "a NaN end", "three ends", "streamed labels without their counts", "labels missing"],
)
def test_data_that_cannot_be_used_is_refused_when_made_with_what_to_give(settings, message):
    """A dataset plugin's mistakes, said when its Data is made, not as a ZeroDivisionError mid-run."""
    from advnets import ConfigError, Data

    with pytest.raises(ConfigError) as caught:
        Data(**{"train": torch.zeros(4, 2), "name": "mine", **settings})
    assert str(caught.value) == f"dataset 'mine': {message}"


SHORT_IMAGES = [
    "mlp-mnist", "--seed", "2", "--set", "dataset=image-folder", "--set", "generator.hidden=[64, 128]", "--no-eval",
    "--set", "discriminator.hidden=[128, 64]", "--set", "trainer.batch_size=32",
    "--set", "checkpoint.every_steps=10", "--set", "checkpoint.every_epochs=0", "--set", "callbacks={}",
    "--set", "trainer.ema_decay=0.9",
]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bit_identical_for_a_streamed_folder(tmp_path, digit_folder):
    """700 images, 21 batches an epoch: killed at step 32 (mid-epoch 2), resumed from step 30."""
    cli = [sys.executable, "-m", "advnets", "run", *SHORT_IMAGES, "--data-dir", str(digit_folder), "--steps", "50"]
    straight = run([*cli, "--out", str(tmp_path / "straight")])
    assert straight.returncode == 0, straight.stderr
    killed = run([*cli, "--out", str(tmp_path / "killed")], ADVNETS_FAILPOINTS="step=32")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = run([sys.executable, "-m", "advnets", "run", "--resume", str(tmp_path / "killed")])
    assert resumed.returncode == 0 and "step 30" in resumed.stderr, resumed.stderr
    a, _ = load_checkpoint(tmp_path / "straight" / "checkpoints" / "step-000000050.safetensors")
    b, _ = load_checkpoint(tmp_path / "killed" / "checkpoints" / "step-000000050.safetensors")
    for part in ("generator", "discriminator", "generator_ema", "g_optimizer", "d_optimizer"):
        left, right = a[part], b[part]
        if part.endswith("optimizer"):
            left, right = left["state"], right["state"]
            left = {f"{k}.{n}": t for k, v in left.items() for n, t in v.items()}
            right = {f"{k}.{n}": t for k, v in right.items() for n, t in v.items()}
        assert left.keys() == right.keys()
        assert all(torch.equal(left[k], right[k]) for k in left), part
    assert a["progress"] == b["progress"] and a["progress"]["source_epoch"] == 2
    # the paper's Figure 2 of a streamed run: each sample beside its nearest of the folder's images
    nearest = run([sys.executable, "-m", "advnets", "sample", str(tmp_path / "killed"), "--nearest", "--n", "8", "--out", str(tmp_path / "n.png")])
    assert nearest.returncode == 0 and "nearest of 700 training images" in nearest.stderr, nearest.stderr
    assert (tmp_path / "n.png").stat().st_size > 0


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda root: None, "no images"),
        (lambda root: (root / "a.png").write_bytes(b"not a png"), "cannot read"),
        (lambda root: ((root / "x").mkdir(), (root / "y.png").write_bytes(b"")), "both images and sub-folders"),
    ],
    ids=["empty folder", "unreadable image", "mixed layout"],
)
def test_a_bad_image_folder_is_one_line_and_exit_2(tmp_path, cli, make, message):
    root = tmp_path / "images"
    root.mkdir()
    make(root)
    result = cli("run", "mlp-mnist", "--set", "dataset=image-folder", "--data-dir", str(root), "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_mixed_sizes_need_a_size(tmp_path, cli):
    from PIL import Image

    root = tmp_path / "images"
    root.mkdir()
    Image.new("L", (28, 28)).save(root / "a.png")
    Image.new("L", (30, 28)).save(root / "b.png")
    data = image_folder(str(root), workers=0)
    with pytest.raises(Exception, match="set dataset.size"):
        data.train[1]
    resized = image_folder(str(root), workers=0, size=16)
    assert resized.train[1].shape == (1, 16, 16)
