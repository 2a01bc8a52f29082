"""A mixture of k low-dimensional subspaces in pixel space, quantised to uint8.

Class j's images are x = 0.5 + U_j c + n on the [0, 1] scale: U_j an orthonormal
(C·H·W)×s basis drawn at random, c ~ N(0, σ_c² I_s) with σ_c chosen so that each pixel's
signal has standard deviation :data:`SIGNAL_STD`, and n white noise of standard deviation
``noise``. After normalisation by mean 0.5 the classes are (noisy) linear subspaces — the
structure MCR² is designed to find. Images are clipped to [0, 1] and quantised to uint8 so
that they go through exactly the pipeline real images do.

Generated class by class (each class one batched draw and one matrix product, classes
in parallel threads): 100k images of 3×32×32 with k = 200 take seconds on a CPU.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

from vmcr2_cli.data.dataset import LoadContext, Splits
from vmcr2_cli.data.seeding import cpu_generator
from vmcr2_cli.errors import BadInput

SIGNAL_STD = 0.2

DEFAULTS = {
    "num_classes": 10,
    "image_shape": (3, 32, 32),
    "subspace_dim": 3,
    "train_per_class": 500,
    "test_per_class": 100,
    "noise": 0.05,
}


def make_subspace_mixture(
    num_classes: int = 10,
    image_shape: Sequence[int] = (3, 32, 32),
    subspace_dim: int = 3,
    train_per_class: int = 500,
    test_per_class: int = 100,
    noise: float = 0.05,
    seed: int = 0,
) -> Splits:
    """Both splits of the synthetic dataset; the same arguments give the same bytes."""
    _validate(num_classes, image_shape, subspace_dim, train_per_class, test_per_class, noise)
    channels, height, width = (int(n) for n in image_shape)
    pixels = channels * height * width
    # One generator per class and purpose: class j's data do not depend on k, on the
    # chunking, or on the thread that makes them, and classes are made in parallel.
    gaussian = torch.stack(
        [torch.randn(pixels, subspace_dim, generator=cpu_generator(seed, "synthetic-basis", j)) for j in range(num_classes)]
    )
    bases = torch.linalg.qr(gaussian).Q  # (k, D, s), orthonormal columns
    coefficient_std = SIGNAL_STD * math.sqrt(pixels / subspace_dim)

    def split(per_class: int, purpose: str) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.empty(num_classes, per_class, pixels, dtype=torch.uint8)

        def make_class(j: int) -> None:
            rng = cpu_generator(seed, purpose, j)
            coefficients = torch.randn(per_class, subspace_dim, generator=rng) * coefficient_std
            x = torch.randn(per_class, pixels, generator=rng).mul_(noise)
            x.addmm_(coefficients, bases[j].T).add_(0.5)
            images[j] = x.mul_(255).round_().clamp_(0, 255).to(torch.uint8)

        # torch releases the GIL inside its kernels: the random draws, the bulk of the cost,
        # run on every core.
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            list(pool.map(make_class, range(num_classes)))
        labels = torch.arange(num_classes).repeat_interleave(per_class)
        order = torch.randperm(labels.numel(), generator=cpu_generator(seed, purpose + "-order"))
        return images.reshape(-1, channels, height, width)[order], labels[order]

    train_images, train_labels = split(train_per_class, "synthetic-train")
    test_images, test_labels = split(test_per_class, "synthetic-test")
    class_names = [f"subspace-{j}" for j in range(num_classes)]
    source = (
        f"synthetic: k={num_classes}, shape={channels}x{height}x{width}, s={subspace_dim}, "
        f"{train_per_class}+{test_per_class} per class, noise={noise}, seed={seed}"
    )
    return Splits(train_images, train_labels, test_images, test_labels, class_names, source)


def _validate(num_classes, image_shape, subspace_dim, train_per_class, test_per_class, noise) -> None:
    def bad(message: str):
        raise BadInput(f"synthetic dataset: {message}")

    if len(tuple(image_shape)) != 3 or any(int(n) < 1 for n in image_shape):
        bad(f"image_shape must be three positive sizes (C, H, W), got {tuple(image_shape)}")
    pixels = math.prod(int(n) for n in image_shape)
    if int(num_classes) < 1:
        bad(f"num_classes must be at least 1, got {num_classes}")
    if not 1 <= int(subspace_dim) <= pixels:
        bad(f"subspace_dim must be in [1, {pixels}] (the number of pixels), got {subspace_dim}")
    if int(train_per_class) < 1 or int(test_per_class) < 1:
        bad(f"train_per_class and test_per_class must be at least 1, got {train_per_class} and {test_per_class}")
    if not float(noise) >= 0:
        bad(f"noise must be non-negative, got {noise}")


def load_synthetic(ctx: LoadContext) -> Splits:
    """The registry's loader: the options in ``ctx.options`` over :data:`DEFAULTS`."""
    options = {**DEFAULTS, **ctx.options}
    return make_subspace_mixture(**options, seed=ctx.seed)
