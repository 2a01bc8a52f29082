"""The evaluation a training run prints when it ends: nearest-subspace test accuracy."""

from __future__ import annotations

import torch

from vmcr2_cli.evaluation.nearest_subspace import default_components, nearest_subspace_accuracy
from vmcr2_cli.training.latching import dataset_class_moments


@torch.no_grad()
def final_evaluation(trainer) -> dict[str, float | int]:
    """Nearest-subspace test accuracy (eq. 8, ⌊d/k⌋ directions); for CE also the head's."""
    dataset, config = trainer.dataset, trainer.config
    k = dataset.num_classes
    train_z, train_y = trainer.evaluation_features(dataset.train_images, dataset.train_labels)
    test_z, test_y = trainer.evaluation_features(dataset.test_images, dataset.test_labels)
    moments, _ = dataset_class_moments(train_z, train_y, k)
    components = default_components(config.feature_dim, k)
    result: dict[str, float | int] = {
        "nearest_subspace_accuracy": nearest_subspace_accuracy(moments, test_z, test_y, components),
        "components": components,
    }
    cross_entropy = getattr(trainer.objective, "cross_entropy", None)
    if cross_entropy is not None:
        result["head_accuracy"] = (cross_entropy.logits(test_z).argmax(1) == test_y).float().mean().item()
    return result
