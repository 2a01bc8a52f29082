"""The nearest-subspace classifier of eq. 8.

Each class j is represented by V_j, the top p principal directions of the uncentred
second moment Σ_{i∈j} z_i z_iᵀ of its training features (p = ⌊d/k⌋ in the paper); a
test point goes to the class whose subspace leaves the smallest residual
‖(I − V_j V_jᵀ) z‖², i.e. the largest projection ‖V_jᵀ z‖².
"""

from __future__ import annotations

import torch

from vmcr2_cli.models.redunet import ConstructedNetwork

from vmcr2_cli.objectives.numerics import symmetric_eigh


def default_components(feature_dim: int, num_classes: int) -> int:
    """⌊d/k⌋ directions per class, as in the paper (at least one)."""
    return max(1, feature_dim // num_classes)


def subspaces_from_eigh(eigenvalues: torch.Tensor, eigenvectors: torch.Tensor, components: int,
                        rel_tol: float = 1e-6) -> torch.Tensor:
    """The top ``components`` directions from ``torch.linalg.eigh`` output (ascending order).

    eigenvalues: (k, d); eigenvectors: (k, d, d). Returns (k, d, p) with orthonormal
    columns, except that directions beyond a class's numerical rank (eigenvalue below
    ``rel_tol`` times the class's largest) are zero: a class with fewer samples than p
    has no meaningful further directions, and arbitrary ones would attract test points.
    A class with no samples gets an all-zero basis and never wins.
    """
    if components < 1:
        raise ValueError(f"components must be at least 1, got {components}")
    top_values = eigenvalues.flip(-1)[:, :components]
    top_vectors = eigenvectors.flip(-1)[..., :components]
    largest = eigenvalues[:, -1:].clamp_min(torch.finfo(eigenvalues.dtype).tiny)
    keep = top_values > rel_tol * largest
    return top_vectors * keep.unsqueeze(1)


def class_subspaces(second_moments: torch.Tensor, components: int, rel_tol: float = 1e-6) -> torch.Tensor:
    """Top ``components`` principal directions of each class's uncentred second moment.

    second_moments: (k, d, d), Σ_{i∈j} z_i z_iᵀ. Returns (k, d, p) in the moments' dtype
    (the eigendecomposition runs in float64); see :func:`subspaces_from_eigh`.
    """
    eigenvalues, eigenvectors = symmetric_eigh(second_moments)  # ascending
    return subspaces_from_eigh(eigenvalues, eigenvectors, components, rel_tol).to(second_moments.dtype)


def subspace_ranks(bases: torch.Tensor) -> torch.Tensor:
    """(k,) the number of non-zero directions of each class's basis (k, d, p)."""
    return (bases.abs().amax(dim=1) > 0).sum(dim=-1)


def predict_nearest_subspace(Z: torch.Tensor, bases: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """argmin_j ‖(I − V_j V_jᵀ) z‖² = argmax_j ‖V_jᵀ z‖² (eq. 8) for each row z of Z.

    Z: (n, d); bases: (k, d, p) with orthonormal (or zero) columns. Returns (n,) int64
    class ids. Rows are processed ``chunk`` at a time, so memory is chunk·k·p.
    """
    predictions = []
    for start in range(0, Z.shape[0], chunk):
        block = Z[start:start + chunk].to(device=bases.device, dtype=bases.dtype)
        projections = torch.einsum("nd,kdp->nkp", block, bases)
        predictions.append(projections.pow(2).sum(-1).argmax(1))
    if not predictions:
        return torch.zeros(0, dtype=torch.int64, device=bases.device)
    return torch.cat(predictions)


def accuracy(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    """The fraction of ``predicted`` equal to ``labels`` (NaN for none), the one accuracy train and eval print."""
    if predicted.numel() == 0:
        return float("nan")
    return (predicted == labels.to(predicted.device)).double().mean().item()


def head_accuracy(model, objective, test_z: torch.Tensor, test_y: torch.Tensor) -> float | None:
    """The test accuracy on ``test_z`` of the featurizer's own classifier, its head: CE's linear head, or a
    ReduNet's estimated memberships π̂ (eq. 14 of the lecture, argmin_j ‖Cʲ z‖); None without one."""
    cross_entropy = getattr(objective, "cross_entropy", None)
    if cross_entropy is not None:
        return accuracy(cross_entropy.logits(test_z).argmax(1), test_y)
    if isinstance(model, ConstructedNetwork) and model.head is not None:
        return accuracy(model.classify(test_z), test_y)
    return None


def per_class_recall(predicted: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(k,) float64: the fraction of each class's test samples predicted correctly (NaN if none)."""
    labels = labels.to(predicted.device)
    hits = torch.bincount(labels[predicted == labels], minlength=num_classes).double()
    totals = torch.bincount(labels, minlength=num_classes).double()
    return torch.where(totals > 0, hits / totals.clamp_min(1), torch.full_like(totals, float("nan"))).cpu()


def residuals(Z: torch.Tensor, bases: torch.Tensor) -> torch.Tensor:
    """(n, k) ‖(I − V_j V_jᵀ) z‖² = ‖z‖² − ‖V_jᵀ z‖² of each row z of Z and class j (eq. 8's criterion;
    its argmin is :func:`predict_nearest_subspace`'s class)."""
    Z = Z.to(device=bases.device, dtype=bases.dtype)
    projections = torch.einsum("nd,kdp->nkp", Z, bases).pow(2).sum(-1)
    return (Z.pow(2).sum(1, keepdim=True) - projections).clamp_min(0)
