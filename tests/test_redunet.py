"""ReduNet's vector form (models/redunet.py): a layer on the construction set is a projected gradient
step of eq. 1's ΔR, π̂ finds the classes, and the rates rise along the layers."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from vmcr2_cli.models.redunet import ReduNetLayer, ReduNetSettings, calibration, construct_redunet
from vmcr2_cli.objectives.rate_reduction import rate_reduction


def mixture_of_subspaces(per_class: int = 60, d: int = 8, k: int = 3, dim: int = 2, noise: float = 0.05,
                         seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit rows near k random dim-dimensional subspaces of R^d (float64), with their labels."""
    generator = torch.Generator().manual_seed(seed)
    bases = [torch.linalg.qr(torch.randn(d, dim, generator=generator, dtype=torch.float64))[0] for _ in range(k)]
    rows = [torch.randn(per_class, dim, generator=generator, dtype=torch.float64) @ basis.T for basis in bases]
    Z = torch.cat(rows) + noise * torch.randn(per_class * k, d, generator=generator, dtype=torch.float64)
    return torch.nn.functional.normalize(Z, dim=1), torch.arange(k).repeat_interleave(per_class)


@pytest.mark.parametrize("eps2", [0.5, 0.1])
def test_a_layer_on_the_construction_set_is_a_projected_gradient_step_of_delta_r(eps2):
    Z, labels = mixture_of_subspaces()
    eta = 0.3
    layer = ReduNetLayer.construct(Z, labels, 3, eta=eta, eps2=eps2, lam=100.0)
    leaf = Z.clone().requires_grad_(True)
    rate_reduction(leaf, labels, 3, eps2, torch.float64).delta_r.backward()
    expected = torch.nn.functional.normalize(Z + eta * leaf.grad, dim=1)  # eq. 8 of the lecture, P_S
    assert torch.allclose(layer(Z, labels), expected, rtol=0, atol=1e-8)


def test_an_absent_class_compresses_nothing():
    Z, labels = mixture_of_subspaces(k=3)
    layer = ReduNetLayer.construct(Z, labels, 4, eta=0.5, eps2=0.5, lam=10.0)
    assert torch.equal(layer.C[3], torch.zeros_like(layer.C[3])) and layer.gamma[3] == 0
    assert layer.gamma.sum().item() == pytest.approx(1.0)
    assert torch.all(layer.memberships(Z)[:, 3] == 0)  # its residual ‖C z‖ = 0 would win every sample


def test_the_estimated_memberships_sum_to_one_and_find_the_class_of_samples_not_in_the_construction():
    Z, labels = mixture_of_subspaces(per_class=80, noise=0.02)
    construction = torch.arange(len(Z)) % 80 < 40  # half of each class builds the layer
    layer = ReduNetLayer.construct(Z[construction], labels[construction], 3, eta=0.5, eps2=0.1, lam=500.0)
    memberships = layer.memberships(Z[~construction])
    assert torch.allclose(memberships.sum(dim=1), torch.ones(len(memberships), dtype=Z.dtype))
    assert (memberships.argmax(dim=1) == labels[~construction]).double().mean().item() >= 0.95


def test_the_calibration_is_each_class_mean_residual_over_non_members_after_which_they_are_equal():
    Z, labels = mixture_of_subspaces(per_class=40, k=3)
    layer = ReduNetLayer.construct(Z, labels, 3, eta=0.5, eps2=0.1, lam=50.0)
    residuals = layer.residuals(Z)
    scale = calibration(residuals, labels, 3)
    others = torch.tensor([residuals[labels != j, j].mean().item() for j in range(3)], dtype=Z.dtype)
    assert torch.allclose(scale, others / others.mean(), rtol=0, atol=1e-12) and scale.mean().item() == pytest.approx(1)
    calibrated = residuals / scale  # a typical non-member is now as far from every class
    assert torch.allclose(torch.stack([calibrated[labels != j, j].mean() for j in range(3)]),
                          torch.full((3,), others.mean().item(), dtype=Z.dtype), rtol=0, atol=1e-12)


def test_a_calibrated_head_classifies_by_the_calibrated_residuals_and_leaves_the_layers_the_lectures():
    Z, labels = mixture_of_subspaces(per_class=40, noise=0.3)
    settings = ReduNetSettings(layers=3, eta=0.3, eps2=0.1, lam=50.0)
    lecture, _ = construct_redunet(Z, labels, 3, settings)
    calibrated, _ = construct_redunet(Z, labels, 3, dataclasses.replace(settings, head="calibrated"))
    assert "head_scale" not in lecture.state_dict()  # the checkpoint layout of the lecture's network
    assert set(calibrated.state_dict()) == set(lecture.state_dict()) | {"head_scale"}
    assert all(torch.equal(value, calibrated.state_dict()[key]) for key, value in lecture.state_dict().items())
    features = lecture(Z)
    assert torch.equal(calibrated(Z), features)
    scale = calibration(lecture.head.residuals(lecture.through(lecture.input_features(Z), labels)), labels, 3)
    assert torch.allclose(calibrated.head_scale, scale, rtol=0, atol=1e-12)
    assert torch.equal(calibrated.classify(features), (lecture.head.residuals(features) / scale).argmin(1))
    assert torch.equal(lecture.classify(features), lecture.head.residuals(features).argmin(1))


