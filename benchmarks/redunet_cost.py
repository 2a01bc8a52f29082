"""What one invariant ReduNet layer costs: construction (T or H·W inverses of C×C matrices, k + 1 times)
and the forward pass, against C, the signal's size and k (issue 32, item 3).

    python benchmarks/redunet_cost.py --json benchmarks/runs/redunet/cost.json

Times are medians of ``--repeats`` (torch's own threads, on the device given); the operators' size is
their buffers' bytes (complex, float64 by default: what the tests check to 1e-10).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from vmcr2_cli.models.redunet_shift import ShiftReduNetLayer
from vmcr2_cli.runs import atomic_write_json


def timed(call, repeats: int, device: torch.device) -> float:
    seconds = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200, help="m, the construction set")
    parser.add_argument("--channels", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--sizes", nargs="+", default=["16x16", "32x32"], help="H×W of the images")
    parser.add_argument("--classes", type=int, nargs="+", default=[2, 10])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    rows = []
    for channels, size, k in itertools.product(args.channels, args.sizes, args.classes):
        shape = tuple(int(n) for n in size.split("x"))
        Z = torch.randn(args.samples, channels, *shape, dtype=dtype, device=device)
        Z = Z / Z.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        labels = torch.arange(args.samples, device=device) % k
        build = lambda: ShiftReduNetLayer.construct(Z, labels, k, eta=0.5, eps2=0.1, lam=100.0)  # noqa: E731
        layer = build()
        rows.append({
            "channels": channels, "size": size, "frequencies": layer.E.shape[0], "classes": k,
            "samples": args.samples, "construct_s": timed(build, args.repeats, device),
            "forward_s": timed(lambda: layer(Z), args.repeats, device),
            "operator_mb": sum(buffer.numel() * buffer.element_size() for buffer in layer.buffers()) / 2**20,
        })
        print(json.dumps(rows[-1]), flush=True)
    result = {"device": str(device), "dtype": args.dtype, "torch_threads": torch.get_num_threads(), "rows": rows}
    if args.json is not None:
        atomic_write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
