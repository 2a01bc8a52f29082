"""The evaluation a training run prints when it ends: nearest-subspace and kNN test accuracy."""

from __future__ import annotations

import torch

from vmcr2_cli.evaluation.knn import knn_predict
from vmcr2_cli.evaluation.nearest_subspace import accuracy, default_components, head_accuracy
from vmcr2_cli.evaluation.statistics import nearest_subspace_predictions


@torch.no_grad()
def final_evaluation(trainer) -> dict[str, float | int]:
    """Nearest-subspace (eq. 8, ⌊d/k⌋ directions) and kNN (cosine, k = 10) test accuracy, as ``vmcr2 eval``
    computes them; for CE also the head's. kNN is the self-supervised objectives' measure: it needs no
    subspace per class."""
    dataset, config = trainer.dataset, trainer.config
    k = dataset.num_classes
    train_z, train_y = trainer.evaluation_features(dataset.train_images, dataset.train_labels)
    test_z, test_y = trainer.evaluation_features(dataset.test_images, dataset.test_labels)
    components = default_components(config.feature_dim, k)
    _, predicted = nearest_subspace_predictions(train_z, train_y, test_z, k, components=components, eps2=config.eps2)
    result: dict[str, float | int] = {
        "nearest_subspace_accuracy": accuracy(predicted, test_y),
        "components": components,
        "knn_accuracy": accuracy(knn_predict(train_z, train_y, test_z, k), test_y),
    }
    head = head_accuracy(trainer.objective, test_z, test_y)
    if head is not None:
        result["head_accuracy"] = head
    return result
