"""Input checks shared by the objectives, each failing with one clear ValueError.

Two tiers, so that the hot loop on a GPU never waits for the device:
- shape, dtype and hyperparameter checks read only metadata: always run;
- checks that read values (finite features, unit rows) run when ``validate=True``.
  The public functions default to ``validate=True``; the training objectives turn
  it off on accelerators (see ``training_objective.py``), where it would cost a host sync.
Label values are always checked: the partition reads them on the host anyway.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class NonFiniteFeaturesError(ValueError):
    """Z holds NaN or ±inf: training diverged upstream of the objective."""

# Rows count as unit norm within this absolute tolerance: loose enough for features
# normalized in bf16 (about 3 significant digits), tight enough to catch a featurizer
# without its final normalization.
UNIT_NORM_TOLERANCE = 1e-2


def check_features(Z: Tensor, *, validate: bool, unit_rows: bool = False) -> None:
    """Z must be a non-empty 2-D floating tensor (m samples, d features).

    With ``validate``: finite entries and, if ``unit_rows``, rows of unit norm.
    """
    if not isinstance(Z, Tensor):
        raise ValueError(f"Z must be a torch.Tensor, got {type(Z).__name__}")
    if Z.dim() != 2:
        raise ValueError(f"Z must be 2-D (m samples, d features), got shape {tuple(Z.shape)}")
    if not Z.is_floating_point():
        raise ValueError(f"Z must be a floating-point tensor, got {Z.dtype}")
    if Z.shape[0] == 0 or Z.shape[1] == 0:
        raise ValueError(f"Z must hold at least one sample and one feature, got shape {tuple(Z.shape)}")
    if not validate:
        return
    Z = Z.detach()
    finite = torch.isfinite(Z)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise NonFiniteFeaturesError(f"Z contains {bad} non-finite entries (NaN or inf)")
    if unit_rows:
        norms = torch.linalg.vector_norm(Z.float(), dim=1)
        worst = int(torch.argmax((norms - 1.0).abs()))
        if abs(float(norms[worst]) - 1.0) > UNIT_NORM_TOLERANCE:
            raise ValueError(
                f"rows of Z must have unit norm (the variational objective and latching "
                f"assume it); row {worst} has norm {float(norms[worst]):.4g}"
            )


def check_positive(name: str, value: float) -> float:
    """A finite, strictly positive float hyperparameter."""
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite positive number, got {value}")
    return value


def check_positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value
