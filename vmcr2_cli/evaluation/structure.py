"""The structure of learned class subspaces: angles, dimensions, within-class variability.

What tells an MCR² run that learned the paper's representation — each class on its own
low-dimensional subspace, the subspaces orthogonal (Figure 2's block-diagonal |ZᵀZ|) —
from one that did not:

- :func:`principal_cosines`: mean |cos| of the principal angles between every two class
  subspaces (0: orthogonal, 1: the same subspace). A class's subspace is taken as its
  *dominant* directions (:func:`dominant_bases`: those holding 90 % of its energy, at
  most eq. 8's p): the weak trailing directions of a class are noise, and noise
  directions of different classes overlap even when the classes are orthogonal;
- :func:`feature_cosines`: mean |⟨z_a, z_b⟩| within and between classes, the numbers
  behind Figure 2's heatmap;
- :func:`effective_dimension` and :func:`energy_dimension`: how many directions each
  class spreads over;
- :func:`within_class_variability`: NC1 = tr(Σ_W Σ_B†) of the neural-collapse literature
  (seed 004). NC1 → 0 means each class collapsed onto its mean, what CE drives towards;
  MCR² wants each class spread over its subspace, so its NC1 stays large (and its class
  means can be near 0 when a class is spread symmetrically).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from vmcr2_cli.evaluation.nearest_subspace import subspace_ranks
from vmcr2_cli.evaluation.statistics import ClassStatistics


def principal_cosines(bases: Tensor) -> Tensor:
    """(k, k) mean |cos θ| over the principal angles between class subspaces.

    bases: (k, d, p) as from eq. 8's fit (orthonormal columns, zero beyond a class's rank).
    The principal cosines of span(V_i), span(V_j) are the singular values of V_iᵀV_j;
    the mean runs over the min(rank_i, rank_j) largest. The diagonal is 1; pairs where a
    class has no samples are NaN. k²·p² ≤ d² numbers, so this is cheap for any k.
    """
    bases = bases.double()
    k = bases.shape[0]
    ranks = subspace_ranks(bases)
    products = torch.einsum("idp,jdq->ijpq", bases, bases)
    cosines = torch.linalg.svdvals(products).clamp(0, 1)  # (k, k, p), descending
    depth = torch.minimum(ranks[:, None], ranks[None, :])  # (k, k)
    take = torch.arange(cosines.shape[-1]) < depth[..., None]
    mean = (cosines * take).sum(-1) / depth.clamp_min(1)
    mean = torch.where(depth > 0, mean, torch.full_like(mean, float("nan")))
    mean[torch.arange(k), torch.arange(k)] = torch.where(ranks > 0, 1.0, float("nan")).double()
    return mean


def dominant_bases(bases: Tensor, dims: Tensor) -> Tensor:
    """``bases`` (k, d, p) with the columns beyond each class's ``dims[j]`` zeroed (at least one kept)."""
    keep = torch.arange(bases.shape[-1]) < dims.clamp_min(1)[:, None]
    return bases * keep[:, None, :].to(bases.dtype)


def energy_bases(bases: Tensor, eigenvalues: Tensor, share: float) -> Tensor:
    """``bases`` (k, d, p) cut to each class's fewest directions holding ``share`` of its energy
    (``eigenvalues``: each class's spectrum, descending), at most p: the classes' dominant subspaces,
    and eq. 8 with subspaces as large as each class's features are, not ⌊d/k⌋ each."""
    return dominant_bases(bases, energy_dimension(eigenvalues, share))


def feature_cosines(features: Tensor, labels: Tensor, *, samples: int = 4000, seed: int = 0) -> tuple[float, float]:
    """(within, between): mean |⟨z_a, z_b⟩| over pairs of distinct samples of the same class and of
    different classes, on a random sample of ``samples`` rows (rows normalized first)."""
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(features.shape[0], generator=generator)[:samples]
    z = torch.nn.functional.normalize(features.detach()[index.to(features.device)].double(), dim=1)
    y = labels.detach().to(z.device)[index.to(z.device)]
    cosines = (z @ z.T).abs()
    same = y[:, None] == y[None, :]
    distinct = ~torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
    within, between = cosines[same & distinct], cosines[~same]
    return (within.mean().item() if within.numel() else float("nan"),
            between.mean().item() if between.numel() else float("nan"))


def off_diagonal(matrix: Tensor) -> Tensor:
    """The off-diagonal entries of a square matrix, finite ones only, flattened."""
    k = matrix.shape[0]
    values = matrix[~torch.eye(k, dtype=torch.bool)]
    return values[torch.isfinite(values)]


