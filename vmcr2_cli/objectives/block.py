"""V-MCR² on latching's block layout: each class codes with its own atoms only.

Latching (Algorithm 2) leaves the dictionary in blocks: class j's atoms Γ_j are columns
j·s … (j+1)·s − 1 of Γ (s = q/k) and A_j, column j of A, is non-zero on that block only.
On such a dictionary every per-class quantity of eq. 7 involves class j's rows and
atoms alone. With S_j = Σ_{i∈j} (Γ_jᵀz_i)^⊙2 and G_j = Γ_jᵀΓ_j (s×s), eq. 9 reads

    ‖Z_jᵀZ_j − Γ_jDiag(A_j)Γ_jᵀ‖²_F = ‖Z_jZ_jᵀ‖²_F − 2⟨A_j, S_j⟩ + A_jᵀ G_j^⊙2 A_j,

so M, R_c^v and their gradients cost O(m·d·s + k·d·s²): flat in k at a fixed batch and
s, where the dense form pays O(m·d·q) for ZΓ and O(d·q² + q²·k) for the q×q products.
R^v couples all atoms: one d×d Cholesky of I + αΓDiag(a)Γᵀ and KΓ, O(d²·q), the
only term that grows with q.

Algorithm 1 itself does not keep the layout: its proximal A-step makes A_lj > 0 off
the block wherever class j's samples have energy on another class's atom that its own
atoms do not explain. ``method = "block"`` (:func:`proximal_step`, :func:`theta_loss`)
is Algorithm 1 with A constrained to the layout — the proximal operator of the set
{A ≥ 0, A_lj = 0 off the blocks} in place of the ReLU — and is otherwise the same, line
for line. Its L_A is eq. 19's: the diagonal blocks G_j^⊙2 of (ΓᵀΓ)^⊙2 each step, its
cross-class entries as measured at the last latch (``VariationalMCR2.cross_gram_energy``).
On a block-layout dictionary its terms, ∇_Γ, the block entries of ∇_A, L_Γ and — right
after a latch — L_A equal the dense ones (tested); the difference from Algorithm 1 is
the constraint, and L_A's cross-class part lagging behind Γ between latches.

The functions here take the whole batch (a data-parallel step gathers it first).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .numerics import full_precision
from .partition import ClassPartition
from .variational import (ClassWeights, VariationalMCR2, VariationalTerms, _within_class_energy, dictionary_rate,
                          eq7_terms, matching_term)


class BlockAscent(NamedTuple):
    """Eq. 7 on a block-layout dictionary with its ascent direction (Algorithm 1, lines 5–6).

    grad_atoms (k, s, d): ∇ w.r.t. each class's atoms, as rows (Γ_jᵀ); grad_spectra (k, s):
    ∇ w.r.t. A's block entries A_j; L_gamma, L_A: eqs. 17 and 19 (0-dim tensors).
    """

    terms: VariationalTerms
    grad_atoms: Tensor
    grad_spectra: Tensor
    L_gamma: Tensor
    L_A: Tensor


def dictionary_blocks(gamma: Tensor, A: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """Views of each class's atoms Γ_j (k, d, s) and spectrum A_j (k, s) in latching's layout.

    Both are views: writing into them writes into Γ and A.
    """
    d, q = gamma.shape
    s = q // num_classes
    blocks = gamma.view(d, num_classes, s).permute(1, 0, 2)
    spectra = A.view(num_classes, s, num_classes).diagonal(dim1=0, dim2=2).T
    return blocks, spectra


def class_atoms(variational: VariationalMCR2, num_classes: int) -> Tensor:
    """(k, s, d) class j's atoms as the rows of entry j: a view of ``variational.atom_rows()``."""
    return variational.atom_rows().view(num_classes, -1, variational.feature_dim)


def own_projection_energy(Z: Tensor, partition: ClassPartition, atoms: Tensor) -> Tensor:
    """(k, s) S_lj = Σ_{i∈j} (γ_lᵀz_i)² over class j's own atoms γ_l (rows of ``atoms``, (k, s, d)).

    Each sample meets only its class's s atoms (O(m·d·s)), batched per size bucket; zero
    for absent classes. Differentiable w.r.t. Z.
    """
    S = Z.new_zeros(atoms.shape[:2])
    for bucket in partition.size_buckets(Z.shape[1], Z.device):
        projections = bucket.pad(Z) @ atoms.index_select(0, bucket.classes).mT  # (b, rows, s)
        S = S.index_copy(0, bucket.classes, projections.square().sum(dim=1))
    return S


def own_moment_products(Z: Tensor, partition: ClassPartition, atoms: Tensor) -> Tensor:
    """(k, s, d) Γ_jᵀZ_jᵀZ_j, each class's second moment on its own atoms (zero for absent classes)."""
    products = Z.new_zeros(atoms.shape)
    for bucket in partition.size_buckets(Z.shape[1], Z.device):
        Z_j = bucket.pad(Z)  # (b, rows, d)
        projections = Z_j @ atoms.index_select(0, bucket.classes).mT  # (b, rows, s)
        products.index_copy_(0, bucket.classes, projections.mT @ Z_j)
    return products


