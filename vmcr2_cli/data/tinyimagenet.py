"""Tiny ImageNet (200 classes, 64×64 JPEGs), resized once to 32×32 at load.

Layout (``tiny-imagenet-200/`` or ``tiny-imagenet-200.zip``): ``wnids.txt`` (one WordNet id
per class), ``words.txt`` (id, tab, names), ``train/<wnid>/images/*.JPEG`` (500 per class),
``val/images/*.JPEG`` with ``val/val_annotations.txt`` (file, tab, wnid, tab, box...).
The official val split is our test split (the official test split has no labels).

Decoding 110,000 JPEGs takes tens of seconds, so the decoded, resized arrays are cached
as ``<cache>/tinyimagenet/decoded-32px-<fingerprint>.npz`` (written atomically), keyed by
where the source lies and its size/modification time.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
import warnings
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vmcr2_cli.data.dataset import LoadContext, Splits
from vmcr2_cli.data.discovery import Layout, Located, find_dataset
from vmcr2_cli.data.download import RemoteFile
from vmcr2_cli.data.errors import DatasetCorrupt
from vmcr2_cli.errors import one_line

FOLDER = "tiny-imagenet-200"
ARCHIVE = "tiny-imagenet-200.zip"
WNIDS, WORDS, VAL_ANNOTATIONS = "wnids.txt", "words.txt", "val/val_annotations.txt"
LAYOUT = Layout(
    "tinyimagenet",
    (WNIDS, WORDS, VAL_ANNOTATIONS),
    (FOLDER, "", "tinyimagenet", f"tinyimagenet/{FOLDER}", "tiny-imagenet", f"tiny-imagenet/{FOLDER}"),
    (ARCHIVE, f"tinyimagenet/{ARCHIVE}", f"tiny-imagenet/{ARCHIVE}"),
    described=f"{WNIDS}, {WORDS}, train/<wnid>/images/*.JPEG, val/images/*.JPEG and {VAL_ANNOTATIONS}",
)
REMOTE = RemoteFile(
    ARCHIVE,
    (f"http://cs231n.stanford.edu/{ARCHIVE}", f"https://cs231n.stanford.edu/{ARCHIVE}"),
    "90528d7ca1a48142e341f4ef8d21d0de",
)
SOURCE_SIZE = 64
TRAINING_SIZE = 32
DECODE_CHUNK = 4096
# Bump when decoding or resizing changes, so stale caches are not reused.
CACHE_VERSION = "v1-antialiased-bilinear"


class _Source:
    """Reads files of a Tiny ImageNet copy by relative path, from a folder or a zip."""

    def __init__(self, located: Located):
        self.path = located.path
        self.is_zip = located.is_archive
        self._local = threading.local()
        if self.is_zip:
            try:
                with zipfile.ZipFile(self.path) as archive:
                    names = [n for n in archive.namelist() if not n.endswith("/")]
            except (OSError, zipfile.BadZipFile) as error:
                raise DatasetCorrupt(f"{self.path} cannot be read as a zip archive: {one_line(error)}") from error
            wnids = sorted((n for n in names if n.rsplit("/", 1)[-1] == WNIDS), key=len)
            if not wnids:
                raise DatasetCorrupt(f"{self.path} has no {WNIDS}: not the Tiny ImageNet archive")
            self.prefix = wnids[0][: -len(WNIDS)]
            self._train_by_class: dict[str, list[str]] = {}
            for name in names:
                parts = name[len(self.prefix) :].split("/")
                if name.startswith(self.prefix) and len(parts) == 4 and parts[0] == "train" and parts[2] == "images":
                    self._train_by_class.setdefault(parts[1], []).append("/".join(parts))

    def read_bytes(self, relative: str) -> bytes:
        if not self.is_zip:
            return (self.path / relative).read_bytes()
        archive = getattr(self._local, "archive", None)
        if archive is None:  # one handle per thread: reads then never contend for a seek position
            archive = self._local.archive = zipfile.ZipFile(self.path)
        try:
            return archive.read(self.prefix + relative)
        except KeyError as error:
            raise DatasetCorrupt(f"{self.path} lacks {relative}") from error

    def read_text(self, relative: str) -> str:
        return self.read_bytes(relative).decode("utf-8", errors="replace")

    def train_images(self, wnid: str) -> list[str]:
        """Relative paths of one class's training JPEGs, sorted."""
        folder = f"train/{wnid}/images/"
        if self.is_zip:
            found = self._train_by_class.get(wnid, [])
        else:
            directory = self.path / folder
            found = [folder + e.name for e in os.scandir(directory)] if directory.is_dir() else []
        return sorted(n for n in found if n.lower().endswith((".jpeg", ".jpg")))

    def fingerprint(self, extra: str) -> str:
        stat = self.path.stat() if self.is_zip else (self.path / VAL_ANNOTATIONS).stat()
        key = f"{CACHE_VERSION}|{self.path.resolve()}|{self.is_zip}|{stat.st_size}|{stat.st_mtime_ns}|{extra}"
        return hashlib.sha1(key.encode()).hexdigest()[:16]


def _class_names(words_text: str, wnids: list[str]) -> list[str]:
    """The first name words.txt gives each wnid (the wnid itself if words.txt lacks it)."""
    words = {}
    for line in words_text.splitlines():
        wnid, _, names = line.partition("\t")
        words[wnid.strip()] = names.split(",")[0].strip()
    return [words.get(w) or w for w in wnids]


