"""Many-class benchmarks composed offline from Fashion-MNIST: pairs (100 classes) and triples (1000).

An image of ``fashion-mnist-pairs`` is two Fashion-MNIST items side by side, each in its
own 32×32 cell (the 28×28 item zero-padded as for Fashion-MNIST itself), so the image is
1×32×64; its class is 10·a + b for the left item's class a and the right item's class b.
``fashion-mnist-triples`` puts three items in a 1×32×96 image, class 100·a + 10·b + c.
The idea is that of the "double MNIST" benchmarks; these are benchmarks of this project.

Construction (deterministic, the same on every machine and for every training seed):
- training images are composed from the 60 000 training items only, test images from the
  10 000 test items only, so no item is seen in both splits;
- 60 000 training and 10 000 test images, exactly balanced over the classes (600 and 100
  per pair class, 60 and 10 per triple class);
- each cell's item is drawn from the items of the cell's class by a seeded permutation,
  cycled, so every item is used about equally often (each training item about twice per
  cell position for pairs);
- the images are shuffled (seeded).

The composed arrays are cached (``<cache>/<dataset>/…npz``, keyed by the construction
version and the source files' digest) and loaded with ``allow_pickle=False``; a second run
reads the cache instead of rebuilding, and a damaged cache file is rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from vmcr2_cli.data import idx
from vmcr2_cli.data.dataset import LoadContext, Splits
from vmcr2_cli.data.errors import DatasetCorrupt
from vmcr2_cli.errors import one_line
from vmcr2_cli.data.seeding import cpu_generator

CONSTRUCTION_VERSION = 1
CONSTRUCTION_SEED = 0  # fixed: the benchmark must not change with the training seed
TRAIN_SIZE, TEST_SIZE = 60_000, 10_000
ITEM_CLASSES = 10
_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def compose(items: torch.Tensor, item_labels: torch.Tensor, cells: int, count: int,
            generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` images of ``cells`` items side by side, balanced over the 10^cells classes.

    Args:
        items: (N, 1, H, W) uint8 item images (already padded to their cell size).
        item_labels: (N,) item classes in [0, 10).
        cells: items per image.
        count: images to make; a multiple of 10^cells.
        generator: the CPU generator of every random choice.

    Returns:
        (count, 1, H, cells·W) uint8 images and (count,) int64 classes Σ_i a_i·10^(cells−1−i).
    """
    num_classes = ITEM_CLASSES ** cells
    if count % num_classes:
        raise ValueError(f"count {count} is not a multiple of the {num_classes} classes")
    labels = torch.arange(num_classes).repeat_interleave(count // num_classes)
    labels = labels[torch.randperm(count, generator=generator)]
    chosen = torch.empty(cells, count, dtype=torch.int64)
    for cell in range(cells):
        cell_classes = labels // ITEM_CLASSES ** (cells - 1 - cell) % ITEM_CLASSES
        for item_class in range(ITEM_CLASSES):
            slots = (cell_classes == item_class).nonzero().squeeze(1)
            pool = (item_labels == item_class).nonzero().squeeze(1)
            if pool.numel() == 0:
                raise DatasetCorrupt(f"no item of class {item_class} to compose {cells}-item images from")
            repeats = -(-slots.numel() // pool.numel())
            stream = torch.cat([pool[torch.randperm(pool.numel(), generator=generator)] for _ in range(repeats)])
            chosen[cell, slots] = stream[:slots.numel()]
    return torch.cat([items[chosen[cell]] for cell in range(cells)], dim=-1), labels


def class_names(cells: int) -> list[str]:
    """'T-shirt/top|Trouser' … : the item classes of each cell, left to right."""
    names = idx.FASHION_MNIST_CLASSES
    return ["|".join(names[c // ITEM_CLASSES ** (cells - 1 - i) % ITEM_CLASSES] for i in range(cells))
            for c in range(ITEM_CLASSES ** cells)]


def load_composition(ctx: LoadContext, cells: int) -> Splits:
    """The composed dataset of ``cells`` items per image, from the cache or built and cached."""
    source = idx.locate_fashion_mnist(ctx)
    digest = hashlib.blake2b(digest_size=8)
    for name in idx.FILES:
        digest.update(Path(source.files[name]).read_bytes())
    cache = ctx.cache_dir / ctx.name / f"v{CONSTRUCTION_VERSION}-{digest.hexdigest()}.npz"
    arrays = _read_cache(cache)
    if arrays is None:
        fashion = idx.read_fashion_mnist(source)
        train = compose(fashion.train_images, fashion.train_labels, cells, TRAIN_SIZE,
                        cpu_generator(CONSTRUCTION_SEED, f"{ctx.name}-train"))
        test = compose(fashion.test_images, fashion.test_labels, cells, TEST_SIZE,
                       cpu_generator(CONSTRUCTION_SEED, f"{ctx.name}-test"))
        arrays = dict(zip(_ARRAYS, (t.numpy() for t in (*train, *test))))
        _write_cache(cache, arrays)
    tensors = [torch.from_numpy(arrays[name]) for name in _ARRAYS]
    return Splits(*tensors, class_names=class_names(cells),
                  source=f"{cache} (composed from {source.path})")


def load_pairs(ctx: LoadContext) -> Splits:
    """fashion-mnist-pairs: 100 classes, 60000/10000, 1×32×64."""
    return load_composition(ctx, 2)


def load_triples(ctx: LoadContext) -> Splits:
    """fashion-mnist-triples: 1000 classes, 60000/10000, 1×32×96."""
    return load_composition(ctx, 3)


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when the file is missing or damaged (it is then rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in _ARRAYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically (temporary file, then rename); a cache that cannot be written is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                np.savez(file, **arrays)
            os.chmod(temporary, 0o644)  # mkstemp makes it private; a cache is readable like a download
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as error:
        print(f"note: could not cache the composed dataset at {path}: {one_line(error)}", file=sys.stderr)
