"""What each of the trainer's optimisations buys: the trainer with one of them turned off, side by side.

    python benchmarks/ablations.py [--batch 32] [--rounds 5] [--data-dir DIR]

Every variant is the mlp-mnist-lecture preset through the code path of `advnets run`,
with one setting changed; rounds interleave the variants, and the table gives
samples/s (median and spread) and the median of the per-round ratios to the
trainer as shipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import TrainerRun, find_mnist, measure, paired_ratios, rate_cell  # noqa: E402

VARIANTS = {
    "as shipped": {},
    "two D passes (no joint forward)": {"trainer.joint_d_forward": False},
    "for-loop Adam (not fused)": {"g_optimizer.impl": "for-loop", "d_optimizer.impl": "for-loop"},
    "foreach Adam (not fused)": {"g_optimizer.impl": "foreach", "d_optimizer.impl": "foreach"},
    "no NaN guard": {"trainer.nan_guard": False},
    "bf16 autocast": {"trainer.precision": "bf16"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100, help="steps per variant per round")
    parser.add_argument("--data-dir")
    parser.add_argument("--json", default=str(Path(__file__).resolve().parent / "ablations.json"))
    args = parser.parse_args()
    console = Console(width=140)
    data_dir = find_mnist(args.data_dir)
    device = torch.device("cpu")
    runs = [TrainerRun(args.batch, data_dir, device, settings=settings, name=name) for name, settings in VARIANTS.items()]
    results = measure(runs, args.rounds, args.steps, max(5, args.steps // 5), console)
    for run in runs:
        run.close()
    table = Table(title=f"mlp-mnist-lecture at batch {args.batch}: samples/s, median (min-max) of {args.rounds} interleaved rounds")
    for column in ("variant", "samples/s", "vs as shipped"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for name, row in results.items():
        row["vs_shipped"] = paired_ratios(row, results["as shipped"])["median"]
        table.add_row(name, rate_cell(row), f"{row['vs_shipped']:.2f}x")
    console.print(table)
    Path(args.json).write_text(json.dumps({"batch": args.batch, "rounds": args.rounds, "results": results}, indent=2) + "\n")
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
