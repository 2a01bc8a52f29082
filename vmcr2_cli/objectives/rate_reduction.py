"""The exact coding rate reduction of MCR² (paper eq. 1), fast and reference forms.

Rows of Z are samples: Z is (m, d), so the paper's Z Diag(Π_j) Zᵀ is Z_jᵀZ_j here.

    R   = ½ logdet(I + α ZᵀZ),                     α   = d / (m ε²)
    R_c = Σ_j (m_j/m)/2 · logdet(I + α_j Z_jᵀZ_j),  α_j = d / (m_j ε²)
    ΔR  = R − R_c

A class absent from the batch (m_j = 0) contributes nothing to R_c.

Every logdet is taken on the smaller side, logdet(I_d + c ZᵀZ) = logdet(I_m + c ZZᵀ)
(Sylvester), and all classes are factored together: the classes are padded to a
common size (see ``ClassPartition.size_buckets``; a zero padding row adds an identity
row to I + α_j Z_j Z_jᵀ and so contributes log 1 = 0) and one batched Cholesky per
bucket — at most two — replaces the per-class loop of the original code, kept here as
:func:`rate_reduction_reference` for tests and the benchmark.

``validate`` (default True) also runs the checks that read values: finite features
and, on an accelerator, a positive definite factorization (both cost a host sync
there; see ``numerics.py`` and ``validation.py``). Rows of Z need not be unit norm
here: eq. 1 is defined for any Z, the unit sphere is a constraint of the training
problem, not of this function.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .numerics import add_identity, cholesky_logdet, full_precision, prepare_features
from .partition import ClassBucket, ClassPartition, as_partition
from .validation import check_features, check_positive


class RateReduction(NamedTuple):
    """The terms of eq. 1, each a 0-dim tensor: R, R_c and ΔR = R − R_c."""

    r: Tensor
    r_c: Tensor
    delta_r: Tensor


def coding_rate(Z: Tensor, eps2: float = 0.5, dtype: torch.dtype | None = None, *, validate: bool = True) -> Tensor:
    """R(Z) = ½ logdet(I + α ZᵀZ), α = d/(m ε²) (eq. 1); a differentiable 0-dim tensor.

    Args:
        Z: (m, d) features, rows are samples.
        eps2: the precision ε² > 0.
        dtype: compute dtype, float32 or float64 (default: float64 for float64 Z,
            float32 otherwise, bf16/fp16 included).
        validate: also check finite entries and positive definiteness on accelerators.
    """
    eps2 = check_positive("eps2", eps2)
    check_features(Z, validate=validate)
    with full_precision(Z.device):
        return _coding_rate(prepare_features(Z, dtype), eps2, check=validate)


def rate_reduction(
    Z: Tensor,
    labels: Tensor | ClassPartition,
    num_classes: int,
    eps2: float = 0.5,
    dtype: torch.dtype | None = None,
    *,
    validate: bool = True,
) -> RateReduction:
    """ΔR = R − R_c of eq. 1, batched over classes; differentiable w.r.t. Z.

    Args:
        Z: (m, d) features, rows are samples.
        labels: (m,) integer classes in [0, num_classes) — best on the CPU, see
            ``partition.py`` — or a ClassPartition built from them.
        num_classes: k.
        eps2: the precision ε² > 0.
        dtype: compute dtype, float32 or float64 (default: see :func:`coding_rate`).
        validate: also run the value checks that cost a host sync on accelerators.

    Returns:
        RateReduction(r, r_c, delta_r) of 0-dim tensors in the compute dtype.
    """
    eps2 = check_positive("eps2", eps2)
    check_features(Z, validate=validate)
    partition = as_partition(labels, num_classes, Z)
    with full_precision(Z.device):
        Zc = prepare_features(Z, dtype)
        r = _coding_rate(Zc, eps2, check=validate)
        r_c = _compressed_rate(Zc, partition, eps2, check=validate)
    return RateReduction(r, r_c, r - r_c)


def class_grams(Z: Tensor, partition: ClassPartition) -> list[tuple[ClassBucket, Tensor]]:
    """Each class's Gram on its smaller side, batched per size bucket.

    Returns:
        [(bucket, grams)]: grams is (b, rows, rows) = padded Z_j Z_jᵀ when the bucket's
        rows ≤ d, else (b, d, d) = Z_jᵀZ_j. Either side has the same nonzero spectrum.
    """
    d = Z.shape[1]
    grams = []
    for bucket in partition.size_buckets(d, Z.device):
        padded = bucket.pad(Z)
        grams.append((bucket, padded @ padded.mT if bucket.rows <= d else padded.mT @ padded))
    return grams


def class_second_moments(
    Z: Tensor,
    labels: Tensor | ClassPartition,
    num_classes: int,
    dtype: torch.dtype | None = None,
    *,
    validate: bool = True,
) -> Tensor:
    """Z_jᵀZ_j for every class, (k, d, d); zero for classes absent from the batch.

    Sums over samples, so moments of several batches add up to the moments of their
    union (accumulate in float64 over a dataset). Used by latching (Algorithm 2) and
    the nearest-subspace classifier (eq. 8).
    """
    check_features(Z, validate=validate)
    partition = as_partition(labels, num_classes, Z)
    with full_precision(Z.device):
        Zc = prepare_features(Z, dtype)
        d = Zc.shape[1]
        moments = Zc.new_zeros(num_classes, d, d)
        for bucket in partition.size_buckets(d, Zc.device):
            padded = bucket.pad(Zc)
            moments = moments.index_copy(0, bucket.classes, padded.mT @ padded)
    return moments


def rate_reduction_reference(
    Z: Tensor,
    labels: Tensor,
    num_classes: int,
    eps2: float = 0.5,
    dtype: torch.dtype | None = None,
) -> RateReduction:
    """Eq. 1 with a Python loop over classes and one d×d Cholesky each.

    The cost profile of the original MCR² code; for tests and as the benchmark's
    baseline. Always validates.
    """
    eps2 = check_positive("eps2", eps2)
    check_features(Z, validate=True)
    partition = as_partition(labels, num_classes, Z)
    with full_precision(Z.device):
        Zc = prepare_features(Z, dtype)
        m, d = Zc.shape
        eye = torch.eye(d, dtype=Zc.dtype, device=Zc.device)
        r = cholesky_logdet(eye + d / (m * eps2) * (Zc.T @ Zc), check=True) / 2
        by_class = Zc.index_select(0, partition.order.to(Zc.device))
        r_c = Zc.new_zeros(())
        start = 0
        for m_j in partition.counts.tolist():
            if m_j > 0:
                Z_j = by_class[start : start + m_j]
                logdet = cholesky_logdet(eye + d / (m_j * eps2) * (Z_j.T @ Z_j), check=True)
                r_c = r_c + m_j / m * logdet / 2
            start += m_j
    return RateReduction(r, r_c, r - r_c)


def _coding_rate(Z: Tensor, eps2: float, *, check: bool) -> Tensor:
    """R of eq. 1 for Z already in its compute dtype."""
    m, d = Z.shape
    gram = Z @ Z.T if m <= d else Z.T @ Z  # the smaller side (Sylvester)
    matrix = add_identity(d / (m * eps2) * gram)
    return cholesky_logdet(matrix, check=check, what="I + α·ZᵀZ") / 2


def _compressed_rate(Z: Tensor, partition: ClassPartition, eps2: float, *, check: bool) -> Tensor:
    """R_c of eq. 1: one batched Cholesky per size bucket (at most two), no loop over classes."""
    m, d = Z.shape
    sizes = partition.counts_on(Z.device, Z.dtype)
    r_c = Z.new_zeros(())
    for bucket, grams in class_grams(Z, partition):
        m_j = sizes[bucket.classes]
        alpha_j = d / (m_j * eps2)
        matrices = add_identity(alpha_j[:, None, None] * grams)
        logdet = cholesky_logdet(matrices, check=check, what="I + α_j·Z_jᵀZ_j of a class")
        r_c = r_c + (m_j / m * logdet).sum() / 2
    return r_c
