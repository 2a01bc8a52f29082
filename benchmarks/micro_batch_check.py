"""micro_batch (the network in chunks, the objective on the whole batch), checked and measured.

    python benchmarks/micro_batch_check.py equivalence [--work /tmp/micro-batch] [--precision bf16]
    python benchmarks/micro_batch_check.py memory
    python benchmarks/micro_batch_check.py batchnorm [--batch 512] [--chunks 256,128,64,32]

``equivalence``: ``vmcr2 train --profile fashion-mnist-pairs`` (100 classes, batch 1000) for one
epoch on 4 000 images (4 steps), for MCR² and V-MCR² (the profile's tangent method, and
Algorithm 1), whole and with ``micro_batch = 250``, each command under ``/usr/bin/time -f %M``:
the epoch line's ΔR and loss (relative difference), the process's peak resident memory, and the
epoch's time. A fresh process per run, one at a time.

``memory``: the peak memory of one training step (MCR²) against the batch size, whole and in
chunks, for the pairs network (1×32×64, width 0.5, d = 200, k = 100) and ResNet-18 at 3×32×32
(CIFAR stem, d = 128, k = 10), on synthetic images: each case in a fresh process, which reports
how far its resident set grew during the step (as ``vmcr2 bench`` measures it: VmHWM after the
step − VmRSS before it, the C heap's free pages returned first) and the step's time.

``batchnorm``: what chunks change where the network has batch statistics (see ``batchnorm``).

Prints one JSON document. Run it alone on the machine when times are to be quoted.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vmcr2_cli.runs import RunDir  # noqa: E402

RUNS = {  # name → --set values beside the profile's
    "mcr2": ["--set", "objective=mcr2"],
    "vmcr2-tangent": [],
    "vmcr2-paper": ["--set", "vmcr2_method=paper", "--set", "mu=0.03"],
}
MICRO_BATCH = 250
BACKBONES = {  # name → (profile, settings, image shape, classes, batch sizes, micro_batch)
    "pairs-cnn": ("fashion-mnist-pairs", {}, (1, 32, 64), 100, (250, 500, 1000, 2000), 250),
    "resnet18": ("cifar10", {"model": "resnet18", "stem": "cifar", "feature_dim": 128}, (3, 32, 32), 10,
                 (64, 128, 256), 32),
}


# ------------------------------------------------------------------------------------ equivalence

def equivalence(work: Path, precision: str) -> dict:
    results = {}
    for name, settings in RUNS.items():
        for micro_batch in (0, MICRO_BATCH):
            label = f"{name}-micro{micro_batch}"
            runs = work / label
            command = [sys.executable, "-m", "vmcr2_cli", "train", "--profile", "fashion-mnist-pairs",
                       "--runs-dir", str(runs), "--epochs", "1", "--set", "train_subset=4000",
                       "--set", "eval_at_end=false", "--set", f"precision={precision}",
                       "--set", f"micro_batch={micro_batch}", *settings]
            done = subprocess.run(["/usr/bin/time", "-f", "peak_kb %M", *command], capture_output=True, text=True,
                                  cwd=REPO)
            if done.returncode != 0:
                raise SystemExit(f"{label} failed:\n{done.stderr[-2000:]}")
            peak_kb = int(re.findall(r"peak_kb (\d+)", done.stderr)[-1])
            epoch = next(line for line in RunDir.open(runs / "latest").read_metrics() if line["type"] == "epoch")
            results[label] = {"delta_r": epoch["delta_r"], "loss": epoch["loss"], "epoch_time_s": epoch["epoch_time_s"],
                              "peak_rss_mb": round(peak_kb / 1024, 1)}
            print(f"{label}: {results[label]}", file=sys.stderr)
    comparison = {}
    for name in RUNS:
        whole, chunked = results[f"{name}-micro0"], results[f"{name}-micro{MICRO_BATCH}"]
        comparison[name] = {
            "delta_r_relative_difference": abs(chunked["delta_r"] - whole["delta_r"]) / abs(whole["delta_r"]),
            "loss_relative_difference": abs(chunked["loss"] - whole["loss"]) / abs(whole["loss"]),
            "peak_rss_share": chunked["peak_rss_mb"] / whole["peak_rss_mb"],
            "epoch_time_ratio": chunked["epoch_time_s"] / whole["epoch_time_s"],
        }
    return {"precision": precision, "micro_batch": MICRO_BATCH, "runs": results, "chunked_over_whole": comparison}


# ------------------------------------------------------------------------------------ memory

def one_step(backbone: str, batch: int, micro_batch: int) -> dict:
    """In this (fresh) process: one MCR² training step of ``backbone`` at ``batch``; how far the resident
    set grew during it and how long it took (after one step of warm-up at the same shape)."""
    import torch

    from vmcr2_cli.bench.timing import measured_call, resident_bytes
    from vmcr2_cli.config import resolve_config
    from vmcr2_cli.objectives import ClassPartition
    from vmcr2_cli.training.networks import Networks
    from vmcr2_cli.training.optim import build_optimizer
    from vmcr2_cli.training.step import training_step

    profile, settings, shape, classes, _, _ = BACKBONES[backbone]
    config = resolve_config(profile, "mcr2", {**settings, "batch_size": max(batch, classes), "device": "cpu"})[0]
    networks = Networks.of_shape(config, shape, classes, torch.device("cpu"))
    model = networks.model.train()
    optimizer = build_optimizer(list(model.parameters()), config)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, *shape, generator=generator)
    if networks.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    partition = ClassPartition(torch.arange(batch) % classes, classes)

    def step() -> None:
        training_step(model, networks.objective, optimizer, networks.autocast, images, partition,
                      micro_batch=micro_batch)

    step()  # warm-up: the kernels' workspaces, the optimizer's state
    seconds, growth = measured_call(step, torch.device("cpu"))  # the bench's own measure (vmcr2 bench)
    return {"step_growth_mb": round(growth / 2**20, 1), "step_s": round(seconds, 3),
            "process_peak_mb": round(resident_bytes("VmHWM") / 2**20, 1), "precision": networks.precision.describe()}


def memory() -> dict:
    table = []
    for backbone, (_, _, _, _, batches, micro_batch) in BACKBONES.items():
        for batch in batches:
            for chunk in (0, micro_batch):
                if chunk >= batch:
                    continue
                done = subprocess.run([sys.executable, __file__, "one-step", backbone, str(batch), str(chunk)],
                                      capture_output=True, text=True, cwd=REPO)
                if done.returncode != 0:
                    raise SystemExit(f"{backbone} {batch} {chunk} failed:\n{done.stderr[-2000:]}")
                row = {"backbone": backbone, "batch": batch, "micro_batch": chunk, **json.loads(done.stdout)}
                print(row, file=sys.stderr)
                table.append(row)
    return {"rows": table}


# ------------------------------------------------------------------------------------ BatchNorm

def batchnorm(batch: int, chunks: tuple[int, ...]) -> dict:
    """What chunks change in a BatchNorm network: ResNet-18 (CIFAR stem, d = 128) on the first Fashion-MNIST
    training batch of ``batch`` images, MCR² in fp32, one step's gradients whole and in chunks — their
    cosine and relative difference, and the loss (pass 1's features normalized chunk by chunk) — against
    the MNIST CNN (no batch statistics) as the control."""
    import copy
    import contextlib

    import torch

    from vmcr2_cli.config import resolve_config
    from vmcr2_cli.objectives import ClassPartition
    from vmcr2_cli.training.networks import Networks
    from vmcr2_cli.training.setup import load_training_data, training_loader
    from vmcr2_cli.training.step import step_gradients

    report = {}
    for model in ("resnet18", "mnist-cnn"):
        settings = {"model": model, "batch_size": batch, "device": "cpu", "precision": "fp32", "augment": "none"}
        if model == "resnet18":
            settings.update(stem="cifar", feature_dim=128)
        else:
            settings.update(dropout=False)
        config = resolve_config("fashion-mnist", "mcr2", settings)[0]
        dataset = load_training_data(config)
        networks = Networks.build(config, dataset, torch.device("cpu"))
        _, first = next(iter(training_loader(config, dataset, torch.device("cpu"), False).epoch(0)))
        partition = ClassPartition(first.labels_cpu, dataset.num_classes)

        def gradient(micro_batch: int) -> tuple[float, torch.Tensor]:
            model_copy, objective = copy.deepcopy(networks.model).train(), copy.deepcopy(networks.objective)
            result = step_gradients(model_copy, objective, contextlib.nullcontext(), first.images, partition,
                                    micro_batch=micro_batch)
            return result.loss.item(), torch.cat([p.grad.flatten() for p in model_copy.parameters()])

        whole_loss, whole = gradient(0)
        rows = []
        for micro_batch in chunks:
            loss, chunked = gradient(micro_batch)
            rows.append({"micro_batch": micro_batch, "loss": loss, "whole_loss": whole_loss,
                         "gradient_cosine": torch.nn.functional.cosine_similarity(chunked.double(), whole.double(),
                                                                                  dim=0).item(),
                         "gradient_relative_difference": ((chunked - whole).norm() / whole.norm()).item()})
            print(model, rows[-1], file=sys.stderr)
        report[model] = rows
    return {"batch": batch, "objective": "mcr2", "precision": "fp32", "rows": report}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    check = sub.add_parser("equivalence")
    check.add_argument("--work", type=Path, default=Path("/tmp/micro-batch"))
    check.add_argument("--precision", default="bf16", choices=("bf16", "fp32"))
    sub.add_parser("memory")
    norms = sub.add_parser("batchnorm")
    norms.add_argument("--batch", type=int, default=512)
    norms.add_argument("--chunks", default="256,128,64,32")
    single = sub.add_parser("one-step")
    single.add_argument("backbone", choices=tuple(BACKBONES))
    single.add_argument("batch", type=int)
    single.add_argument("micro_batch", type=int)
    args = parser.parse_args()
    if args.what == "equivalence":
        report = equivalence(args.work, args.precision)
    elif args.what == "memory":
        report = memory()
    elif args.what == "batchnorm":
        report = batchnorm(args.batch, tuple(int(c) for c in args.chunks.split(",")))
    else:
        report = one_step(args.backbone, args.batch, args.micro_batch)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
