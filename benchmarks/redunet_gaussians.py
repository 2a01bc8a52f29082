"""ReduNet on mixtures of Gaussians (the MCR² lecture's first experiment): features and rates along the layers.

    python benchmarks/redunet_gaussians.py --out benchmarks/figures --json benchmarks/runs/redunet/gaussians.json

Each class is a mixture of two Gaussians on the unit circle (sphere) at opposite points, so that
it lies near a line through the origin; the classes' lines start close together. The lecture's
settings: m = 500 a class... here per class (``--per-class``), η = 0.5, ε = 0.1 (ε² = 0.01),
L layers (the lecture: 2000; ``--layers``). Writes, per dimension, a figure of the samples
before and the features after (``redunet-gaussians-2d.png``, ``-3d.png``) and one of R, R_c
and ΔR of the construction set along the layers; prints the rates at the first and last layer
and how the features of a held-out draw (classified by π̂, eq. 14) land.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from vmcr2_cli.models.redunet import ReduNetSettings, construct_redunet
from vmcr2_cli.objectives.rate_reduction import rate_reduction
from vmcr2_cli.runs import atomic_write_json

# Each class's two opposite centres, as angles (2D) or unit vectors (3D): classes start 0.5–0.7 rad apart.
CENTRES = {
    2: [(0.0,), (0.6,)],
    3: [(0.0, 0.2), (0.6, 0.4), (1.2, -0.1)],
}


def centre(angles: tuple[float, ...]) -> torch.Tensor:
    if len(angles) == 1:
        return torch.tensor([math.cos(angles[0]), math.sin(angles[0])], dtype=torch.float64)
    azimuth, elevation = angles
    return torch.tensor([math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth),
                         math.sin(elevation)], dtype=torch.float64)


def mixture(dim: int, per_class: int, spread: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit samples of each class around ±its centre (a Gaussian of ``spread`` at each, projected)."""
    rows, labels = [], []
    for j, angles in enumerate(CENTRES[dim]):
        signs = torch.where(torch.rand(per_class, generator=generator) < 0.5, -1.0, 1.0).double()
        points = signs[:, None] * centre(angles) + spread * torch.randn(per_class, dim, generator=generator,
                                                                         dtype=torch.float64)
        rows.append(torch.nn.functional.normalize(points, dim=1))
        labels.append(torch.full((per_class,), j))
    return torch.cat(rows), torch.cat(labels)


def principal_angle_degrees(Z: torch.Tensor, labels: torch.Tensor, a: int, b: int) -> float:
    """The angle between the top directions of classes a and b (0: the same line, 90: orthogonal)."""
    tops = [torch.linalg.svd(Z[labels == j], full_matrices=False)[2][0] for j in (a, b)]
    return math.degrees(math.acos(min(1.0, abs(float(tops[0] @ tops[1])))))


def experiment(dim: int, args: argparse.Namespace) -> dict:
    generator = torch.Generator().manual_seed(args.seed)
    X, labels = mixture(dim, args.per_class, args.spread, generator)
    held_out, held_labels = mixture(dim, args.per_class, args.spread, generator)
    k = len(CENTRES[dim])
    settings = ReduNetSettings(layers=args.layers, eta=args.eta, eps2=args.eps2, lam=args.lam)
    net, rates = construct_redunet(X, labels, k, settings)
    with torch.no_grad():
        Z = net(X)
        Z_held = net(held_out)
    first, last = rates[0], rates[-1]
    pairs = [(a, b) for a in range(k) for b in range(a + 1, k)]
    result = {
        "dim": dim, "classes": k, "per_class": args.per_class, "layers": args.layers, "eta": args.eta,
        "eps2": args.eps2, "lam": args.lam,
        "rates_first": {"r": first.r.item(), "r_c": first.r_c.item(), "delta_r": first.delta_r.item()},
        "rates_last": {"r": last.r.item(), "r_c": last.r_c.item(), "delta_r": last.delta_r.item()},
        "delta_r_nondecreasing": all(b.delta_r.item() >= a.delta_r.item() - 1e-9 for a, b in zip(rates, rates[1:])),
        "angle_between_classes_before": [principal_angle_degrees(X, labels, a, b) for a, b in pairs],
        "angle_between_classes_after": [principal_angle_degrees(Z, labels, a, b) for a, b in pairs],
        "held_out_delta_r_before": rate_reduction(held_out, held_labels, k, args.eps2).delta_r.item(),
        "held_out_delta_r_after": rate_reduction(Z_held, held_labels, k, args.eps2).delta_r.item(),
        "held_out_angle_after": [principal_angle_degrees(Z_held, held_labels, a, b) for a, b in pairs],
    }
    if args.out is not None:
        draw(dim, X, Z, labels, rates, args.out)
    return result


def draw(dim: int, X: torch.Tensor, Z: torch.Tensor, labels: torch.Tensor, rates: list, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    figure = plt.figure(figsize=(12, 4))
    for column, (points, title) in enumerate(((X, "samples X"), (Z, f"ReduNet features, {len(rates) - 1} layers"))):
        axes = figure.add_subplot(1, 3, column + 1, projection="3d" if dim == 3 else None)
        for j in labels.unique().tolist():
            chosen = points[labels == j].numpy()
            axes.scatter(*chosen.T, s=4, label=f"class {j}")
        axes.set_title(title)
        if dim == 2:
            axes.set_aspect("equal")
    axes = figure.add_subplot(1, 3, 3)
    layers = range(len(rates))
    for name, label in (("r", "R"), ("r_c", "R_c"), ("delta_r", "ΔR")):
        axes.plot(layers, [getattr(rate, name).item() for rate in rates], label=label)
    axes.set_xlabel("layer")
    axes.set_title("rates of the construction set")
    axes.legend()
    figure.tight_layout()
    figure.savefig(out / f"redunet-gaussians-{dim}d.png", dpi=110)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=500)
    parser.add_argument("--layers", type=int, default=2000)
    parser.add_argument("--eta", type=float, default=0.5)
    parser.add_argument("--eps2", type=float, default=0.01)
    parser.add_argument("--lam", type=float, default=500.0)
    parser.add_argument("--spread", type=float, default=0.15, help="standard deviation of each Gaussian")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="folder for the figures")
    parser.add_argument("--json", type=Path, default=None, help="write the results here too")
    args = parser.parse_args()
    results = [experiment(dim, args) for dim in (2, 3)]
    print(json.dumps(results, indent=2))
    if args.json is not None:
        atomic_write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
