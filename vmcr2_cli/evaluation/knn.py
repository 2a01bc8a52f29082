"""k-nearest-neighbour accuracy under cosine similarity: a second view next to eq. 8."""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def knn_predict(train_features: Tensor, train_labels: Tensor, test_features: Tensor, num_classes: int,
                k: int = 10, memory_elements: int = 2**25) -> Tensor:
    """Majority vote of the ``k`` training points most cosine-similar to each test point.

    train_features: (N, d), test_features: (n, d), any norms (rows are normalized here).
    Ties between classes go to the one with the larger summed similarity. The (chunk, N)
    similarity block is kept under ``memory_elements`` numbers. Returns (n,) int64.
    """
    if train_features.shape[0] == 0:
        raise ValueError("kNN needs training features")
    k = min(k, train_features.shape[0])
    bank = torch.nn.functional.normalize(train_features.float(), dim=1)
    bank_labels = train_labels.to(bank.device).long()
    chunk = max(1, memory_elements // bank.shape[0])
    predictions = []
    for start in range(0, test_features.shape[0], chunk):
        queries = torch.nn.functional.normalize(test_features[start:start + chunk].to(bank.device).float(), dim=1)
        similarity, neighbours = (queries @ bank.T).topk(k, dim=1)
        votes = torch.zeros(queries.shape[0], num_classes, dtype=torch.float64, device=bank.device)
        neighbour_labels = bank_labels[neighbours]
        votes.scatter_add_(1, neighbour_labels, torch.ones_like(similarity, dtype=torch.float64))
        # Similarities are in [−1, 1] and at most k of them add up: 1e-3/k·(1 + s) < 1 breaks ties only.
        votes.scatter_add_(1, neighbour_labels, (1 + similarity.double()) * (1e-3 / k))
        predictions.append(votes.argmax(1))
    if not predictions:
        return torch.zeros(0, dtype=torch.int64, device=bank.device)
    return torch.cat(predictions)
