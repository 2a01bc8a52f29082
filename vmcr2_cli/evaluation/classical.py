"""The evaluations of the official MCR² code and of self-supervised learning, through scikit-learn:
a linear SVM and a linear probe (logistic regression) on the frozen training features, and
clusterings of the test features scored against the labels — k-means, and clustering by
compression (``coding_length.py``) started from a k-means over-segmentation.

Optional (``pip install 'vmcr2[sklearn]'``): asked for without scikit-learn, ``vmcr2 eval``
refuses in one line before it loads anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from vmcr2_cli.errors import BadInput

if TYPE_CHECKING:  # compare reads SCORES without loading torch
    import torch

# The methods ``vmcr2 eval --methods`` knows; nearest subspace always runs (it also gives the structure).
METHODS = ("nearsub", "knn", "svm", "probe", "kmeans", "rrc")
DEFAULT_METHODS = ("nearsub", "knn")
NEEDS_SKLEARN = ("svm", "probe", "kmeans", "rrc")


class Score(NamedTuple):
    """One optional score: its key (eval.json, the eval line, compare), compare's short name, eval's label."""

    key: str
    short: str
    label: str


# Every score of the optional methods, in the order eval and compare show them.
SCORES = (
    Score("svm_accuracy", "SVM", "linear SVM (LinearSVC on the training features)"),
    Score("probe_accuracy", "probe", "linear probe (logistic regression on the frozen training features)"),
    Score("kmeans_accuracy", "k-means", "k-means of the test features: clustering accuracy (Hungarian)"),
    Score("kmeans_nmi", "NMI", "k-means of the test features: NMI"),
    Score("rrc_accuracy", "RRC", "clustering by compression of the test features: accuracy (Hungarian)"),
    Score("rrc_nmi", "RRC NMI", "clustering by compression of the test features: NMI"),
)
# Clustering by compression starts from k-means into this many groups per class (merging from
# single vectors is quadratic in the test set).
OVERSEGMENTATION = 20


def parse_methods(text: str) -> tuple[str, ...]:
    """``nearsub,knn,svm`` → the methods in METHODS' order; BadInput naming an unknown one."""
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = sorted(names - set(METHODS))
    if unknown:
        raise BadInput(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    return tuple(name for name in METHODS if name in names or name == "nearsub")


def check_available(methods: tuple[str, ...]) -> None:
    """BadInput when a method needs scikit-learn and it is not installed."""
    wanted = [name for name in methods if name in NEEDS_SKLEARN]
    if not wanted:
        return
    try:
        import scipy.optimize  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError:
        raise BadInput(f"--methods {','.join(wanted)} needs scikit-learn: pip install 'vmcr2[sklearn]'") from None


def linear_svm_accuracy(train_z: torch.Tensor, train_y: torch.Tensor, test_z: torch.Tensor, test_y: torch.Tensor,
                        seed: int = 0) -> float:
    """Test accuracy of a linear SVM (LinearSVC, C = 1, one-vs-rest) fitted on the training features."""
    from sklearn.svm import LinearSVC

    svm = LinearSVC(C=1.0, random_state=seed)
    svm.fit(_numpy(train_z), _numpy(train_y))
    return float((svm.predict(_numpy(test_z)) == _numpy(test_y)).mean())


def linear_probe_accuracy(train_z: torch.Tensor, train_y: torch.Tensor, test_z: torch.Tensor,
                          test_y: torch.Tensor, seed: int = 0) -> float:
    """Test accuracy of a logistic regression (multinomial, L2, C = 1) on the standardized frozen features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000, random_state=seed))
    probe.fit(_numpy(train_z), _numpy(train_y))
    return float((probe.predict(_numpy(test_z)) == _numpy(test_y)).mean())


def clustering_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    """The fraction of samples right under the best one-to-one map of clusters to classes (Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    classes, class_index = np.unique(labels, return_inverse=True)
    found, cluster_index = np.unique(clusters, return_inverse=True)
    counts = np.zeros((len(found), len(classes)), dtype=np.int64)
    np.add.at(counts, (cluster_index, class_index), 1)
    rows, columns = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, columns].sum() / len(labels))


def clustering_scores(labels: np.ndarray, clusters: np.ndarray) -> tuple[float, float]:
    """(clustering accuracy, normalized mutual information) of ``clusters`` against ``labels``."""
    from sklearn.metrics import normalized_mutual_info_score

    return clustering_accuracy(labels, clusters), float(normalized_mutual_info_score(labels, clusters))


def kmeans_clusters(features: torch.Tensor, groups: int, seed: int = 0) -> np.ndarray:
    """k-means (10 restarts) of the rows of ``features`` into ``groups`` clusters."""
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=groups, n_init=10, random_state=seed).fit_predict(_numpy(features))


def kmeans_scores(test_z: torch.Tensor, test_y: torch.Tensor, num_classes: int, seed: int = 0) -> dict[str, float]:
    """k-means (k = the classes) of the test features: clustering accuracy and NMI."""
    accuracy, nmi = clustering_scores(_numpy(test_y), kmeans_clusters(test_z, num_classes, seed))
    return {"kmeans_accuracy": accuracy, "kmeans_nmi": nmi}


def compression_scores(test_z: torch.Tensor, test_y: torch.Tensor, num_classes: int, eps2: float,
                       seed: int = 0) -> dict[str, float | int | None]:
    """Clustering by compression of the test features into the k classes: accuracy, NMI, and how many
    groups the greedy merging had left at its own stop (``coding_length.Clustering.natural_groups``)."""
    import torch

    from vmcr2_cli.evaluation.coding_length import coding_length_clustering

    start = kmeans_clusters(test_z, min(test_z.shape[0], OVERSEGMENTATION * num_classes), seed)
    found = coding_length_clustering(test_z, eps2, num_groups=num_classes, initial=torch.from_numpy(start))
    accuracy, nmi = clustering_scores(_numpy(test_y), found.labels.numpy())
    return {"rrc_accuracy": accuracy, "rrc_nmi": nmi, "rrc_natural_groups": found.natural_groups}


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().double().numpy() if tensor.is_floating_point() else tensor.cpu().numpy()
