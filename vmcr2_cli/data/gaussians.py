"""The MCR² lecture's mixtures of Gaussians (its first ReduNet experiment), as datasets of points.

Each class is two Gaussians of standard deviation :data:`SPREAD` at opposite points ±c_j of the
unit circle (2D, two classes) or sphere (3D, three classes), projected onto the sphere: a class
lies near a line through the origin, and the classes' lines start 34–71° apart. The lecture's
m = 500 samples a class, for training and again (a fresh draw) for testing.

A point p is stored as a 1×1×D "image" x = 0.5 + 0.5·p, quantised to uint8, so that it goes through
the pipeline every image does (normalised by mean 0.5, std 0.5 back to p, to within 1/255): the
quantisation's error (σ ≈ 0.002) is small beside the Gaussians' 0.15.
"""

from __future__ import annotations

import math

import torch

from vmcr2_cli.data.dataset import LoadContext, Splits
from vmcr2_cli.data.seeding import cpu_generator

SPREAD = 0.15
PER_CLASS = 500

# Each class's centre ±c_j, as an angle (2D) or (azimuth, elevation) (3D).
CENTRES: dict[int, list[tuple[float, ...]]] = {
    2: [(0.0,), (0.6,)],
    3: [(0.0, 0.2), (0.6, 0.4), (1.2, -0.1)],
}


def centre(angles: tuple[float, ...]) -> torch.Tensor:
    """The unit vector at ``angles``: (θ,) on the circle, (azimuth, elevation) on the sphere."""
    if len(angles) == 1:
        return torch.tensor([math.cos(angles[0]), math.sin(angles[0])], dtype=torch.float64)
    azimuth, elevation = angles
    return torch.tensor([math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth),
                         math.sin(elevation)], dtype=torch.float64)


def mixture(dim: int, per_class: int, spread: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 unit points (k·per_class, dim), class by class, and their labels: each class's points around
    ±its centre (a Gaussian of ``spread`` at each, the sign a fair coin), projected onto the sphere."""
    rows, labels = [], []
    for j, angles in enumerate(CENTRES[dim]):
        signs = torch.where(torch.rand(per_class, generator=generator) < 0.5, -1.0, 1.0).double()
        points = signs[:, None] * centre(angles) + spread * torch.randn(per_class, dim, generator=generator,
                                                                         dtype=torch.float64)
        rows.append(torch.nn.functional.normalize(points, dim=1))
        labels.append(torch.full((per_class,), j))
    return torch.cat(rows), torch.cat(labels)


def as_images(points: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 1, 1, D) of points in [−1, 1]^D: x = 0.5 + 0.5·p on the [0, 1] scale."""
    return points.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)[:, None, None, :]


def load_mixture(dim: int, ctx: LoadContext) -> Splits:
    """Both splits of the ``dim``-D mixture, drawn from the run's seed, in a seeded order."""

    def split(purpose: str) -> tuple[torch.Tensor, torch.Tensor]:
        points, labels = mixture(dim, PER_CLASS, SPREAD, cpu_generator(ctx.seed, purpose, dim))
        order = torch.randperm(len(labels), generator=cpu_generator(ctx.seed, purpose + "-order", dim))
        return as_images(points[order]), labels[order]

    train_images, train_labels = split("gaussians-train")
    test_images, test_labels = split("gaussians-test")
    classes = len(CENTRES[dim])
    source = f"gaussians: {classes} classes in {dim}D, {PER_CLASS}+{PER_CLASS} points a class, σ={SPREAD}, seed={ctx.seed}"
    return Splits(train_images, train_labels, test_images, test_labels, [f"line-{j}" for j in range(classes)], source)


def load_gaussians_2d(ctx: LoadContext) -> Splits:
    return load_mixture(2, ctx)


def load_gaussians_3d(ctx: LoadContext) -> Splits:
    return load_mixture(3, ctx)
