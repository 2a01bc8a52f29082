"""Epoch time of each objective on synthetic data of a paper dataset's shape (Table 1).

Runs the real ``vmcr2 train`` with the paper's profile (ResNet18, d, q, batch of §4.1)
on synthetic 3×32×32 images with the dataset's number of classes and training-set size,
and reports the median epoch time after the first (warm-up) epoch, from metrics.jsonl.
Our ``mcr2`` is the batched exact path, not the paper's per-class MCR² code: for that
baseline's cost see ``vmcr2 bench --backbone resnet18`` (its ``mcr2-reference`` rows).

    python benchmarks/epoch_times.py --shape tinyimagenet --epochs 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from vmcr2_cli.bench.paper import TABLE_1, PaperEpochTime
from vmcr2_cli.bench.settings import DATASET_SIZES
from vmcr2_cli.cli import main
from vmcr2_cli.runs import RunDir

# The paper's ResNet18 datasets: profile (also the dataset's registry name) → its row of Table 1.
SHAPES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "tinyimagenet": "Tiny ImageNet"}


def paper_row(shape: str) -> PaperEpochTime:
    """Table 1's row of ``shape``: its number of classes and the A100 epoch times."""
    return next(row for row in TABLE_1 if row.dataset == SHAPES[shape])


def epoch_times(shape: str, objective: str, epochs: int, runs_dir: Path, extra: list[str]) -> list[float]:
    classes, size = paper_row(shape).classes, DATASET_SIZES[shape]
    args = ["train", "--profile", shape, "--objective", objective, "--epochs", str(epochs),
            "--runs-dir", str(runs_dir), "--name", f"{shape}-{objective}",
            "--set", "dataset=synthetic", "--set", f"num_classes={classes}",
            "--set", f"synthetic_train_per_class={size // classes}", "--set", "synthetic_test_per_class=2",
            "--set", "synthetic_channels=3", "--set", "eval_at_end=false", "--set", "latch_every=0", *extra]
    try:
        main(args)
    except SystemExit as exit_:
        if exit_.code:
            raise
    run = RunDir.open(runs_dir / "latest")
    return [line["epoch_time_s"] for line in run.read_metrics() if line["type"] == "epoch"]


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tinyimagenet")
    parser.add_argument("--objectives", default="mcr2,vmcr2,ce")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--set", action="append", default=[], help="extra --set key=value for vmcr2 train")
    args = parser.parse_args()
    extra = [item for pair in args.set for item in ("--set", pair)]
    results = {"shape": args.shape, "epochs": args.epochs, "objectives": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for objective in args.objectives.split(","):
            times = epoch_times(args.shape, objective, args.epochs, Path(tmp), extra)
            steady = times[1:] or times
            results["objectives"][objective] = {"epoch_times_s": times, "median_s": statistics.median(steady)}
    base = results["objectives"].get("vmcr2", {}).get("median_s")
    print(f"{args.shape}: median epoch time after the first epoch")
    for objective, figures in results["objectives"].items():
        ratio = f"  ({figures['median_s'] / base:.2f}× V-MCR²)" if base else ""
        paper = paper_row(args.shape).epoch_seconds().get(objective)
        paper_text = f"  paper, A100: {paper:.2f} s" if paper else ""
        print(f"  {objective:6s} {figures['median_s']:8.2f} s{ratio}{paper_text}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    run()
