"""V-MCR²: the variational form of MCR² (paper eq. 7), its proximal step and latching.

Rows of Z are samples: Z is (m, d) and the paper's Z Diag(Π_j) Zᵀ is Z_jᵀZ_j here.
With Γ ∈ R^{d×q} (unit columns), A ∈ R^{q×k} (A ≥ 0), γ_j = m_j/m, α = d/(m ε²),
α_j = d/(m_j ε²), a = Σ_j A_j:

    R^v   = ½ logdet(I + α Γ Diag(a) Γᵀ)
    R_c^v = Σ_j γ_j/2 · Σ_l log(1 + α_j A_lj)
    M     = Σ_j (1/γ_j) ‖Z_jᵀZ_j − Γ Diag(A_j) Γᵀ‖²_F
    objective (maximized over θ, Γ, A):  R^v − R_c^v − μ/(2m)·M

M is evaluated through the expansion of appendix eq. 9, class by class:

    ‖Z_jᵀZ_j − Γ Diag(A_j) Γᵀ‖²_F = ‖Z_j Z_jᵀ‖²_F − 2⟨A_j, S_j⟩ + A_jᵀ (ΓᵀΓ)^⊙2 A_j,
    S_lj = Σ_{i∈j} (γ_lᵀ z_i)²          (the per-class sums of (ΓᵀZᵀ)^⊙2)

so nothing of size k×d×d is ever formed: the cost is one m×d×q product P = ZΓ,
the small per-class Grams, and q×q products with ΓᵀΓ.

Classes absent from a batch (m_j = 0) contribute nothing to R_c^v and M (their
weight γ_j is 0) and the proximal step leaves their columns of A unchanged.

Features must have unit rows (the constraint Z ∈ S of eq. 7); with ``validate=True``
(the default) every method checks it, see ``validation.py``.

Data parallelism (``collective``, see ``sharding.py``): every method takes this
process's rows of a global batch and the global batch's labels. The sums over samples —
S and Zᵀ(P ∘ Ŵ), the m×d×q products that dominate the cost — are computed on this
process's rows and summed over processes; the per-class Gram energies ‖Z_jZ_jᵀ‖², which
pair samples, come from the gathered batch (Σ_j m_j²·d, small). Γ and A are then updated
from quantities that are identical on every process, so they stay identical everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .numerics import (COMPUTE_DTYPES, add_identity, cholesky_factor, full_precision, inverse_from_cholesky,
                       symmetric_eigh)
from .partition import ClassPartition
from .rate_reduction import class_grams, class_second_moments
from .sharding import Collective, batch_partitions, whole_batch
from .validation import check_features, check_positive, check_positive_int


class VariationalTerms(NamedTuple):
    """The terms of eq. 7, each a 0-dim tensor; ``m_term`` is M (loss weight μ/(2m))."""

    r_v: Tensor
    r_c_v: Tensor
    m_term: Tensor
    delta_r_v: Tensor


class VariationalGradients(NamedTuple):
    """One evaluation of eq. 7 with its ascent direction (Algorithm 1, lines 5–6).

    terms: eq. 7 at the current Γ, A; grad_gamma (d, q) and grad_A (q, k): gradients of
    R^v − R_c^v − μ/(2m)·M; L_gamma, L_A: eqs. 17 and 19 (0-dim tensors).
    """

    terms: VariationalTerms
    grad_gamma: Tensor
    grad_A: Tensor
    L_gamma: Tensor
    L_A: Tensor


@dataclass(frozen=True)
class _Batch:
    """A batch as the maths needs it: this process's rows and the way to the others'.

    Z: this process's rows in the compute dtype; partition: the global batch's classes;
    rows: this process's rows' classes; collective: None for one process, when
    ``rows is partition`` and Z is the whole batch.
    """

    Z: Tensor
    partition: ClassPartition
    rows: ClassPartition
    collective: Collective | None

    @property
    def m(self) -> int:
        """The global batch size."""
        return self.partition.num_samples

    def whole(self) -> Tensor:
        """The global batch's features (differentiable through the gather)."""
        return whole_batch(self.Z, self.collective)

    def sum(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        """Each tensor summed over processes, in one reduction."""
        if self.collective is None:
            return tensors
        flat = self.collective.sum(torch.cat([t.reshape(-1) for t in tensors]))
        return tuple(part.view_as(t) for part, t in zip(flat.split([t.numel() for t in tensors]), tensors))


@dataclass(frozen=True)
class ClassWeights:
    """Per-class scalars of eq. 7 for one batch, (k,) tensors; zero for absent classes."""

    m: int
    present: Tensor  # m_j > 0
    sizes: Tensor  # m_j
    inverse_gamma: Tensor  # 1/γ_j = m/m_j, the class weights of M
    alpha_j: Tensor  # α_j = d/(m_j ε²)

    @classmethod
    def of(cls, partition: ClassPartition, feature_dim: int, eps2: float, like: Tensor) -> "ClassWeights":
        """The weights of the batch ``partition`` describes, on ``like``'s device and dtype."""
        sizes = partition.counts_on(like.device, like.dtype)
        present = sizes > 0
        safe_sizes = sizes.clamp_min(1)
        m = partition.num_samples
        return cls(m=m, present=present, sizes=sizes, inverse_gamma=torch.where(present, m / safe_sizes, 0),
                   alpha_j=torch.where(present, feature_dim / (safe_sizes * eps2), 0))


class VariationalMCR2(nn.Module):
    """Γ and A of eq. 7 (as buffers, so they go in checkpoints) and the maths on them.

    Args:
        feature_dim: d.
        num_classes: k.
        dictionary_size: q, the number of columns of Γ.
        eps2: the precision ε².
        mu: μ, the weight of the matching term M.
        nu_gamma, nu_A: ν_Γ and ν_A, the proximal step sizes in units of 1/L_Γ, 1/L_A.
        dtype: float32 or float64; the buffers' dtype and the compute dtype.
        generator: for the random initial dictionary.

    Γ starts as random unit columns and A as zeros: Algorithm 1 latches first.
    """

    gamma: Tensor
    A: Tensor

    def __init__(
        self,
        feature_dim: int,
        num_classes: int,
        dictionary_size: int,
        eps2: float = 0.5,
        mu: float = 1.0,
        nu_gamma: float = 5.0,
        nu_A: float = 5.0,
        dtype: torch.dtype = torch.float32,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.feature_dim = check_positive_int("feature_dim", feature_dim)
        self.num_classes = check_positive_int("num_classes", num_classes)
        self.dictionary_size = check_positive_int("dictionary_size", dictionary_size)
        self.eps2 = check_positive("eps2", eps2)
        self.mu = check_positive("mu", mu)
        self.nu_gamma = check_positive("nu_gamma", nu_gamma)
        self.nu_A = check_positive("nu_A", nu_A)
        if dtype not in COMPUTE_DTYPES:
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        gamma = torch.randn(feature_dim, dictionary_size, dtype=dtype, generator=generator)
        self.register_buffer("gamma", gamma / torch.linalg.vector_norm(gamma, dim=0))
        self.register_buffer("A", torch.zeros(dictionary_size, num_classes, dtype=dtype))
        # Σ (γ_lᵀγ_l')⁴ over atoms of different classes at the last latch: the part of eq. 19's
        # ‖(ΓᵀΓ)^⊙2‖²_F that the block method cannot afford each step (NaN: never measured).
        self.register_buffer("cross_gram_energy", torch.full((), float("nan"), dtype=dtype))
        self._cache: dict[str, tuple] = {}  # see _cached

    def extra_repr(self) -> str:
        return (
            f"d={self.feature_dim}, k={self.num_classes}, q={self.dictionary_size}, "
            f"eps2={self.eps2}, mu={self.mu}, nu_gamma={self.nu_gamma}, nu_A={self.nu_A}"
        )

    # ---- public API ----------------------------------------------------------------

    def terms(self, Z: Tensor, labels: Tensor | ClassPartition, *, validate: bool = True,
              collective: Collective | None = None) -> VariationalTerms:
        """The terms of eq. 7 for the current Γ, A on a batch (no gradient).

        Args:
            Z: (m, d) features with unit rows (this process's rows with a ``collective``).
            labels: (m,) classes in [0, k), or a ClassPartition of them (the global batch's).
            validate: run the value checks (unit rows, finite entries, positive definite).
            collective: the other processes of a data-parallel batch (see ``sharding.py``).
        """
        batch = self._prepare(Z, labels, validate, collective)
        with torch.no_grad(), full_precision(batch.Z.device):
            weights = self._class_weights(batch)
            (S,) = batch.sum(self._projection_energy(batch.Z @ self.gamma, batch.rows))
            within = _within_class_energy(batch.whole(), batch.partition)
            G, G2, H = self._dictionary_products()
            r_v, _ = dictionary_rate(self.gamma.T, self.A.sum(dim=1), self._alpha(batch), check=validate, G=G,
                                      with_inverse=False)
            return eq7_terms(weights, r_v, within, self.A.T, S.T, H.T)

    def gradients(self, Z: Tensor, labels: Tensor | ClassPartition, *, validate: bool = True,
                  collective: Collective | None = None) -> VariationalGradients:
        """Closed-form ∇_Γ, ∇_A of R^v − R_c^v − μ/(2m)·M and L_Γ, L_A (Alg. 1, lines 5–6).

        Closed form rather than autograd so that the big products (ZΓ, ΓᵀΓ and those
        with them) are each computed once. Z is treated as a constant.
        """
        batch = self._prepare(Z.detach(), labels, validate, collective)
        with torch.no_grad(), full_precision(batch.Z.device):
            return self._gradients(batch, check=validate)

    def proximal_step(self, Z: Tensor, labels: Tensor | ClassPartition, *, validate: bool = True,
                      collective: Collective | None = None) -> VariationalTerms:
        """One proximal gradient-ascent step on Γ and A (Algorithm 1, lines 5–10).

        Ascends R^v − R_c^v − μ/(2m)·M on a detached Z with steps ν_Γ/L_Γ and ν_A/L_A
        (appendix eqs. 17, 19), then A ← ReLU(A) and Γ's columns renormalized. Both
        gradients are taken at the current (Γ, A), a simultaneous update.

        L_Γ (eq. 17) is approximate: it assumes ΓᵀΓ ≈ I (eq. 14), true near a latched
        solution. Far from it — a random Γ with q ≫ d and a dense A — the paper's
        ν_Γ = 5 can overshoot and lower the objective; ν ≤ 1 (plain 1/L steps) did not
        in our tests, nor did ν = 5 from a latched state, which is where Algorithm 1
        starts.

        With a ``collective``, every process takes the same step: its inputs are summed
        over processes or computed from the gathered batch.

        Returns:
            The terms of eq. 7 before the update (for logging).
        """
        batch = self._prepare(Z.detach(), labels, validate, collective)
        Z = batch.Z
        with torch.no_grad(), full_precision(Z.device):
            # Lines 5–6: eq. 7 and its gradients, L_Γ and L_A.
            ascent = self._gradients(batch, check=validate)
            # Lines 7–8: gradient ascent. L_Γ = 0 only when A = 0, where ∇_Γ = 0 too.
            step_gamma = torch.where(ascent.L_gamma > 0, self.nu_gamma / ascent.L_gamma, 0)
            gamma = self.gamma + step_gamma * ascent.grad_gamma
            A = self.A + self.nu_A / ascent.L_A * ascent.grad_A
            # Line 9: A ← ReLU(A). Columns of classes absent from the batch stay as they
            # were: the batch says nothing about them, and only R^v (which grows with every
            # A_lj) would act on them, inflating A_j without bound.
            present = batch.partition.counts_on(Z.device, Z.dtype) > 0
            A = torch.where(present, torch.relu(A), self.A)
            # Line 10: unit columns of Γ.
            gamma = gamma / torch.linalg.vector_norm(gamma, dim=0).clamp_min(torch.finfo(Z.dtype).tiny)
            self.gamma.copy_(gamma)
            self.A.copy_(A)
        return ascent.terms

    def theta_loss(self, Z: Tensor, labels: Tensor | ClassPartition, *, validate: bool = True,
                   collective: Collective | None = None) -> Tensor:
        """μ/(2m)·M with the current Γ, A: the loss whose gradient updates θ (Alg. 1, lines 11–12).

        Differentiable w.r.t. Z. Of eq. 9 only ‖Z_jZ_jᵀ‖² and ⟨A_j, S_j⟩ depend on Z;
        the dictionary term A_jᵀ(ΓᵀΓ)^⊙2A_j is a constant, computed without a graph and
        cached for the next proximal step.

        With a ``collective`` the value is the global batch's on every process, and the
        gradient w.r.t. this process's rows is W times their share of it: a DDP featurizer,
        averaging over the W processes, gets the gradient of the global batch's loss
        (see ``sharding.py``).
        """
        batch = self._prepare(Z, labels, validate, collective)
        Z = batch.Z
        with full_precision(Z.device):
            weights = self._class_weights(batch)
            weighted_A = self.A * weights.inverse_gamma
            W_hat = weighted_A.T.index_select(0, batch.rows.labels_on(Z.device))
            cross = _WeightedProjectionEnergy.apply(Z, self.gamma, W_hat)  # Σ_j ⟨A_j, S_j⟩/γ_j over these rows
            within = _within_class_energy(batch.whole(), batch.partition)
            with torch.no_grad():
                _, _, H = self._dictionary_products()
                dictionary = (weighted_A * H).sum()  # Σ_j A_jᵀ(ΓᵀΓ)^⊙2A_j/γ_j
            if batch.collective is None:
                m_term = (weights.inverse_gamma * within).sum() - 2 * cross + dictionary
            else:
                # `within` is a global term, identical on every process (its gradient reaches
                # these rows W-fold through the gather); `cross` sums over these rows only, so
                # W·cross gives them the same W-fold share of Σ_processes cross. The value is
                # then corrected, without a gradient, to the global batch's M.
                world_size = batch.collective.world_size
                (total_cross,) = batch.sum(cross.detach().clone())
                m_term = (weights.inverse_gamma * within).sum() - 2 * world_size * cross + dictionary
                m_term = m_term + 2 * (world_size * cross.detach() - total_cross)
            return self.mu / (2 * batch.m) * m_term

    def matching_term_reference(self, Z: Tensor, labels: Tensor) -> Tensor:
        """M of eq. 7 summed class by class with explicit d×d matrices (for tests only)."""
        batch = self._prepare(Z, labels, validate=True)
        Z, partition, m = batch.Z, batch.partition, batch.m
        total = Z.new_zeros(())
        for j, m_j in enumerate(partition.counts.tolist()):
            if m_j == 0:
                continue
            Z_j = Z[partition.labels_on(Z.device) == j]
            residual = Z_j.T @ Z_j - (self.gamma * self.A[:, j]) @ self.gamma.T
            total = total + (m / m_j) * residual.square().sum()
        return total

    def latch(self, Z: Tensor, labels: Tensor | ClassPartition, *, validate: bool = True,
              collective: Collective | None = None) -> None:
        """Algorithm 2 on one batch: Γ, A from the top q/k eigenpairs of each Z_jᵀZ_j."""
        batch = self._prepare(Z, labels, validate, collective)
        (moments,) = batch.sum(class_second_moments(batch.Z, batch.rows, self.num_classes, validate=False))
        self.latch_from_moments(moments, batch.partition.counts, batch_size=batch.m)

    def latch_from_moments(self, second_moments: Tensor, class_counts: Tensor, batch_size: int) -> None:
        """Algorithm 2 from second moments accumulated over N samples (e.g. a dataset).

        For each class j the top s = q/k eigenvectors of Z_jᵀZ_j become Γ's block
        j·s … (j+1)·s − 1 and the eigenvalues, rescaled by m/N, become A's column j on
        that block (zero elsewhere). The rescale brings the dataset's sums over ≈ N·γ_j
        samples to the batch's scale, ≈ m·γ_j samples, which M compares A with.
        All classes in one batched eigh.

        Args:
            second_moments: (k, d, d) Z_jᵀZ_j summed over the N samples
                (see :func:`class_second_moments`; float64 recommended over a dataset).
            class_counts: (k,) samples per class among the N.
            batch_size: m, the training batch size.
        """
        k, d, q = self.num_classes, self.feature_dim, self.dictionary_size
        if q % k != 0:
            raise ValueError(f"latching needs dictionary_size (q={q}) divisible by num_classes (k={k})")
        s = q // k
        if s > d:
            raise ValueError(f"latching needs q/k ≤ d: q/k = {s} eigenvectors per class, feature_dim d = {d}")
        if tuple(second_moments.shape) != (k, d, d):
            raise ValueError(
                f"second_moments must have shape (k, d, d) = {(k, d, d)}, got {tuple(second_moments.shape)}"
            )
        if tuple(class_counts.shape) != (k,):
            raise ValueError(f"class_counts must have shape (k,) = ({k},), got {tuple(class_counts.shape)}")
        check_positive_int("batch_size", batch_size)
        total = float(class_counts.sum())
        if total <= 0 or bool((class_counts < 0).any()):
            raise ValueError("class_counts must be non-negative with a positive sum")
        dtype = torch.promote_types(self.gamma.dtype, second_moments.dtype)
        with torch.no_grad(), full_precision(self.gamma.device):
            moments = second_moments.to(device=self.gamma.device, dtype=dtype)
            moments = (moments + moments.mT) / 2  # symmetric up to accumulated rounding
            # In float64 whatever the dictionary's dtype (see symmetric_eigh); at k·d² it costs
            # little next to the pass that made the moments.
            eigenvalues, eigenvectors = symmetric_eigh(moments)  # ascending
            eigenvalues, eigenvectors = eigenvalues.to(dtype), eigenvectors.to(dtype)
            top_vectors = eigenvectors[..., -s:].flip(-1)  # (k, d, s)
            top_values = eigenvalues[..., -s:].flip(-1).clamp_min(0) * (batch_size / total)
            A = torch.zeros(k, s, k, dtype=dtype, device=moments.device)
            classes = torch.arange(k, device=moments.device)
            A[classes, :, classes] = top_values  # A[j·s + i, j] = σ_i of class j
            self.gamma.copy_(top_vectors.permute(1, 0, 2).reshape(d, q))
            self.A.copy_(A.reshape(q, k))
        self.measure_cross_gram_energy()

    @torch.no_grad()
    def measure_cross_gram_energy(self, chunk_entries: int = 2**24) -> None:
        """Set ``cross_gram_energy`` from the current Γ (latching's layout): Σ (γ_lᵀγ_l')⁴ over atom
        pairs of different classes, ΓᵀΓ computed ``chunk_entries`` entries at a time (q²·d in all)."""
        k, q = self.num_classes, self.dictionary_size
        if q % k:
            return  # no block layout: nothing to split
        s = q // k
        gamma = self.gamma
        rows = max(s, chunk_entries // q // s * s)  # whole classes per chunk
        cross = gamma.new_zeros((), dtype=torch.float64)
        with full_precision(gamma.device):
            for start in range(0, q, rows):
                fourth = (gamma[:, start:start + rows].T @ gamma).double().square_().square_()  # (rows, q)
                blocks = fourth.view(-1, s, k, s).diagonal(offset=start // s, dim1=0, dim2=2)  # own-class pairs
                cross += fourth.sum() - blocks.sum()
        self.cross_gram_energy.copy_(cross)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints from before cross_gram_energy existed load with it unmeasured.
        state_dict.setdefault(prefix + "cross_gram_energy", torch.full((), float("nan"), dtype=self.gamma.dtype))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ---- internals -----------------------------------------------------------------

    def _prepare(self, Z: Tensor, labels: Tensor | ClassPartition, validate: bool,
                 collective: Collective | None = None) -> _Batch:
        # With several processes the value checks read the gathered batch, so that every
        # process reaches the same verdict (one process raising alone would leave the
        # others waiting in a collective).
        check_features(Z, validate=validate and collective is None, unit_rows=True)
        if validate and collective is not None:
            check_features(collective.gather_rows(Z.detach()), validate=True, unit_rows=True)
        if Z.shape[1] != self.feature_dim:
            raise ValueError(f"Z has {Z.shape[1]} features per row, this objective has feature_dim={self.feature_dim}")
        if Z.device != self.gamma.device:
            raise ValueError(f"Z is on {Z.device} but Γ and A are on {self.gamma.device}: move the module with .to()")
        if self.gamma.dtype not in COMPUTE_DTYPES:
            raise ValueError(f"Γ and A must be float32 or float64, got {self.gamma.dtype}")
        partition, rows = batch_partitions(labels, self.num_classes, Z, collective)
        return _Batch(Z.to(self.gamma.dtype), partition, rows, collective)

    def _alpha(self, batch: _Batch) -> float:
        """α = d/(m ε²) of the global batch."""
        return self.feature_dim / (batch.m * self.eps2)

    def _class_weights(self, batch: _Batch) -> ClassWeights:
        return ClassWeights.of(batch.partition, self.feature_dim, self.eps2, batch.Z)

    def _projection_energy(self, P: Tensor, partition: ClassPartition) -> Tensor:
        """S (q, k): S_lj = Σ_{i∈j} (γ_lᵀz_i)², from P = ZΓ."""
        S = P.new_zeros(self.num_classes, P.shape[1])
        return S.index_add_(0, partition.labels_on(P.device), P.square()).T

    def _dictionary_products(self) -> tuple[Tensor, Tensor, Tensor]:
        """ΓᵀΓ, (ΓᵀΓ)^⊙2 and (ΓᵀΓ)^⊙2 A, cached until Γ or A changes.

        The q×q products are the most expensive part of a step after ZΓ; the θ-loss
        computes them for the updated Γ, A and the next proximal step reuses them.
        """

        def products() -> tuple[Tensor, Tensor, Tensor]:
            with torch.no_grad(), full_precision(self.gamma.device):
                G = self.gamma.T @ self.gamma
                G2 = G.square()
                return G, G2, G2 @ self.A

        return self._cached("dictionary", (self.gamma, self.A), products)

    def atom_rows(self) -> Tensor:
        """Γᵀ as a contiguous (q, d) copy, the atoms as rows, cached until Γ changes.

        The block layout's working copy (see ``block.py``): its per-class products and
        elementwise work run several times slower on a transposed view of Γ at q = 10⁴.
        """
        with torch.no_grad():
            return self._cached("atom rows", (self.gamma,), lambda: self.gamma.T.contiguous())

    def set_atom_rows(self, rows: Tensor) -> None:
        """Γ ← rowsᵀ (rows (q, d)), keeping ``rows`` as the cached :meth:`atom_rows`."""
        with torch.no_grad():
            self.gamma.copy_(rows.T)
        self._cache["atom rows"] = (self._cache_key((self.gamma,)), rows)

    def _cached(self, name: str, buffers: tuple[Tensor, ...], compute):
        """``compute()``, recomputed only when one of ``buffers`` has changed since.

        Staleness is detected by the buffers' identity and in-place version counters
        (bumped by copy_, load_state_dict, latching).
        """
        key = self._cache_key(buffers)
        entry = self._cache.get(name)
        if entry is None or len(entry[0]) != len(key) or any(
                old is not new or old_version != new_version
                for (old, old_version), (new, new_version) in zip(entry[0], key)):
            entry = self._cache[name] = (key, compute())
        return entry[1]

    @staticmethod
    def _cache_key(buffers: tuple[Tensor, ...]) -> tuple[tuple[Tensor, int], ...]:
        return tuple((buffer, buffer._version) for buffer in buffers)

    def _gradients(self, batch: _Batch, *, check: bool) -> VariationalGradients:
        gamma, A, mu = self.gamma, self.A, self.mu
        Z, m = batch.Z, batch.m
        alpha = self._alpha(batch)
        weights = self._class_weights(batch)
        weighted_A = A * weights.inverse_gamma  # A_j / γ_j
        # Eq. 7 with M through eq. 9. The sums over samples run over this process's rows:
        # P = ZΓ, S and Zᵀ(P ∘ Ŵ) (row i of Ŵ is A_{y_i}ᵀ/γ_{y_i}, sample i's class column).
        P = Z @ gamma  # (m, q) = (ΓᵀZᵀ)ᵀ
        W_hat = weighted_A.T.index_select(0, batch.rows.labels_on(Z.device))
        S, ZPW = batch.sum(self._projection_energy(P, batch.rows), Z.T @ (P * W_hat))
        within = _within_class_energy(batch.whole(), batch.partition)  # ‖Z_jᵀZ_j‖²_F
        G, G2, H = self._dictionary_products()  # ΓᵀΓ, (ΓᵀΓ)^⊙2, (ΓᵀΓ)^⊙2 A
        a = A.sum(dim=1)
        r_v, K_rows = dictionary_rate(gamma.T, a, alpha, check=check, G=G)
        K_gamma = K_rows.T
        terms = eq7_terms(weights, r_v, within, self.A.T, S.T, H.T)

        # ∇R^v: with K = (I + αΓDiag(a)Γᵀ)⁻¹, ∂R^v/∂Γ = αKΓDiag(a) and
        # ∂R^v/∂A_lj = (α/2)·γ_lᵀKγ_l for every j.
        # ∂R_c^v/∂A_lj = γ_j α_j / (2(1 + α_j A_lj)) = α / (2(1 + α_j A_lj)).
        # ∂M/∂A_j = (2/γ_j)(H_j − S_j);  ∂M/∂Γ = 4Γ(B ∘ ΓᵀΓ) − 4Zᵀ(P ∘ Ŵ) (cf. eq. 10),
        # B = Σ_j A_j A_jᵀ/γ_j.
        B = weighted_A @ A.T
        grad_gamma = torch.addmm(ZPW, gamma, B * G, alpha=-1)  # −∂M/∂Γ / 4
        grad_gamma = torch.add(2 * mu / m * grad_gamma, K_gamma * a, alpha=alpha)
        grad_A = (
            (alpha / 2) * (gamma * K_gamma).sum(dim=0)[:, None]
            - alpha / (2 * (1 + weights.alpha_j * A)) * weights.present
            + (mu / m) * weights.inverse_gamma * (S - H)
        )

        # Lipschitz bounds of the gradients of μ/(2m)·M. The appendix assumes balanced
        # classes, k/m = 1/(m γ_j); in general 1/m_j goes inside the class sum of eq. 17
        # and eq. 19 takes the largest μ/m_j.
        A_inf = A.amax(dim=0)  # ‖A_j‖_∞ (A ≥ 0)
        L_gamma = (2 * mu / m) * (weights.inverse_gamma * (within.sqrt() * A_inf + A_inf.square())).sum()
        L_A = (mu / m) * weights.inverse_gamma.max() * torch.linalg.matrix_norm(G2)
        return VariationalGradients(terms, grad_gamma, grad_A, L_gamma, L_A)


def eq7_terms(weights: ClassWeights, r_v: Tensor, within: Tensor, codes: Tensor, S: Tensor,
              H: Tensor) -> VariationalTerms:
    """Eq. 7's terms from the batch statistics, M by eq. 9, class by class.

    Row j of ``codes``, ``S`` and ``H`` holds class j's A_j, S_j and (ΓᵀΓ)^⊙2A_j over the
    atoms it codes with: all q (the dense layout, (k, q)) or its own s (the block layout).
    """
    gamma_j = weights.sizes / weights.m
    r_c_v = (gamma_j / 2 * torch.log1p(weights.alpha_j[:, None] * codes).sum(dim=1)).sum()
    m_term = matching_term(weights, within, codes, S, H)
    return VariationalTerms(r_v=r_v, r_c_v=r_c_v, m_term=m_term, delta_r_v=r_v - r_c_v)


def matching_term(weights: ClassWeights, within: Tensor, codes: Tensor, S: Tensor, H: Tensor) -> Tensor:
    """M = Σ_j (1/γ_j)(‖Z_jZ_jᵀ‖²_F − 2⟨A_j, S_j⟩ + ⟨A_j, H_j⟩), eq. 9; rows as in :func:`eq7_terms`."""
    per_class = within - 2 * (codes * S).sum(dim=1) + (codes * H).sum(dim=1)
    return (weights.inverse_gamma * per_class).sum()


def dictionary_rate(rows: Tensor, a: Tensor, alpha: float, *, check: bool, G: Tensor | None = None,
                    with_inverse: bool = True) -> tuple[Tensor, Tensor | None]:
    """R^v = ½ logdet(I + αΓDiag(a)Γᵀ) and ΓᵀK, K = (I + αΓDiag(a)Γᵀ)⁻¹, on the smaller side.

    ``rows`` is Γᵀ (q, d), the atoms as rows (a transposed view of Γ or the block
    layout's copy); ΓᵀK comes back in that layout, (q, d), or None without
    ``with_inverse``. d ≤ q: factor the d×d matrix. q < d: factor N = I_q + α Diag(√a)
    ΓᵀΓ Diag(√a) (same determinant, Sylvester) and use Woodbury,
    ΓᵀK = Γᵀ − α ΓᵀΓ Diag(√a) N⁻¹ Diag(√a) Γᵀ. ``G``: ΓᵀΓ if already computed.
    """
    q, d = rows.shape
    what = "I + α·ΓDiag(a)Γᵀ of R^v"
    if d <= q:
        factor, logdet = cholesky_factor(add_identity(alpha * rows.T @ (rows * a[:, None])), check=check,
                                         what=what)
        # K explicitly (O(d³)) then one q×d×d product: faster than triangular solves
        # with q right-hand sides.
        K_rows = rows @ inverse_from_cholesky(factor) if with_inverse else None
    else:
        G = rows @ rows.T if G is None else G
        root_a = a.sqrt()
        factor, logdet = cholesky_factor(add_identity(alpha * root_a[:, None] * G * root_a), check=check, what=what)
        K_rows = None
        if with_inverse:
            K_rows = rows - alpha * (G * root_a) @ (inverse_from_cholesky(factor) @ (root_a[:, None] * rows))
    return logdet / 2, K_rows

def _within_class_energy(Z: Tensor, partition: ClassPartition) -> Tensor:
    """(k,) ‖Z_jᵀZ_j‖²_F = ‖Z_j Z_jᵀ‖²_F per class (0 if absent), differentiable."""
    energy = Z.new_zeros(partition.num_classes)
    for bucket, grams in class_grams(Z, partition):
        energy = energy.index_copy(0, bucket.classes, grams.square().sum(dim=(-2, -1)))
    return energy


class _WeightedProjectionEnergy(torch.autograd.Function):
    """Σ_il W_il (z_iᵀγ_l)², differentiable w.r.t. Z only (Γ and W are constants).

    Autograd through P = ZΓ, P^⊙2, W ∘ P^⊙2 and the sum would keep two (m, q)
    temporaries and spend three elementwise passes over them backward; this keeps
    Q = W ∘ P and computes ∂/∂Z = 2QΓᵀ with one product.
    """

    @staticmethod
    def forward(ctx, Z: Tensor, gamma: Tensor, W: Tensor) -> Tensor:
        P = Z @ gamma
        Q = P * W
        ctx.save_for_backward(Q, gamma)
        return torch.dot(Q.reshape(-1), P.reshape(-1))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        Q, gamma = ctx.saved_tensors
        return (Q @ gamma.T).mul_(2 * grad), None, None
