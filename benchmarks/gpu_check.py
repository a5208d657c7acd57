"""The device check: everything advnets claims about a GPU, measured in one run, one JSON file.

    python benchmarks/gpu_check.py [--data-dir DIR] [--json FILE]

On one CUDA GPU, in a few minutes, it

1. runs the tests marked ``gpu`` (tests/test_gpu.py: CUDA training at 32, bf16 and
   float16 with scaling, nccl with one process, kill and resume, steps with no
   host-device sync under ``torch.cuda.set_sync_debug_mode("error")``);
2. measures the arithmetic ceiling: float32 and bf16 matrix products, large and
   at each batch's layer shapes (the "matmul probe");
3. times the trainer on the mlp-mnist-lecture preset at batches 32, 256, 1024
   and 4096, set up as ``advnets run`` sets it up but without epoch-end work
   (checkpoints, grids), with its steps replayed from CUDA graphs (the default,
   ``trainer.cuda_graphs`` auto) and eager (off), side by side, and sets its
   FLOP rate (FLOPs per step counted by torch's FlopCounterMode) against the
   probe's;
4. times the lecture's schedule (100 epochs at batch 32: 187,500 steps) over a
   measured stretch of whole epochs, epoch-end work included, and extrapolates
   (said so in the JSON), or runs it whole with ``--full-schedule``, with graphs
   and, for comparison, eager;
5. times a hand-written step of the same model captured in one CUDA graph: the
   launch-free floor a small batch can reach on this GPU; and at the smallest
   batch the same step with G and D under ``torch.compile(mode="reduce-overhead")``,
   the other way the issue names.

Each part records its own error and the others go on. ``--device cpu --smoke``
runs every part at toy sizes on the CPU: the test suite does that, so the
script cannot rot between GPU sessions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import G_WIDTHS, D_WIDTHS, TrainerRun, find_mnist, flops_per_step, matmul_rate, mlp  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCHEDULE_EPOCHS, SCHEDULE_BATCH = 100, 32
STEPS_ONLY = {"callbacks": {}, "checkpoint.every_epochs": 0, "checkpoint.every_steps": 10**9}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def part(report: dict, name: str, function, *args) -> None:
    """Run one part of the check; keep its result or its error, and go on."""
    started = time.time()
    print(f"== {name}", flush=True)
    try:
        report[name] = function(*args)
    except Exception as exc:  # a broken part must not hide the others' numbers
        report[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
        print(report[name]["traceback"], flush=True)
    if isinstance(report[name], dict):
        report[name]["seconds"] = round(time.time() - started, 1)


def run_gpu_tests(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        env = {**os.environ, "ADVNETS_TEST_MNIST": str(args.data_dir)}
        # one process (-n 0), in a session of its own, so that a time-out ends it with every child it started
        tests = getattr(args, "tests", REPO / "tests" / "test_gpu.py")  # another file in the check's own test
        command = [sys.executable, "-m", "pytest", "-m", "gpu", "-n", "0", "-v", "-rs", "-p", "no:cacheprovider",
                   f"--junitxml={junit}", str(tests)]
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, start_new_session=True)
        try:
            output, _ = process.communicate(timeout=args.test_timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):  # it may have ended just now
                os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            print(output[-4000:], flush=True)
            # no junit file: the verbose lines say which tests ended, and the first one missing is the one that hung
            cases = {m.group(1): {"outcome": m.group(2).lower()}
                     for m in re.finditer(r"::(\S+) (PASSED|FAILED|ERROR|SKIPPED)", output)}
            return {"error": f"the gpu tests ran past --test-timeout {args.test_timeout} s", "cases": cases,
                    "output_tail": output[-3000:]}
        print(output[-4000:], flush=True)
        cases = {}
        for case in ET.parse(junit).getroot().iter("testcase"):
            outcome = "passed"
            for child in case:
                if child.tag in ("failure", "error"):
                    outcome = "failed"
                    cases[case.get("name")] = {"outcome": outcome, "message": (child.get("message") or "")[:500]}
                    break
                if child.tag == "skipped":
                    outcome = "skipped"
            cases.setdefault(case.get("name"), {"outcome": outcome, "seconds": float(case.get("time", 0))})
        counts = {o: sum(1 for c in cases.values() if c["outcome"] == o) for o in ("passed", "failed", "skipped")}
        return {"exit_code": process.returncode, **counts, "cases": cases}


def square_matmul_tflops(device: torch.device, n: int, dtype: torch.dtype, reps: int) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2.0 * n**3 * reps / (time.perf_counter() - start) / 1e12


def probe(args) -> dict:
    n = 512 if args.smoke else 8192
    reps = 3 if args.smoke else 20
    found = {
        "square_n": n,
        "fp32_tflops": square_matmul_tflops(args.device, n, torch.float32, reps),
        "tf32_allowed": torch.backends.cuda.matmul.allow_tf32,
    }
    if args.device.type == "cuda":
        found["bf16_tflops"] = square_matmul_tflops(args.device, n, torch.bfloat16, reps)
    found["layer_shapes_gflops"] = {str(b): matmul_rate(args.device, b)[0] for b in args.batches}
    return found


def timed_fit(run: TrainerRun, steps: int) -> float:
    """Seconds for ``steps`` steps inside one fit, the device synchronised at both ends.

    Timed from the end of the fit's fifth step to the end of its last but one, so that
    what a fit does once (the grid at its start, the warm-up steps and the capture of
    a CUDA graph, the checkpoint at its end) stays out, and what a run does every step
    and every record stays in.
    """
    from advnets.graphs import WARMUP_STEPS
    from advnets.trainer import Callback

    first = run.trainer.step + WARMUP_STEPS + 2
    marks: dict[int, float] = {}

    class SyncClock(Callback):
        def on_step_end(self, trainer) -> None:
            if trainer.step in (first, first + steps):
                sync(run.device)
                marks[trainer.step] = time.perf_counter()

    clock = SyncClock()
    run.trainer.callbacks.append(clock)
    try:
        run.trainer.fit(steps=first + steps + 1)
    finally:
        run.trainer.callbacks.remove(clock)
    return marks[first + steps] - marks[first]


@contextlib.contextmanager
def epoch_end_clock(run: TrainerRun):
    """Seconds each callback spends in ``on_epoch_end`` (a checkpoint, a sample grid), per callback.

    The device is synchronised before each call, so that the steps queued before it (a
    replayed graph returns at once) are not charged to the first copy to the host.
    """
    spent: dict[str, list[float]] = {}
    originals = []
    for callback in run.trainer.callbacks:
        hook = callback.on_epoch_end
        name = type(callback).__name__

        def timed(trainer, hook=hook, name=name):
            sync(run.device)
            start = time.perf_counter()
            hook(trainer)
            sync(run.device)
            spent.setdefault(name, []).append(time.perf_counter() - start)

        originals.append((callback, vars(callback).get("on_epoch_end")))
        callback.on_epoch_end = timed
    try:
        yield spent
    finally:
        for callback, own in originals:
            if own is None:
                del callback.on_epoch_end  # the class's hook again
            else:
                callback.on_epoch_end = own


VARIANTS = {"": ("32", "auto"), " eager": ("32", "off"), " bf16": ("bf16", "auto")}
"""Throughput rows per batch: name suffix -> (precision, trainer.cuda_graphs)."""


def throughput(args) -> dict:
    rows = {}
    for batch in args.batches:
        for suffix, (precision, graphs) in VARIANTS.items():
            if precision == "bf16" and batch != max(args.batches):
                continue
            # The step's rate: no epoch-end work (at batch 4096 an epoch is 14 steps, and each
            # epoch's checkpoint and grid would be timed as steps); the schedule below keeps it.
            settings = {**STEPS_ONLY, "trainer.cuda_graphs": graphs}
            run = TrainerRun(batch, args.data_dir, args.device, precision=precision, settings=settings)
            try:
                run.trainer.fit(steps=5)  # warm-up: kernels chosen, optimiser states made
                flops = flops_per_step(run.trainer)
                seconds = timed_fit(run, 10)
                steps = max(10, int(args.seconds / max(seconds / 10, 1e-6)))
                rates = [steps * batch / timed_fit(run, steps) for _ in range(args.rounds)]
            finally:
                run.close()
            rate = statistics.median(rates)
            key = f"{batch}{suffix}"
            rows[key] = {
                "samples_per_s": rate, "rounds": rates, "steps_per_round": steps, "ms_per_step": batch / rate * 1e3,
                "flops_per_step": flops, "gflops": rate / batch * flops / 1e9, "cuda_graphs": run.trainer.graph_report,
            }
            print(f"  batch {key}: {rate:,.0f} samples/s, {batch / rate * 1e3:.3f} ms/step", flush=True)
    return rows


def schedule(args) -> dict:
    """The lecture's 100 epochs at batch 32: whole epochs timed with their epoch-end work, then
    extrapolated; with CUDA graphs (the default), then eager for comparison."""
    found: dict = {}
    for graphs in ("auto", "off"):
        run = TrainerRun(SCHEDULE_BATCH, args.data_dir, args.device, settings={"trainer.cuda_graphs": graphs})
        try:
            per_epoch = run.trainer.steps_per_epoch
            total = SCHEDULE_EPOCHS * per_epoch
            epochs = SCHEDULE_EPOCHS if args.full_schedule and graphs == "auto" else args.schedule_epochs
            steps = min(total, epochs * per_epoch) if not args.smoke else 60
            run.trainer.fit(steps=20)  # warm-up
            with epoch_end_clock(run) as spent:
                seconds = timed_fit(run, steps)
        finally:
            run.close()
        ends = {name: statistics.median(times) for name, times in spent.items() if statistics.median(times) >= 1e-4}
        result = {
            "epochs": SCHEDULE_EPOCHS, "batch": SCHEDULE_BATCH, "steps": total, "steps_timed": steps,
            "seconds_timed": seconds, "ms_per_step": seconds / steps * 1e3,
            "seconds_full_schedule": seconds / steps * total,
            "extrapolated": steps < total,
            "cuda_graphs": run.trainer.graph_report,
            "note": "checkpoints, sample grids, progress and metrics log on, as `advnets run` has them; evaluation off",
            # what one epoch's end costs, by callback (median over the epochs timed): the share of the
            # schedule that is not steps
            "epoch_end_seconds": ends,
            "epoch_end_share": sum(ends.values()) * (steps / run.trainer.steps_per_epoch) / seconds,
        }
        where = ", ".join(f"{name} {t:.3f} s" for name, t in ends.items()) or "none timed"
        print(f"  cuda_graphs {graphs}: {result['ms_per_step']:.3f} ms/step, {result['cuda_graphs']}; each epoch's end: {where}", flush=True)
        if graphs == "auto":
            found.update(result)
        else:
            found["eager"] = result
    return found


def hand_step(device: torch.device, batch: int, compiled: bool = False):
    """The lecture's MLPs on random data and a hand-written step (D update, G update, fused Adam).

    ``compiled`` runs G and D under ``torch.compile(mode="reduce-overhead")`` (its own CUDA
    graphs); otherwise the step is written to be captured whole in one CUDA graph.
    """
    torch.manual_seed(0)
    data = torch.rand(60000, 784, device=device) * 2 - 1
    G, D = mlp(G_WIDTHS, torch.nn.Tanh()).to(device), mlp(D_WIDTHS, None).to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-4, fused=True, capturable=not compiled)
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-4, fused=True, capturable=not compiled)
    g_run, d_run = (torch.compile(G, mode="reduce-overhead"), torch.compile(D, mode="reduce-overhead")) if compiled else (G, D)
    ones, zeros = torch.ones(batch, 1, device=device), torch.zeros(batch, 1, device=device)

    def step():
        if compiled:
            torch.compiler.cudagraph_mark_step_begin()
        x = data[torch.randint(0, len(data), (batch,), device=device)]
        fake = g_run(torch.randn(batch, 64, device=device))
        d_loss = F.binary_cross_entropy_with_logits(d_run(x), ones) + F.binary_cross_entropy_with_logits(d_run(fake.detach()), zeros)
        opt_d.zero_grad(set_to_none=compiled)  # a whole-step graph keeps its gradients in place
        d_loss.backward()
        opt_d.step()
        g_loss = F.binary_cross_entropy_with_logits(d_run(fake), ones)
        opt_g.zero_grad(set_to_none=compiled)
        g_loss.backward(inputs=list(G.parameters()))
        opt_g.step()

    return step


def graphed_hand_step(args) -> dict:
    """The same MLPs, a hand-written step (D update, G update, fused Adam) captured in one CUDA graph."""
    if args.device.type != "cuda":
        return {"skipped": "CUDA graphs need a CUDA device"}
    rows = {}
    for batch in args.batches:
        device = args.device
        step = hand_step(device, batch)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
        eager_steps, graph_steps = (200, 200) if args.smoke else (500, 2000)
        sync(device)
        start = time.perf_counter()
        for _ in range(eager_steps):
            step()
        sync(device)
        eager = (time.perf_counter() - start) / eager_steps
        start = time.perf_counter()
        for _ in range(graph_steps):
            graph.replay()
        sync(device)
        graphed = (time.perf_counter() - start) / graph_steps
        rows[str(batch)] = {"eager_ms_per_step": eager * 1e3, "graph_ms_per_step": graphed * 1e3,
                            "graph_samples_per_s": batch / graphed, "speedup": eager / graphed}
        print(f"  batch {batch}: eager {eager * 1e3:.3f} ms, graph {graphed * 1e3:.3f} ms", flush=True)
    batch = min(args.batches)
    try:  # the second option the issue names: torch.compile's reduce-overhead mode (its own CUDA graphs)
        rows[f"{batch} torch.compile"] = compiled_hand_step(args, batch)
    except Exception as exc:
        rows[f"{batch} torch.compile"] = {"error": f"{type(exc).__name__}: {str(exc)[:500]}"}
    return rows


def compiled_hand_step(args, batch: int) -> dict:
    """The same hand-written step with G and D under torch.compile(mode="reduce-overhead"), fused Adam eager."""
    device = args.device
    step = hand_step(device, batch, compiled=True)
    started = time.perf_counter()
    for _ in range(20):  # compiles, then records its graphs
        step()
    sync(device)
    compile_seconds = time.perf_counter() - started
    steps = 200 if args.smoke else 2000
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    compiled = (time.perf_counter() - start) / steps
    print(f"  batch {batch}: torch.compile reduce-overhead {compiled * 1e3:.3f} ms (compiling: {compile_seconds:.0f} s)", flush=True)
    return {"compiled_ms_per_step": compiled * 1e3, "compile_and_warm_up_seconds": compile_seconds}


def summary(report: dict) -> dict:
    """The issue's targets, against what was measured."""
    found: dict = {}
    sched = report.get("schedule", {})
    if "seconds_full_schedule" in sched:
        found["schedule_seconds"] = sched["seconds_full_schedule"]
        found["schedule_under_2_min"] = sched["seconds_full_schedule"] < 120
        found["schedule_cuda_graphs"] = sched.get("cuda_graphs")
        if "seconds_full_schedule" in sched.get("eager", {}):
            found["schedule_seconds_eager"] = sched["eager"]["seconds_full_schedule"]
    rows, ceiling = report.get("throughput", {}), report.get("probe", {}).get("layer_shapes_gflops", {})
    if rows and ceiling:
        largest = str(max(int(k) for k in ceiling))
        if largest in rows and "gflops" in rows[largest]:
            ratio = ceiling[largest] / rows[largest]["gflops"]
            found["largest_batch"] = int(largest)
            found["probe_over_trainer_rate"] = ratio
            found["within_2x_of_probe"] = ratio <= 2
    found["graphs_over_eager_rate"] = {
        key: rows[key]["samples_per_s"] / rows[f"{key} eager"]["samples_per_s"]
        for key in rows
        if f"{key} eager" in rows and "samples_per_s" in rows[key] and "samples_per_s" in rows[f"{key} eager"]
    }
    tests = report.get("gpu_tests", {})
    if "passed" in tests:
        found["gpu_tests"] = f"{tests['passed']} passed, {tests['failed']} failed, {tests['skipped']} skipped"
    elif "error" in tests:
        ended = tests.get("cases", {})
        found["gpu_tests"] = f"{tests['error']} ({sum(c['outcome'] == 'passed' for c in ended.values())} passed before)"
    return found