def _decode(data: bytes, where: str) -> np.ndarray:
    """One JPEG as a (64, 64, 3) uint8 array (grayscale and CMYK files converted to RGB)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image = image.convert("RGB")
            if image.size != (SOURCE_SIZE, SOURCE_SIZE):
                image = image.resize((SOURCE_SIZE, SOURCE_SIZE), Image.BILINEAR)
            return np.asarray(image)
    except Exception as error:
        raise DatasetCorrupt(f"{where} is not a readable image: {one_line(error)}") from error


def decode_resized(paths: list[str], read: Callable[[str], bytes], describe: str, progress=None) -> torch.Tensor:
    """Decode JPEGs with a thread pool (PIL releases the GIL) and resize them to 32×32
    (antialiased bilinear on the uint8 batch). Returns uint8 (N, 3, 32, 32)."""
    from torchvision.transforms.v2 import functional as TF  # here, not at each command's start (0.4 s)

    out = torch.empty((len(paths), 3, TRAINING_SIZE, TRAINING_SIZE), dtype=torch.uint8)
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(paths), DECODE_CHUNK):
            chunk = paths[start : start + DECODE_CHUNK]
            arrays = list(pool.map(lambda p: _decode(read(p), f"{describe}/{p}"), chunk))
            batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
            out[start : start + len(chunk)] = TF.resize(batch, [TRAINING_SIZE, TRAINING_SIZE], antialias=True)
            if progress is not None:
                progress(len(chunk))
    return out


def _train_listing(source: _Source, wnids: list[str]) -> tuple[list[str], list[int]]:
    train_paths, train_labels = [], []
    for label, wnid in enumerate(wnids):
        paths = source.train_images(wnid)
        if not paths:
            raise DatasetCorrupt(f"{source.path} has no training images for class {wnid} (expected train/{wnid}/images/*.JPEG)")
        train_paths += paths
        train_labels += [label] * len(paths)
    return train_paths, train_labels


def _decode_all(source: _Source, wnids: list[str], train_paths: list[str], train_labels: list[int]) -> dict[str, np.ndarray]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    index = {w: i for i, w in enumerate(wnids)}
    test_paths, test_labels = [], []
    for number, line in enumerate(source.read_text(VAL_ANNOTATIONS).splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1].strip() not in index:
            raise DatasetCorrupt(f"{source.path}/{VAL_ANNOTATIONS} line {number}: expected 'file<TAB>wnid<TAB>box', wnid from {WNIDS}")
        test_paths.append(f"val/images/{fields[0].strip()}")
        test_labels.append(index[fields[1].strip()])

    console = Console(stderr=True)
    with Progress(
        TextColumn("decoding Tiny ImageNet"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task("decode", total=len(train_paths) + len(test_paths))
        advance = lambda n: bar.advance(task, n)  # noqa: E731
        train = decode_resized(train_paths, source.read_bytes, str(source.path), advance)
        test = decode_resized(test_paths, source.read_bytes, str(source.path), advance)
    return {
        "train_images": train.numpy(),
        "train_labels": np.asarray(train_labels, dtype=np.int64),
        "test_images": test.numpy(),
        "test_labels": np.asarray(test_labels, dtype=np.int64),
    }


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    keys = ("train_images", "train_labels", "test_images", "test_labels")
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {k: stored[k] for k in keys}
    except Exception:  # missing, unreadable or from another version: decode again
        return None
    consistent = all(arrays[f"{split}_images"].shape[0] == arrays[f"{split}_labels"].shape[0] for split in ("train", "test"))
    return arrays if consistent else None


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.chmod(temporary, 0o644)  # mkstemp makes it private; a cache may be shared
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
    except OSError as error:
        warnings.warn(f"could not cache decoded Tiny ImageNet at {path}: {one_line(error)}", stacklevel=2)


def load_tinyimagenet(ctx: LoadContext) -> Splits:
    """Tiny ImageNet, 100000 train / 10000 test (official val), resized to 3×32×32."""
    located = find_dataset(LAYOUT, ctx.roots, download=ctx.download, remote_files=[REMOTE])
    source = _Source(located)
    wnids_text = source.read_text(WNIDS)
    wnids = sorted({w.strip() for w in wnids_text.splitlines() if w.strip()})
    if not wnids:
        raise DatasetCorrupt(f"{source.path}: {WNIDS} is empty")
    class_names = _class_names(source.read_text(WORDS), wnids)
    train_paths, train_labels = _train_listing(source, wnids)
    # The listing joins the key so that a folder whose images changed is decoded again.
    listing = hashlib.sha1("\n".join(train_paths).encode()).hexdigest()
    cached = ctx.cache_dir / "tinyimagenet" / f"decoded-{TRAINING_SIZE}px-{source.fingerprint(wnids_text + listing)}.npz"
    arrays = _read_cache(cached)
    if arrays is None:
        arrays = _decode_all(source, wnids, train_paths, train_labels)
        _write_cache(cached, arrays)
    tensors = {k: torch.from_numpy(v) for k, v in arrays.items()}
    return Splits(
        tensors["train_images"], tensors["train_labels"], tensors["test_images"], tensors["test_labels"],
        class_names, source=str(located.path),
    )
