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


OPERATORS = ("E", "C")  # a layer's expansion and compressions: what back-propagation trains

# How the network classifies: eq. 14's π̂ by the head as the lecture writes it, or with each class's
# residual calibrated on the construction set (see :func:`calibration`).
HEADS = ("lecture", "calibrated")


@dataclass(frozen=True)
class ReduNetSettings:
    """The construction's constants (the lecture's mixture-of-Gaussians run: η 0.5, ε² 0.01)."""

    layers: int = 20
    eta: float = 0.5  # η, the step of eq. 17
    eps2: float = 0.5  # ε², the precision of the rates
    lam: float = 500.0  # λ, the softmax's inverse temperature in eq. 14
    head: str = "lecture"  # how the network classifies (HEADS)
    pool: int = 1  # images averaged over pool × pool blocks before the first layer
    # The invariant form: C channels lifted by random filters of ``kernel`` taps a side; ``shifts``: the
    # signal it is invariant to the cyclic shifts of (redunet_shift.SIGNALS).
    channels: int = 8
    kernel: int = 5
    shifts: str = "2d"


def calibration(residuals: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """The scale (k,) a calibrated head divides each class's residual ‖Cʲ z‖ by: s_j / s̄, s_j the mean
    residual of the construction set's samples of the other classes (how far a typical non-member is).

    Eq. 14's argmin ‖Cʲ z‖ has no term for a class's spread: Cʲ is small in every direction class j
    spreads into, so a class that spreads into many gives small residuals to every sample (the invariant
    form's per-frequency covariances are full rank: one class took 63% of Fashion-MNIST's test images,
    benchmarks/REDUNET.md §4). Over s̄, the mean of the s_j, so that λ keeps its scale."""
    others = torch.stack([residuals[labels != j, j].mean() if (labels != j).any() else residuals.new_ones(())
                          for j in range(num_classes)])
    return others / others.mean()


class ReduNetLayer(nn.Module):
    """One layer φ^ℓ(z) = P_S[z + η g(z)] with its operators E (d, d) and C (k, d, d) as buffers."""

    BUFFERS = ("E", "C", "gamma")

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

    def _compressed(self, Z: Tensor) -> Tensor:
        """Cʲ z for every row of Z and every class: (m, k, d)."""
        return torch.einsum("kde,me->mkd", self.C, Z)

    def residuals(self, Z: Tensor, compressed: Tensor | None = None) -> Tensor:
        """‖Cʲ z‖ (m, k) for every row of Z and every class: what eq. 14 compares."""
        compressed = self._compressed(Z) if compressed is None else compressed
        return torch.linalg.vector_norm(compressed, dim=-1)

    def memberships(self, Z: Tensor, compressed: Tensor | None = None) -> Tensor:
        """π̂ (m, k) of eq. 14: a softmax over the classes of −λ‖Cʲ z‖."""
        return estimated_memberships(self.residuals(Z, compressed), self.gamma, self.lam)

    def gradient(self, Z: Tensor, memberships: Tensor, compressed: Tensor | None = None) -> Tensor:
        """g(z) of eqs. 13/15 for every row of Z, with memberships π (m, k)."""
        compressed = self._compressed(Z) if compressed is None else compressed
        weights = memberships * self.gamma  # γ_j πʲ(z)
        return Z @ self.E.T - torch.einsum("mk,mkd->md", weights, compressed)

    def forward(self, Z: Tensor, labels: Tensor | None = None) -> Tensor:
        """φ^ℓ of every row of Z; ``labels`` (the construction set's) replace π̂ by the known Π."""
        compressed = self._compressed(Z)
        if labels is None:
            memberships = self.memberships(Z, compressed)
        else:
            memberships = nn.functional.one_hot(labels, self.C.shape[0]).to(Z.dtype)
        return nn.functional.normalize(Z + self.eta * self.gradient(Z, memberships, compressed), dim=1)


def estimated_memberships(residuals: Tensor, gamma: Tensor, lam: float, scale: Tensor | None = None) -> Tensor:
    """π̂ = softmax_j(−λ‖Cʲ z‖) (eq. 14) from the residuals (m, k), each divided by its class's ``scale``
    where there is one (a calibrated head); a class absent from the construction set (γ_j = 0: its C
    is 0, its residual 0) gets none."""
    if scale is not None:
        residuals = residuals / scale
    return torch.softmax((-lam * residuals).masked_fill(gamma == 0, float("-inf")), dim=1)


class ConstructedNetwork(nn.Module):
    """Layers constructed one at a time on a construction set, not trained by gradient.

    f(x) = φ^L ∘ … ∘ φ¹(input(x)), its rows flattened. ``grow`` adds the layer of the construction
    set's features entering it; ``through`` passes that set (with its labels: the known Π) through
    the layers built so far, which is how a construction resumes. ``head``: the operators of the
    construction set's features leaving the last layer (the next layer, unapplied), whose π̂ (eq. 14)
    classifies: argmax_j π̂_j(z) = argmin_j ‖Cʲ z‖ (``classify``), the lecture's rule, invariant to
    shifts for the invariant form; with ``head = "calibrated"`` each class's residual over the head's
    ``head_scale`` (:func:`calibration`; the layers stay the lecture's). The layers are buffers only, so a
    checkpoint is the operators; ``fit_layers_to`` makes as many empty layers as a saved state holds
    before it is loaded (a network starts with none).
    """

    layer_type: type

    def __init__(self, settings: ReduNetSettings, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.settings, self.dtype, self.pool = settings, dtype, settings.pool
        self.layers = nn.ModuleList()
        self.head: nn.Module | None = None
        self.register_buffer("head_scale", None)  # a calibrated head's (k,); None: in no state_dict

    def pooled(self, X: Tensor) -> Tensor:
        """Images (m, c, H, W) averaged over ``pool``×``pool`` blocks (d shrinks by pool²; cyclic shifts by
        multiples of ``pool`` stay cyclic shifts); other inputs as they are."""
        return nn.functional.avg_pool2d(X, self.pool) if self.pool > 1 and X.dim() == 4 else X

    def input_features(self, X: Tensor) -> Tensor:
        """The features entering the first layer: unit rows of the flattened (pooled) input."""
        return nn.functional.normalize(self.pooled(X).to(self.dtype).flatten(1), dim=1)

    def rates(self, Z: Tensor, labels: Tensor, num_classes: int) -> RateReduction:
        """R, R_c and ΔR of eq. 1 of the construction set's features."""
        return rate_reduction(Z, labels, num_classes, self.settings.eps2)

    def _layer_arguments(self) -> dict:
        """What a layer of this network is made with besides its buffers."""
        return {"eta": self.settings.eta, "lam": self.settings.lam}

    def _construct(self, Z: Tensor, labels: Tensor, num_classes: int) -> nn.Module:
        settings = self.settings
        return self.layer_type.construct(Z, labels, num_classes, eta=settings.eta, eps2=settings.eps2,
                                         lam=settings.lam)

    def grow(self, Z: Tensor, labels: Tensor, num_classes: int) -> Tensor:
        """One more layer on Z (the construction set's features entering it: the head's operators when
        it has one) and the head on Z leaving it; Z leaving it."""
        layer = self.head if self.head is not None else self._construct(Z, labels, num_classes)
        self.layers.append(layer)
        Z = layer(Z, labels)
        self.head = self._construct(Z, labels, num_classes)
        if self.settings.head == "calibrated":
            self.head_scale = calibration(self.head.residuals(Z), labels, num_classes)
        return Z

    def through(self, Z: Tensor, labels: Tensor) -> Tensor:
        for layer in self.layers:
            Z = layer(Z, labels)
        return Z

    def features(self, X: Tensor) -> Tensor:
        """The last layer's features of inputs without labels (π̂ decides each one's compression), in the
        layers' layout ((m, d), or (m, C, *shape) for the invariant form)."""
        Z = self.input_features(X)
        for layer in self.layers:
            Z = layer(Z)
        return Z

    def forward(self, X: Tensor) -> Tensor:
        return self.features(X).flatten(1)

    def _layout(self) -> tuple[int, ...]:
        """The shape of one sample's features in the layers (forward flattens it)."""
        return (-1,)

    @torch.no_grad()
    def classify(self, features: Tensor, batch_size: int = 1000) -> Tensor:
        """Eq. 14's class of each row of ``features`` (as forward returns them): argmax_j π̂_j by the head
        (calibrated: each class's residual over its ``head_scale``)."""
        if self.head is None:
            raise ValueError("a network without layers classifies nothing")
        head, classes = self.head, []
        for rows in features.split(batch_size):
            residuals = head.residuals(rows.to(self.dtype).reshape(len(rows), *self._layout()))
            classes.append(estimated_memberships(residuals, head.gamma, head.lam, self.head_scale).argmax(1))
        return torch.cat(classes)

    def fit_layers_to(self, state: dict[str, Tensor]) -> None:
        """Empty layers (and head) of the saved shapes, as many as ``state`` (a state_dict of this network)
        holds."""
        def placeholder(prefix: str) -> nn.Module:
            tensors = {name: torch.zeros_like(state[f"{prefix}.{name}"]) for name in self.layer_type.BUFFERS}
            return self.layer_type(**tensors, **self._layer_arguments())

        count = 0
        while f"layers.{count}.{self.layer_type.BUFFERS[0]}" in state:
            count += 1
        self.layers = nn.ModuleList(placeholder(f"layers.{i}") for i in range(count))
        self.head = placeholder("head") if f"head.{self.layer_type.BUFFERS[0]}" in state else None
        self.head_scale = torch.zeros_like(state["head_scale"]) if "head_scale" in state else None

    def train_operators(self) -> None:
        """The layers' operators E and C_j (``OPERATORS``) become parameters, for back-propagation through eq. 17's
        map (the lecture's fine-tuning); the head goes: the features it was built on will move. γ_j stay."""
        for layer in self.layers:
            for name in OPERATORS:
                value = getattr(layer, name)
                delattr(layer, name)
                layer.register_parameter(name, nn.Parameter(value))
        self.head = self.head_scale = None

    @torch.no_grad()
    def randomize_operators(self, generator: torch.Generator) -> None:
        """Every layer's operators drawn uniformly in ±1/√n (n: the size of the vector each one maps; real and
        imaginary parts alike), as a linear layer's default: the architecture without its construction. Drawn
        on the CPU (``generator``'s device), so that a seed draws the same operators on any device."""
        for layer in self.layers:
            for name in OPERATORS:
                operator = getattr(layer, name)
                drawn = torch.empty(operator.shape, dtype=operator.dtype)
                bound = operator.shape[-1] ** -0.5
                (torch.view_as_real(drawn) if drawn.is_complex() else drawn).uniform_(-bound, bound,
                                                                                       generator=generator)
                operator.copy_(drawn)


class ReduNet(ConstructedNetwork):
    """The vector form: rows of the flattened input on the unit sphere, then the constructed layers."""

    layer_type = ReduNetLayer


def construct(network: ConstructedNetwork, X: Tensor, labels: Tensor, num_classes: int,
              layers: int) -> list[RateReduction]:
    """Grow ``layers`` layers of ``network`` on the construction set X with its labels; the rates of
    its features entering the first layer and leaving each."""
    Z = network.input_features(X)
    measured = [network.rates(Z, labels, num_classes)]
    for _ in range(layers):
        Z = network.grow(Z, labels, num_classes)
        measured.append(network.rates(Z, labels, num_classes))
    return measured


def construct_redunet(X: Tensor, labels: Tensor, num_classes: int,
                      settings: ReduNetSettings = ReduNetSettings()) -> tuple[ReduNet, list[RateReduction]]:
    """The ReduNet of ``settings.layers`` layers built on X (m, …) with its labels (in X's precision),
    and the rates R, R_c, ΔR (eq. 1) of the construction set's features entering the first layer and
    leaving each."""
    network = ReduNet(settings, X.dtype)
    return network, construct(network, X, labels, num_classes, settings.layers)
