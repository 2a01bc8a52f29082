"""Clustering by compression (Ma, Derksen, Hong and Wright, TPAMI 2007; the MCR² lecture's
"cluster to compress"): group the features so that coding them group by group takes the
fewest bits, by greedy pairwise merging.

The coding length of m vectors X ∈ ℝ^{D×m} up to precision ε (the lecture's theorem) is

    L(X) = (m + D)/2 · log₂ det(I + D/(m ε²) X Xᵀ),

and of a partition into groups X_1 … X_g, with the bits that say which group a vector is in,

    L^c = Σ_j L(X_j) + Σ_j m_j log₂(m / m_j).

Starting from groups that are single vectors, the greedy algorithm merges the pair whose union
lowers L^c the most and stops when no merge lowers it. A group's L depends on its vectors only
through its second moment X Xᵀ (D×D) and its size, so a merge adds two moments and a step costs
one batched log-determinant per remaining group. Merging from single vectors is quadratic in
the data; on a large set :func:`coding_length_clustering` starts from an over-segmentation
(``initial``, e.g. k-means into many more groups than classes) and merges from there.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from vmcr2_cli.objectives.numerics import add_identity, cholesky_logdet


class Clustering(NamedTuple):
    """labels: (m,) int64 group of each vector, 0 … groups − 1; natural_groups: how many groups
    were left when no merge lowered the coding length any more (the algorithm's own stop; None
    when ``num_groups`` stopped it first); coding_length: L^c of the result, bits."""

    labels: Tensor
    natural_groups: int | None
    coding_length: float


def coding_lengths(moments: Tensor, sizes: Tensor, eps2: float) -> Tensor:
    """L of each group (bits) from its second moments (g, D, D) and sizes (g,): float64 (g,)."""
    dim = moments.shape[-1]
    matrices = add_identity(dim / (sizes[:, None, None] * eps2) * moments)
    logdet = cholesky_logdet(matrices, check=True, what="I + D/(m ε²)·X Xᵀ of a group")
    return (sizes + dim) / 2 * logdet / math.log(2)


def _membership_bits(sizes: Tensor) -> Tensor:
    """−Σ m_j log₂ m_j: with m log₂ m, the bits of Σ_j m_j log₂(m/m_j); for each group its share."""
    return -sizes * torch.log2(sizes)


def coding_length_clustering(features: Tensor, eps2: float = 0.5, *, num_groups: int | None = None,
                             initial: Tensor | None = None, chunk: int = 4096) -> Clustering:
    """Greedy pairwise merging of ``features`` (m, D) by coding length.

    ``num_groups``: stop at that many groups — merging on past the natural stop (each further
    merge the one that raises L^c least) or stopping before it — instead of at the natural stop.
    ``initial``: (m,) integer groups to start from (default: every vector alone).
    """
    Z = features.detach().to("cpu", torch.float64)
    m, dim = Z.shape
    start = torch.arange(m) if initial is None else torch.unique(initial.cpu(), return_inverse=True)[1]
    groups = int(start.max()) + 1
    if num_groups is not None and not 1 <= num_groups <= groups:
        raise ValueError(f"num_groups must be between 1 and the {groups} starting groups, got {num_groups}")
    moments = torch.zeros(groups, dim, dim, dtype=torch.float64).index_add_(0, start, Z[:, :, None] * Z[:, None, :])
    sizes = torch.bincount(start, minlength=groups).to(torch.float64)
    alive = torch.ones(groups, dtype=torch.bool)
    own = coding_lengths(moments, sizes, eps2) + _membership_bits(sizes)
    # gain[i, j]: how much merging i and j changes L^c (upper triangle; +inf elsewhere).
    gain = torch.full((groups, groups), math.inf, dtype=torch.float64)
    for i in range(groups - 1):
        others = torch.arange(i + 1, groups)
        gain[i, others] = _merge_change(moments, sizes, own, i, others, eps2, chunk)
    natural = None
    total = float(own.sum() + m * math.log2(m))
    for remaining in range(groups, 1, -1):
        i, j = divmod(int(torch.argmin(gain)), groups)
        change = float(gain[i, j])
        if change >= 0 and natural is None:
            natural = remaining
        if remaining == num_groups or (num_groups is None and natural is not None):
            break
        total += change
        moments[i] += moments[j]
        sizes[i] += sizes[j]
        own[i] = coding_lengths(moments[i:i + 1], sizes[i:i + 1], eps2)[0] + _membership_bits(sizes[i:i + 1])[0]
        alive[j] = False
        start[start == j] = i
        gain[j, :] = math.inf
        gain[:, j] = math.inf
        others = torch.nonzero(alive).flatten()
        others = others[others != i]
        changes = _merge_change(moments, sizes, own, i, others, eps2, chunk)
        low, high = torch.minimum(others, torch.tensor(i)), torch.maximum(others, torch.tensor(i))
        gain[low, high] = changes
    if natural is None and num_groups is None:
        natural = 1  # every merge lowered the coding length
    return Clustering(torch.unique(start, return_inverse=True)[1], natural, total)


def _merge_change(moments: Tensor, sizes: Tensor, own: Tensor, i: int, others: Tensor, eps2: float,
                  chunk: int) -> Tensor:
    """L^c after merging group i with each of ``others``, minus before (float64, one per other)."""
    out = torch.empty(others.shape[0], dtype=torch.float64)
    for low in range(0, others.shape[0], chunk):
        js = others[low:low + chunk]
        merged = sizes[i] + sizes[js]
        joint = coding_lengths(moments[i] + moments[js], merged, eps2) + _membership_bits(merged)
        out[low:low + chunk] = joint - own[i] - own[js]
    return out
