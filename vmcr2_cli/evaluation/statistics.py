"""Per-class statistics of a whole feature set, in float64, one pass in batches.

Everything ``vmcr2 eval`` and ``vmcr2 latch`` measure comes from the class second
moments M_j = Σ_{i∈j} z_i z_iᵀ (d×d each), their sum ZᵀZ, and the class sums:

- the exact rates of eq. 1 over N samples: R = ½ logdet(I + d/(Nε²) ZᵀZ),
  R_c = Σ_j (N_j/N)/2 · logdet(I + d/(N_j ε²) M_j);
- the nearest-subspace bases of eq. 8 (top eigenvectors of M_j) and the class spectra;
- the class means, for the NC1 within-class variability.

The moments are summed batch by batch with ``class_second_moments`` (one product per
batch and class-size bucket, never a d×d matrix per sample), in float64. Classes are
processed in groups whose moments fit in ``memory_mb``, so k·d² never has to be held at
once (Tiny ImageNet at d = 500 would need 400 MB): each group re-reads only its own rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from vmcr2_cli.evaluation.nearest_subspace import predict_nearest_subspace, subspaces_from_eigh
from vmcr2_cli.objectives import class_second_moments
from vmcr2_cli.objectives.numerics import add_identity, cholesky_logdet, symmetric_eigh

DEFAULT_CHUNK = 4096
DEFAULT_MEMORY_MB = 256.0


@dataclass(frozen=True)
class MomentGroup:
    """The float64 moments of classes ``start … stop − 1``, summed over the whole set."""

    start: int
    stop: int
    counts: Tensor  # (g,) int64, on the CPU
    moments: Tensor  # (g, d, d) Σ_{i∈j} z_i z_iᵀ
    sums: Tensor  # (g, d) Σ_{i∈j} z_i


def class_moment_groups(features: Tensor, labels: Tensor, num_classes: int, *, chunk: int = DEFAULT_CHUNK,
                        memory_mb: float = DEFAULT_MEMORY_MB) -> Iterator[MomentGroup]:
    """Float64 class moments of (N, d) ``features``, a group of classes at a time.

    labels: (N,) in [0, num_classes), any device. The features stay where they are; the
    moments are computed on their device.
    """
    if features.dim() != 2 or labels.shape != features.shape[:1]:
        raise ValueError(f"features must be (N, d) and labels (N,), got {tuple(features.shape)} "
                         f"and {tuple(labels.shape)}")
    labels_cpu = labels.detach().to("cpu", torch.int64)
    if labels_cpu.numel() and (labels_cpu.min() < 0 or labels_cpu.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes})")
    n, d = features.shape
    device = features.device
    counts = torch.bincount(labels_cpu, minlength=num_classes)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)]).tolist()
    order = torch.argsort(labels_cpu, stable=True)
    group = int(max(1, min(num_classes, memory_mb * 2**20 // (8 * d * d))))
    for start in range(0, num_classes, group):
        stop = min(num_classes, start + group)
        rows = order[offsets[start]:offsets[stop]]
        moments = torch.zeros(stop - start, d, d, dtype=torch.float64, device=device)
        sums = torch.zeros(stop - start, d, dtype=torch.float64, device=device)
        for first in range(0, rows.numel(), chunk):
            index = rows[first:first + chunk]
            z = features.index_select(0, index.to(device)).to(torch.float64)
            y = labels_cpu[index] - start  # CPU labels: the class layout costs no device sync
            moments += class_second_moments(z, y, stop - start, validate=False)
            sums.index_add_(0, y.to(device), z)
        yield MomentGroup(start, stop, counts[start:stop], moments, sums)


@dataclass(frozen=True)
class ClassStatistics:
    """What one float64 pass over a labelled feature set gives (all tensors on the CPU).

    Attributes:
        num_samples: N.
        counts: (k,) samples per class N_j.
        means: (k, d) class means (zero for absent classes).
        total_moment: (d, d) ZᵀZ = Σ_i z_i z_iᵀ.
        eigenvalues: (k, d) the spectrum of each class's M_j, descending.
        bases: (k, d, p) the top p directions of each M_j (eq. 8), zero beyond its rank.
        r, r_c: the exact rates of eq. 1 over all N samples.
        class_r_c: (k,) each class's term (N_j/N)/2 · logdet(I + α_j M_j) of R_c.
        eps2: the ε² they were computed with.
    """

    num_samples: int
    counts: Tensor
    means: Tensor
    total_moment: Tensor
    eigenvalues: Tensor
    bases: Tensor
    r: float
    r_c: float
    class_r_c: Tensor
    eps2: float

    @property
    def delta_r(self) -> float:
        return self.r - self.r_c

    @property
    def num_classes(self) -> int:
        return int(self.counts.shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self.total_moment.shape[0])


@torch.no_grad()
def class_statistics(features: Tensor, labels: Tensor, num_classes: int, *, components: int,
                     eps2: float = 0.5, chunk: int = DEFAULT_CHUNK,
                     memory_mb: float = DEFAULT_MEMORY_MB) -> ClassStatistics:
    """Exact R, R_c (float64), class spectra, eq.-8 bases and class means of a feature set.

    Args:
        features: (N, d), rows are samples (unit rows for MCR² features; not required).
        labels: (N,) classes in [0, num_classes).
        components: p, the directions per class kept in ``bases``.
        eps2: ε² of eq. 1.
    """
    n, d = features.shape
    if n == 0:
        raise ValueError("no samples")
    total = torch.zeros(d, d, dtype=torch.float64, device=features.device)
    eigenvalues, bases, means, class_r_c = [], [], [], []
    for group in class_moment_groups(features, labels, num_classes, chunk=chunk, memory_mb=memory_mb):
        total += group.moments.sum(0)
        sizes = group.counts.to(features.device, torch.float64)
        means.append((group.sums / sizes.clamp_min(1)[:, None]).cpu())
        class_r_c.append(_class_compressed_rates(group.moments, sizes, n, d, eps2).cpu())
        moments = (group.moments + group.moments.mT) / 2  # symmetric up to summation order
        values, vectors = symmetric_eigh(moments)  # ascending
        bases.append(subspaces_from_eigh(values, vectors, components).cpu())
        eigenvalues.append(values.flip(-1).clamp_min(0).cpu())
    matrix = add_identity(d / (n * eps2) * total)
    r = cholesky_logdet(matrix, check=True, what="I + α·ZᵀZ over the dataset").item() / 2
    class_r_c_all = torch.cat(class_r_c)
    return ClassStatistics(
        num_samples=n, counts=torch.bincount(labels.detach().cpu().long(), minlength=num_classes),
        means=torch.cat(means), total_moment=total.cpu(), eigenvalues=torch.cat(eigenvalues),
        bases=torch.cat(bases), r=r, r_c=class_r_c_all.sum().item(), class_r_c=class_r_c_all, eps2=eps2)


def _class_compressed_rates(moments: Tensor, sizes: Tensor, n: int, d: int, eps2: float) -> Tensor:
    """(g,) (N_j/N)/2 · logdet(I + d/(N_j ε²) M_j); zero for absent classes. One batched Cholesky."""
    rates = torch.zeros_like(sizes)
    present = sizes > 0
    if bool(present.any()):
        alpha_j = d / (sizes[present] * eps2)
        matrices = add_identity(alpha_j[:, None, None] * moments[present])
        logdets = cholesky_logdet(matrices, check=True, what="I + α_j·Z_jᵀZ_j of a class over the dataset")
        rates[present] = sizes[present] / n * logdets / 2
    return rates


def nearest_subspace_predictions(train_features: Tensor, train_labels: Tensor, test_features: Tensor,
                                 num_classes: int, *, components: int,
                                 eps2: float = 0.5) -> tuple[ClassStatistics, Tensor]:
    """The training features' class statistics and eq. 8's predictions for the test features.

    The one nearest-subspace pipeline: the accuracy ``vmcr2 train`` prints when it ends and
    ``vmcr2 eval``'s come from here, so they are the same number. The bases are fitted in
    float64 (``class_statistics``) and applied in float32 on the features' device.
    """
    stats = class_statistics(train_features, train_labels, num_classes, components=components, eps2=eps2)
    bases = stats.bases.to(test_features.device, torch.float32)
    return stats, predict_nearest_subspace(test_features, bases)