def effective_dimension(eigenvalues: Tensor) -> Tensor:
    """(k,) exp of the entropy of each normalized spectrum λ_i/Σλ (Roy & Vetterli's effective rank).

    1 for a class on a line, s for a class spread evenly over s directions; 0 for an
    absent class.
    """
    values = eigenvalues.double().clamp_min(0)
    total = values.sum(-1, keepdim=True)
    p = values / total.clamp_min(torch.finfo(torch.float64).tiny)
    entropy = -(p * torch.log(p.clamp_min(1e-300))).sum(-1)
    return torch.where(total.squeeze(-1) > 0, entropy.exp(), torch.zeros_like(entropy))


def energy_dimension(eigenvalues: Tensor, share: float = 0.9) -> Tensor:
    """(k,) int64: the fewest directions holding ``share`` of each class's energy (0 if absent)."""
    values = eigenvalues.double().clamp_min(0)
    total = values.sum(-1, keepdim=True)
    captured = values.cumsum(-1) / total.clamp_min(torch.finfo(torch.float64).tiny)
    needed = (captured < share - 1e-12).sum(-1) + 1
    return torch.where(total.squeeze(-1) > 0, needed.clamp_max(values.shape[-1]), torch.zeros_like(needed))


def spectrum_share(eigenvalues: Tensor, atoms: int) -> Tensor:
    """(k,) Σ of the top ``atoms`` eigenvalues / trace: what Algorithm 2's s = q/k atoms capture."""
    values = eigenvalues.double().clamp_min(0)
    total = values.sum(-1)
    top = values[:, :atoms].sum(-1)
    return torch.where(total > 0, top / total.clamp_min(torch.finfo(torch.float64).tiny),
                       torch.full_like(total, float("nan")))


@dataclass(frozen=True)
class WithinClassVariability:
    """NC1 = tr(Σ_W Σ_B†) (seed 004) and the simpler tr(Σ_W)/tr(Σ_B)."""

    nc1: float
    trace_ratio: float
    within_trace: float
    between_trace: float


def within_class_variability(stats: ClassStatistics, rtol: float = 1e-10) -> WithinClassVariability:
    """NC1 from the class moments and means, with the lecture's definitions:

    Σ_W = 1/N Σ_j Σ_{i∈j} (z_i − μ_j)(z_i − μ_j)ᵀ = 1/N (ZᵀZ − Σ_j N_j μ_j μ_jᵀ),
    Σ_B = 1/K Σ_j (μ_j − μ_G)(μ_j − μ_G)ᵀ over the K classes present, μ_G the global mean.
    (With balanced classes 1/N = 1/(nK), as in the lecture.) Σ_B has rank ≤ K − 1: its
    pseudo-inverse drops eigenvalues below ``rtol`` times its largest.
    """
    present = stats.counts > 0
    counts = stats.counts[present].double()
    means = stats.means[present].double()
    n = float(counts.sum())
    within = (stats.total_moment.double() - (means.T * counts) @ means) / n
    global_mean = (counts[:, None] * means).sum(0) / n
    centred = means - global_mean
    between = centred.T @ centred / means.shape[0]
    between = (between + between.T) / 2
    pinv = torch.linalg.pinv(between, hermitian=True, rtol=rtol)
    within_trace, between_trace = torch.trace(within).item(), torch.trace(between).item()
    return WithinClassVariability(
        nc1=torch.trace(within @ pinv).item(),
        trace_ratio=within_trace / between_trace if between_trace > 0 else float("inf"),
        within_trace=within_trace, between_trace=between_trace)


def heatmap_sample(features: Tensor, labels: Tensor, num_classes: int, *, max_classes: int = 10,
                   samples: int = 1000, seed: int = 0) -> tuple[Tensor, Tensor, list[int]]:
    """The features of Figure 2: ≤ ``max_classes`` classes (drawn at random when there are
    more, as the paper does for CIFAR-100), ≈ ``samples`` points in all, sorted by class.

    Returns (Z (n, d) float32 on the CPU, labels (n,), the classes shown, ascending).
    """
    generator = torch.Generator().manual_seed(seed)
    labels_cpu = labels.detach().cpu().long()
    present = torch.nonzero(torch.bincount(labels_cpu, minlength=num_classes)).flatten()
    if present.numel() > max_classes:
        present = present[torch.randperm(present.numel(), generator=generator)[:max_classes]].sort().values
    per_class = max(1, samples // max(1, present.numel()))
    chosen = []
    for j in present.tolist():
        members = torch.nonzero(labels_cpu == j).flatten()
        chosen.append(members[torch.randperm(members.numel(), generator=generator)[:per_class]].sort().values)
    index = torch.cat(chosen) if chosen else torch.zeros(0, dtype=torch.int64)
    return features.detach()[index.to(features.device)].float().cpu(), labels_cpu[index], present.tolist()
