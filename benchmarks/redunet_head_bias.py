"""Why a constructed ReduNet's own classifier (eq. 14's π̂: argmin_j ‖Cʲ z‖ by the head's operators) can fall
far below nearest subspace on the same features: for each class j, the mean residual ‖Cʲ z‖ of its own
training samples and of the other classes' ones, the share of test images the head gives each class, and
the head's accuracy against the same rule with each class's residual calibrated on the training set.

    python benchmarks/redunet_head_bias.py runs/…-redunet runs/…-redunet-shift --json OUT.json

argmin_j ‖Cʲ z‖ holds no term for a class's spread: Cʲ = αⱼ(I + αⱼ Zⱼ Zⱼᵀ)⁻¹ is small in every direction
a class spreads into, so a class that spreads into many directions gives small residuals to everyone.
Calibrated: ‖Cʲ z‖ divided by its mean over the training samples of the other classes (how far z is
from class j compared with a typical non-member), or by its mean over class j's own samples; both
scales come from the training set (the construction set, eval's reference), none from the test set.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from vmcr2_cli.evaluation.nearest_subspace import accuracy
from vmcr2_cli.featurizer import load_featurizer
from vmcr2_cli.runs import atomic_write_json


def head_residuals(featurizer, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """‖Cʲ z‖ (n, k) of the head for the network's features z of ``images``."""
    model = featurizer.model
    with torch.no_grad():
        return torch.cat([model.head.residuals(model.features(featurizer.preprocess(images[start:start + batch_size])))
                          for start in range(0, len(images), batch_size)])


def measure(run: str) -> dict:
    featurizer = load_featurizer(run, device="cpu")
    dataset = featurizer.dataset()
    k = featurizer.num_classes
    train_labels, test_labels = dataset.train_labels, dataset.test_labels
    train = head_residuals(featurizer, dataset.train_images)
    test = head_residuals(featurizer, dataset.test_images)
    own = torch.stack([train[train_labels == j, j].mean() for j in range(k)])
    others = torch.stack([train[train_labels != j, j].mean() for j in range(k)])
    predicted = test.argmin(1)
    return {
        "run": featurizer.run.name, "model": featurizer.config.model, "layers": len(featurizer.model.layers),
        "test_images": len(test_labels),
        "own_mean_residual": own.tolist(), "others_mean_residual": others.tolist(),
        "head_share_by_class": (torch.bincount(predicted, minlength=k).double() / len(predicted)).tolist(),
        "head_accuracy": accuracy(predicted, test_labels),
        "calibrated_by_others_accuracy": accuracy((test / others).argmin(1), test_labels),
        "calibrated_by_own_accuracy": accuracy((test / own).argmin(1), test_labels),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="runs of model = redunet or redunet-shift (constructed)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here too")
    args = parser.parse_args()
    results = []
    for run in args.runs:  # a run takes minutes (its test set through every layer): each printed when done
        results.append(measure(run))
        print(json.dumps(results[-1]), flush=True)
    if args.json is not None:
        atomic_write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
