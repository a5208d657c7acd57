"""The trainer against the previous release's trainer, interleaved in one process.

    python benchmarks/previous.py [--rev c37e44d] [--batch 32 256] [--rounds 5] [--json FILE]

The step became a component (players, objectives, batches with labels, data
sources); this checks that the fast path did not slow down. The core package at
``--rev`` (default: the last commit before the change) is exported from git into
a temporary folder as the package ``advnets_previous``, and both trainers train
the lecture's MLP GAN on MNIST (non-saturating loss, Adam, NaN guard on, no
callbacks) from the same weights. Rounds interleave the two, so whatever else the
machine does hits both alike; the table gives each one's median samples/s and the
round-by-round ratio current / previous.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import find_mnist, measure, paired_ratios, rate_cell  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BEFORE_THE_STEP_CONTRACT = "c37e44d"


def export_previous(rev: str, into: Path) -> None:
    """``git archive REV advnets`` unpacked as the package advnets_previous (its imports are relative)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "advnets"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        # our own git archive; the "data" filter where Python has it (3.11.4 and newer; Debian 12's 3.11.2 has not)
        tar.extractall(into, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    (into / "advnets").rename(into / "advnets_previous")


class Contender:
    def __init__(self, name: str, trainer_class, generator, discriminator, data, batch_size: int) -> None:
        from advnets.losses import NonSaturatingLoss
        from advnets.optim import adam

        self.name = name
        self.batch_size = batch_size
        self.trainer = trainer_class(
            copy.deepcopy(generator), copy.deepcopy(discriminator), NonSaturatingLoss(), data,
            g_optimizer=adam(lr=1e-4), d_optimizer=adam(lr=1e-4), batch_size=batch_size, seed=0, device="cpu", log_every=10**9,
        )

    def run(self, steps: int) -> float:
        start = time.perf_counter()
        self.trainer.fit(steps=self.trainer.step + steps)
        return steps * self.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", default=BEFORE_THE_STEP_CONTRACT, help="the previous trainer's git revision")
    parser.add_argument("--data-dir", help="folder with MNIST's four IDX .gz files")
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=0, help="steps per round (default: about 2 s of work)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    console = Console(stderr=True)
    from advnets.trainer import AdversarialTrainer
    from advnets_mnist.data import mnist
    from advnets_mnist.models import MLPDiscriminator, MLPGenerator

    data = mnist(str(find_mnist(args.data_dir)), download=False)
    report = {"rev": args.rev, "torch": torch.__version__, "threads": torch.get_num_threads(), "batches": {}}
    with tempfile.TemporaryDirectory() as tmp:
        export_previous(args.rev, Path(tmp))
        sys.path.insert(0, tmp)
        from advnets_previous.trainer import AdversarialTrainer as PreviousTrainer

        for batch in args.batch:
            torch.manual_seed(0)
            generator, discriminator = MLPGenerator(), MLPDiscriminator()
            contenders = [
                Contender("previous", PreviousTrainer, generator, discriminator, data, batch),
                Contender("current", AdversarialTrainer, generator, discriminator, data, batch),
            ]
            steps = args.steps or max(20, 60000 // batch // 8)
            console.print(f"[bold]batch {batch}[/]: {args.rounds} rounds of {steps} steps each")
            results = measure(contenders, args.rounds, steps, warmup=5, console=console)
            results["current_over_previous"] = paired_ratios(results["current"], results["previous"])
            report["batches"][batch] = results
    table = Table(title=f"current trainer against {args.rev} (samples/s, median (min-max) of {args.rounds} rounds)")
    for column in ("batch", "previous", "current", "current / previous"):
        table.add_column(column, justify="right")
    for batch, row in report["batches"].items():
        ratio = row["current_over_previous"]
        table.add_row(str(batch), rate_cell(row["previous"]), rate_cell(row["current"]), f"{ratio['median']:.3f} ({ratio['min']:.3f}-{ratio['max']:.3f})")
    Console().print(table)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
