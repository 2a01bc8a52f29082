"""``vmcr2 bench``: time each objective (and a training step) as the number of classes grows.

Only parses the arguments; the work is in ``vmcr2_cli.bench``. Torch, Rich and
matplotlib are imported when the command runs, so ``vmcr2 --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vmcr2_cli.bench import settings as defaults  # no torch: --help stays fast


def bench(
    classes: str = typer.Option(defaults.DEFAULT_CLASSES, "--classes", "-k",
                                help="Class counts to sweep, comma-separated (e.g. 10,100,200,1000)."),
    variants: str = typer.Option(",".join(defaults.VARIANTS), "--variants",
                                 help="Objectives to time, comma-separated, from: "
                                      + ", ".join(defaults.VARIANTS) + "."),
    batch_size: int = typer.Option(defaults.DEFAULT_BATCH_SIZE, "--batch-size", "-m", help="Batch size m."),
    dim: int = typer.Option(defaults.DEFAULT_DIM, "--dim", "-d", help="Feature dimension d."),
    atoms_per_class: int = typer.Option(defaults.DEFAULT_ATOMS_PER_CLASS, "--atoms-per-class",
                                        help="V-MCR² dictionary atoms per class: q = this × k (at most d)."),
    eps2: float = typer.Option(defaults.DEFAULT_EPS2, "--eps2", help="Precision ε²."),
    dtype: str = typer.Option("float32", "--dtype", help="The objectives' compute dtype: float32 or float64."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    backbone: Optional[str] = typer.Option(None, "--backbone",
                                           help="Also time whole training steps with this featurizer on "
                                                "synthetic 32×32 images: " + ", ".join(defaults.BACKBONES) + "."),
    stem: str = typer.Option("imagenet", "--stem", help="ResNet18's stem: imagenet (the paper's) or cifar."),
    precision: str = typer.Option("bf16", "--precision", help="The backbone's autocast on a GPU, as training's "
                                                              "precision key: bf16 or fp32."),
    dataset_size: Optional[str] = typer.Option(
        None, "--dataset-size", help="Training images per epoch for the projected epoch time: a number or a "
                                     "dataset (" + ", ".join(f"{name} {size}" for name, size in
                                                             defaults.DATASET_SIZES.items())
                                     + "); default: the backbone's ("
                                     + ", ".join(f"{name}: {dataset}" for name, (_, dataset) in
                                                 defaults.BACKBONES.items()) + ")."),
    repeats: int = typer.Option(defaults.DEFAULT_REPEATS, "--repeats", help="Timed calls per case, at most."),
    warmup: int = typer.Option(defaults.DEFAULT_WARMUP, "--warmup", help="Untimed calls per case first."),
    budget: float = typer.Option(defaults.DEFAULT_BUDGET_S, "--budget", metavar="SECONDS",
                                 help="Seconds of timed calls per case; slower cases get fewer repeats "
                                      "(at least 3), said in the output."),
    threads: Optional[int] = typer.Option(None, "--threads",
                                          help="CPU threads for torch (default: torch's choice; on a busy "
                                               "shared machine 1 keeps threads from waiting on each other)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic features, images and weights."),
    micro_batch: int = typer.Option(0, "--micro-batch", metavar="N",
                                    help="Also time each training step with the network in chunks of N images "
                                         "(training's micro_batch), with its time and peak memory over the "
                                         "whole step's."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir",
                                  help="Where the bench-<timestamp> folder (JSON, CSV, PNG) is created."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as one JSON document on stdout."),
) -> None:
    """Time MCR² (per-class reference and batched), V-MCR² and CE at the paper's shapes as k grows."""
    from rich.console import Console

    from vmcr2_cli.bench import make_settings, run_bench
    from vmcr2_cli.bench.output import NO_FIGURE_NOTE, bench_dir, can_draw_figure, dumps, file_paths, write_files
    from vmcr2_cli.bench.report import print_report

    settings = make_settings(
        classes=classes, variants=variants, batch_size=batch_size, dim=dim, atoms_per_class=atoms_per_class,
        eps2=eps2, dtype=dtype, device=device, backbone=backbone, stem=stem, precision=precision, dataset_size=dataset_size,
        repeats=repeats, warmup=warmup, budget_s=budget, threads=threads, seed=seed, micro_batch=micro_batch,
    )
    messages = Console(stderr=True, highlight=False)
    report = run_bench(settings, progress=lambda line: messages.print(line, style="dim"))
    folder = bench_dir(runs_dir)
    figure = can_draw_figure()
    report["files"] = file_paths(folder, figure=figure)
    if not figure:
        report["notes"].append(NO_FIGURE_NOTE)
    write_files(report, folder)
    if json_out:
        typer.echo(dumps(report))
        return
    print_report(report)
    messages.print(f"results: {folder}")

