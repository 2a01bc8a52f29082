"""The evaluations of the official MCR² code, through scikit-learn: a linear SVM on the training
features, and k-means of the test features scored against the labels.

Optional (``pip install 'vmcr2[sklearn]'``): asked for without scikit-learn, ``vmcr2 eval``
refuses in one line before it loads anything.
"""

from __future__ import annotations

import numpy as np
import torch

from vmcr2_cli.errors import BadInput

# The methods ``vmcr2 eval --methods`` knows; nearest subspace always runs (it also gives the structure).
METHODS = ("nearsub", "knn", "svm", "kmeans")
DEFAULT_METHODS = ("nearsub", "knn")
NEEDS_SKLEARN = ("svm", "kmeans")


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


def clustering_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    """The fraction of samples right under the best one-to-one map of clusters to classes (Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    classes, class_index = np.unique(labels, return_inverse=True)
    found, cluster_index = np.unique(clusters, return_inverse=True)
    counts = np.zeros((len(found), len(classes)), dtype=np.int64)
    np.add.at(counts, (cluster_index, class_index), 1)
    rows, columns = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, columns].sum() / len(labels))


def kmeans_scores(test_z: torch.Tensor, test_y: torch.Tensor, num_classes: int, seed: int = 0) -> dict[str, float]:
    """k-means (k = the classes, 10 restarts) of the test features: clustering accuracy and NMI."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    labels = _numpy(test_y)
    clusters = KMeans(n_clusters=num_classes, n_init=10, random_state=seed).fit_predict(_numpy(test_z))
    return {"kmeans_accuracy": clustering_accuracy(labels, clusters),
            "kmeans_nmi": float(normalized_mutual_info_score(labels, clusters))}


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().double().numpy() if tensor.is_floating_point() else tensor.cpu().numpy()
