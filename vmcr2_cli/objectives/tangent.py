"""The tangent form of V-MCR²: θ ascends a lower bound of ΔR that Γ, A make tight.

Why a second form. In Algorithm 1 the featurizer θ sees Γ, A only through the penalty M:
its gradient is that of μ/(2m)·Σ_j (1/γ_j)‖Z_jᵀZ_j − ΓDiag(A_j)Γᵀ‖²_F, the pull of each
batch's class moments towards the dictionary. That pull carries the ascent of ΔR^v only
through how far one proximal step moved Γ, A; the rest of the residual is the batch's
sampling noise and the dictionary's lag behind θ. At large μ the proximal step hardly
moves Γ, A (its step is ∝ 1/μ) and the noise dominates: θ learns slowly. At small μ the
dictionary runs ahead of the features (R^v ≫ R): θ learns, but a surrogate.
As μ → ∞ the penalty method is exact (paper §3.2): the inner maximum pins
ΓDiag(A_j)Γᵀ to Z_jᵀZ_j and the θ-gradient of the penalty tends to that of ΔR itself.
This module computes that limit in closed form instead of approaching it.

The bound. log det is concave, so its tangent at any Φ_j⁻¹ ≻ 0 lies above it:

    logdet(I + α_j Z_jᵀZ_j) ≤ tr(Φ_j (I + α_j Z_jᵀZ_j)) − logdet Φ_j − d,

with equality at Φ_j = (I + α_j Z_jᵀZ_j)⁻¹. Take Φ_j = (I + α_j Γ_j Diag(A_j) Γ_jᵀ)⁻¹
= I − Γ_j Diag(w_j) Γ_jᵀ from class j's own s atoms Γ_j (orthonormal columns, as
latching makes them) and w_lj = α_j A_lj / (1 + α_j A_lj). Summed with the weights γ_j/2:

    R_c ≤ R_c^⊤ = Σ_j γ_j/2 Σ_l [log(1 + α_j A_lj) − w_lj]
                + α/2 · Σ_j (‖Z_j‖²_F − Σ_l w_lj ‖Z_j γ_l‖²)       (γ_j α_j = α)

(outside the atoms Φ_j = I here; the code uses c_j·I, see ``tangent_bound``)

so ΔR ≥ R − R_c^⊤, with equality when Γ_j Diag(A_j) Γ_jᵀ = Z_jᵀZ_j — right after
latching on the batch, with s at least the class's rank. R^v's own equality (eq. 7 with
M = 0) makes R_c^⊤ = R_c^v there. θ maximizes R − R_c^⊤ (a minorize–maximize step); its
gradient w.r.t. Z_j is α Z_j (K − Φ_j), K = (I + αZᵀZ)⁻¹, exactly ∇ΔR when Φ_j is exact.
No μ, no k×(d×d) matrices: R is one d×d (or m×m) Cholesky, R_c^⊤ costs each sample's
product with its class's s atoms, O(m·d·s) in all.

Keeping the bound tight between latchings (``track``): each step updates each present
class's atoms and spectrum towards the batch, by one block power iteration with a
Rayleigh–Ritz rotation on the moving average E_j ← (1 − β)·Γ_jDiag(A_j)Γ_jᵀ + β·Z_jᵀZ_j,
O(m·d·s + k·d·s²) per step and never a d×d matrix per class.

A target pushed ahead (``vmcr2_method = "tangent-push"``, not in the paper). The bound holds
at any Φ_j ≻ 0, so θ may ascend it at a spectrum other than the tracked one and still ascend a
lower bound of ΔR. That form takes Φ_j at a copy of A moved by one proximal A-step of
Algorithm 1 (``block.pushed_encodings``: A_j + ν_A/L_A·∇_{A_j}ΔR^v through the ReLU, at μ):
the step shrinks a class's weak directions and grows its strong ones, so θ's gradient
α Z_j(K − Φ_j) leans the way Algorithm 1's dictionary pulls the features, by an amount ∝ 1/μ,
while Γ, A themselves keep tracking the batch (R^v/R stays the tracked dictionary's).

The dictionary keeps latching's layout: class j's atoms are columns j·s … (j+1)·s − 1 of
Γ and its spectrum is A's column j on that block, zero elsewhere.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .block import dictionary_blocks, own_projection_energy
from .numerics import full_precision, symmetric_eigh
from .partition import ClassPartition
from .rate_reduction import _coding_rate


class TangentBound(NamedTuple):
    """R (exact), R_c^⊤ (the tangent bound, ≥ R_c) and bound = R − R_c^⊤ (≤ ΔR); 0-dim tensors."""

    r: Tensor
    r_c_bound: Tensor
    bound: Tensor


def tangent_bound(Z: Tensor, partition: ClassPartition, gamma: Tensor, A: Tensor, eps2: float,
                  *, check: bool = True) -> TangentBound:
    """R − R_c^⊤ of the batch (see the module docstring), differentiable w.r.t. Z.

    Args:
        Z: (m, d) features of the whole batch in the compute dtype (unit rows).
        partition: the batch's classes.
        gamma, A: the dictionary (d, q) and encodings (q, k) in latching's block layout;
            they are constants here.
        eps2: ε².
        check: raise on a factorization that is not positive definite.
    """
    m, d = Z.shape
    alpha = d / (m * eps2)
    blocks, spectra = dictionary_blocks(gamma.detach(), A.detach(), partition.num_classes)
    rest = d - blocks.shape[-1]  # dimensions outside a class's atoms
    sizes = partition.counts_on(Z.device, Z.dtype)
    present = sizes > 0
    with full_precision(Z.device):
        r = _coding_rate(Z, eps2, check=check)
        atoms = gamma.detach().T.contiguous().view(partition.num_classes, -1, d)  # rows: see block.class_atoms
        S = own_projection_energy(Z, partition, atoms)
        energy = Z.new_zeros(partition.num_classes).index_add(0, partition.labels_on(Z.device), Z.square().sum(dim=1))
        residual = energy - S.sum(dim=1)  # ‖Z_j‖²_F outside the atoms
        alpha_j = d / (sizes.clamp_min(1) * eps2)
        scaled = alpha_j[:, None] * spectra  # α_j A_lj
        phi = 1 / (1 + scaled)
        # Outside the atoms Φ_j is c_j·I, the best isotropic choice for this batch's
        # leftover energy (a constant of the bound: any c_j > 0 keeps it valid).
        rho = (residual.detach() / rest).clamp_min(0) if rest else torch.zeros_like(residual)
        c = 1 / (1 + alpha_j * rho)
        data = alpha / 2 * ((phi * S).sum(dim=1) + c * residual)
        constant = sizes / (2 * m) * ((phi + torch.log1p(scaled)).sum(dim=1) + rest * (c - torch.log(c)) - d)
        r_c_bound = torch.where(present, data + constant, 0).sum()
    return TangentBound(r, r_c_bound, r - r_c_bound)


@torch.no_grad()
def track(gamma: Tensor, A: Tensor, Z: Tensor, partition: ClassPartition, rate: float) -> None:
    """Move each present class's atoms and spectrum towards the batch, in place (see module docstring).

    One block power iteration on E_j = (1 − β)·Γ_jDiag(A_j)Γ_jᵀ + β·Z_jᵀZ_j (β = ``rate``),
    a QR to keep Γ_j orthonormal, then the Rayleigh–Ritz rotation that makes A_j the
    spectrum of E_j on the new atoms (descending, as latching orders it). Classes absent
    from the batch keep their atoms. A stays at the batch's scale, as latching leaves it.
    """
    k = partition.num_classes
    d = gamma.shape[0]
    blocks, spectra = dictionary_blocks(gamma, A, k)
    Z = Z.detach().to(gamma.dtype)
    with full_precision(Z.device):
        for bucket in partition.size_buckets(d, Z.device):
            classes = bucket.classes
            Z_j = bucket.pad(Z)  # (b, rows, d), zero rows beyond each class's size
            old_atoms, old_spectra = blocks.index_select(0, classes), spectra.index_select(0, classes)
            moved = (1 - rate) * old_atoms * old_spectra[:, None, :] + rate * (Z_j.mT @ (Z_j @ old_atoms))
            Q = torch.linalg.qr(moved).Q  # (b, d, s)
            overlap = Q.mT @ old_atoms  # (b, s, s)
            projected = Z_j @ Q
            ritz = (1 - rate) * (overlap * old_spectra[:, None, :]) @ overlap.mT + rate * projected.mT @ projected
            # In float64: float32 eigh returns NaN on some nearly rank-one Ritz matrices (a class
            # with one sample after a refit), and at s×s per class it costs nothing.
            values, vectors = symmetric_eigh((ritz + ritz.mT) / 2)  # ascending
            values, vectors = values.to(Q.dtype), vectors.to(Q.dtype)
            blocks[classes] = (Q @ vectors).flip(-1)
            A.view(k, -1, k)[classes, :, classes] = values.flip(-1).clamp_min(0)
