"""A packed dataset: decoded once by ``vmcr2 pack``, read from disk a batch at a time (``dataset = "packed"``).

A pack is a folder::

    manifest.json           what the folder holds; written last, so a pack without one is unfinished
    train-images.u8         uint8 (N, C, H, W), C-contiguous, no header
    train-labels.i64        int64 (N,), little-endian
    test-images.u8, test-labels.i64

The manifest gives the format and its version, the image shape, each split's count, the class
names, the training images' per-channel mean and standard deviation, whether the training images
carry labels, and a digest of the sources it was packed from.

:class:`PackedImages` stands where a uint8 image tensor stands in an :class:`ImageDataset`: it has a
shape, indexing it gives a lazy selection of rows, and :meth:`PackedImages.read` reads the rows it
holds with ``pread`` — through the page cache, never mapped into the process, so that the process's
resident memory does not grow with the dataset (a memory map's touched pages would count).
Reading a batch coalesces runs of consecutive rows into one call.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vmcr2_cli.data.dataset import LoadContext, Splits
from vmcr2_cli.data.errors import DatasetCorrupt, DatasetNotFound

FORMAT = "vmcr2-packed-dataset"
VERSION = 1
MANIFEST = "manifest.json"
SPLITS = ("train", "test")


def images_file(split: str) -> str:
    return f"{split}-images.u8"


def labels_file(split: str) -> str:
    return f"{split}-labels.i64"


class PackedImages:
    """Rows of a packed split's image file: uint8 (N, C, H, W) read on demand.

    ``rows``: which of the file's images, in order (None: all). Indexing (an int64 or bool tensor, a
    slice) gives another PackedImages of the chosen rows — no read; :meth:`read` gives a tensor.
    """

    dtype = torch.uint8

    def __init__(self, path: Path, count: int, image_shape: tuple[int, int, int], rows: np.ndarray | None = None):
        self.path = Path(path)
        self.count = count
        self.image_shape = tuple(image_shape)
        self.rows = rows
        self.row_bytes = int(np.prod(self.image_shape))
        self._fd: int | None = None

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.count if self.rows is None else len(self.rows), *self.image_shape))

    def dim(self) -> int:
        return 4

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> PackedImages:
        if isinstance(key, slice):
            chosen = np.arange(len(self))[key]
        else:
            chosen = torch.as_tensor(key)
            chosen = chosen.nonzero().flatten() if chosen.dtype == torch.bool else chosen.to(torch.int64)
            chosen = chosen.numpy()
        return PackedImages(self.path, self.count, self.image_shape, self._file_rows(chosen))

    def _file_rows(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        return indices if self.rows is None else self.rows[indices]

    def read(self, indices: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """The images at ``indices`` (positions in this selection; None: all of it), as one uint8 tensor."""
        positions = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=np.int64)
        file_rows = self._file_rows(positions)
        out = np.empty((len(file_rows), *self.image_shape), dtype=np.uint8)
        in_order = bool(np.all(np.diff(file_rows) >= 0))  # a split read whole, an evaluation's batches
        order = None if in_order else np.argsort(file_rows, kind="stable")
        ordered = file_rows if in_order else file_rows[order]
        buffer = out if in_order else np.empty_like(out)
        # Runs of consecutive rows, each one pread: a whole split in order is a few large reads.
        breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
        for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(ordered)]) if len(ordered) else ():
            self._read_rows(int(ordered[start]), buffer[start:stop])
        if not in_order:
            out[order] = buffer
        return torch.from_numpy(out)

    def _read_rows(self, first: int, into: np.ndarray) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        view = memoryview(into.reshape(-1))
        offset, done = first * self.row_bytes, 0
        while done < len(view):  # pread may return fewer bytes than asked
            got = os.preadv(self._fd, [view[done:]], offset + done)
            if got == 0:
                raise DatasetCorrupt(f"{self.path} ends at byte {offset + done}: the pack is truncated; pack it again")
            done += got

    def drop_from_page_cache(self) -> None:
        """Ask the kernel to forget this file's cached pages (the next read comes from the disk)."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass

    def __repr__(self) -> str:
        return f"PackedImages({self.path}, shape={tuple(self.shape)})"


def read_rows(images: torch.Tensor | PackedImages, start: int, stop: int) -> torch.Tensor:
    """Rows [start, stop) of an image tensor or a packed selection, as a tensor."""
    if isinstance(images, PackedImages):
        return images.read(np.arange(start, min(stop, len(images))))
    return images[start:stop]