def dictionary_energy(atoms: Tensor, spectra: Tensor) -> tuple[Tensor, Tensor]:
    """(G_j^⊙2 A_j (k, s), G_j = Γ_jᵀΓ_j (k, s, s)): eq. 9's dictionary term is ⟨A_j, G_j^⊙2 A_j⟩."""
    grams = atoms @ atoms.mT
    return (grams.square() @ spectra.unsqueeze(-1)).squeeze(-1), grams


@torch.no_grad()
def block_terms(variational: VariationalMCR2, Z: Tensor, partition: ClassPartition, *,
                check: bool = True) -> VariationalTerms:
    """R^v, R_c^v and M of eq. 7 for a dictionary in latching's block layout, without q×q products.

    Equal to ``VariationalMCR2.terms`` on such a dictionary (tested), at O(m·d·s + d²·q).
    M's statistics are summed in float64: when Γ, A fit the batch (the tangent method refits
    them at every step) M is a small difference of sums a thousand times larger, and float32's
    rounding of those sums is as large as M itself. They cost O(m·d·s); R^v stays in Z's dtype.
    """
    m, d = Z.shape
    k, eps2 = partition.num_classes, variational.eps2
    _, spectra = dictionary_blocks(variational.gamma, variational.A, k)
    atoms = class_atoms(variational, k)
    with full_precision(Z.device):
        r_v, _ = dictionary_rate(atoms.view(-1, d), spectra.reshape(-1), d / (m * eps2), check=check,
                                 with_inverse=False)
        Z64, atoms64, spectra64 = Z.double(), atoms.double(), spectra.double()
        H, _ = dictionary_energy(atoms64, spectra64)
        terms = eq7_terms(ClassWeights.of(partition, d, eps2, Z64), r_v.double(), _within_class_energy(Z64, partition),
                          spectra64, own_projection_energy(Z64, partition, atoms64), H)
    return VariationalTerms(*(term.to(Z.dtype) for term in terms))


@torch.no_grad()
def ascent(variational: VariationalMCR2, Z: Tensor, partition: ClassPartition, *, check: bool) -> BlockAscent:
    """Eq. 7, its gradients on the block layout and L_Γ, L_A (Algorithm 1, lines 5–6, constrained).

    The same expressions as the dense ``VariationalMCR2.gradients``, each restricted to
    class j's rows and atoms (see the module docstring), in the transposed layout.
    """
    m, d = Z.shape
    k, mu = partition.num_classes, variational.mu
    alpha = d / (m * variational.eps2)
    weights = ClassWeights.of(partition, d, variational.eps2, Z)
    _, spectra = dictionary_blocks(variational.gamma, variational.A, k)
    atoms = class_atoms(variational, k)  # Γ_jᵀ
    with full_precision(Z.device):
        moments = own_moment_products(Z, partition, atoms)  # Γ_jᵀZ_jᵀZ_j
        S = _row_dots(atoms, moments)  # S_lj = γ_lᵀZ_jᵀZ_jγ_l
        within = _within_class_energy(Z, partition)
        H, grams = dictionary_energy(atoms, spectra)
        r_v, K_rows = dictionary_rate(atoms.view(-1, d), spectra.reshape(-1), alpha, check=check)
        terms = eq7_terms(weights, r_v, within, spectra, S, H)
        K_atoms = K_rows.view(atoms.shape)  # (KΓ_j)ᵀ

        # ∂R^v/∂A_lj = (α/2)γ_lᵀKγ_l; ∂R_c^v/∂A_lj = α/(2(1 + α_jA_lj)); ∂M/∂A_j = (2/γ_j)(H_j − S_j).
        grad_spectra = (
            (alpha / 2) * _row_dots(atoms, K_atoms)
            - alpha / (2 * (1 + weights.alpha_j[:, None] * spectra)) * weights.present[:, None]
            + (mu / m) * weights.inverse_gamma[:, None] * (S - H)
        )
        # ∂R^v/∂Γ_j = αKΓ_jDiag(A_j); −∂M/∂Γ_j / 4 = (1/γ_j)(Z_jᵀZ_jΓ_jDiag(A_j) − Γ_jB_j),
        # B_j = (A_jA_jᵀ/γ_j) ∘ G_j. Transposed (rows are atoms), and in place: at k = 1000
        # each (k, s, d) temporary is 20 MB.
        weighted = (spectra * weights.inverse_gamma[:, None]).unsqueeze(-1)  # A_j/γ_j, (k, s, 1)
        pull = torch.baddbmm(moments.mul_(weighted), weighted * spectra[:, None, :] * grams, atoms, alpha=-1)
        grad_atoms = K_atoms.mul_(alpha * spectra.unsqueeze(-1)).add_(pull, alpha=2 * mu / m)

        # Eq. 17 as the dense step has it (A's entries off the blocks are zero there too).
        # Eq. 19 as the dense step has it: ‖(ΓᵀΓ)^⊙2‖_F from the diagonal blocks now and the
        # cross-class pairs as of the last latch (their q² products are what this method
        # avoids; Γ moves little between latches). Unmeasured, the diagonal blocks alone:
        # the constrained gradient's own constant, whose longer A-steps trail Algorithm 1
        # (benchmarks/REPRODUCTION.md §5).
        A_inf = spectra.amax(dim=1)  # ‖A_j‖_∞ (A ≥ 0)
        L_gamma = (2 * mu / m) * (weights.inverse_gamma * (within.sqrt() * A_inf + A_inf.square())).sum()
        energy = grams.square().square().sum()
        cross = variational.cross_gram_energy.to(energy.dtype)
        energy = torch.where(torch.isfinite(cross), energy + cross, energy)
        L_A = (mu / m) * weights.inverse_gamma.max() * energy.sqrt()
    return BlockAscent(terms, grad_atoms, grad_spectra, L_gamma, L_A)


