"""The data a bench step runs on: features and images shaped like real training.

- :func:`subspace_features`: unit-row features (m, d) whose classes are balanced and
  each lie near a low-dimensional subspace of their own, plus noise — the structure
  MCR² training produces, so that class Grams and dictionary products have realistic
  spectra (the cost does not depend on it; the numerics do).
- :func:`synthetic_images`: normalized random images of a dataset's shape.
- :func:`latch_on_batch`: Algorithm 2 on one batch, computed from the small m_j×m_j
  class Grams instead of k eigendecompositions of d×d second moments (the same top
  eigenpairs, since Z_jᵀZ_j and Z_jZ_jᵀ share their nonzero spectrum), so that setting
  V-MCR² up at 1000 classes takes a moment rather than minutes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vmcr2_cli.objectives import ClassPartition, VariationalMCR2

NOISE = 0.1  # norm of the isotropic noise relative to a sample's subspace component


def balanced_labels(m: int, k: int, generator: torch.Generator) -> Tensor:
    """(m,) int64 CPU labels, classes as equal as m allows (sizes differ by at most one), shuffled."""
    return (torch.arange(m) % k)[torch.randperm(m, generator=generator)]


def subspace_features(m: int, d: int, k: int, subspace_dim: int, device: torch.device,
                      generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Unit-row float32 features (m, d) on ``device`` and their balanced CPU labels (m,).

    Class j's samples are U_j c + noise, normalized, with U_j a random orthonormal
    d×r basis (r = ``subspace_dim``, at most d) and c standard normal.
    """
    r = max(1, min(subspace_dim, d))
    labels = balanced_labels(m, k, generator)
    bases = torch.linalg.qr(torch.randn(k, d, r, generator=generator)).Q  # (k, d, r)
    coefficients = torch.randn(m, r, generator=generator) / r**0.5
    signal = torch.einsum("mdr,mr->md", bases[labels], coefficients)
    signal = signal / torch.linalg.vector_norm(signal, dim=1, keepdim=True).clamp_min(1e-12)
    noise = torch.randn(m, d, generator=generator) * (NOISE / d**0.5)
    Z = torch.nn.functional.normalize(signal + noise, dim=1)
    return Z.to(device), labels


def synthetic_images(m: int, channels: int, size: int, device: torch.device, generator: torch.Generator) -> Tensor:
    """(m, channels, size, size) float32 standard-normal images on ``device`` (normalized pixels)."""
    return torch.randn(m, channels, size, size, generator=generator).to(device)


@torch.no_grad()
def latch_on_batch(variational: VariationalMCR2, Z: Tensor, partition: ClassPartition,
                   generator: torch.Generator) -> None:
    """Set Γ and A as Algorithm 2 does on one batch: per class, the top s = q/k eigenpairs of Z_jᵀZ_j.

    Computed on the m_j×m_j side (batched over classes) when classes have at most d
    samples; otherwise ``variational.latch``. Where a class has fewer than s samples,
    its remaining atoms are random unit vectors with A = 0 (eigenvalue 0).
    """
    k, d, q = variational.num_classes, variational.feature_dim, variational.dictionary_size
    s = q // k
    if partition.n_max > d or q % k:
        variational.latch(Z, partition)
        return
    dtype, device = variational.gamma.dtype, variational.gamma.device
    padded = partition.pad(Z.detach().to(dtype))  # (k, n, d), zero rows for padding
    values, vectors = torch.linalg.eigh(padded @ padded.mT)  # ascending, (k, n), (k, n, n)
    t = min(s, values.shape[1])
    top_values = values[:, -t:].flip(-1).clamp_min(0)  # (k, t)
    top_vectors = padded.mT @ vectors[:, :, -t:].flip(-1)  # (k, d, t) = Z_jᵀv, norm √λ
    norms = torch.linalg.vector_norm(top_vectors, dim=1, keepdim=True)
    filler = torch.randn(k, d, s, generator=generator).to(device=device, dtype=dtype)
    gamma = filler.clone()
    usable = norms > 1e-6 * max(1.0, float(norms.max()))
    gamma[:, :, :t] = torch.where(usable, top_vectors / norms.clamp_min(1e-30), filler[:, :, :t])
    gamma = gamma / torch.linalg.vector_norm(gamma, dim=1, keepdim=True)
    A = torch.zeros(k, s, k, dtype=dtype, device=device)
    classes = torch.arange(k, device=device)
    block = torch.zeros(k, s, dtype=dtype, device=device)
    block[:, :t] = torch.where(usable.squeeze(1), top_values, 0)
    A[classes, :, classes] = block  # A[j·s + i, j] = λ_i of class j
    variational.gamma.copy_(gamma.permute(1, 0, 2).reshape(d, q))
    variational.A.copy_(A.reshape(q, k))
    variational.measure_cross_gram_energy()  # as latch_from_moments does
