"""Training throughput: the seed's loop, a hand-written loop and AdversarialTrainer, side by side.

    python benchmarks/throughput.py [--data-dir DIR] [--rounds 5] [--device cpu] [--json FILE]

All contenders train the lecture's MLP GAN on MNIST (G 64-64-128-256-512-1024-784,
D 784-1024-512-256-128-1, Adam at 1e-4) in one process. Rounds interleave the
contenders, so that whatever else the machine does hits them alike; each round
times a segment of steps, and the table gives the median and the spread
(min-max) of samples per second over the rounds.

1. seed: torchvision MNIST with ToTensor and Normalize, a shuffling DataLoader,
   Sigmoid + BCELoss, one noise draw per step (the lecture's loop, completed);
2. hand: the same model, data already in one tensor, fresh noise per step, a
   stable logit loss, default Adam; no framework;
3. trainer: `AdversarialTrainer` on the mlp-mnist-lecture preset, built by the same code
   path as `advnets run` (progress bar, metrics log, grids and checkpoints on).

Then, at batch 1024, the FLOPs the trainer's matrix multiplications do per step
(counted by torch's FlopCounterMode) per second, against the float32 matmul rate
this machine reaches at the model's layer sizes; and the peak resident memory of
a real `advnets run mlp-mnist-lecture` process.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch import nn

REPO = Path(__file__).resolve().parents[1]
MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
G_WIDTHS = [64, 64, 128, 256, 512, 1024, 784]
D_WIDTHS = [784, 1024, 512, 256, 128, 1]


def mlp(widths: list[int], last: nn.Module | None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    if last is not None:
        layers.append(last)
    return nn.Sequential(*layers)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class SeedLoop:
    """The lecture's loop as intended: torchvision + DataLoader, Sigmoid + BCELoss, Adam 1e-4."""

    name = "seed"

    def __init__(self, batch_size: int, data_dir: Path, device: torch.device) -> None:
        import torchvision
        import torchvision.transforms as T
        from torch.utils.data import DataLoader

        root = Path(tempfile.mkdtemp(prefix="seed-mnist-"))
        raw = root / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for name in MNIST_FILES:  # torchvision checks the MD5s and extracts; nothing is downloaded
            shutil.copy(data_dir / name, raw / name)
        transform = T.Compose([T.ToTensor(), T.Normalize((0.5,), (0.5,))])
        dataset = torchvision.datasets.MNIST(str(root), train=True, download=True, transform=transform)
        self.loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, pin_memory=device.type == "cuda")
        self.batches = iter(self.loader)
        self.device = device
        self.G = mlp(G_WIDTHS, nn.Tanh()).to(device)
        self.D = mlp(D_WIDTHS, nn.Sigmoid()).to(device)
        self.criterion = nn.BCELoss()
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=1e-4)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=1e-4)

    def step(self) -> int:
        try:
            x, _ = next(self.batches)
        except StopIteration:
            self.batches = iter(self.loader)
            x, _ = next(self.batches)
        x = x.view(x.size(0), -1).to(self.device, non_blocking=True)
        b = x.size(0)
        ones = torch.ones(b, 1, device=self.device)
        zeros = torch.zeros(b, 1, device=self.device)
        fake = self.G(torch.randn(b, 64, device=self.device))
        d_loss = self.criterion(self.D(x), ones) + self.criterion(self.D(fake.detach()), zeros)
        self.opt_d.zero_grad()
        d_loss.backward()
        self.opt_d.step()
        g_loss = self.criterion(self.D(fake), ones)
        self.opt_g.zero_grad()
        g_loss.backward()
        self.opt_g.step()
        return b

    def run(self, steps: int) -> float:
        sync(self.device)
        start = time.perf_counter()
        samples = sum(self.step() for _ in range(steps))
        sync(self.device)
        return samples / (time.perf_counter() - start)


