"""The in-memory dataset every loader produces, and what a loader is given."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vmcr2_cli.data.discovery import SearchRoot


@dataclass(repr=False)
class ImageDataset:
    """A dataset at its training resolution, ready for :class:`DeviceLoader`.

    Images are uint8 tensors of shape (N, C, H, W); labels int64 of shape (N,) in
    [0, num_classes). ``mean`` and ``std`` (one per channel, on the [0, 1] scale) and
    ``augment`` (the paper's augmentation for this dataset) come from the registry entry.
    With label noise, ``train_labels`` are the noisy labels and ``clean_train_labels`` the
    originals (None without noise). ``val_images`` / ``val_labels``: a validation split held out
    of the training images (``val_fraction``), None without one.

    ``labelled_train`` False: the training images carry no labels (a folder dataset's
    ``train/`` without class folders, for the self-supervised objectives); ``train_labels`` are
    then all 0, a placeholder no objective reads, and evaluation fits its classifiers on
    ``reference_images`` / ``reference_labels``, a seeded half of the labelled test tree, and
    scores the other half (``test_images``). See :meth:`reference`.
    """

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int
    class_names: list[str]
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    augment: str = "none"
    source: str = ""  # where the files came from, for meta.json and logs
    clean_train_labels: torch.Tensor | None = None
    val_images: torch.Tensor | None = None
    val_labels: torch.Tensor | None = None
    labelled_train: bool = True
    mirror_safe: bool = True  # False: a horizontal flip changes the class (composed images)
    reference_images: torch.Tensor | None = None
    reference_labels: torch.Tensor | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        return tuple(self.train_images.shape[1:])  # type: ignore[return-value]

    def reference(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The labelled images evaluation fits on — kNN's bank, eq. 8's class subspaces: the
        training set, or for an unlabelled one the reference half of the test tree."""
        if self.reference_images is None:
            return self.train_images, self.train_labels
        return self.reference_images, self.reference_labels

    @property
    def num_train(self) -> int:
        return self.train_images.shape[0]

    @property
    def num_test(self) -> int:
        return self.test_images.shape[0]

    def __repr__(self) -> str:
        return (
            f"ImageDataset(name={self.name!r}, train={self.num_train}, test={self.num_test}, "
            f"image_shape={self.image_shape}, num_classes={self.num_classes}, source={self.source!r})"
        )


@dataclass
class Splits:
    """What a format loader returns: both splits as uint8 (N, C, H, W) / int64 (N,), and class names."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    class_names: list[str]
    source: str = ""
    labelled_train: bool = True  # False: train_labels are placeholders (see ImageDataset)
    mirror_safe: bool = True  # False where the files say so (a pack of composed images)
    statistics: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # (mean, std) where the files say


@dataclass(frozen=True)
class LoadContext:
    """What a loader needs: where to look, where to cache, whether it may download, its options."""

    name: str
    roots: tuple[SearchRoot, ...]
    cache_dir: Path
    download: bool
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