@torch.no_grad()
def proximal_step(variational: VariationalMCR2, Z: Tensor, partition: ClassPartition, *,
                  check: bool) -> VariationalTerms:
    """One proximal ascent step on Γ and A with A kept on its blocks (Algorithm 1, lines 5–10).

    As ``VariationalMCR2.proximal_step``: steps ν_Γ/L_Γ and ν_A/L_A from the same (Γ, A),
    A's present columns through the ReLU (on their blocks), absent classes' columns kept,
    Γ's columns renormalized. Returns the terms of eq. 7 before the update.
    """
    step = ascent(variational, Z, partition, check=check)
    k = partition.num_classes
    _, spectra = dictionary_blocks(variational.gamma, variational.A, k)
    with full_precision(Z.device):
        step_gamma = torch.where(step.L_gamma > 0, variational.nu_gamma / step.L_gamma, 0)
        moved = step.grad_atoms.mul_(step_gamma).add_(class_atoms(variational, k))
        spectra.copy_(_spectra_step(variational, step, spectra, partition))
        moved.div_(torch.linalg.vector_norm(moved, dim=-1, keepdim=True).clamp_min(torch.finfo(Z.dtype).tiny))
        variational.set_atom_rows(moved.view(-1, variational.feature_dim))
    return step.terms


@torch.no_grad()
def pushed_encodings(variational: VariationalMCR2, Z: Tensor, partition: ClassPartition, *, check: bool) -> Tensor:
    """A copy of A with each present class's spectrum one proximal A-step ahead; Γ and A untouched.

    The A-half of :func:`proximal_step` (Algorithm 1, lines 5–6 and 8–9 on the blocks) applied to a
    copy: the target that the tangent method's ``tangent-push`` form evaluates its bound at.
    """
    step = ascent(variational, Z, partition, check=check)
    A = variational.A.clone()
    _, spectra = dictionary_blocks(variational.gamma, A, partition.num_classes)
    with full_precision(Z.device):
        spectra.copy_(_spectra_step(variational, step, spectra, partition))
    return A


def _spectra_step(variational: VariationalMCR2, step: BlockAscent, spectra: Tensor, partition: ClassPartition) -> Tensor:
    """Algorithm 1, lines 8–9 on the blocks: A_j + ν_A/L_A·∇_{A_j} through the ReLU; absent classes kept."""
    encoded = spectra + variational.nu_A / step.L_A * step.grad_spectra
    present = partition.counts_on(spectra.device, spectra.dtype)[:, None] > 0
    return torch.where(present, torch.relu(encoded), spectra)


def theta_loss(variational: VariationalMCR2, Z: Tensor, partition: ClassPartition) -> Tensor:
    """μ/(2m)·M with the current block-layout Γ, A: θ's loss (Algorithm 1, lines 11–12).

    Differentiable w.r.t. Z; equal to ``VariationalMCR2.theta_loss`` on such a dictionary.
    """
    m, d = Z.shape
    k = partition.num_classes
    weights = ClassWeights.of(partition, d, variational.eps2, Z)
    _, spectra = dictionary_blocks(variational.gamma.detach(), variational.A.detach(), k)
    atoms = class_atoms(variational, k)
    with full_precision(Z.device):
        S = own_projection_energy(Z, partition, atoms)
        with torch.no_grad():
            H, _ = dictionary_energy(atoms, spectra)
        return variational.mu / (2 * m) * matching_term(weights, _within_class_energy(Z, partition), spectra, S, H)


def _row_dots(X: Tensor, Y: Tensor) -> Tensor:
    """(k, s) the dot products of matching rows of (k, s, d) X and Y, without a (k, s, d) temporary."""
    return torch.einsum("ksd,ksd->ks", X, Y)
