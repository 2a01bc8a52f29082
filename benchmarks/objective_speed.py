"""Time the objectives at the paper's shapes: reference ΔR, fast ΔR, a V-MCR² step.

    python -m benchmarks.objective_speed                 # m=2000 d=500 k=200 q=2000, CPU
    python -m benchmarks.objective_speed --device cuda --repeats 50

(from the repository root; ``python benchmarks/objective_speed.py`` works too once
the package is installed, e.g. ``pip install -e .``).

Each case runs forward and backward on unit-row features with balanced classes
(labels on the CPU, as the trainer passes them); the times are medians over
``--repeats`` rounds after ``--warmup`` rounds, with the interquartile range; each
round calls every case once, so the ratios to the per-class reference are measured
under the same conditions, in one run (DESIGN §6).

1. reference: exact ΔR, a Python loop over classes with one d×d Cholesky each;
2. fast:      exact ΔR, batched (``rate_reduction``);
3. vmcr2:     ``proximal_step`` + ``theta_loss`` forward and backward (Algorithm 1,
              lines 5–12), Γ and A latched on a batch first.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import NamedTuple

import torch

from vmcr2_cli.objectives import (
    ClassPartition,
    VariationalMCR2,
    rate_reduction,
    rate_reduction_reference,
)


class Timing(NamedTuple):
    """Seconds per call: median and interquartile range over the repeats."""

    median: float
    q1: float
    q3: float

    def __str__(self) -> str:
        return f"{self.median * 1e3:9.2f} ms  (IQR {self.q1 * 1e3:.2f}–{self.q3 * 1e3:.2f})"


def time_fn(fn: Callable[[], object], repeats: int, warmup: int, device: torch.device) -> Timing:
    """Median and IQR of ``fn()``'s wall time; CUDA events on a GPU, perf_counter otherwise."""
    return time_interleaved({"fn": fn}, repeats, warmup, device)["fn"]


def time_interleaved(
    cases: dict[str, Callable[[], object]], repeats: int, warmup: int, device: torch.device
) -> dict[str, Timing]:
    """Time several functions in rounds, each round calling every one once.

    Interleaving keeps the ratios fair when the machine's load drifts during the run
    (a shared CPU): every case sees the same conditions.
    """
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            seconds[name].append(_seconds(fn, device))
    return {name: _summary(values) for name, values in seconds.items()}


def _seconds(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / 1e3
    begin = time.perf_counter()
    fn()
    return time.perf_counter() - begin


def _summary(seconds: list[float]) -> Timing:
    if len(seconds) < 2:
        return Timing(seconds[0], seconds[0], seconds[0])
    q1, median, q3 = statistics.quantiles(seconds, n=4, method="inclusive")
    return Timing(median, q1, q3)


def balanced_batch(m: int, d: int, k: int, device: torch.device, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-row features (m, d) on ``device`` and shuffled balanced CPU labels (m,)."""
    generator = torch.Generator().manual_seed(seed)
    Z = torch.nn.functional.normalize(torch.randn(m, d, generator=generator), dim=1)
    labels = (torch.arange(m) % k)[torch.randperm(m, generator=generator)]
    return Z.to(device), labels


def reference_step(Z: torch.Tensor, labels: torch.Tensor, k: int, eps2: float) -> Callable[[], None]:
    def run() -> None:
        features = Z.detach().requires_grad_()
        (-rate_reduction_reference(features, labels, k, eps2).delta_r).backward()

    return run


def fast_step(Z: torch.Tensor, labels: torch.Tensor, k: int, eps2: float, validate: bool) -> Callable[[], None]:
    def run() -> None:
        features = Z.detach().requires_grad_()
        (-rate_reduction(features, labels, k, eps2, validate=validate).delta_r).backward()

    return run


def vmcr2_step(
    variational: VariationalMCR2, Z: torch.Tensor, labels: torch.Tensor, validate: bool
) -> Callable[[], None]:
    def run() -> None:
        features = Z.detach().requires_grad_()
        partition = ClassPartition(labels, variational.num_classes)
        variational.proximal_step(features, partition, validate=validate)
        variational.theta_loss(features, partition, validate=validate).backward()

    return run


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--m", type=int, default=2000, help="batch size")
    parser.add_argument("--d", type=int, default=500, help="feature dimension")
    parser.add_argument("--k", type=int, default=200, help="number of classes")
    parser.add_argument("--q", type=int, default=2000, help="dictionary size (V-MCR²)")
    parser.add_argument("--eps2", type=float, default=0.5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--validate", action="store_true",
                        help="run the value checks in the fast paths (the trainer skips them on GPUs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    args = parser.parse_args(argv)

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    Z, labels = balanced_batch(args.m, args.d, args.k, device, args.seed)
    variational = VariationalMCR2(args.d, args.k, args.q, eps2=args.eps2,
                                  generator=torch.Generator().manual_seed(args.seed)).to(device)
    variational.latch(Z, labels)

    cases = {
        "reference": reference_step(Z, labels, args.k, args.eps2),
        "fast": fast_step(Z, labels, args.k, args.eps2, args.validate),
        "vmcr2": vmcr2_step(variational, Z, labels, args.validate),
    }
    timings = time_interleaved(cases, args.repeats, args.warmup, device)
    reference = timings["reference"].median
    report = {
        "shape": {"m": args.m, "d": args.d, "k": args.k, "q": args.q},
        "device": str(device),
        "threads": torch.get_num_threads(),
        "seconds": {name: t._asdict() for name, t in timings.items()},
        "speedup_vs_reference": {name: reference / t.median for name, t in timings.items() if name != "reference"},
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"m={args.m} d={args.d} k={args.k} q={args.q} device={device} threads={torch.get_num_threads()}")
        for name, timing in timings.items():
            print(f"  {name:<10} {timing}")
        for name, ratio in report["speedup_vs_reference"].items():
            print(f"  reference / {name:<6} = {ratio:6.1f}x")
    return report


if __name__ == "__main__":
    main()