class HandLoop(SeedLoop):
    """A minimal loop by hand: the same model, the data in one tensor, fresh noise each step."""

    name = "hand"

    def __init__(self, batch_size: int, data_dir: Path, device: torch.device) -> None:
        from advnets_mnist.data import mnist

        self.device = device
        self.batch_size = batch_size
        self.data = (mnist(str(data_dir), download=False).train.float() / 127.5 - 1).view(-1, 784).to(device)
        self.G = mlp(G_WIDTHS, nn.Tanh()).to(device)
        self.D = mlp(D_WIDTHS, None).to(device)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=1e-4)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=1e-4)
        self.ones = torch.ones(batch_size, 1, device=device)
        self.zeros = torch.zeros(batch_size, 1, device=device)

    def step(self) -> int:
        x = self.data[torch.randint(0, len(self.data), (self.batch_size,), device=self.device)]
        fake = self.G(torch.randn(self.batch_size, 64, device=self.device))
        d_loss = F.binary_cross_entropy_with_logits(self.D(x), self.ones) + F.binary_cross_entropy_with_logits(
            self.D(fake.detach()), self.zeros
        )
        self.opt_d.zero_grad()
        d_loss.backward()
        self.opt_d.step()
        g_loss = F.binary_cross_entropy_with_logits(self.D(fake), self.ones)
        self.opt_g.zero_grad()
        g_loss.backward()
        self.opt_g.step()
        return self.batch_size


class TrainerRun:
    """AdversarialTrainer on the mlp-mnist-lecture preset, set up exactly as `advnets run` sets it up."""

    def __init__(
        self,
        batch_size: int,
        data_dir: Path,
        device: torch.device,
        precision: str = "32",
        settings: dict[str, object] | None = None,
        name: str | None = None,
    ) -> None:
        from advnets.config import resolve
        from advnets.console import ProgressDisplay
        from advnets.plugins import load_plugins
        from advnets.runs import start_run
        from advnets.trainer import Callback

        self.name = name or ("trainer" if precision == "32" else f"trainer {precision}")
        registry = load_plugins().registry
        overrides = [
            (("dataset", "data_dir"), str(data_dir)),
            (("trainer", "batch_size"), batch_size),
            (("device",), str(device)),
            (("seed",), 0),
            (("trainer", "precision"), precision),
            # The preset's metrics run at the end of every fit, and each segment here is a fit:
            # once per run for a user, never inside the timed steps, so off here to save minutes.
            (("eval", "metrics"), {}),
            *((tuple(key.split(".")), value) for key, value in (settings or {}).items()),
        ]
        config = resolve(registry, preset="mlp-mnist-lecture", overrides=overrides)
        self.out = Path(tempfile.mkdtemp(prefix="advnets-bench-")) / "run"
        # The progress bar renders as in a terminal, into a buffer.
        console = Console(file=io.StringIO(), force_terminal=True, width=140)
        self.times: list[float] = []
        times = self.times

        class StepClock(Callback):
            def on_step_end(self, trainer) -> None:
                times.append(time.perf_counter())

        self.session = start_run(registry, config, out=self.out, extra_callbacks=[ProgressDisplay(console), StepClock()])
        self.trainer = self.session.trainer
        self.device = device

    def run(self, steps: int) -> float:
        """Samples/s between the first and last step of a fit of ``steps + 1`` steps.

        Timing from step end to step end leaves out the work done once per fit
        (the grid at the start, the checkpoint at the end) and keeps the per-step
        work a user has (progress bar, metrics log at its interval).
        """
        self.times.clear()
        self.trainer.fit(steps=self.trainer.step + steps + 1)
        sync(self.device)
        return steps * self.trainer.k * self.trainer.batch_size / (self.times[-1] - self.times[0])

    def close(self) -> None:
        shutil.rmtree(self.out.parent, ignore_errors=True)


