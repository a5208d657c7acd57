"""Pictures of a run: training curves with the game's equilibrium marked, and the sample grids animated.

Written at the end of every run, and by ``advnets plot RUN_DIR``:

- ``training.png``: the objective's diagnostics over the steps, as the run's
  ``diagnostics`` record in metrics.jsonl describes them: the losses, with D's loss
  at the equilibrium where the loss has one (2 log 2 for the cross-entropy
  losses); what D says (mean D(x) and D(G(z)) with the 1/2 that D settles at when
  p_g = p_data, the paper's Theorem 1, or raw scores for losses whose outputs are
  not probabilities); and the evaluations, if the run made any: the headline
  numbers its metrics declare (the run's ``evaluations`` record), at most four.
- ``samples.gif``: the fixed-noise sample grids in order, each labelled with its step.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from .files import jsonl_log_name, write_rendered
from .errors import AdvnetsError

MAX_FRAMES = 60
MAX_EVAL_PANELS = 4
NOT_METRICS = ("event", "step", "epoch", "time")
"""Keys of an ``eval`` record that say when it was made, not what it measured."""


def metrics_path(run_dir: Path) -> Path:
    """The run's jsonl log: ``metrics.jsonl``, or the ``loggers.jsonl.filename`` its config.json names."""
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        name = config["loggers"]["jsonl"]["filename"]
    except (OSError, ValueError, RecursionError, KeyError, TypeError):
        name = None
    return run_dir / (name if jsonl_log_name(name) else "metrics.jsonl")