def test_the_rates_rise_along_the_layers_and_test_samples_follow_their_class():
    Z, labels = mixture_of_subspaces(per_class=80, noise=0.1)
    net, rates = construct_redunet(Z, labels, 3, ReduNetSettings(layers=30, eta=0.1, eps2=0.1, lam=500.0))
    delta_r = [rate.delta_r.item() for rate in rates]
    assert len(delta_r) == 31 and all(math.isfinite(value) for value in delta_r)
    assert all(later >= earlier - 1e-9 for earlier, later in zip(delta_r, delta_r[1:]))  # ascent, step by step
    assert delta_r[-1] > delta_r[0] + 0.5
    features = net(Z)  # without labels: π̂ decides each sample's compression
    assert torch.allclose(features.norm(dim=1), torch.ones(len(Z), dtype=Z.dtype))
    trained_rates = rate_reduction(features, labels, 3, 0.1).delta_r.item()
    assert trained_rates > delta_r[0]


# ----------------------------------------------------------------------------- the shift-invariant form

from vmcr2_cli.models.redunet_shift import (ShiftReduNetLayer, construct_shift_redunet,  # noqa: E402
                                            shift_rates)


def shifted_copies(Z: torch.Tensor) -> torch.Tensor:
    """Every cyclic shift of every sample of Z (m, C, *shape), flattened channel-major: (m·T, C·T)."""
    shape = Z.shape[2:]
    shifts = [tuple(offsets) for offsets in torch.cartesian_prod(*[torch.arange(n) for n in shape]).reshape(
        -1, len(shape)).tolist()]
    dims = tuple(range(2, Z.dim()))
    return torch.cat([torch.roll(Z, shift, dims).flatten(1) for shift in shifts])


def signals(m: int, channels: int, shape: tuple[int, ...], k: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    Z = torch.randn(m, channels, *shape, generator=generator, dtype=torch.float64)
    Z = Z / Z.flatten(1).norm(dim=1).view(-1, *([1] * (Z.dim() - 1)))
    return Z, torch.arange(m) % k


def explicit_operator(rows: torch.Tensor, alpha: float) -> torch.Tensor:
    eye = torch.eye(rows.shape[1], dtype=rows.dtype)
    return alpha * torch.linalg.inv(eye + alpha * rows.T @ rows)


@pytest.mark.parametrize("shape", [(6,), (7,), (3, 4), (3, 5)])  # 1D and 2D, even and odd last sizes
def test_the_spectral_layer_equals_the_explicit_block_circulant_operators(shape):
    channels, k, m, eta, eps2 = 3, 2, 6, 0.4, 0.3
    Z, labels = signals(m, channels, shape, k)
    layer = ShiftReduNetLayer.construct(Z, labels, k, eta=eta, eps2=eps2, lam=50.0)
    augmented = shifted_copies(Z)  # (m·T, C·T), each sample's shifts as rows
    T = augmented.shape[0] // m
    augmented_labels = labels.repeat(T)
    E = explicit_operator(augmented, channels / (m * eps2))  # α = C·T/(m·T·ε²)
    C = [explicit_operator(augmented[augmented_labels == j], channels / ((labels == j).sum().item() * eps2))
         for j in range(k)]
    flat = Z.flatten(1)
    gamma = torch.bincount(labels, minlength=k).double() / m
    g = flat @ E.T - torch.stack([gamma[j] * flat[i] @ C[j].T for i, j in enumerate(labels.tolist())])
    expected = torch.nn.functional.normalize(flat + eta * g, dim=1)
    assert torch.allclose(layer(Z, labels).flatten(1), expected, rtol=0, atol=1e-10)
    residuals = torch.stack([(flat @ C[j].T).norm(dim=1) for j in range(k)], dim=1)  # ‖Cʲ z‖, explicitly
    assert torch.allclose(layer.memberships(Z), torch.softmax(-50.0 * residuals, dim=1), rtol=0, atol=1e-10)
    by_frequency = shift_rates(Z, labels, k, eps2)
    direct = rate_reduction(augmented, augmented_labels, k, eps2, torch.float64)
    assert by_frequency.r.item() == pytest.approx(direct.r.item(), rel=1e-10)
    assert by_frequency.delta_r.item() == pytest.approx(direct.delta_r.item(), rel=1e-9, abs=1e-10)


@pytest.mark.parametrize("head", ["lecture", "calibrated"])
@pytest.mark.parametrize("shape", [(16,), (6, 5)])
def test_the_invariant_network_maps_a_shifted_input_to_the_shifted_features(shape, head):
    X, labels = signals(12, 1, shape, 3, seed=1)
    settings = ReduNetSettings(layers=4, eta=0.5, eps2=0.1, lam=20.0, head=head)
    net, rates = construct_shift_redunet(X, labels, 3, settings, channels=4)
    assert (net.head_scale is not None) == (head == "calibrated")
    dims = tuple(range(2, X.dim()))
    shift = (5,) if len(shape) == 1 else (2, 3)
    assert torch.allclose(net.features(torch.roll(X, shift, dims)), torch.roll(net.features(X), shift, dims), rtol=0,
                          atol=1e-12)
    assert torch.equal(net(X), net.features(X).flatten(1))
    assert torch.equal(net.classify(net(torch.roll(X, shift, dims))), net.classify(net(X)))  # the head: invariant
    delta_r = [rate.delta_r.item() for rate in rates]
    assert delta_r[-1] > delta_r[0]
