"""SVM, linear probe, k-means and clustering by compression as `vmcr2 eval --methods` runs them: exact scores,
known structure, the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cli_runner import vmcr2
from vmcr2_cli.errors import BadInput
from vmcr2_cli.runs import RunDir
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


def test_the_linear_probe_separates_orthogonal_subspaces():
    features, labels = orthogonal_subspaces(5, 3, 120, 20, seed=0)
    train, test = torch.arange(600) % 3 != 0, torch.arange(600) % 3 == 0
    assert classical.linear_probe_accuracy(features[train], labels[train], features[test], labels[test]) >= 0.95


def test_the_coding_length_is_the_lectures_formula():
    from vmcr2_cli.evaluation.coding_length import coding_lengths

    X = torch.randn(7, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))  # 7 vectors in R^4
    m, D, eps2 = 7, 4, 0.3
    expected = (m + D) / 2 * math.log2(torch.linalg.det(torch.eye(D, dtype=torch.float64) + D / (m * eps2) * X.T @ X))
    got = coding_lengths((X.T @ X)[None], torch.tensor([7.0], dtype=torch.float64), eps2)
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_greedy_merging_from_single_vectors_recovers_orthogonal_subspaces_and_stops_there():
    from vmcr2_cli.evaluation.coding_length import coding_length_clustering

    features, labels = orthogonal_subspaces(4, 2, 15, 12, seed=1)
    found = coding_length_clustering(features, eps2=0.1)
    assert found.natural_groups == 4  # the algorithm's own stop: no merge of two subspaces saves bits
    assert classical.clustering_scores(labels.numpy(), found.labels.numpy()) == (1.0, pytest.approx(1.0))
    merged = coding_length_clustering(features, eps2=0.1, num_groups=2)  # merging on costs bits
    assert len(merged.labels.unique()) == 2 and merged.coding_length > found.coding_length


def test_clustering_by_compression_from_a_kmeans_start_scores_orthogonal_subspaces_exactly():
    features, labels = orthogonal_subspaces(5, 3, 60, 20, seed=2)
    scores = classical.compression_scores(features, labels, 5, eps2=0.1)
    assert scores["rrc_accuracy"] == 1.0 and scores["rrc_nmi"] == pytest.approx(1.0)


def test_methods_are_parsed_in_order_and_nearest_subspace_always_runs():
    assert parse_methods("svm,knn") == ("nearsub", "knn", "svm")
    with pytest.raises(BadInput, match="unknown svn; choose from nearsub, knn, svm, probe, kmeans, rrc"):
        parse_methods("nearsub,svn")


def test_eval_writes_every_optional_score(tmp_path, capsys, monkeypatch):
    from fixtures_data import isolate_data

    isolate_data(monkeypatch, tmp_path)
    runs = tmp_path / "runs"
    code, _, err = vmcr2("train", "--profile", "synthetic", "--epochs", "1", "--set", "synthetic_train_per_class=40",
                         "--set", "synthetic_test_per_class=10", "--batch-size", "100", "--runs-dir", runs,
                         capsys=capsys)
    assert code == 0, err
    code, out, err = vmcr2("eval", runs / "latest", "--methods", "nearsub,knn,svm,probe,kmeans,rrc", "--no-figures",
                           "--json", capsys=capsys)
    assert code == 0, err
    results = json.loads(out)
    saved = json.loads((runs / "latest" / "eval.json").read_text())
    for score in classical.SCORES:
        assert 0 <= results[score.key] <= 1 and saved[score.key] == results[score.key]
    assert results["methods"] == ["nearsub", "knn", "svm", "probe", "kmeans", "rrc"]
    eval_line = [line for line in RunDir.open(runs / "latest").read_metrics() if line["type"] == "eval"][-1]
    assert all(eval_line[score.key] == results[score.key] for score in classical.SCORES)
    code, out, err = vmcr2("compare", runs / "latest", capsys=capsys)
    assert code == 0 and "SVM" in out and "probe" in out and "RRC" in out


def test_without_scikit_learn_svm_is_refused_before_anything_loads(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(BadInput, match=r"needs scikit-learn: pip install 'vmcr2\[sklearn\]'"):
        classical.check_available(("nearsub", "svm"))
    classical.check_available(("nearsub", "knn"))  # the default methods need nothing more
