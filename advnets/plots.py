"""Pictures of a run: training curves with the game's equilibrium marked, and the sample grids animated.

Written at the end of every run, and by ``advnets plot RUN_DIR``:

- ``training.png``: D's and G's losses over the steps, with D's loss at the
  equilibrium (2 log 2 for the cross-entropy losses); mean D(x) and D(G(z)) with
  the 1/2 that D settles at when p_g = p_data (the paper's Theorem 1); and the
  evaluations, if the run made any.
- ``samples.gif``: the fixed-noise sample grids in order, each labelled with its step.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from .errors import AdvnetsError

MAX_FRAMES = 60
EVAL_KEYS = ("parzen", "mnist_fid", "mnist_score", "w1", "ks")


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise AdvnetsError(f"{run_dir}: no metrics.jsonl to plot (was the jsonl logger on?)")
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a crash
    # A resumed run repeats the steps after its checkpoint: keep the last record of each (event, step).
    latest = {(r.get("event"), r.get("step")): r for r in records}
    return sorted(latest.values(), key=lambda r: (r.get("step", 0), r.get("event", "")))


def plot_training(records: list[dict[str, Any]], path: Path, equilibrium: float | None = None, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in records if r.get("event") == "train" and "d_loss" in r]
    evals = [r for r in records if r.get("event") == "eval"]
    if not train:
        raise AdvnetsError(f"{path.parent}: no training records to plot yet")
    shown = [k for k in EVAL_KEYS if any(k in r for r in evals)][:2]
    columns = 2 + len(shown)
    fig, axes = plt.subplots(1, columns, figsize=(4.6 * columns, 3.6), squeeze=False)
    steps = [r["step"] for r in train]

    ax = axes[0][0]
    ax.plot(steps, [r["d_loss"] for r in train], label="D's loss", color="#1f77b4", lw=1.2)
    ax.plot(steps, [r["g_loss"] for r in train], label="G's loss", color="#2ca02c", lw=1.2)
    if equilibrium is not None:
        label = "D's loss at equilibrium" + (" (2 log 2)" if math.isclose(equilibrium, 2 * math.log(2)) else "")
        ax.axhline(equilibrium, ls=":", color="k", lw=1, label=label)
    ax.set_xlabel("step")
    ax.set_title("losses", fontsize=10)
    ax.legend(fontsize=8, frameon=False)

    ax = axes[0][1]
    ax.plot(steps, [r["d_real"] for r in train], label="mean D(x)", color="#1f77b4", lw=1.2)
    ax.plot(steps, [r["d_fake"] for r in train], label="mean D(G(z))", color="#d62728", lw=1.2)
    ax.axhline(0.5, ls=":", color="k", lw=1, label="1/2: equilibrium (Theorem 1)")
    ax.set_ylim(0, 1)
    ax.set_xlabel("step")
    ax.set_title("what D says", fontsize=10)
    ax.legend(fontsize=8, frameon=False)

    for ax, key in zip(axes[0][2:], shown):
        points = [(r["step"], r[key]) for r in evals if key in r]
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", color="#9467bd", lw=1.2, ms=3)
        ax.set_xlabel("step")
        ax.set_title(f"evaluation: {key}", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def animate_samples(samples_dir: Path, path: Path, scale: int = 2) -> Path | None:
    """An animated GIF of the grids in ``samples_dir`` (at most MAX_FRAMES, evenly picked, last kept)."""
    from PIL import Image, ImageDraw

    grids = sorted(samples_dir.glob("step_*.png")) if samples_dir.is_dir() else []
    if not grids:
        return None
    if len(grids) > MAX_FRAMES:
        picks = {round(i * (len(grids) - 1) / (MAX_FRAMES - 1)) for i in range(MAX_FRAMES)}
        grids = [g for i, g in enumerate(grids) if i in picks]
    frames = []
    for grid in grids:
        with Image.open(grid) as image:
            picture = image.convert("RGB").resize((image.width * scale, image.height * scale), Image.NEAREST)
        frame = Image.new("RGB", (picture.width, picture.height + 22), "white")
        frame.paste(picture, (0, 22))
        step = int(re.search(r"(\d+)", grid.stem).group(1))
        ImageDraw.Draw(frame).text((6, 5), f"step {step}", fill="black")
        frames.append(frame)
    hold = [400] * (len(frames) - 1) + [2000]  # linger on the last grid
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=hold, loop=0, optimize=True)
    return path


def plot_run(run_dir: Path, equilibrium: float | None = None) -> list[Path]:
    """Write training.png and samples.gif (when there are grids) into ``run_dir``; the paths written."""
    run_dir = Path(run_dir)
    title = run_dir.name
    written = [plot_training(read_records(run_dir), run_dir / "training.png", equilibrium, title)]
    gif = animate_samples(run_dir / "samples", run_dir / "samples.gif")
    if gif is not None:
        written.append(gif)
    return written
