"""ReduNet on the mixtures of Gaussians (the MCR² lecture's first experiment): features and rates along the
layers, of runs that ``vmcr2 train`` constructed with the two profiles.

    vmcr2 train -p redunet-gaussians-2d --name redunet-gaussians-2d   # and -3d
    python benchmarks/redunet_gaussians.py runs/…-redunet-gaussians-2d runs/…-redunet-gaussians-3d \
        --out benchmarks/figures --json benchmarks/runs/redunet/gaussians.json

The data (``vmcr2_cli/data/gaussians.py``): each class two Gaussians (σ = 0.15) at opposite points of the
unit circle (sphere), projected onto it, so that it lies near a line through the origin; 500 points a
class. The profiles hold the lecture's settings: L = 2000 layers, η = 0.5, ε² = 0.01, λ = 500. Writes, per
run, a figure of the points before and their features after (``redunet-gaussians-2d.png``, ``-3d.png``)
with R, R_c and ΔR of the construction set along the layers (the run's epoch lines); prints the rates at
the first and last layer, the angles between the classes' lines, before and after, of the training
points and of the test points (a fresh draw, whose memberships are π̂'s, eq. 14), and what the overlap of
the Gaussians allows: kNN on the points themselves.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from vmcr2_cli.evaluation.knn import knn_predict
from vmcr2_cli.evaluation.nearest_subspace import accuracy
from vmcr2_cli.featurizer import load_featurizer
from vmcr2_cli.runs import atomic_write_json


def principal_angle_degrees(Z: torch.Tensor, labels: torch.Tensor, a: int, b: int) -> float:
    """The angle between the top directions of classes a and b (0: the same line, 90: orthogonal)."""
    tops = [torch.linalg.svd(Z[labels == j], full_matrices=False)[2][0] for j in (a, b)]
    return math.degrees(math.acos(min(1.0, abs(float(tops[0] @ tops[1])))))


def measure(run: str, out: Path | None) -> dict:
    featurizer = load_featurizer(run, device="cpu")
    dataset = featurizer.dataset()
    k = featurizer.num_classes
    pairs = [(a, b) for a in range(k) for b in range(a + 1, k)]
    rates = [line for line in featurizer.run.read_metrics() if line.get("type") == "epoch"]
    splits = {"train": (dataset.train_images, dataset.train_labels), "test": (dataset.test_images, dataset.test_labels)}
    result = {"run": featurizer.run.name, "dataset": dataset.name, "classes": k, "layers": len(rates),
              "rates_first": {key: rates[0][key] for key in ("r", "r_c", "delta_r")},
              "rates_last": {key: rates[-1][key] for key in ("r", "r_c", "delta_r")},
              "delta_r_nondecreasing": all(b["delta_r"] >= a["delta_r"] - 1e-9 for a, b in zip(rates, rates[1:]))}
    drawn = {}
    for split, (images, labels) in splits.items():
        with torch.no_grad():
            X = featurizer.preprocess(images).flatten(1).double()  # uint8 1×1×D → the points themselves
        Z = featurizer.features(images).double()
        result[f"{split}_angle_before"] = [principal_angle_degrees(X, labels, a, b) for a, b in pairs]
        result[f"{split}_angle_after"] = [principal_angle_degrees(Z, labels, a, b) for a, b in pairs]
        drawn[split] = (X, Z, labels)
    # What the overlap of the Gaussians allows: eval's kNN (k = 10, cosine) on the points themselves.
    (X_train, _, train_labels), (X_test, _, test_labels) = drawn["train"], drawn["test"]
    result["test_knn_accuracy_of_points"] = accuracy(knn_predict(X_train, train_labels, X_test, k), test_labels)
    if out is not None:
        draw(*drawn["train"], rates, out / f"redunet-{dataset.name}.png")
    return result


def draw(X: torch.Tensor, Z: torch.Tensor, labels: torch.Tensor, rates: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    dim = X.shape[1]
    figure = plt.figure(figsize=(12, 4))
    for column, (points, title) in enumerate(((X, "points X"), (Z, f"ReduNet features, {len(rates)} layers"))):
        axes = figure.add_subplot(1, 3, column + 1, projection="3d" if dim == 3 else None)
        for j in labels.unique().tolist():
            axes.scatter(*points[labels == j].numpy().T, s=4 if column == 0 else 24, label=f"class {j}")
        axes.set_title(title)
        if dim == 2:
            axes.set_aspect("equal")
    axes = figure.add_subplot(1, 3, 3)
    layers = range(1, len(rates) + 1)
    for key, label in (("r", "R"), ("r_c", "R_c"), ("delta_r", "ΔR")):
        axes.plot(layers, [line[key] for line in rates], label=label)
    axes.set_xlabel("layer")
    axes.set_title("rates of the construction set")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="runs of the redunet-gaussians-2d / -3d profiles")
    parser.add_argument("--out", type=Path, default=None, help="folder for the figures")
    parser.add_argument("--json", type=Path, default=None, help="write the results here too")
    args = parser.parse_args()
    results = [measure(run, args.out) for run in args.runs]
    print(json.dumps(results, indent=2))
    if args.json is not None:
        atomic_write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
