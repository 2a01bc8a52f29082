"""CIFAR-10 and CIFAR-100: the official "python version" pickled batches, as folders or .tar.gz.

A batch is a pickled dict (Python 2 protocol, bytes keys): ``b'data'`` a uint8 array
(N, 3072) laid out as 3×32×32, and ``b'labels'`` (CIFAR-10) or ``b'fine_labels'``
(CIFAR-100). Archives are read in place, in one streaming pass, without extraction.
The unpickler only admits numpy arrays: a file from elsewhere cannot run code.
"""

from __future__ import annotations

import io
import pickle
import tarfile

import numpy as np
import torch

from vmcr2_cli.data.dataset import LoadContext, Splits
from vmcr2_cli.data.discovery import Layout, Located, find_dataset
from vmcr2_cli.data.download import RemoteFile
from vmcr2_cli.data.errors import DatasetCorrupt
from vmcr2_cli.errors import one_line

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = "test_batch"
CIFAR10_META = "batches.meta"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_LAYOUT = Layout(
    "cifar10",
    (*CIFAR10_TRAIN, CIFAR10_TEST, CIFAR10_META),
    (CIFAR10_FOLDER, "", "cifar10", f"cifar10/{CIFAR10_FOLDER}", "cifar-10", f"cifar-10/{CIFAR10_FOLDER}"),
    (CIFAR10_ARCHIVE, f"cifar10/{CIFAR10_ARCHIVE}", f"cifar-10/{CIFAR10_ARCHIVE}"),
)
CIFAR10_REMOTE = RemoteFile(CIFAR10_ARCHIVE, (f"https://www.cs.toronto.edu/~kriz/{CIFAR10_ARCHIVE}",), "c58f30108f718f92721af3b95e74349a")

CIFAR100_FOLDER = "cifar-100-python"
CIFAR100_TRAIN, CIFAR100_TEST, CIFAR100_META = "train", "test", "meta"
CIFAR100_ARCHIVE = "cifar-100-python.tar.gz"
CIFAR100_LAYOUT = Layout(
    "cifar100",
    (CIFAR100_TRAIN, CIFAR100_TEST, CIFAR100_META),
    (CIFAR100_FOLDER, "", "cifar100", f"cifar100/{CIFAR100_FOLDER}", "cifar-100", f"cifar-100/{CIFAR100_FOLDER}"),
    (CIFAR100_ARCHIVE, f"cifar100/{CIFAR100_ARCHIVE}", f"cifar-100/{CIFAR100_ARCHIVE}"),
)
CIFAR100_REMOTE = RemoteFile(CIFAR100_ARCHIVE, (f"https://www.cs.toronto.edu/~kriz/{CIFAR100_ARCHIVE}",), "eb9058c3a382ffc7106e4002c42a8d85")

IMAGE_BYTES = 3 * 32 * 32


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and numpy arrays; refuses every other global."""

    ALLOWED = {
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        # Protocol-2 pickles written by Python 3 rebuild bytes with _codecs.encode(str, "latin1").
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        # Files pickled with numpy < 2 name numpy.core; numpy >= 2 calls it numpy._core.
        if module.startswith("numpy.core"):
            module = "numpy._core" + module[len("numpy.core") :]
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def unpickle(raw: bytes, where: str, what: str = "a CIFAR python batch") -> dict:
    """A pickled dict of arrays (a CIFAR batch: ``what``) with str keys. Raises DatasetCorrupt naming ``where``."""
    try:
        loaded = _ArraysOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as error:
        raise DatasetCorrupt(f"{where} is not {what}: {one_line(error)}") from error
    if not isinstance(loaded, dict):
        raise DatasetCorrupt(f"{where} is not {what} (a {type(loaded).__name__}, not a dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in loaded.items()}


def _read_members(located: Located, names: tuple[str, ...]) -> dict[str, tuple[bytes, str]]:
    """Each named file's bytes and a description of where it came from."""
    if not located.is_archive:
        return {name: (located.files[name].read_bytes(), str(located.files[name])) for name in names}
    wanted, found = set(names), {}
    try:
        with tarfile.open(located.path, "r:gz") as archive:
            for member in archive:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in wanted and base not in found:
                    found[base] = (archive.extractfile(member).read(), f"{located.path}:{member.name}")
    except (OSError, EOFError, tarfile.TarError) as error:
        raise DatasetCorrupt(f"{located.path} cannot be read as a .tar.gz archive: {one_line(error)}") from error
    missing = [name for name in names if name not in found]
    if missing:
        raise DatasetCorrupt(f"{located.path} lacks {', '.join(missing)}: not the official archive")
    return found


def _batch(record: dict, label_key: str, where: str, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    if "data" not in record or label_key not in record:
        raise DatasetCorrupt(f"{where} lacks the keys 'data' and '{label_key}'")
    data = np.asarray(record["data"])
    labels = np.asarray(record[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != IMAGE_BYTES:
        raise DatasetCorrupt(f"{where}: data is {data.dtype} {data.shape}, expected uint8 (N, {IMAGE_BYTES})")
    if labels.shape != (data.shape[0],):
        raise DatasetCorrupt(f"{where}: {data.shape[0]} images but {labels.size} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetCorrupt(f"{where}: labels outside [0, {num_classes})")
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels)


def _names(record: dict, key: str, where: str) -> list[str]:
    if key not in record:
        raise DatasetCorrupt(f"{where} lacks the key '{key}'")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in record[key]]


def load_cifar10(ctx: LoadContext) -> Splits:
    """CIFAR-10, 50000 train / 10000 test, 3×32×32."""
    located = find_dataset(CIFAR10_LAYOUT, ctx.roots, download=ctx.download, remote_files=[CIFAR10_REMOTE])
    members = _read_members(located, CIFAR10_LAYOUT.files)
    raw_meta, where_meta = members[CIFAR10_META]
    class_names = _names(unpickle(raw_meta, where_meta), "label_names", where_meta)
    parts = [_batch(unpickle(raw, where), "labels", where, len(class_names)) for raw, where in (members[n] for n in CIFAR10_TRAIN)]
    raw_test, where_test = members[CIFAR10_TEST]
    test_images, test_labels = _batch(unpickle(raw_test, where_test), "labels", where_test, len(class_names))
    return Splits(
        torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), test_images, test_labels, class_names, str(located.path)
    )


def load_cifar100(ctx: LoadContext) -> Splits:
    """CIFAR-100 with its 100 fine labels, 50000 train / 10000 test, 3×32×32."""
    located = find_dataset(CIFAR100_LAYOUT, ctx.roots, download=ctx.download, remote_files=[CIFAR100_REMOTE])
    members = _read_members(located, CIFAR100_LAYOUT.files)
    raw_meta, where_meta = members[CIFAR100_META]
    class_names = _names(unpickle(raw_meta, where_meta), "fine_label_names", where_meta)
    splits = {}
    for name in (CIFAR100_TRAIN, CIFAR100_TEST):
        raw, where = members[name]
        splits[name] = _batch(unpickle(raw, where), "fine_labels", where, len(class_names))
    return Splits(*splits[CIFAR100_TRAIN], *splits[CIFAR100_TEST], class_names, str(located.path))
