"""The nearest-subspace classifier of eq. 8 and the kNN view beside it."""

from __future__ import annotations

import torch

from vmcr2_cli.evaluation.knn import knn_predict
from vmcr2_cli.evaluation.nearest_subspace import (class_subspaces, default_components, per_class_recall,
                                                   predict_nearest_subspace, subspace_ranks)
from vmcr2_cli.evaluation.statistics import nearest_subspace_predictions
from vmcr2_cli.objectives import class_second_moments


def random_frame(d: int, seed: int = 0) -> torch.Tensor:
    """A random orthonormal basis of R^d (columns)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(d, d, dtype=torch.float64, generator=generator))[0]


def orthogonal_subspace_features(per_class: list[int], dim: int = 3, d: int = 16, seed: int = 0,
                                 basis: torch.Tensor | None = None):
    """Unit features of class j drawn from span(basis[:, j·dim:(j+1)·dim]): mutually orthogonal subspaces.

    ``seed`` draws the samples; the subspaces are ``basis`` (default: ``random_frame(d)``).
    Returns (features, labels, basis).
    """
    basis = random_frame(d) if basis is None else basis
    generator = torch.Generator().manual_seed(seed + 1000)
    features, labels = [], []
    for j, n in enumerate(per_class):
        block = basis[:, j * dim:(j + 1) * dim]
        z = torch.randn(n, dim, dtype=torch.float64, generator=generator) @ block.T
        features.append(torch.nn.functional.normalize(z, dim=1))
        labels.append(torch.full((n,), j))
    return torch.cat(features), torch.cat(labels), basis


def test_default_components_is_floor_d_over_k_and_at_least_one():
    assert default_components(128, 10) == 12
    assert default_components(500, 200) == 2
    assert default_components(128, 200) == 1


def test_nearest_subspace_is_exact_on_features_on_orthogonal_subspaces():
    train_z, train_y, basis = orthogonal_subspace_features([50, 60, 40, 55], seed=0)
    test_z, test_y, _ = orthogonal_subspace_features([20, 20, 20, 20], seed=1, basis=basis)  # new points
    moments = class_second_moments(train_z, train_y, 4)
    bases = class_subspaces(moments, components=3)
    # Each basis spans exactly its class's subspace: a test point's residual is 0 there.
    projections = torch.einsum("nd,kdp->nkp", test_z, bases).pow(2).sum(-1)
    torch.testing.assert_close(projections[torch.arange(80), test_y], torch.ones(80, dtype=torch.float64))
    assert (predict_nearest_subspace(test_z, bases) == test_y).all()
    _, predicted = nearest_subspace_predictions(train_z, train_y, test_z, 4, components=3)
    assert (predicted == test_y).all()  # the pipeline train and eval share


def test_a_class_with_fewer_samples_than_directions_keeps_only_its_own_directions():
    # d = 3, p = 3. Class 0 has one training sample (the direction e0), class 1 lies in
    # span(e1, e2). Class 1's test points stray slightly out of their plane. Were class 0
    # given 3 directions, they would span all of R^3 and capture every test point entirely
    # (at best a tie with class 1's arbitrary third direction).
    train_z = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0.6, 0.8], [0, 0.8, -0.6]],
                           dtype=torch.float64)
    train_y = torch.tensor([0, 1, 1, 1, 1])
    moments = class_second_moments(train_z, train_y, 2)
    bases = class_subspaces(moments, components=3)
    assert subspace_ranks(bases).tolist() == [1, 2]
    generator = torch.Generator().manual_seed(0)
    in_plane = torch.nn.functional.normalize(torch.randn(20, 2, dtype=torch.float64, generator=generator), dim=1)
    test_z = torch.nn.functional.normalize(torch.cat([0.1 * torch.ones(20, 1, dtype=torch.float64), in_plane], 1),
                                           dim=1)
    assert (predict_nearest_subspace(test_z, bases) == 1).all()
    assert predict_nearest_subspace(torch.tensor([[-1.0, 0, 0]], dtype=torch.float64), bases).tolist() == [0]


def test_an_absent_class_never_wins():
    train_z, train_y, _ = orthogonal_subspace_features([30, 30], dim=2, d=8)
    bases = class_subspaces(class_second_moments(train_z, train_y, 3), components=2)  # class 2: no samples
    assert subspace_ranks(bases).tolist() == [2, 2, 0]
    assert (predict_nearest_subspace(train_z, bases) == train_y).all()


def test_prediction_in_chunks_equals_prediction_in_one_piece():
    train_z, train_y, _ = orthogonal_subspace_features([40, 40, 40], dim=2, d=8, seed=3)
    noisy = torch.nn.functional.normalize(train_z + 0.4 * torch.randn_like(train_z), dim=1)
    bases = class_subspaces(class_second_moments(train_z, train_y, 3), components=2)
    assert torch.equal(predict_nearest_subspace(noisy, bases, chunk=7), predict_nearest_subspace(noisy, bases))


def test_per_class_recall_counts_each_class_separately():
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    predicted = torch.tensor([0, 1, 1, 1, 0, 2])
    recall = per_class_recall(predicted, labels, num_classes=4)
    torch.testing.assert_close(recall[:3], torch.tensor([0.5, 2 / 3, 1.0], dtype=torch.float64))
    assert torch.isnan(recall[3])  # no test samples of class 3


def test_knn_votes_by_cosine_similarity_and_ignores_norms():
    train_z, train_y, _ = orthogonal_subspace_features([30, 30, 30], dim=2, d=8, seed=4)
    test_z, test_y, _ = orthogonal_subspace_features([10, 10, 10], dim=2, d=8, seed=4)
    assert torch.equal(knn_predict(train_z * 7.0, train_y, test_z * 0.1, num_classes=3, k=10), test_y)
    # k larger than the training set falls back to all of it: majority class 1 wins.
    predicted = knn_predict(torch.eye(3), torch.tensor([1, 1, 0]), torch.ones(1, 3), num_classes=2, k=50)
    assert predicted.tolist() == [1]


def test_knn_in_small_memory_blocks_equals_one_block():
    train_z, train_y, _ = orthogonal_subspace_features([30, 30, 30], dim=3, d=9, seed=5)
    queries = torch.randn(25, 9, dtype=torch.float64)
    assert torch.equal(knn_predict(train_z, train_y, queries, 3, k=5, memory_elements=90 * 3),
                       knn_predict(train_z, train_y, queries, 3, k=5))