def matmul_rate(device: torch.device, m: int) -> tuple[float, list[dict]]:
    """Float32 GEMM rate at the model's layer sizes, (m x in) @ (in x out): FLOP-weighted over the layers."""
    shapes = list(zip(G_WIDTHS, G_WIDTHS[1:])) + list(zip(D_WIDTHS, D_WIDTHS[1:]))
    rows, total_flops, total_time = [], 0.0, 0.0
    for k, n in shapes:
        a = torch.randn(m, k, device=device)
        w = torch.randn(n, k, device=device)
        for _ in range(3):
            F.linear(a, w)
        flops = 2.0 * m * k * n
        reps = max(5, int(3e9 / flops))
        sync(device)
        start = time.perf_counter()
        for _ in range(reps):
            F.linear(a, w)
        sync(device)
        seconds = (time.perf_counter() - start) / reps
        rows.append({"in": k, "out": n, "gflops": flops / seconds / 1e9})
        total_flops += flops
        total_time += seconds
    return total_flops / total_time / 1e9, rows


def flops_per_step(trainer) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        trainer.train_step()
    return float(counter.get_total_flops())


PEAK_RSS_PROBE = """
import atexit, sys
from pathlib import Path

peak_file = Path(sys.argv[1])

def record_peak():
    status = Path("/proc/self/status").read_text()
    peak_file.write_text(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))

atexit.register(record_peak)
sys.argv = ["advnets", *sys.argv[2:]]
from advnets.cli import main
main()
"""


def peak_rss_of_a_run(data_dir: Path, steps: int) -> float:
    """Peak resident memory (MiB) of a real `advnets run mlp-mnist-lecture` process on the CPU.

    Read from the process's own VmHWM at exit: getrusage's maxrss would also count
    the memory of this (large) benchmark process that the child was forked from.
    """
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ADVNETS_")}
        peak_file = Path(tmp) / "peak"
        command = [sys.executable, "-c", PEAK_RSS_PROBE, str(peak_file), "run", "mlp-mnist-lecture", "--steps", str(steps)]
        command += ["--device", "cpu", "--data-dir", str(data_dir), "--out", str(Path(tmp) / "run"), "--seed", "0"]
        subprocess.run(command, env=env, check=True, capture_output=True)
        return int(peak_file.read_text()) / 1024  # kB to MiB


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "rounds": values}


def paired_ratios(numerator: dict, denominator: dict) -> dict:
    """Round-by-round ratios of two contenders' rates, as a spread.

    Each round's contenders ran back to back, so their ratio cancels the machine's drift.
    """
    return spread([a / b for a, b in zip(numerator["rounds"], denominator["rounds"])])


def rate_cell(stats: dict) -> str:
    """Samples/s as 'median (min-max)'."""
    return f"{stats['median']:,.0f} ({stats['min']:,.0f}-{stats['max']:,.0f})"


def measure(contenders: list, rounds: int, steps: int, warmup: int, console: Console) -> dict[str, dict]:
    for contender in contenders:
        contender.run(warmup)
    results: dict[str, list[float]] = {c.name: [] for c in contenders}
    for r in range(rounds):
        for contender in contenders:
            results[contender.name].append(contender.run(steps))
        console.print(f"  round {r + 1}/{rounds}: " + "  ".join(f"{n} {v[-1]:,.0f}" for n, v in results.items()))
    return {name: spread(values) for name, values in results.items()}


