"""Memory of a streamed run does not grow with the dataset: peak RSS on 10,000 and 70,000 images.

    python benchmarks/stream_memory.py [--data-dir MNIST_DIR] [--steps 300] [--json FILE]

Writes MNIST's 70,000 images (train and test) as PNG files in class sub-folders,
and a second folder with the first 10,000 of them, then trains `mlp-mnist` on each
with `--set dataset=image-folder` (streamed, DataLoader workers off so that every
byte is counted in the one process measured) for the same number of steps, and
reports each process's peak resident memory (ru_maxrss of the finished child).
The folders are written once into a temporary directory and removed afterwards.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write_folder(mnist: Path, root: Path, count: int) -> None:
    from PIL import Image

    images = gzip.open(mnist / "train-images-idx3-ubyte.gz").read()[16:] + gzip.open(mnist / "t10k-images-idx3-ubyte.gz").read()[16:]
    labels = gzip.open(mnist / "train-labels-idx1-ubyte.gz").read()[8:] + gzip.open(mnist / "t10k-labels-idx1-ubyte.gz").read()[8:]
    for i in range(count):
        folder = root / str(labels[i])
        folder.mkdir(parents=True, exist_ok=True)
        Image.frombytes("L", (28, 28), images[i * 784 : (i + 1) * 784]).save(folder / f"{i:05d}.png")


def peak_rss_of_run(folder: Path, steps: int, out: Path) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of one `advnets run` on ``folder``."""
    command = [
        sys.executable, "-m", "advnets", "run", "mlp-mnist", "--set", "dataset=image-folder", "--set", "dataset.workers=0",
        "--data-dir", str(folder), "--steps", str(steps), "--no-eval", "--seed", "0", "--out", str(out),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADVNETS_")}
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the run on {folder} failed: {process.stderr.read().strip()}")
    return usage.ru_maxrss / 1024, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("ADVNETS_TEST_MNIST", str(REPO.parent / "shared" / "data" / "mnist")))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for count in (10000, 70000):
            folder = tmp / f"images-{count}"
            started = time.perf_counter()
            write_folder(Path(args.data_dir), folder, count)
            written = time.perf_counter() - started
            rss, wall = peak_rss_of_run(folder, args.steps, tmp / f"run-{count}")
            results[count] = {"peak_rss_mib": round(rss, 1), "run_s": round(wall, 1), "write_s": round(written, 1)}
            print(f"{count:>6} images: peak RSS {rss:,.1f} MiB, run {wall:.1f} s ({args.steps} steps), folder written in {written:.1f} s")
            shutil.rmtree(folder)
    difference = results[70000]["peak_rss_mib"] - results[10000]["peak_rss_mib"]
    print(f"70,000 - 10,000 images: {difference:+.1f} MiB")
    if args.json:
        args.json.write_text(json.dumps({"steps": args.steps, "results": results, "difference_mib": difference}, indent=2) + "\n")


if __name__ == "__main__":
    main()
