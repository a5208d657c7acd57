"""Where a training step's time goes: torch.profiler over the seed's loop, the hand loop and the trainer.

    python benchmarks/profile_step.py [--batch 32] [--steps 40] [--data-dir DIR]

Prints, for each contender, the share of CPU time in matrix multiplies, in the
optimiser, and in everything else, and the top operators.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import HandLoop, SeedLoop, TrainerRun, find_mnist  # noqa: E402

GEMM = {"aten::mm", "aten::addmm", "aten::bmm"}
OPTIMIZER_PREFIXES = ("Optimizer.step", "aten::_fused_adam", "aten::_foreach_", "aten::addcdiv", "aten::addcmul", "aten::lerp", "aten::sqrt")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--data-dir")
    parser.add_argument("--rows", type=int, default=8)
    args = parser.parse_args()
    data_dir = find_mnist(args.data_dir)
    device = torch.device("cpu")
    for contender in (SeedLoop(args.batch, data_dir, device), HandLoop(args.batch, data_dir, device), TrainerRun(args.batch, data_dir, device)):
        step = contender.trainer.train_step if isinstance(contender, TrainerRun) else contender.step
        for _ in range(10):
            step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                step()
        events = prof.key_averages()
        # self time of every operator sums to the wall time of the profiled region
        total = sum(e.self_cpu_time_total for e in events)
        gemm = sum(e.self_cpu_time_total for e in events if e.key in GEMM)
        optim = sum(e.self_cpu_time_total for e in events if e.key.startswith(OPTIMIZER_PREFIXES))
        name = getattr(contender, "name", type(contender).__name__)
        print(f"\n== {name}, batch {args.batch}: {total / args.steps / 1e3:.2f} ms/step "
              f"(matmul {gemm / total:.0%}, optimiser {optim / total:.0%}, rest {(total - gemm - optim) / total:.0%})")
        print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=40))
        if isinstance(contender, TrainerRun):
            contender.close()


if __name__ == "__main__":
    main()
