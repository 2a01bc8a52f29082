"""ReduNet, vector form: a network built layer by layer from ΔR's gradient, not trained by it.

The MCR² lecture (``shared/seeds/003_…``, "Deep Networks from Optimizing Rate Reduction")
derives each layer as one projected gradient-ascent step on ΔR (its eqs. 7–17). Rows of Z
are samples, as everywhere in vmcr2 (the lecture's columns):

    E_ℓ   = α (I + α Z_ℓᵀZ_ℓ)⁻¹,                α   = d / (m ε²)       expansion, eq. 9
    C_ℓʲ  = α_j (I + α_j Z_ℓʲᵀZ_ℓʲ)⁻¹,          α_j = d / (m_j ε²)     compression, eq. 10
    g(z)  = E_ℓ z − Σ_j γ_j π̂ʲ(z) C_ℓʲ z,       γ_j = m_j / m          eqs. 13, 15
    π̂ʲ(z) = softmax_j(−λ ‖C_ℓʲ z‖)                                      eq. 14
    z_ℓ₊₁ = P_S[z_ℓ + η g(z_ℓ)]                 P_S: onto the unit sphere  eq. 17

E_ℓ and C_ℓʲ are computed once, from the construction set's features entering layer ℓ
(Z_ℓ, with its labels); the layer is then a fixed map of any z. On the construction set
itself the memberships are the known labels (π = Π, eq. 12), so that a layer there is
exactly a projected gradient step of eq. 1's ΔR (``tests/test_redunet.py`` checks it against
autograd); a sample without a label (a test image) uses the estimate π̂ (eq. 14).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vmcr2_cli.objectives.rate_reduction import RateReduction, rate_reduction


@dataclass(frozen=True)
class ReduNetSettings:
    """The construction's constants (the lecture's mixture-of-Gaussians run: η 0.5, ε² 0.01)."""

    layers: int = 20
    eta: float = 0.5  # η, the step of eq. 17
    eps2: float = 0.5  # ε², the precision of the rates
    lam: float = 500.0  # λ, the softmax's inverse temperature in eq. 14


class ReduNetLayer(nn.Module):
    """One layer φ^ℓ(z) = P_S[z + η g(z)] with its operators E (d, d) and C (k, d, d) as buffers."""

    def __init__(self, E: Tensor, C: Tensor, gamma: Tensor, eta: float, lam: float) -> None:
        super().__init__()
        self.register_buffer("E", E)
        self.register_buffer("C", C)
        self.register_buffer("gamma", gamma)
        self.eta, self.lam = float(eta), float(lam)

    @classmethod
    def construct(cls, Z: Tensor, labels: Tensor, num_classes: int, *, eta: float, eps2: float,
                  lam: float) -> "ReduNetLayer":
        """The layer of eqs. 9–10 from the construction set's features Z (m, d) and labels (m,)."""
        m, d = Z.shape
        eye = torch.eye(d, dtype=Z.dtype, device=Z.device)
        alpha = d / (m * eps2)
        E = alpha * torch.linalg.inv(eye + alpha * Z.T @ Z)
        counts = torch.bincount(labels, minlength=num_classes).to(Z.dtype)
        C = torch.zeros((num_classes, d, d), dtype=Z.dtype, device=Z.device)
        for j in range(num_classes):
            if counts[j] > 0:  # an absent class compresses nothing: its C stays 0
                Zj = Z[labels == j]
                alpha_j = d / (counts[j].item() * eps2)
                C[j] = alpha_j * torch.linalg.inv(eye + alpha_j * Zj.T @ Zj)
        return cls(E, C, counts / m, eta, lam)

    def memberships(self, Z: Tensor) -> Tensor:
        """π̂ (m, k) of eq. 14: a softmax over the classes of −λ‖Cʲ z‖."""
        residuals = torch.linalg.vector_norm(torch.einsum("kde,me->mkd", self.C, Z), dim=-1)
        return torch.softmax(-self.lam * residuals, dim=1)

    def gradient(self, Z: Tensor, memberships: Tensor) -> Tensor:
        """g(z) of eqs. 13/15 for every row of Z, with memberships π (m, k)."""
        compressed = torch.einsum("kde,me->mkd", self.C, Z)  # Cʲ z for every class
        weights = memberships * self.gamma  # γ_j πʲ(z)
        return Z @ self.E.T - torch.einsum("mk,mkd->md", weights, compressed)

    def forward(self, Z: Tensor, labels: Tensor | None = None) -> Tensor:
        """φ^ℓ of every row of Z; ``labels`` (the construction set's) replace π̂ by the known Π."""
        if labels is None:
            memberships = self.memberships(Z)
        else:
            memberships = nn.functional.one_hot(labels, self.C.shape[0]).to(Z.dtype)
        return nn.functional.normalize(Z + self.eta * self.gradient(Z, memberships), dim=1)


class ReduNet(nn.Module):
    """f(x) = φ^L ∘ … ∘ φ¹(x/‖x‖): the constructed layers applied in turn to unit rows."""

    def __init__(self, layers: list[ReduNetLayer]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, Z: Tensor) -> Tensor:
        Z = nn.functional.normalize(Z.flatten(1), dim=1)
        for layer in self.layers:
            Z = layer(Z)
        return Z


def construct_layers(Z: Tensor, labels: Tensor, num_classes: int, settings: ReduNetSettings, layer_type,
                     rates) -> tuple[list, list[RateReduction]]:
    """``settings.layers`` layers of ``layer_type``, each constructed on the construction set's features
    leaving the one before (Z entering the first), and ``rates(Z, labels, k, ε²)`` before and after each."""
    measured = [rates(Z, labels, num_classes, settings.eps2)]
    layers = []
    for _ in range(settings.layers):
        layer = layer_type.construct(Z, labels, num_classes, eta=settings.eta, eps2=settings.eps2, lam=settings.lam)
        Z = layer(Z, labels)
        layers.append(layer)
        measured.append(rates(Z, labels, num_classes, settings.eps2))
    return layers, measured


def construct_redunet(X: Tensor, labels: Tensor, num_classes: int,
                      settings: ReduNetSettings = ReduNetSettings()) -> tuple[ReduNet, list[RateReduction]]:
    """The ReduNet of ``settings.layers`` layers built on X (m, …) with its labels, and the rates
    R, R_c, ΔR (eq. 1) of the construction set's features entering the first layer and leaving each."""
    Z = nn.functional.normalize(X.flatten(1), dim=1)
    layers, rates = construct_layers(Z, labels, num_classes, settings, ReduNetLayer, rate_reduction)
    return ReduNet(layers), rates