def read_metrics(run_dir: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """A run's records from metrics.jsonl, and the numbers of the lines skipped as damaged.

    A damaged line (cut short by a crash, or not a JSON object with an integer step) is
    skipped; the callers say so. A resumed run repeats the steps after its checkpoint:
    the last record of each (event, step) is kept, and the records come in step order.
    A null number of a training or evaluation record reads as NaN.
    """
    path = metrics_path(run_dir)
    if path.exists() and not path.is_file():
        raise AdvnetsError(f"{path}: not a file ({'a folder' if path.is_dir() else 'a pipe or device'}), so there is nothing to plot")
    if not path.is_file():
        raise AdvnetsError(f"{run_dir}: no {path.name} to plot (was the jsonl logger on?)")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise AdvnetsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    records, damaged = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            record = None
        if isinstance(record, dict) and isinstance(record.get("step"), int) and not isinstance(record["step"], bool):
            if record.get("event") in ("train", "eval"):  # a number written as null was NaN or infinite (files.to_json)
                record = {k: math.nan if v is None and k not in NOT_METRICS else v for k, v in record.items()}
            records.append(record)
        else:
            damaged.append(number)
    latest = {(str(r.get("event")), r["step"]): r for r in records}
    return sorted(latest.values(), key=lambda r: (r["step"], str(r.get("event", "")))), damaged


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    """A run's records from metrics.jsonl (:func:`read_metrics`), damaged lines left out."""
    return read_metrics(run_dir)[0]


def damaged_note(run_dir: Path, damaged: list[int]) -> str:
    """One line that says which lines of a run's metrics.jsonl were skipped."""
    shown = ", ".join(map(str, damaged[:10])) + (", ..." if len(damaged) > 10 else "")
    lines = "line" if len(damaged) == 1 else f"{len(damaged)} lines"
    return f"note: {metrics_path(run_dir)}: skipped damaged {lines} ({shown})"


def diagnostics_of(records: list[dict[str, Any]], equilibrium: float | None) -> dict[str, dict[str, Any]]:
    """The run's own description of its numbers; for runs of the first release, the 2014 game's."""
    described = [r["diagnostics"] for r in records if r.get("event") == "diagnostics" and isinstance(r.get("diagnostics"), dict)]
    if described:
        return described[-1]
    return {
        "d_loss": {"label": "D's loss", "equilibrium": equilibrium, "panel": "losses"},
        "g_loss": {"label": "G's loss", "equilibrium": None, "panel": "losses"},
        "d_real": {"label": "mean D(x)", "equilibrium": 0.5, "panel": "outputs"},
        "d_fake": {"label": "mean D(G(z))", "equilibrium": 0.5, "panel": "outputs"},
    }


def evaluations_of(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Which way each evaluation number is better, and which are headline ones, as the run's
    ``evaluations`` record says (the metrics declare it); ``{}`` for a run that wrote none."""
    described = [r["evaluations"] for r in records if r.get("event") == "evaluations" and isinstance(r.get("evaluations"), dict)]
    merged: dict[str, dict[str, Any]] = {}
    for entry in described:  # a resume that adds a metric adds its keys
        merged.update((k, v) for k, v in entry.items() if isinstance(v, dict) and v.get("direction") in ("max", "min"))
    return merged


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def eval_keys(evals: list[dict[str, Any]]) -> list[str]:
    """The numbers the evaluation records hold, in the order they first appear."""
    keys: dict[str, None] = {}
    for record in evals:
        keys.update((k, None) for k, v in record.items() if k not in NOT_METRICS and is_number(v))
    return list(keys)


def headline_keys(records: list[dict[str, Any]]) -> list[str]:
    """The evaluation numbers to draw: the metrics' headline keys that were logged, or, for a run
    whose metrics declare none, the first numbers its evaluations logged."""
    evals = [r for r in records if r.get("event") == "eval"]
    logged = eval_keys(evals)
    declared = [k for k, v in evaluations_of(records).items() if v.get("headline") and k in logged]
    return (declared or logged)[:MAX_EVAL_PANELS]


def _draw_panel(ax: Any, steps: list[int], train: list[dict[str, Any]], entries: dict[str, dict[str, Any]]) -> None:
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"]
    lines: set[float] = set()
    for (key, entry), colour in zip(entries.items(), colours):
        ax.plot(steps, [r.get(key, math.nan) for r in train], label=entry.get("label", key), color=colour, lw=1.2)
        level = entry.get("equilibrium")
        if level is not None and level not in lines:
            lines.add(level)
            name = "2 log 2" if math.isclose(level, 2 * math.log(2)) else ("1/2" if level == 0.5 else f"{level:g}")
            ax.axhline(level, ls=":", color="k", lw=1, label=f"{name}: {entry.get('label', key)} at equilibrium")
    ax.set_xlabel("step")
    ax.legend(fontsize=8, frameon=False)


def plot_training(records: list[dict[str, Any]], path: Path, equilibrium: float | None = None, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    diagnostics = diagnostics_of(records, equilibrium)
    train = [r for r in records if r.get("event") == "train" and any(key in r for key in diagnostics)]
    evals = [r for r in records if r.get("event") == "eval"]
    if not train:
        raise AdvnetsError(f"{path.parent}: no training records to plot yet")
    shown = headline_keys(records)
    directions = evaluations_of(records)
    losses = {k: v for k, v in diagnostics.items() if v.get("panel") == "losses"}
    outputs = {k: v for k, v in diagnostics.items() if v.get("panel") == "outputs"}  # an objective may report none
    panels = [(title, entries) for title, entries in (("losses", losses), ("what D says", outputs)) if entries]
    columns = max(len(panels) + len(shown), 1)
    fig, axes = plt.subplots(1, columns, figsize=(4.6 * columns, 3.6), squeeze=False)
    steps = [r["step"] for r in train]

    for ax, (panel, entries) in zip(axes[0], panels):
        _draw_panel(ax, steps, train, entries)
        if entries is outputs and all(v.get("equilibrium") == 0.5 for v in outputs.values()):
            ax.set_ylim(0, 1)  # probabilities
        ax.set_title(panel, fontsize=10)

    for ax, key in zip(axes[0][len(panels):], shown):
        points = [(r["step"], r[key]) for r in evals if key in r]
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", color="#9467bd", lw=1.2, ms=3)
        ax.set_xlabel("step")
        way = {"max": " (higher is better)", "min": " (lower is better)"}.get(directions.get(key, {}).get("direction"), "")
        ax.set_title(f"evaluation: {key}{way}", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        write_rendered(path, lambda f, fmt: fig.savefig(f, dpi=110, format=fmt), "the training plot")
    finally:
        plt.close(fig)
    return path


def animate_samples(samples_dir: Path, path: Path, scale: int = 2, notes: list[str] | None = None) -> Path | None:
    """An animated GIF of the grids in ``samples_dir`` (at most MAX_FRAMES, evenly picked, last kept).

    A grid that cannot be read (cut short by a crash or a full disk) is left out, and ``notes`` says so.
    """
    from PIL import Image, ImageDraw

    grids = sorted(samples_dir.glob("step_*.png")) if samples_dir.is_dir() else []
    if not grids:
        return None
    if len(grids) > MAX_FRAMES:
        picks = {round(i * (len(grids) - 1) / (MAX_FRAMES - 1)) for i in range(MAX_FRAMES)}
        grids = [g for i, g in enumerate(grids) if i in picks]
    frames, damaged = [], []
    for grid in grids:
        try:
            with Image.open(grid) as image:
                picture = image.convert("RGB").resize((image.width * scale, image.height * scale), Image.NEAREST)
        except (OSError, ValueError, SyntaxError):  # PIL's UnidentifiedImageError and "image file is truncated" are OSErrors
            damaged.append(grid.name)
            continue
        frame = Image.new("RGB", (picture.width, picture.height + 22), "white")
        frame.paste(picture, (0, 22))
        step = int(re.search(r"(\d+)", grid.stem).group(1))
        ImageDraw.Draw(frame).text((6, 5), f"step {step}", fill="black")
        frames.append(frame)
    if damaged and notes is not None:
        notes.append(f"note: {samples_dir}: left out of the animation, unreadable: {', '.join(damaged[:5])}{' ...' if len(damaged) > 5 else ''}")
    if not frames:
        return None
    hold = [400] * (len(frames) - 1) + [2000]  # linger on the last grid
    write_rendered(
        path, lambda f, fmt: frames[0].save(f, format=fmt, save_all=True, append_images=frames[1:], duration=hold, loop=0, optimize=True),
        "the animation of the sample grids",
    )
    return path


def plot_run(
    run_dir: Path, equilibrium: float | None = None, records: list[dict[str, Any]] | None = None, notes: list[str] | None = None
) -> list[Path]:
    """Write training.png and samples.gif (when there are grids) into ``run_dir``; the paths written.

    ``records`` are the run's, if the caller has read them already (:func:`read_metrics`);
    ``notes`` collects what was left out (damaged lines of metrics.jsonl when this reads them,
    unreadable grids).
    """
    run_dir = Path(run_dir)
    title = run_dir.name
    if records is None:
        records, damaged = read_metrics(run_dir)
        if damaged and notes is not None:
            notes.append(damaged_note(run_dir, damaged))
    written = [plot_training(records, run_dir / "training.png", equilibrium, title)]
    gif = animate_samples(run_dir / "samples", run_dir / "samples.gif", notes=notes)
    if gif is not None:
        written.append(gif)
    return written
