"""The nearest-subspace classifier of eq. 8."""

from __future__ import annotations

import torch


def class_subspaces(second_moments: torch.Tensor, components: int, rel_tol: float = 1e-6) -> torch.Tensor:
    """Top ``components`` principal directions of each class's uncentred second moment.

    second_moments: (k, d, d), Σ_{i∈j} z_i z_iᵀ. Returns (k, d, p): orthonormal columns, with
    the directions beyond a class's rank zeroed — a class with fewer samples than ``p``
    has no meaningful further directions, and arbitrary ones would attract test points.
    """
    eigenvalues, eigenvectors = torch.linalg.eigh(second_moments.double())  # ascending
    top_values = eigenvalues.flip(-1)[:, :components]
    top_vectors = eigenvectors.flip(-1)[..., :components]
    keep = top_values > rel_tol * eigenvalues[:, -1:].clamp_min(torch.finfo(torch.float64).tiny)
    return (top_vectors * keep.unsqueeze(1)).to(second_moments.dtype)


def default_components(feature_dim: int, num_classes: int) -> int:
    """⌊d/k⌋ directions per class, as in the paper (at least one)."""
    return max(1, feature_dim // num_classes)


def predict_nearest_subspace(Z: torch.Tensor, bases: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """argmin_j ‖(I − V_j V_jᵀ) z‖² = argmax_j ‖V_jᵀ z‖² (eq. 8) for each row z of Z."""
    predictions = []
    for start in range(0, Z.shape[0], chunk):
        block = Z[start:start + chunk].to(bases.dtype)
        projections = torch.einsum("nd,kdp->nkp", block, bases)
        predictions.append(projections.pow(2).sum(-1).argmax(1))
    return torch.cat(predictions)


def nearest_subspace_accuracy(train_moments: torch.Tensor, test_features: torch.Tensor,
                              test_labels: torch.Tensor, components: int) -> float:
    """Test accuracy of eq. 8 with subspaces fitted on the training set's class moments."""
    bases = class_subspaces(train_moments, components)
    predicted = predict_nearest_subspace(test_features, bases)
    return (predicted == test_labels.to(predicted.device)).float().mean().item()
