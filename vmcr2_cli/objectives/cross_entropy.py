"""Cross-entropy, the paper's reference: a linear head Linear(d, k) on the featurizer."""

from __future__ import annotations

from torch import Tensor, nn

from .numerics import full_precision
from .validation import check_positive_int


class CrossEntropy(nn.Module):
    """Owns the head Linear(d, k); ``CEObjective`` takes the cross-entropy of its logits.

    Computed in float32 (autocast off) like the other objectives; the head's cost,
    m·d·k, is small next to the featurizer's.
    """

    def __init__(self, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.feature_dim = check_positive_int("feature_dim", feature_dim)
        self.num_classes = check_positive_int("num_classes", num_classes)
        self.head = nn.Linear(feature_dim, num_classes)

    def logits(self, Z: Tensor) -> Tensor:
        """(m, d) features → (m, k) logits."""
        if Z.dim() != 2 or Z.shape[1] != self.feature_dim:
            raise ValueError(f"Z must have shape (m, {self.feature_dim}), got {tuple(Z.shape)}")
        with full_precision(Z.device):
            return self.head(Z.to(self.head.weight.dtype))
