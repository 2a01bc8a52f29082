"""What an evaluation during training (``eval_every``) and at its end (``eval_at_end``) measures.

The test set's accuracies, as ``vmcr2 eval`` computes them — nearest subspace (eq. 8, ⌊d/k⌋
directions), kNN (cosine, k = 10), CE's head — or, with ``val_fraction``, the validation
split's; and what follows the class subspaces along a run: the exact rates of the training
features (float64), their classes' effective dimensions, NC1, the principal angles between
the class subspaces, and nearest subspace at other numbers of directions p and with each
class's own number (the fewest holding 90% of its energy, at most ⌊d/k⌋).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from vmcr2_cli.evaluation.evaluate import DOMINANT_ENERGY, MAX_CLASSES_IN_MATRIX
from vmcr2_cli.evaluation.knn import knn_predict
from vmcr2_cli.evaluation.nearest_subspace import (accuracy, default_components, head_accuracy,
                                                   predict_nearest_subspace)
from vmcr2_cli.evaluation.statistics import class_statistics
from vmcr2_cli.evaluation.structure import (effective_dimension, energy_bases, off_diagonal, principal_cosines,
                                            within_class_variability)
from vmcr2_cli.numbers import finite

# Eq. 8's p measured besides ⌊d/k⌋, where k·p stays small enough to be cheap: how nearest
# subspace depends on the directions it uses as training goes on.
PROBED_COMPONENTS = (1, 2, 4, 8, 16, 32)
MAX_PROBED_DIRECTIONS = 2048  # k·p: the projections cost N·d·k·p


@torch.no_grad()
def measure(trainer) -> dict[str, Any]:
    """One evaluation of ``trainer``'s featurizer in eval mode: an ``eval`` line's values."""
    started = time.perf_counter()
    dataset, config = trainer.dataset, trainer.config
    k, d = dataset.num_classes, config.feature_dim
    held_out = dataset.val_images is not None
    images, labels = (dataset.val_images, dataset.val_labels) if held_out else (dataset.test_images,
                                                                                 dataset.test_labels)
    train_z, train_y = trainer.evaluation_features(*dataset.reference())
    test_z, test_y = trainer.evaluation_features(images, labels)
    p = default_components(d, k)
    probed = sorted({q for q in PROBED_COMPONENTS if q <= d and k * q <= MAX_PROBED_DIRECTIONS} | {p})
    stats = class_statistics(train_z, train_y, k, components=max(probed), eps2=config.eps2)
    bases = stats.bases.to(test_z.device, torch.float32)
    by_components = {q: accuracy(predict_nearest_subspace(test_z, bases[..., :q]), test_y) for q in probed}
    dominant = energy_bases(stats.bases[..., :p], stats.eigenvalues, DOMINANT_ENERGY)  # as vmcr2 eval's
    present = stats.counts > 0
    result: dict[str, Any] = {
        "split": "val" if held_out else "test",
        "nearest_subspace_accuracy": by_components[p],
        "components": p,
        "nearest_subspace_energy_accuracy": accuracy(
            predict_nearest_subspace(test_z, dominant.to(test_z.device, torch.float32)), test_y),
        "knn_accuracy": accuracy(knn_predict(train_z, train_y, test_z, k), test_y),
    }
    head = head_accuracy(trainer.model, trainer.objective, test_z, test_y)
    if head is not None:
        result["head_accuracy"] = head
    result.update({
        "exact_delta_r": stats.delta_r, "exact_r": stats.r, "exact_r_c": stats.r_c,
        "nc1": within_class_variability(stats).nc1,
        "mean_effective_dim": finite(effective_dimension(stats.eigenvalues)[present].double().mean().item()),
        "mean_abs_cos": _mean_abs_cos(dominant) if k <= MAX_CLASSES_IN_MATRIX else None,
        "nearest_subspace_accuracy_by_components": {str(q): value for q, value in by_components.items()},
        "eval_seconds": time.perf_counter() - started,
    })
    return result


def _mean_abs_cos(dominant: torch.Tensor) -> float | None:
    """Mean |cos| of the principal angles between two classes' dominant subspaces (as vmcr2 eval's)."""
    between = off_diagonal(principal_cosines(dominant))
    return finite(between.double().mean().item()) if between.numel() else None