def find_mnist(given: str | None) -> Path:
    for candidate in [given, os.environ.get("ADVNETS_DATA_DIR"), REPO.parent / "shared" / "data" / "mnist", Path.home() / ".cache" / "advnets" / "MNIST" / "raw"]:
        if candidate and all((Path(candidate) / f).is_file() for f in MNIST_FILES):
            return Path(candidate)
    sys.exit("benchmark: MNIST's four .gz files not found; pass --data-dir DIR")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="folder with MNIST's four IDX .gz files")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", default="32,256", help="batch sizes for the side-by-side rounds")
    parser.add_argument("--seconds", type=float, default=2.5, help="rough length of one contender's segment")
    parser.add_argument("--bf16", action="store_true", help="also time the trainer with --set trainer.precision=bf16")
    parser.add_argument("--rss-steps", type=int, default=400, help="steps of the run whose peak memory is read")
    parser.add_argument("--arithmetic-batch", type=int, default=1024, help="batch of the trainer timed against the matmul rate")
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "throughput.json"))
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("benchmark: CUDA is not available here")

    console = Console(width=160)
    device = torch.device(args.device)
    data_dir = find_mnist(args.data_dir)
    started = time.time()
    report: dict = {
        "machine": {
            "platform": platform.platform(),
            "processor": _cpu_name(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        },
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "rounds": args.rounds,
        "batches": {},
    }
    for batch in [int(b) for b in args.batches.split(",")]:
        console.print(f"[bold]batch {batch}[/]: building contenders")
        contenders = [SeedLoop(batch, data_dir, device), HandLoop(batch, data_dir, device), TrainerRun(batch, data_dir, device)]
        if args.bf16:
            contenders.append(TrainerRun(batch, data_dir, device, precision="bf16"))
        probe = time.perf_counter()
        contenders[2].run(5)
        per_step = (time.perf_counter() - probe) / 6
        steps = max(10, int(args.seconds / per_step))
        report["batches"][batch] = {"steps_per_segment": steps, **measure(contenders, args.rounds, steps, max(5, steps // 5), console)}
        for contender in contenders:
            if isinstance(contender, TrainerRun):
                contender.close()

    big = args.arithmetic_batch
    console.print(f"[bold]batch {big}[/]: arithmetic rate of the trainer against the matmul rate")
    trainer_run = TrainerRun(big, data_dir, device)
    trainer_run.run(2)
    flops = flops_per_step(trainer_run.trainer)
    rates, matmul = [], []
    for _ in range(3):
        rates.append(trainer_run.run(8))
        matmul.append(matmul_rate(device, big)[0])
    trainer_run.close()
    achieved = statistics.median(rates) / big * flops / 1e9
    report["arithmetic"] = {
        "batch": big,
        "flops_per_sample": flops / big,
        "trainer_samples_per_s": spread(rates),
        "trainer_gflops": achieved,
        "matmul_gflops": spread(matmul),
        "matmul_layers": matmul_rate(device, big)[1],
        "fraction": achieved / statistics.median(matmul),
    }
    if device.type == "cpu":
        console.print(f"peak memory of `advnets run mlp-mnist-lecture --steps {args.rss_steps}`")
        report["peak_rss_mib"] = peak_rss_of_a_run(data_dir, args.rss_steps)
    report["seconds"] = time.time() - started
    _print(report, console)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {args.json}")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _print(report: dict, console: Console) -> None:
    table = Table(title=f"samples/s, median (min-max) of {report['rounds']} interleaved rounds")
    table.add_column("batch")
    names = list(next(iter(report["batches"].values())).keys() - {"steps_per_segment"})
    order = [n for n in ("seed", "hand", "trainer", "trainer bf16") if n in names]
    for name in order:
        table.add_column(name, justify="right")
    table.add_column("trainer / seed", justify="right")
    table.add_column("trainer / hand", justify="right")
    for batch, row in report["batches"].items():
        cells = [rate_cell(row[n]) for n in order]
        ratios = []
        for other in ("seed", "hand"):
            paired = row[f"trainer_over_{other}"] = paired_ratios(row["trainer"], row[other])
            ratios.append(f"{paired['median']:.2f}x ({paired['min']:.2f}-{paired['max']:.2f})")
        table.add_row(str(batch), *cells, *ratios)
    console.print(table)
    a = report["arithmetic"]
    console.print(
        f"batch {a['batch']}: {a['flops_per_sample'] / 1e6:.1f} MFLOP per sample in matmuls; trainer {a['trainer_gflops']:.1f} GFLOP/s "
        f"against {a['matmul_gflops']['median']:.1f} GFLOP/s of float32 matmul at the layer sizes = {a['fraction']:.0%}"
    )
    if "peak_rss_mib" in report:
        console.print(f"peak resident memory of `advnets run mlp-mnist-lecture`: {report['peak_rss_mib']:.0f} MiB")
    console.print(f"machine: {report['machine']['processor']}, {report['machine']['cpus']} CPUs, torch {report['machine']['torch']}; {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
