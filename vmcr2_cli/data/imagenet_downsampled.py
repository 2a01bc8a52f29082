"""ImageNet-1k downsampled to 32 × 32 and 64 × 64 (Chrabaszcz, Loshchilov & Hutter 2017), in its published format.

image-net.org hands it out (after a login, so never downloaded here) as ``Imagenet32_train/`` with
``train_data_batch_1`` … ``train_data_batch_10`` and ``Imagenet32_val/val_data`` (64: the same with
``Imagenet64_``). Each file is a pickled dict: ``data`` uint8 (n, 3·S·S) laid out as 3 planes of
S×S (CIFAR's layout), ``labels`` the classes 1 … 1000, ``mean`` the training mean image. They are
read with the arrays-only unpickler of :mod:`cifar`, so a file cannot run code.

The 64 × 64 training set decodes to 15.7 GB: :func:`batches` reads one file at a time, which is what
``vmcr2 pack imagenet64 OUT`` uses; loading it whole is checked against the free memory first.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import numpy as np
import torch

from vmcr2_cli.data.cifar import unpickle
from vmcr2_cli.data.dataset import LoadContext, Splits
from vmcr2_cli.data.discovery import Layout, Located, find_dataset
from vmcr2_cli.data.errors import DatasetCorrupt
from vmcr2_cli.data.memory import check_fits_in_memory

NUM_CLASSES = 1000
NUM_TRAIN = 1_281_167
TRAIN_BATCHES = 10
# ImageNet's usual per-channel constants, measured at full resolution; downsampling by box filter keeps
# the mean and lowers the std a little (as Tiny ImageNet's resize does).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def layout(size: int) -> Layout:
    train = tuple(f"Imagenet{size}_train/train_data_batch_{i}" for i in range(1, TRAIN_BATCHES + 1))
    return Layout(f"imagenet{size}", (*train, f"Imagenet{size}_val/val_data"),
                  ("", f"imagenet{size}", "downsampled-imagenet", "imagenet"),
                  described=f"Imagenet{size}_train/train_data_batch_1 … _{TRAIN_BATCHES} and Imagenet{size}_val/val_data "
                            f"(image-net.org's downsampled ImageNet, the pickled batches)")


def locate(ctx: LoadContext, size: int) -> Located:
    return find_dataset(layout(size), ctx.roots, download=False)


def split_files(located: Located, size: int, split: str) -> list:
    names = layout(size).files
    return [located.files[name] for name in (names[:-1] if split == "train" else names[-1:])]


def read_batch(path, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One batch file: uint8 (n, 3, size, size) images and int64 labels 0 … 999."""
    record = unpickle(path.read_bytes(), str(path), "a downsampled ImageNet batch")
    if "data" not in record or "labels" not in record:
        raise DatasetCorrupt(f"{path} lacks the keys 'data' and 'labels': not a downsampled ImageNet batch")
    data = np.asarray(record["data"])
    labels = np.asarray(record["labels"], dtype=np.int64) - 1  # the files count classes from 1
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * size * size:
        raise DatasetCorrupt(f"{path}: data is {data.dtype} {data.shape}, expected uint8 (n, {3 * size * size}) "
                             f"for {size}×{size} images")
    if labels.shape != (data.shape[0],):
        raise DatasetCorrupt(f"{path}: {data.shape[0]} images but {labels.size} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DatasetCorrupt(f"{path}: labels outside 1 … {NUM_CLASSES}")
    return data.reshape(-1, 3, size, size), labels


def batches(located: Located, size: int, split: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The split's batch files, read one at a time, in order."""
    for path in split_files(located, size, split):
        yield read_batch(path, size)


def class_names() -> list[str]:
    """The files carry no names: the classes are their indices (1 … 1000 in the files, 0 … 999 here)."""
    return [f"class {j + 1}" for j in range(NUM_CLASSES)]


def _load(ctx: LoadContext, size: int) -> Splits:
    located = locate(ctx, size)
    files = split_files(located, size, "train") + split_files(located, size, "test")
    # A pickled batch is its images plus a few bytes: its size is what it decodes to.
    check_fits_in_memory(sum(path.stat().st_size for path in files), f"imagenet{size}")
    tensors = []
    for split in ("train", "test"):
        parts = list(batches(located, size, split))
        tensors += [torch.from_numpy(np.concatenate([images for images, _ in parts])),
                    torch.from_numpy(np.concatenate([labels for _, labels in parts]))]
    return Splits(*tensors, class_names(), source=str(located.path))


load_imagenet32 = partial(_load, size=32)
load_imagenet64 = partial(_load, size=64)
SIZES = {"imagenet32": 32, "imagenet64": 64}  # the registry's names
