"""``vmcr2 pack SOURCE OUT``: decode a dataset once into a folder that training reads from disk a batch at a time."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

import typer


def pack(
    source: str = typer.Argument(..., help="An ImageFolder tree (train/<class>/…, test/<class>/…), an .npz file, or "
                                           "a built-in dataset's name (imagenet32, imagenet64, cifar100, …)."),
    out: Path = typer.Argument(..., help="The folder to write (new or empty; the same folder resumes an "
                                         "interrupted pack)."),
    image_size: Optional[int] = typer.Option(None, "--image-size",
                                             help="A folder's images: shorter side resized to N and centre-cropped "
                                                  "(default: the files' own size, which must then be one)."),
    data_root: Optional[Path] = typer.Option(None, "--data-root",
                                             help="Where a built-in dataset's files are (searched first)."),
    workers: int = typer.Option(0, "--workers", help="Processes decoding a folder's images (default: every core)."),
) -> None:
    """Decode a dataset once into a packed folder: uint8 images at one size, labels, class names and the
    training images' mean and std, read by `dataset = "packed"` (`data_root` = OUT) a batch at a time from
    disk, so that a dataset larger than memory trains. An interrupted pack resumes where it stopped when
    the same command runs again; its folder is not a pack until the manifest, written last, is there.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from vmcr2_cli.data.packing import pack as write_pack
    from vmcr2_cli.data.packing import source_named
    from vmcr2_cli.errors import EXIT_INTERRUPTED, BadInput, Stopped

    if image_size is not None and image_size < 1:
        raise BadInput(f"--image-size {image_size}: must be at least 1")
    if workers < 0:
        raise BadInput(f"--workers {workers}: must be at least 1 (0: every core)")
    messages = Console(stderr=True, highlight=False, soft_wrap=True)
    started = time.perf_counter()
    found = source_named(source, image_size=image_size, data_root=str(data_root) if data_root else None,
                         workers=workers or os.cpu_count() or 1)
    shape = "×".join(map(str, found.image_shape))
    with Progress(TextColumn("packing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=messages, transient=True) as progress:
        task = progress.add_task("packing", total=None)

        def start(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)
            if done:
                messages.print(f"resuming: {done:,} images packed before")

        try:
            manifest = write_pack(found, out, on_images=lambda n: progress.advance(task, n), on_start=start)
        except KeyboardInterrupt:
            progress.stop()
            messages.print(f"interrupted: what was packed is kept in {out}; run the same command again to go on")
            raise Stopped(EXIT_INTERRUPTED) from None
    if manifest is None:
        messages.print(f"{out} already holds this pack of {found.description}; nothing to do")
        return
    messages.print(f"packed {manifest.counts['train']:,} training and {manifest.counts['test']:,} test images "
                   f"({shape}, {len(manifest.class_names)} classes) of {found.description} into {out} in "
                   f"{time.perf_counter() - started:.1f} s")
    messages.print(f'train from it: vmcr2 train --set dataset=packed --data-root {out}')