def write(report: dict, path: str, started: float) -> None:
    report["summary"] = summary(report)
    report["seconds"] = round(time.time() - started, 1)
    partial = Path(path).with_suffix(".partial")
    partial.write_text(json.dumps(report, indent=2) + "\n")
    partial.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="folder with MNIST's four IDX .gz files")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batches", default="32,256,1024,4096")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="rough length of one timed round")
    parser.add_argument("--schedule-epochs", type=int, default=2, help="whole epochs timed for the schedule's extrapolation")
    parser.add_argument("--full-schedule", action="store_true", help="time all 100 epochs instead of extrapolating")
    parser.add_argument("--test-timeout", type=int, default=420)
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out: " + ", ".join(PARTS))
    parser.add_argument("--smoke", action="store_true", help="toy sizes: check that every part runs (the test suite's use)")
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "gpu_check.json"))
    args = parser.parse_args()
    args.device = torch.device(args.device)
    if args.device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: CUDA is not available here (use --device cpu --smoke to check the script itself)")
    args.batches = [int(b) for b in args.batches.split(",")]
    args.data_dir = find_mnist(args.data_dir)
    skipped = {name for name in args.skip.split(",") if name}
    unknown = skipped - set(PARTS)
    if unknown:
        sys.exit(f"gpu_check: unknown part(s) {', '.join(sorted(unknown))}; parts are {', '.join(PARTS)}")

    started = time.time()
    report: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "device": str(args.device) + (f" ({torch.cuda.get_device_name(args.device)})" if args.device.type == "cuda" else ""),
        },
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
    for name, function in PARTS.items():
        if name not in skipped:
            part(report, name, function, args)
            # written after every part, so a run stopped at its time limit still leaves what it measured
            write(report, args.json, started)
    write(report, args.json, started)
    print(json.dumps(report["summary"], indent=2))
    print(f"wrote {args.json} in {report['seconds']:.0f} s")


PARTS = {
    "gpu_tests": run_gpu_tests,
    "probe": probe,
    "throughput": throughput,
    "schedule": schedule,
    "graphed_hand_step": graphed_hand_step,
}

if __name__ == "__main__":
    main()