@dataclass(frozen=True)
class Manifest:
    """What a pack holds (see the module's docstring)."""

    image_shape: tuple[int, int, int]
    counts: dict[str, int]
    class_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    labelled_train: bool
    mirror_safe: bool
    source: str
    source_digest: str

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "image_shape": list(self.image_shape),
                "counts": self.counts, "class_names": self.class_names, "mean": list(self.mean),
                "std": list(self.std), "labelled_train": self.labelled_train,
                "mirror_safe": self.mirror_safe, "source": self.source,
                "source_digest": self.source_digest}

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        """The manifest of ``folder``; one-line errors for a folder that is not a whole pack of this version."""
        path = folder / MANIFEST
        if not path.is_file():
            unfinished = any(folder.glob("*-images.u8"))
            raise DatasetNotFound(f"dataset packed: {folder} has no {MANIFEST}" +
                                  (" — its packing did not finish; run the same vmcr2 pack command again to finish it"
                                   if unfinished else " (make one with: vmcr2 pack SOURCE " + str(folder) + ")"))
        try:
            values = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise DatasetCorrupt(f"{path} is not readable JSON ({str(error).splitlines()[0]})") from None
        if not isinstance(values, dict) or values.get("format") != FORMAT:
            raise DatasetCorrupt(f"{path} is not the manifest of a vmcr2 pack")
        if values.get("version") != VERSION:
            raise DatasetCorrupt(f"{path}: a pack of format version {values.get('version')}, and this vmcr2 reads "
                                 f"version {VERSION}; pack the source again with this vmcr2")
        try:
            manifest = cls(tuple(int(v) for v in values["image_shape"]),
                           {split: int(values["counts"][split]) for split in SPLITS},
                           [str(name) for name in values["class_names"]],
                           tuple(float(v) for v in values["mean"]), tuple(float(v) for v in values["std"]),
                           bool(values["labelled_train"]), bool(values["mirror_safe"]), str(values["source"]),
                           str(values["source_digest"]))
        except (KeyError, TypeError, ValueError) as error:
            raise DatasetCorrupt(f"{path} lacks or garbles {error}: not a whole manifest") from None
        channels = manifest.image_shape[0] if len(manifest.image_shape) == 3 else 0
        if (channels not in (1, 3) or min(manifest.image_shape) < 1 or not manifest.class_names
                or len(manifest.mean) != channels or len(manifest.std) != channels or min(manifest.std) <= 0
                or min(manifest.counts.values()) < 0 or manifest.counts["train"] < 1):
            raise DatasetCorrupt(f"{path} is inconsistent: shape {manifest.image_shape}, "
                                 f"{len(manifest.class_names)} classes, counts {manifest.counts}")
        return manifest


def open_split(folder: Path, manifest: Manifest, split: str) -> tuple[PackedImages, torch.Tensor]:
    """A split's images (unread) and labels, each file checked against the manifest."""
    count = manifest.counts[split]
    images = folder / images_file(split)
    labels = folder / labels_file(split)
    for path, size in ((images, count * int(np.prod(manifest.image_shape))), (labels, count * 8)):
        actual = path.stat().st_size if path.is_file() else None
        if actual != size:
            held = "missing" if actual is None else f"{actual} bytes"
            raise DatasetCorrupt(f"{path} is {held}, and the manifest says {size} bytes: a truncated or altered "
                                 f"pack; pack it again")
    values = np.fromfile(labels, dtype="<i8")
    if count and (values.min() < 0 or values.max() >= len(manifest.class_names)):
        raise DatasetCorrupt(f"{labels} holds label {values.min() if values.min() < 0 else values.max()}, "
                             f"outside the manifest's {len(manifest.class_names)} classes")
    return PackedImages(images, count, manifest.image_shape), torch.from_numpy(values.astype(np.int64))


def load_packed(ctx: LoadContext) -> Splits:
    """``dataset = "packed"``: ``data_root`` a folder written by ``vmcr2 pack``."""
    from vmcr2_cli.data.user_files import given_path

    folder = given_path(ctx)
    if not folder.is_dir():
        raise DatasetNotFound(f"dataset packed: {folder} is not a folder (data_root names the folder vmcr2 pack wrote)")
    manifest = Manifest.read(folder)
    train_images, train_labels = open_split(folder, manifest, "train")
    test_images, test_labels = open_split(folder, manifest, "test")
    return Splits(train_images, train_labels, test_images, test_labels, manifest.class_names,
                  source=str(folder), labelled_train=manifest.labelled_train, mirror_safe=manifest.mirror_safe,
                  statistics=(manifest.mean, manifest.std))

