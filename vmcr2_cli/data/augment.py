"""Batched image augmentations on uint8 (B, C, H, W) tensors, on any device.

The randomness is drawn separately (:func:`draw_params`, from an explicit CPU generator)
from its application (:func:`apply`, pure tensor ops on the batch's device), so that a
batch's augmentation depends only on the generator's seed and is the same on every device.

- ``crop-flip``: RandomCrop(H×W, padding=8) with zero padding — an independent offset per
  image — then a horizontal flip with probability ½ (MNIST, CIFAR).
- ``flip``: the horizontal flip alone (Tiny ImageNet, already resized to 32 at load).
- ``resized-crop``: random resized crop, flip and photometric jitter, the augmentation of
  self-supervised training, optionally several views of each image (see :mod:`views`).
- ``none``: the images unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vmcr2_cli.errors import BadInput

RESIZED_CROP = "resized-crop"
AUGMENTATIONS = ("crop-flip", "flip", RESIZED_CROP, "none")
FLIPPING = ("crop-flip", "flip", RESIZED_CROP)  # refused where a mirror changes the class
CROP_PADDING = 8


def check_augment(name: str) -> str:
    """``name`` if it is a known augmentation; BadInput otherwise."""
    if name not in AUGMENTATIONS:
        raise BadInput(f"unknown augmentation {name!r}; known: {', '.join(AUGMENTATIONS)}")
    return name


def draw_params(name: str, count: int, generator: torch.Generator, padding: int = CROP_PADDING) -> torch.Tensor:
    """The random choices for ``count`` images, int64 (count, 3) on the CPU: per image the
    crop's top and left offsets in the padded image (each in [0, 2·padding]) and 1 to flip."""
    params = torch.zeros(count, 3, dtype=torch.int64)
    if name == "crop-flip":
        params[:, :2] = torch.randint(0, 2 * padding + 1, (count, 2), generator=generator)
    if name in ("crop-flip", "flip"):
        params[:, 2] = torch.randint(0, 2, (count,), generator=generator)
    return params


def apply(name: str, images: torch.Tensor, params: torch.Tensor, padding: int = CROP_PADDING) -> torch.Tensor:
    """Augment a uint8 batch (B, C, H, W) with ``params`` from :func:`draw_params`
    (on the images' device). Returns a new (B, C, H, W) tensor of the same dtype."""
    if name == "crop-flip":
        return crop_flip(images, params[:, :2], params[:, 2].bool(), padding)
    if name == "flip":
        return flip(images, params[:, 2].bool())
    if check_augment(name) == RESIZED_CROP:
        raise ValueError("the resized-crop views are drawn by views.draw_view_params and applied by views.apply_views")
    return images


def crop_flip(images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad by ``padding``, crop H×W at each image's (top, left) ``offsets`` (B, 2), and
    mirror the images where ``flips`` (B,) is true — one gather for the whole batch."""
    batch, channels, height, width = images.shape
    device = images.device
    padded = F.pad(images, (padding, padding, padding, padding))
    rows = offsets[:, 0:1] + torch.arange(height, device=device)  # (B, H)
    columns = torch.arange(width, device=device).expand(batch, width)
    # Cropping then mirroring reads column left + (W − 1 − j) for output column j.
    columns = offsets[:, 1:2] + torch.where(flips[:, None], width - 1 - columns, columns)  # (B, W)
    return padded[
        torch.arange(batch, device=device)[:, None, None, None],
        torch.arange(channels, device=device)[None, :, None, None],
        rows[:, None, :, None],
        columns[:, None, None, :],
    ]


def flip(images: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Mirror the images (B, C, H, W) where ``flips`` (B,) is true."""
    return torch.where(flips[:, None, None, None], images.flip(-1), images)
