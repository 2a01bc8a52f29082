"""SVM and k-means (scikit-learn) as `vmcr2 eval --methods` runs them: exact scores, known structure, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cli_runner import vmcr2
from vmcr2_cli.errors import BadInput
from vmcr2_cli.evaluation.classical import parse_methods

classical = pytest.importorskip("vmcr2_cli.evaluation.classical")
pytest.importorskip("sklearn")


def orthogonal_subspaces(k: int, dim: int, per_class: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit features in k mutually orthogonal dim-dimensional subspaces of R^d, each class on one side of
    its subspace (positive coefficients), as a trained featurizer's features are: a linear SVM or k-means
    cannot split a class spread symmetrically through the origin."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64, generator=g))[0][:, :k * dim].reshape(d, k, dim)
    labels = torch.arange(k).repeat_interleave(per_class)
    coefficients = torch.randn(k * per_class, dim, dtype=torch.float64, generator=g).abs()
    return F.normalize(torch.einsum("dnc,nc->nd", basis[:, labels], coefficients), dim=1), labels


def test_clustering_accuracy_is_exact_under_any_renaming_of_clusters():
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    assert classical.clustering_accuracy(labels, np.array([5, 5, 3, 3, 9, 9, 9])) == 1.0
    assert classical.clustering_accuracy(labels, np.array([1, 1, 1, 0, 2, 2, 0])) == pytest.approx(5 / 7)
    assert classical.clustering_accuracy(labels, np.zeros(7, dtype=int)) == pytest.approx(3 / 7)


def test_orthogonal_subspaces_are_separated_by_the_svm_and_found_by_kmeans():
    features, labels = orthogonal_subspaces(5, 3, 120, 20, seed=0)
    train, test = torch.arange(600) % 3 != 0, torch.arange(600) % 3 == 0
    assert classical.linear_svm_accuracy(features[train], labels[train], features[test], labels[test]) >= 0.95
    scores = classical.kmeans_scores(features[test], labels[test], 5)
    assert scores["kmeans_accuracy"] >= 0.95 and scores["kmeans_nmi"] >= 0.95


def test_methods_are_parsed_in_order_and_nearest_subspace_always_runs():
    assert parse_methods("svm,knn") == ("nearsub", "knn", "svm")
    with pytest.raises(BadInput, match="unknown svn; choose from nearsub, knn, svm, kmeans"):
        parse_methods("nearsub,svn")


def test_eval_writes_the_svm_and_kmeans_scores(tmp_path, capsys, monkeypatch):
    from fixtures_data import isolate_data

    isolate_data(monkeypatch, tmp_path)
    runs = tmp_path / "runs"
    code, _, err = vmcr2("train", "--profile", "synthetic", "--epochs", "1", "--set", "synthetic_train_per_class=40",
                         "--set", "synthetic_test_per_class=10", "--batch-size", "100", "--runs-dir", runs,
                         capsys=capsys)
    assert code == 0, err
    code, out, err = vmcr2("eval", runs / "latest", "--methods", "nearsub,knn,svm,kmeans", "--no-figures", "--json",
                           capsys=capsys)
    assert code == 0, err
    results = json.loads(out)
    saved = json.loads((runs / "latest" / "eval.json").read_text())
    for key in ("svm_accuracy", "kmeans_accuracy", "kmeans_nmi"):
        assert 0 <= results[key] <= 1 and saved[key] == results[key]
    assert results["methods"] == ["nearsub", "knn", "svm", "kmeans"]
    code, out, err = vmcr2("compare", runs / "latest", capsys=capsys)
    assert code == 0 and "SVM" in out


def test_without_scikit_learn_svm_is_refused_before_anything_loads(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(BadInput, match=r"needs scikit-learn: pip install 'vmcr2\[sklearn\]'"):
        classical.check_available(("nearsub", "svm"))
    classical.check_available(("nearsub", "knn"))  # the default methods need nothing more
