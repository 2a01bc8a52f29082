"""Datasets by name. Adding one is a loader function and one line in :data:`DATASETS`.

A loader takes a :class:`LoadContext` (where to look, whether to download, its options)
and returns :class:`Splits` at the training resolution; :func:`load_dataset` adds the
registry's constants (normalisation, augmentation) and the label noise.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vmcr2_cli.data import (cifar, compositions, gaussians, idx, imagenet_downsampled, packed, synthetic, tinyimagenet,
                            user_files)
from vmcr2_cli.data.dataset import ImageDataset, LoadContext, Splits
from vmcr2_cli.data.discovery import default_cache_dir, search_roots
from vmcr2_cli.data.label_noise import apply_label_noise
from vmcr2_cli.data.preprocessing import Preprocessing, centred_padding
from vmcr2_cli.errors import BadInput


@dataclass(frozen=True)
class DatasetSpec:
    """A registry entry: how to load a dataset, and the constants that belong to it.

    ``mean``/``std``: per channel, on the [0, 1] scale, of the training images at their
    training resolution (one value is broadcast to every channel; none: the user's data,
    whose own statistics are computed at load). ``augment``: the paper's
    augmentation for the dataset (see :mod:`vmcr2_cli.data.augment`). ``options``: the
    keyword options the loader accepts (the synthetic dataset's shape, the folder's image_size).
    ``mirror_safe``: False where a horizontal flip changes the class (composed images,
    whose class is read left to right), so the flip augmentations are refused.
    ``num_classes``, ``num_train``: the classes and training images of the published
    dataset, which a configuration is checked against before anything is loaded (None
    where the configuration chooses them: the synthetic dataset). ``file_size``: (H, W) of
    the files' images where the loader pads them to the training size (None: as trained).
    """

    name: str
    load: Callable[[LoadContext], Splits]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: str
    description: str
    options: tuple[str, ...] = ()
    mirror_safe: bool = True
    num_classes: int | None = None
    num_train: int | None = None
    file_size: tuple[int, int] | None = None


# MNIST/Fashion-MNIST statistics are those of the images padded to 32×32 (their 28×28
# values are 0.1307/0.3081 and 0.2860/0.3530); the compositions' cells are such images. CIFAR values are the true per-channel
# standard deviations (not the often-copied 0.2023, 0.1994, 0.2010). Tiny ImageNet's are
# those of the 64×64 images; resizing to 32 leaves the mean and lowers the std by ~2 %. The Gaussians'
# 0.5/0.5 are not statistics but the map back from their stored 0.5 + 0.5·p to the points p.
DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec("mnist", idx.load_mnist, (0.1001,), (0.2752,), "crop-flip", "MNIST digits, 60k/10k, 1×32×32 (padded)", num_classes=10, num_train=60000, file_size=(28, 28)),
        DatasetSpec("fashion-mnist", idx.load_fashion_mnist, (0.2190,), (0.3318,), "crop-flip", "Fashion-MNIST, 60k/10k, 1×32×32 (padded)", num_classes=10, num_train=60000, file_size=(28, 28)),
        DatasetSpec("fashion-mnist-pairs", compositions.load_pairs, (0.2190,), (0.3318,), "none", "two Fashion-MNIST items side by side, 100 classes, 60k/10k, 1×32×64", mirror_safe=False, num_classes=100, num_train=60000),
        DatasetSpec("fashion-mnist-triples", compositions.load_triples, (0.2190,), (0.3318,), "none", "three Fashion-MNIST items side by side, 1000 classes, 60k/10k, 1×32×96", mirror_safe=False, num_classes=1000, num_train=60000),
        DatasetSpec("cifar10", cifar.load_cifar10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), "crop-flip", "CIFAR-10, 50k/10k, 3×32×32", num_classes=10, num_train=50000),
        DatasetSpec("cifar100", cifar.load_cifar100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), "crop-flip", "CIFAR-100 (fine labels), 50k/10k, 3×32×32", num_classes=100, num_train=50000),
        DatasetSpec("tinyimagenet", tinyimagenet.load_tinyimagenet, (0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821), "flip", "Tiny ImageNet, 100k/10k (val), 3×32×32 (resized from 64)", num_classes=200, num_train=100000),
        DatasetSpec("imagenet32", imagenet_downsampled.load_imagenet32, imagenet_downsampled.MEAN, imagenet_downsampled.STD, "crop-flip", "ImageNet-1k downsampled to 3×32×32 (Chrabaszcz et al. 2017), 1.28M/50k (val)", num_classes=1000, num_train=imagenet_downsampled.NUM_TRAIN),
        DatasetSpec("imagenet64", imagenet_downsampled.load_imagenet64, imagenet_downsampled.MEAN, imagenet_downsampled.STD, "crop-flip", "ImageNet-1k downsampled to 3×64×64, 1.28M/50k (val); pack it first: it decodes to 15.7 GB", num_classes=1000, num_train=imagenet_downsampled.NUM_TRAIN),
        DatasetSpec("folder", user_files.load_folder, (), (), "none", "your images: data_root/{train,test}/<class>/*.png|jpg, resized to image_size", ("image_size",)),
        DatasetSpec("npz", user_files.load_npz, (), (), "none", "your arrays: data_root = a .npz with x_train, y_train, x_test, y_test (uint8)"),
        DatasetSpec("packed", packed.load_packed, (), (), "none", "a dataset packed on disk by vmcr2 pack (data_root = its folder), read a batch at a time"),
        DatasetSpec("gaussians-2d", gaussians.load_gaussians_2d, (0.5,), (0.5,), "none", "the MCR² lecture's mixture of Gaussians: 2 classes, each near a line through the origin of the plane, 1000/1000 points, 1×1×2", mirror_safe=False, num_classes=2, num_train=2 * gaussians.PER_CLASS),
        DatasetSpec("gaussians-3d", gaussians.load_gaussians_3d, (0.5,), (0.5,), "none", "the MCR² lecture's mixture of Gaussians: 3 classes, each near a line through the origin of space, 1500/1500 points, 1×1×3", mirror_safe=False, num_classes=3, num_train=3 * gaussians.PER_CLASS),
        DatasetSpec("synthetic", synthetic.load_synthetic, (0.5,), (synthetic.SIGNAL_STD,), "none", "mixture of k random subspaces in pixel space", tuple(synthetic.DEFAULTS)),
    ]
}

ALIASES = {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
    "tiny-imagenet": "tinyimagenet",
    "tiny-imagenet-200": "tinyimagenet",
    "imagenet-32": "imagenet32",
    "imagenet-64": "imagenet64",
}


def dataset_names() -> list[str]:
    """The registered names, in registry order."""
    return list(DATASETS)


def get_spec(name: str) -> DatasetSpec:
    """The registry entry for ``name`` (case-insensitive; a few aliases accepted).

    Raises BadInput naming the known datasets.
    """
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in DATASETS:
        raise BadInput(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[key]


def load_dataset(
    name: str,
    *,
    data_root: str | os.PathLike | None = None,
    download: bool = True,
    label_noise: float = 0.0,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    **options,
) -> ImageDataset:
    """Load a dataset by name at its training resolution.

    ``data_root``: searched first (the ``--data-root`` flag); see
    :mod:`vmcr2_cli.data.discovery` for the whole search order. ``download``: allow a
    download into the cache when no copy is found. ``label_noise``: the fraction of
    training labels re-drawn at random (seeded by ``seed``; test labels untouched).
    ``cache_dir``: the cache folder (default ``$XDG_CACHE_HOME/vmcr2`` or
    ``~/.cache/vmcr2``). ``options``: the synthetic dataset's ``num_classes``, ``image_shape``,
    ``subspace_dim``, ``train_per_class``, ``test_per_class``, ``noise`` (generated from
    ``seed``); the folder dataset's ``image_size``. Options whose value is None are ignored.

    Raises DatasetNotFound, DatasetCorrupt or BadInput (all one-line, exit code 2).
    """
    spec = get_spec(name)
    options = {key: value for key, value in options.items() if value is not None}
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        known = f"; {spec.name} takes {', '.join(spec.options)}" if spec.options else f"; {spec.name} takes none"
        raise BadInput(f"unknown dataset option(s) {', '.join(unknown)}{known}")
    if not 0.0 <= float(label_noise) <= 1.0:
        raise BadInput(f"label_noise must be a fraction in [0, 1], got {label_noise}")
    splits = spec.load(load_context(spec.name, data_root, download, seed, cache_dir, options))
    num_classes = len(splits.class_names)
    channels = splits.train_images.shape[1]
    if not splits.labelled_train and label_noise:
        raise BadInput(f"label_noise: the training images of {splits.source} have no labels to re-draw")
    noisy = apply_label_noise(splits.train_labels, float(label_noise), num_classes, seed) if label_noise else None
    if spec.mean:
        mean, std = _per_channel(spec.mean, channels), _per_channel(spec.std, channels)
    elif splits.statistics:
        mean, std = splits.statistics
    else:
        mean, std = user_files.training_statistics(splits.train_images)
    evaluation = (dict(test_images=splits.test_images, test_labels=splits.test_labels) if splits.labelled_train
                  else _reference_and_test_halves(splits.test_images, splits.test_labels, num_classes, seed))
    return ImageDataset(
        name=spec.name,
        train_images=splits.train_images,
        train_labels=noisy if noisy is not None else splits.train_labels,
        num_classes=num_classes,
        class_names=splits.class_names,
        mean=mean,
        std=std,
        augment=spec.augment,
        source=splits.source,
        mirror_safe=spec.mirror_safe and splits.mirror_safe,
        clean_train_labels=splits.train_labels if noisy is not None else None,
        **evaluation,
    )


def load_context(name: str, data_root: str | os.PathLike | None = None, download: bool = True, seed: int = 0,
                 cache_dir: str | os.PathLike | None = None, options: dict[str, Any] | None = None) -> LoadContext:
    """What the loader of dataset ``name`` is given (see :func:`load_dataset` for the arguments)."""
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    return LoadContext(name=name, roots=tuple(search_roots(data_root, cache)), cache_dir=cache, download=download,
                       seed=seed, options=options or {})


def _reference_and_test_halves(images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                               seed: int) -> dict[str, Any]:
    """An unlabelled training set's evaluation data: of each class's labelled test images, a seeded
    half (rounded up) to fit the classifiers on and the rest to score them."""
    generator = torch.Generator().manual_seed(seed + 2)  # a stream of its own, as the validation split's
    reference = []
    for j in range(num_classes):
        members = (labels == j).nonzero().flatten()
        reference.append(members[torch.randperm(len(members), generator=generator)[:(len(members) + 1) // 2]])
    chosen = torch.zeros(len(labels), dtype=torch.bool)
    chosen[torch.cat(reference)] = True
    return dict(labelled_train=False, reference_images=images[chosen], reference_labels=labels[chosen],
                test_images=images[~chosen], test_labels=labels[~chosen])


def preprocessing_of(dataset: ImageDataset) -> Preprocessing:
    """How an image of ``dataset``, as its files hold it, becomes the network's input (kept in meta.json).

    A composed dataset's image is the composed one (Fashion-MNIST pairs: 1×32×64, each item padded)."""
    channels, height, width = dataset.image_shape
    stored = get_spec(dataset.name).file_size or (height, width)
    return Preprocessing((channels, *stored), centred_padding(*stored, (height, width)),
                         tuple(dataset.mean), tuple(dataset.std))


def _per_channel(values: tuple[float, ...], channels: int) -> tuple[float, ...]:
    if len(values) == channels:
        return tuple(values)
    if len(values) == 1:
        return tuple(values) * channels
    raise ValueError(f"{len(values)} normalisation constants for {channels} channels")
