"""``vmcr2 pack``'s work: decode a dataset once into a packed folder (see :mod:`vmcr2_cli.data.packed`).

A source (:class:`PackSource`) says what it holds — image shape, counts, classes, a digest of its
files — and yields its images in order from any position. :func:`pack` writes them chunk by chunk
into its files at their offsets and records after each chunk, in ``progress.json``, how far each split is;
the manifest is written last. An interrupted pack therefore resumes where its record stops (the
same source, by digest), and a folder without a manifest is never read as a whole pack.

Sources: an ImageFolder tree (decoded in parallel processes, each file under the pixel cap), an
``.npz``, a built-in dataset, and the downsampled ImageNets (read a batch file at a time, so that
packing them never holds more than one file in memory).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from vmcr2_cli.data import imagenet_downsampled
from vmcr2_cli.data.dataset import ImageDataset, LoadContext
from vmcr2_cli.data.registry import get_spec, load_context, load_dataset
from vmcr2_cli.data.packed import MANIFEST, SPLITS, Manifest, PackedImages, images_file, labels_file
from vmcr2_cli.data.user_files import FolderListing, decode_file, list_folder, statistics_of_chunks
from vmcr2_cli.errors import BadInput
from vmcr2_cli.runs import atomic_write_json

PROGRESS = "progress.json"
CHUNK = 256  # images decoded by one task and written between two progress records
STREAMED_CHUNK = 8192  # images of a read batch file written between two records
STATISTICS_CHUNK = 4096  # as the in-memory datasets' statistics: the same sums in the same order

Chunks = Iterator[tuple[np.ndarray, np.ndarray]]  # uint8 (n, C, H, W) images and int64 (n,) labels


@dataclass(frozen=True)
class PackSource:
    """What is packed: ``chunks(split, start)`` yields the split's images from ``start`` on, in order.
    ``statistics``: (mean, std) where the dataset fixes them (a built-in one), else None (computed from
    the packed training images as the in-memory path computes them)."""

    description: str
    image_shape: tuple[int, int, int]
    counts: dict[str, int] | None  # None: known once read (a streamed source)
    class_names: list[str]
    labelled_train: bool
    digest: str
    chunks: Callable[[str, int], Chunks]
    statistics: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    mirror_safe: bool = True  # False: a flip changes the class (a composed built-in dataset)


# ----------------------------------------------------------------------------- sources

def folder_source(root: Path, image_size: int | None, workers: int) -> PackSource:
    """An ImageFolder tree (labelled or not), each image fitted to ``image_size`` (None: the files' own
    size, which must be one)."""
    listing = list_folder(root)
    size = image_size or 0
    first = listing.files["train"][0][1]
    shape = tuple(decode_file(first, size, listing.colour).shape)
    entries = [(split, label, str(path.relative_to(root)), path.stat().st_size, path.stat().st_mtime_ns)
               for split in SPLITS for label, path in listing.files[split]]
    digest = _digest(["folder", size, listing.colour, listing.classes, entries])

    def chunks(split: str, start: int) -> Chunks:
        return _decoded_chunks(listing, split, start, size, shape, workers)

    return PackSource(str(root.resolve()), shape, {split: len(listing.files[split]) for split in SPLITS},
                      listing.classes, listing.labelled_train, digest, chunks)


def _decoded_chunks(listing: FolderListing, split: str, start: int, size: int, shape: tuple, workers: int) -> Chunks:
    files = listing.files[split][start:]
    tasks = [([str(path) for _, path in files[i:i + CHUNK]], size, listing.colour) for i in range(0, len(files), CHUNK)]
    labels = [np.array([label for label, _ in files[i:i + CHUNK]], dtype=np.int64) for i in range(0, len(files), CHUNK)]
    if workers <= 1 or len(tasks) <= 1:
        yield from _checked(map(_decode_chunk, tasks), labels, shape, listing.root)
        return
    # Processes, not threads: resizing holds the GIL. spawn: the parent's threads (torch's) are not forked.
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
    try:
        yield from _checked(pool.map(_decode_chunk, tasks), labels, shape, listing.root)
    finally:  # stopped early (Ctrl-C, a bad image): the chunks not yet decoded are dropped, not waited for
        pool.shutdown(cancel_futures=True)


def _decode_chunk(task: tuple[list[str], int, bool]) -> np.ndarray:
    paths, size, colour = task
    return np.stack([decode_file(Path(path), size, colour) for path in paths])


def _checked(decoded: Iterator[np.ndarray], labels: list[np.ndarray], shape: tuple, root: Path) -> Chunks:
    for images, chunk_labels in zip(decoded, labels):
        if images.shape[1:] != shape:
            raise BadInput(f"pack: images of sizes {shape} and {tuple(images.shape[1:])} in {root}; "
                           f"give --image-size (e.g. 32) to resize them to one")
        yield images, chunk_labels


def arrays_source(dataset: ImageDataset, description: str, statistics: tuple | None = None,
                  mirror_safe: bool = True) -> PackSource:
    """A dataset loaded whole (an ``.npz``, a built-in dataset)."""
    arrays = {"train": (dataset.train_images, dataset.train_labels), "test": (dataset.test_images, dataset.test_labels)}
    hasher = hashlib.sha256(json.dumps(["arrays", dataset.class_names]).encode())
    for images, labels in arrays.values():
        hasher.update(images.contiguous().numpy().data)
        hasher.update(labels.to(torch.int64).numpy().data)

    def chunks(split: str, start: int) -> Chunks:
        images, labels = arrays[split]
        for first in range(start, len(images), CHUNK):
            yield images[first:first + CHUNK].numpy(), labels[first:first + CHUNK].to(torch.int64).numpy()

    return PackSource(description, dataset.image_shape, {s: len(arrays[s][0]) for s in SPLITS}, dataset.class_names,
                      True, hasher.hexdigest(), chunks, statistics, mirror_safe)


def imagenet_source(ctx: LoadContext, size: int) -> PackSource:
    """A downsampled ImageNet, read a batch file at a time (its counts are known once read)."""
    located = imagenet_downsampled.locate(ctx, size)
    files = {split: imagenet_downsampled.split_files(located, size, split) for split in SPLITS}
    digest = _digest(["imagenet", size, [(split, path.name, path.stat().st_size, path.stat().st_mtime_ns)
                                         for split in SPLITS for path in files[split]]])

    def chunks(split: str, start: int) -> Chunks:
        seen = 0
        for images, labels in imagenet_downsampled.batches(located, size, split):
            first = max(start - seen, 0)
            seen += len(labels)
            for low in range(first, len(labels), STREAMED_CHUNK):
                yield images[low:low + STREAMED_CHUNK], labels[low:low + STREAMED_CHUNK]

    return PackSource(str(located.path), (3, size, size), None, imagenet_downsampled.class_names(), True, digest,
                      chunks, (imagenet_downsampled.MEAN, imagenet_downsampled.STD))


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def source_named(source: str, *, image_size: int | None, data_root: str | None, workers: int) -> PackSource:
    """SOURCE of ``vmcr2 pack``: a folder (an ImageFolder tree), an ``.npz`` file, or a built-in dataset's
    name (its files found as ``vmcr2 train`` finds them, ``data_root`` first)."""
    path = Path(source).expanduser()
    if path.is_dir():
        if (path / MANIFEST).is_file():
            raise BadInput(f"pack: {path} is a pack already; train from it with dataset = \"packed\"")
        return folder_source(path, image_size, workers)
    if image_size:
        raise BadInput(f"pack: --image-size resizes the files of an image folder; {source} is not one")
    if path.is_file():
        return arrays_source(load_dataset("npz", data_root=path, download=False), str(path))
    spec = get_spec(source)
    if spec.name in imagenet_downsampled.SIZES:
        return imagenet_source(load_context(spec.name, data_root, download=False), imagenet_downsampled.SIZES[spec.name])
    if not spec.mean:  # folder, npz, packed: named by their path
        raise BadInput(f"pack: give the {spec.name} dataset's path as SOURCE, not its name")
    dataset = load_dataset(spec.name, data_root=data_root)
    return arrays_source(dataset, f"{spec.name} ({dataset.source})", statistics=(dataset.mean, dataset.std),
                         mirror_safe=spec.mirror_safe)


# ----------------------------------------------------------------------------- writing

def pack(source: PackSource, out: Path, on_images: Callable[[int], None] = lambda n: None,
         on_start: Callable[[int, int], None] = lambda done, total: None) -> Manifest | None:
    """Write ``source`` into the folder ``out``: the manifest written, or None when ``out`` already holds
    this pack whole.

    ``on_start(done, total)`` is called once with the images already packed (a resumed pack) and the
    total; ``on_images(n)`` after each chunk written. A pack this call began is removed if the source
    turns out bad (BadInput); a resumed one keeps what it had."""
    if (out / MANIFEST).is_file():
        if Manifest.read(out).source_digest == source.digest:
            return None
        raise BadInput(f"pack: {out} is a pack of another source; choose another folder or delete it")
    expected = {"digest": source.digest, "image_shape": list(source.image_shape), "counts": source.counts}
    progress_path = out / PROGRESS
    began = not out.exists()
    if progress_path.is_file():
        progress = _read_progress(progress_path)
        if {key: progress.get(key) for key in expected} != expected:
            raise BadInput(f"pack: {out} holds an unfinished pack of another source; choose another folder or "
                           f"delete it")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInput(f"pack: {out} exists and is not a pack; give a new or empty folder")
    else:
        out.mkdir(parents=True, exist_ok=True)
        progress = {**expected, "done": {split: 0 for split in SPLITS}}
        for split in SPLITS:
            (out / images_file(split)).touch()
            (out / labels_file(split)).touch()
        atomic_write_json(progress_path, progress)
    try:
        on_start(sum(progress["done"].values()), sum(source.counts.values()) if source.counts else None)
        for split in SPLITS:
            _write_split(source, out, split, progress, progress_path, on_images)
        counts = dict(progress["done"])
        mean, std = source.statistics or _statistics(out, source.image_shape, counts["train"])
        manifest = Manifest(source.image_shape, counts, source.class_names, tuple(mean), tuple(std),
                            source.labelled_train, source.mirror_safe, source.description, source.digest)
        atomic_write_json(out / MANIFEST, manifest.to_dict())
    except BadInput:
        if began:
            shutil.rmtree(out, ignore_errors=True)
        raise
    progress_path.unlink()
    return manifest


def _write_split(source: PackSource, out: Path, split: str, progress: dict, progress_path: Path,
                 on_images: Callable[[int], None]) -> None:
    done = progress["done"][split]
    image_bytes = int(np.prod(source.image_shape))
    num_classes = len(source.class_names)
    with open(out / images_file(split), "r+b") as images_out, open(out / labels_file(split), "r+b") as labels_out:
        for images, labels in source.chunks(split, done):
            if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
                raise BadInput(f"pack: {source.description} has label {labels.max()} beyond its {num_classes} classes")
            os.pwrite(images_out.fileno(), np.ascontiguousarray(images, dtype=np.uint8).data, done * image_bytes)
            os.pwrite(labels_out.fileno(), labels.astype("<i8").data, done * 8)
            os.fdatasync(images_out.fileno())  # on disk before the record says so
            os.fdatasync(labels_out.fileno())
            done += len(labels)
            progress["done"][split] = done
            atomic_write_json(progress_path, progress)
            on_images(len(labels))
        # A chunk written after the last record (then interrupted) was written again; nothing lies beyond.
        images_out.truncate(done * image_bytes)
        labels_out.truncate(done * 8)
    if source.counts and done != source.counts[split]:
        raise BadInput(f"pack: {source.description} gave {done} {split} images, not the {source.counts[split]} it "
                       f"listed (did its files change?)")


def _statistics(out: Path, image_shape: tuple[int, int, int], count: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    train = PackedImages(out / images_file("train"), count, image_shape)
    starts = range(0, len(train), STATISTICS_CHUNK)
    return statistics_of_chunks((train.read(np.arange(s, min(s + STATISTICS_CHUNK, len(train)))) for s in starts),
                                image_shape[0])


def _read_progress(path: Path) -> dict:
    try:
        progress = json.loads(path.read_text())
        if not isinstance(progress, dict) or not isinstance(progress.get("done"), dict):
            raise ValueError("not a record")
        progress["done"] = {split: int(progress["done"][split]) for split in SPLITS}
        return progress
    except (OSError, ValueError, KeyError, TypeError):
        raise BadInput(f"pack: {path} is damaged; delete its folder and pack again") from None

