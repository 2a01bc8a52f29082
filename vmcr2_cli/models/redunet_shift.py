"""ReduNet made invariant to cyclic shifts: its operators are multi-channel circulant convolutions,
computed per frequency in the Fourier domain (the MCR² lecture's spectral-domain algorithm).

A sample z is C channels of a 1D signal (C, T) or an image (C, H, W). Invariance asks the rates
to count every cyclic shift of a sample as a sample too: the construction set becomes the m·T
columns of [circ(z_1), …, circ(z_m)] in R^{C·T}, so α = C·T / (m·T·ε²) = C/(m ε²) and
α_j = C/(m_j ε²). E = α(I + α Σ_i circ(z_i) circ(z_i)*)⁻¹ is then block circulant: the DFT
along the signal diagonalizes it into one C×C matrix a frequency,

    Ê(f)  = α (I_C + α Σ_i ẑ_i(f) ẑ_i(f)ᴴ)⁻¹,      Ĉʲ(f) = α_j (I_C + α_j Σ_{i∈j} ẑ_i(f) ẑ_i(f)ᴴ)⁻¹,

and applying E to z is ẑ(f) ↦ Ê(f) ẑ(f) at every frequency, then the inverse DFT: T (or H·W)
inverses of C×C matrices instead of one of (C·T)×(C·T). Real signals use the one-sided DFT
(rfft), whose other half is the conjugate. Each layer commutes with cyclic shifts (circulant
operators, and memberships from shift-invariant norms), so the network's features of a shifted
input are the shifted features; ``tests/test_redunet.py`` checks that, and the spectral
operators against the explicit block-circulant ones, to machine precision.

The input is first lifted to C channels by circular convolution with C small random filters
(seeded) and a ReLU, also a shift-equivariant map (see :class:`Lifting` for why the ReLU).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from vmcr2_cli.models.redunet import ConstructedNetwork, ReduNetSettings, construct, estimated_memberships
from vmcr2_cli.objectives.rate_reduction import RateReduction


def _spectrum(Z: Tensor, dims: int) -> Tensor:
    """The one-sided DFT of (m, C, *signal) over its last ``dims`` axes, as (m, F, C) (F frequencies)."""
    spectrum = torch.fft.rfftn(Z, dim=tuple(range(-dims, 0)))
    return spectrum.flatten(2).transpose(1, 2).contiguous()  # contiguous: the einsums run 3× faster


def _signal(spectrum: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Back from (m, F, C) to real (m, C, *shape)."""
    m, _, channels = spectrum.shape
    half = (*shape[:-1], shape[-1] // 2 + 1)
    return torch.fft.irfftn(spectrum.transpose(1, 2).reshape(m, channels, *half), s=shape,
                            dim=tuple(range(-len(shape), 0)))


def _regularized_moments(spectrum: Tensor, alpha: float) -> Tensor:
    """I + α Σ_i ẑ_i ẑ_iᴴ at every frequency: (F, C, C) complex from the samples' (m, F, C)."""
    moments = torch.einsum("mfc,mfd->fcd", spectrum, spectrum.conj())
    eye = torch.eye(spectrum.shape[-1], dtype=spectrum.dtype, device=spectrum.device)
    return eye + alpha * moments


def _inverse_operator(spectrum: Tensor, alpha: float) -> Tensor:
    """α (I + α Σ_i ẑ_i ẑ_iᴴ)⁻¹ at every frequency (E, or Cʲ on a class's samples)."""
    return alpha * torch.linalg.inv(_regularized_moments(spectrum, alpha))


class ShiftReduNetLayer(nn.Module):
    """One invariant layer: Ê (F, C, C) and Ĉ (k, F, C, C) per frequency as buffers, on (C, *shape) samples."""

    BUFFERS = ("E", "C", "gamma")

    def __init__(self, E: Tensor, C: Tensor, gamma: Tensor, shape: tuple[int, ...], eta: float, lam: float) -> None:
        super().__init__()
        self.register_buffer("E", E)
        self.register_buffer("C", C)
        self.register_buffer("gamma", gamma)
        self.shape, self.eta, self.lam = tuple(shape), float(eta), float(lam)

    @classmethod
    def construct(cls, Z: Tensor, labels: Tensor, num_classes: int, *, eta: float, eps2: float,
                  lam: float) -> "ShiftReduNetLayer":
        """The layer of the construction set Z (m, C, *shape) with its labels (the spectral eqs. 9–10)."""
        m, channels, *shape = Z.shape
        spectrum = _spectrum(Z, len(shape))
        E = _inverse_operator(spectrum, channels / (m * eps2))
        counts = torch.bincount(labels, minlength=num_classes)
        C = torch.zeros((num_classes, *E.shape), dtype=E.dtype, device=E.device)
        for j in range(num_classes):
            if counts[j] > 0:
                C[j] = _inverse_operator(spectrum[labels == j], channels / (counts[j].item() * eps2))
        return cls(E, C, counts.to(Z.dtype) / m, tuple(shape), eta, lam)

    def _compressed(self, spectrum: Tensor) -> Tensor:
        """Ĉʲ ẑ for every class: (m, k, F, C)."""
        return torch.einsum("kfcd,mfd->mkfc", self.C, spectrum)

    def _residuals(self, compressed: Tensor) -> Tensor:
        """‖Cʲ z‖ over the whole signal (m, k), from the spectra by Parseval's identity: Σ_f w_f |·|² / N,
        w_f the two-sided frequencies each one-sided bin stands for."""
        weights = _frequency_weights(list(self.shape), compressed.device)
        energy = compressed.real.square() + compressed.imag.square()
        return ((energy.sum(-1) * weights).sum(-1) / math.prod(self.shape)).clamp_min(0).sqrt()

    def residuals(self, Z: Tensor) -> Tensor:
        """‖Cʲ z‖ (m, k) over the whole signal, for every sample and class (shift-invariant)."""
        return self._residuals(self._compressed(_spectrum(Z, len(self.shape))))

    def memberships(self, Z: Tensor) -> Tensor:
        """π̂ (m, k) of eq. 14, from ‖Cʲ z‖ (shift-invariant)."""
        return estimated_memberships(self.residuals(Z), self.gamma, self.lam)

    def forward(self, Z: Tensor, labels: Tensor | None = None) -> Tensor:
        """z + η g(z), g(z) = E z − Σ_j γ_j πʲ Cʲ z computed per frequency, onto the sphere; ``labels``
        (the construction set's) replace π̂ by the known Π."""
        spectrum = _spectrum(Z, len(self.shape))
        compressed = self._compressed(spectrum)
        if labels is None:
            memberships = estimated_memberships(self._residuals(compressed), self.gamma, self.lam)
        else:
            memberships = nn.functional.one_hot(labels, self.C.shape[0]).to(Z.dtype)
        weights = (memberships * self.gamma).to(spectrum.dtype)
        step = torch.einsum("fcd,mfd->mfc", self.E, spectrum) - torch.einsum("mk,mkfc->mfc", weights, compressed)
        return _unit(Z + self.eta * _signal(step, self.shape))


def _unit(Z: Tensor) -> Tensor:
    """Each sample scaled onto the unit sphere of R^{C·T} (P_S of eq. 17)."""
    norms = torch.linalg.vector_norm(Z.flatten(1), dim=1).clamp_min(1e-12)
    return Z / norms.view(-1, *([1] * (Z.dim() - 1)))


class Lifting(nn.Module):
    """x (m, c, *shape) → C channels: circular convolution with C seeded random filters of ``kernel``
    taps a side, then ReLU — both shift-equivariant. The nonlinearity is needed: linearly lifted, a
    one-channel input's spectrum at frequency f is k̂(f)·x̂(f), the same line in C^C for every
    image, which no per-frequency subspace can tell apart (classification at chance, measured)."""

    def __init__(self, in_channels: int, channels: int, shape: tuple[int, ...], kernel: int = 5, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        taps = tuple(min(kernel, n) for n in shape)
        filters = torch.zeros(channels, in_channels, *shape, dtype=torch.float64)
        filters[(..., *(slice(0, t) for t in taps))] = torch.randn(channels, in_channels, *taps, generator=generator,
                                                                   dtype=torch.float64)
        self.register_buffer("filters", filters)
        self.shape = tuple(shape)

    def forward(self, X: Tensor) -> Tensor:
        axes = tuple(range(-len(self.shape), 0))
        spectra = torch.fft.rfftn(X.to(self.filters.dtype), dim=axes)  # (m, c, *half)
        kernels = torch.fft.rfftn(self.filters, dim=axes)  # (C, c, *half)
        lifted = torch.fft.irfftn(torch.einsum("mc...,oc...->mo...", spectra, kernels), s=self.shape, dim=axes)
        return _unit(torch.relu(lifted))


# The signals an invariant ReduNet reads an image (c, H, W) as, and so the shifts it is invariant to:
# "2d": the image itself (2D cyclic translations; other inputs: their own axes); "rows": a 1D signal
# along the columns, each row of each channel a channel (c·H, W): horizontal cyclic shifts; "polar":
# the image sampled at R = ⌊min(H, W)/2⌋ radii and T = 6R angles around its centre, each radius of each
# channel a channel (c·R, T): a rotation by 2π/T is a cyclic shift (the lecture's 1D case, rotated digits).
SIGNALS = ("2d", "rows", "polar")


def signal_layout(shifts: str, channels: int, size: tuple[int, int]) -> tuple[int, tuple[int, ...]]:
    """(channels, shape) of the signal an image of ``channels`` × ``size`` is read as (see SIGNALS)."""
    if shifts == "rows":
        return channels * size[0], (size[1],)
    if shifts == "polar":
        radii = min(size) // 2
        return channels * radii, (6 * radii,)
    return channels, tuple(size)


def polar_samples(X: Tensor, radii: int, angles: int) -> Tensor:
    """Images (m, c, H, W) bilinearly sampled on a polar grid about their centre: (m, c, radii, angles),
    radius (i + ½)/radii of the half-size, angle 2πt/angles; a quarter turn of a square image
    (torch.rot90 from rows to columns) rolls the angles by −angles/4."""
    r = (torch.arange(radii, dtype=torch.float64) + 0.5) / radii
    theta = 2 * math.pi * torch.arange(angles, dtype=torch.float64) / angles
    grid = torch.stack([r[:, None] * torch.cos(theta), r[:, None] * torch.sin(theta)], dim=-1)  # (x, y)
    grid = grid.to(X.device, X.dtype).expand(len(X), radii, angles, 2)
    return nn.functional.grid_sample(X, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class ShiftReduNet(ConstructedNetwork):
    """The lifting, then the constructed invariant layers: features (m, C·∏shape) of inputs (m, c, *shape)
    (images read as the signal ``settings.shifts`` names, see SIGNALS)."""

    layer_type = ShiftReduNetLayer

    def __init__(self, settings: ReduNetSettings, lifting: Lifting, dtype: torch.dtype = torch.float64) -> None:
        super().__init__(settings, dtype)
        self.lifting = lifting

    def input_features(self, X: Tensor) -> Tensor:
        X = self.pooled(X)
        if self.settings.shifts == "polar" and X.dim() == 4:
            X = polar_samples(X.to(self.lifting.filters.dtype), min(X.shape[-2:]) // 2, self.lifting.shape[0])
        if self.settings.shifts in ("rows", "polar") and X.dim() == 4:
            X = X.flatten(1, 2)
        return self.lifting(X).to(self.dtype)

    def rates(self, Z: Tensor, labels: Tensor, num_classes: int) -> RateReduction:
        return shift_rates(Z, labels, num_classes, self.settings.eps2)

    def _layer_arguments(self) -> dict:
        return {**super()._layer_arguments(), "shape": self.lifting.shape}

    def _layout(self) -> tuple[int, ...]:
        return (self.lifting.filters.shape[0], *self.lifting.shape)


def shift_rates(Z: Tensor, labels: Tensor, num_classes: int, eps2: float) -> RateReduction:
    """R, R_c and ΔR (eq. 1) of the shift-augmented set — every cyclic shift a sample — per frequency.

    logdet(I + α Σ circ circ*) over R^{C·T} is the sum over frequencies of logdet(I_C + α M(f)),
    both halves of the spectrum (rfft's bins other than 0 and, for even T, T/2 count twice)."""
    m, channels, *shape = Z.shape
    spectrum = _spectrum(Z, len(shape))
    weights = _frequency_weights(shape, spectrum.device)

    def rate(part: Tensor, count: int) -> Tensor:
        logdets = torch.linalg.slogdet(_regularized_moments(part, channels / (count * eps2))).logabsdet
        return 0.5 * (weights * logdets).sum()

    r = rate(spectrum, m)
    counts = torch.bincount(labels, minlength=num_classes)
    r_c = sum((counts[j] / m) * rate(spectrum[labels == j], int(counts[j])) for j in range(num_classes)
              if counts[j] > 0)
    return RateReduction(r, r_c, r - r_c)


def _frequency_weights(shape: list[int], device: torch.device) -> Tensor:
    """How many frequencies of the two-sided spectrum each one-sided bin stands for (1 or 2)."""
    last = shape[-1]
    counts = torch.full((last // 2 + 1,), 2.0, dtype=torch.float64, device=device)
    counts[0] = 1.0
    if last % 2 == 0:
        counts[-1] = 1.0
    return counts.repeat(math.prod(shape[:-1]))


def construct_shift_redunet(X: Tensor, labels: Tensor, num_classes: int, settings: ReduNetSettings = ReduNetSettings(),
                            *, channels: int = 8, kernel: int = 5,
                            seed: int = 0) -> tuple[ShiftReduNet, list[RateReduction]]:
    """The invariant ReduNet of ``settings.layers`` layers on X (m, c, *shape), lifted to ``channels``
    by filters of ``kernel`` taps a side; and the shift-augmented rates of the construction set
    entering the first layer and leaving each."""
    network = ShiftReduNet(settings, Lifting(X.shape[1], channels, tuple(X.shape[2:]), kernel=kernel, seed=seed))
    return network, construct(network, X, labels, num_classes, settings.layers)
