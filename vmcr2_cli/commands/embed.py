"""``vmcr2 embed RUN PATH… --out FILE.npz``: a trained featurizer on new images (files, folders, the run's splits)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer


def embed(
    run: Path = typer.Argument(..., help="A run directory (runs/latest works)."),
    inputs: list[str] = typer.Argument(..., metavar="PATH...",
                                       help="Image files, folders (recursive; an ImageFolder tree gives labels) "
                                            "or the run's own split: train or test (:train, :test when a "
                                            "folder has that name)."),
    out: Path = typer.Option(..., "--out", "-o", help="The .npz to write (features, paths, labels, skipped…)."),
    checkpoint: str = typer.Option("last", "--checkpoint", help="last or best (a run trained with keep_best)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Images per forward pass (default: "
                                                                        "the run's batch size)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N (default: the run's)."),
    precision: Optional[str] = typer.Option(None, "--precision",
                                            help="bf16 or fp32 (default: the run's, as vmcr2 eval computes)."),
    predict: bool = typer.Option(False, "--predict",
                                 help="Add each image's nearest-subspace class and residuals (eq. 8), from class "
                                      "subspaces kept in the run (fitted on the training set on first use)."),
    data_root: Optional[Path] = typer.Option(None, "--data-root",
                                             help="The dataset's files, for the splits and the first --predict."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    """Features of new images by a run's featurizer, with the run's own preprocessing.

    Images are converted to the run's channels (grey or RGB), scaled to cover the size its dataset
    stores and centre-cropped; files that cannot be read are skipped, each named on stderr and in
    the file's `skipped`. Nothing is written unless at least one image was embedded.
    """
    from rich.console import Console

    from vmcr2_cli.errors import BadInput
    from vmcr2_cli.featurizer import load_featurizer
    from vmcr2_cli.featurizer.embedding import embed_inputs, notes, parse_inputs, write_embedding
    from vmcr2_cli.runs import check_output_file, with_suffix_npz

    started = time.perf_counter()
    messages = Console(stderr=True, highlight=False)
    log = (lambda text: None) if json_out else (lambda text: messages.print(f"[dim]{text}[/]"))
    if out.is_dir():
        raise BadInput(f"--out {out}: is a folder; name a file")
    out = with_suffix_npz(out)
    if batch_size is not None and batch_size < 1:
        raise BadInput(f"--batch-size {batch_size}: must be at least 1")
    parsed = parse_inputs(inputs)
    check_output_file(out, "--out")
    root = str(data_root) if data_root is not None else None
    featurizer = load_featurizer(run, checkpoint, device, precision, data_root=root, log=log)
    with _progress(messages, quiet=json_out) as (total, advance):
        result = embed_inputs(featurizer, parsed, batch_size or featurizer.config.batch_size, data_root=root,
                              total=total, advance=advance,
                              skipped=lambda item: typer.echo(f"skipped {item.path}: {item.reason}", err=True))
    for line in notes(result, featurizer):
        typer.echo(f"note: {line}", err=True)
    if result.count == 0:
        raise BadInput(f"embed: no image to embed in {', '.join(inputs)}"
                       + (f" ({len(result.skipped)} skipped)" if result.skipped else ""))
    write_embedding(out, result, featurizer, predict, log=log, data_root=root)
    seconds = time.perf_counter() - started
    summary = {"out": str(out), "images": result.count, "skipped": len(result.skipped),
               "feature_dim": featurizer.feature_dim, "labels": result.labels is not None, "predicted": predict,
               "checkpoint": featurizer.checkpoint, "global_step": featurizer.global_step,
               "device": str(featurizer.device), "precision": featurizer.precision.dtype,
               "seconds": round(seconds, 3), "images_per_second": round(result.count / seconds, 1)}
    if json_out:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(f"wrote {out}: {result.count} image(s) × {featurizer.feature_dim} features"
                   + (f", {len(result.skipped)} skipped" if result.skipped else "")
                   + (", with predicted classes" if predict else "") + f" ({seconds:.1f} s)")


@contextmanager
def _progress(console, quiet: bool) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """(set the total, advance) of a progress bar on stderr (count, ETA) while a terminal shows it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True, disable=quiet or not console.is_terminal) as bar:
        task = bar.add_task("embed", total=None)
        yield (lambda count: bar.update(task, total=count)), (lambda count: bar.advance(task, count))
