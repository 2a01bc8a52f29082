"""Specification of the precision policy: float32 at least, float64 on request, Cholesky only."""

import pytest
import torch
import torch.nn.functional as F

import vmcr2_cli.objectives.numerics as numerics
from vmcr2_cli.objectives import (
    ObjectiveSettings,
    NotPositiveDefiniteError,
    VariationalMCR2,
    build_objective,
    rate_reduction,
)


def batch(m=40, d=8, k=4, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    Z = F.normalize(torch.randn(m, d, generator=g, dtype=dtype), dim=1)
    return Z, torch.arange(m) % k


def test_bfloat16_autocast_gives_float32_accurate_rate_reduction():
    Z, labels = batch()
    exact = rate_reduction(Z.double(), labels, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rr = rate_reduction(Z, labels, 4)
    assert rr.delta_r.dtype == torch.float32
    for got, expected in zip(rr, exact, strict=True):
        torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5)


def test_bfloat16_autocast_gives_float32_accurate_variational_terms():
    Z, labels = batch()
    v = VariationalMCR2(8, 4, 8, generator=torch.Generator().manual_seed(1))
    v.latch(Z, labels)
    expected = v.terms(Z, labels)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = v.terms(Z, labels)
        loss = v.theta_loss(Z, labels)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(loss, v.mu / (2 * 40) * expected.m_term, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["mcr2", "vmcr2", "ce"])
def test_objective_steps_under_autocast_return_float32_losses(name):
    Z, labels = batch()
    objective = build_objective(name, 8, 4, ObjectiveSettings(atoms_per_class=2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = objective.step(Z.requires_grad_(), labels).loss
    assert loss.dtype == torch.float32


def test_half_precision_features_are_upcast_to_float32():
    Z, labels = batch()
    features = Z.bfloat16()
    rr = rate_reduction(features, labels, 4)
    assert rr.r.dtype == torch.float32
    torch.testing.assert_close(rr.delta_r, rate_reduction(features.float(), labels, 4).delta_r)


def test_float64_on_request():
    Z, labels = batch()
    assert rate_reduction(Z, labels, 4, dtype=torch.float64).r.dtype == torch.float64
    assert rate_reduction(Z.double(), labels, 4).r.dtype == torch.float64


def test_half_precision_compute_is_refused():
    Z, labels = batch()
    with pytest.raises(ValueError, match="never compute in half precision"):
        rate_reduction(Z, labels, 4, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="float32 or torch.float64"):
        VariationalMCR2(8, 4, 8, dtype=torch.float16)


def test_a_matrix_that_is_not_positive_definite_is_an_error():
    indefinite = torch.tensor([[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(NotPositiveDefiniteError, match="not positive definite"):
        numerics.cholesky_logdet(indefinite, check=False)


def test_nan_features_are_rejected_when_validating():
    Z, labels = batch()
    Z[3, 1] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        rate_reduction(Z, labels, 4)


def test_nan_features_still_fail_the_factorization_without_validation_on_cpu():
    Z, labels = batch()
    Z[3, 1] = float("nan")
    with pytest.raises(NotPositiveDefiniteError):
        rate_reduction(Z, labels, 4, validate=False)


def test_unchecked_failure_on_an_accelerator_is_nan_never_a_number(monkeypatch):
    # Where reading `info` would cost a host sync and check=False, the failed
    # factorization must come out NaN (so the trainer's non-finite check fires).
    monkeypatch.setattr(numerics, "checks_are_free", lambda device: False)
    matrices = torch.stack([torch.eye(2), torch.tensor([[1.0, 2.0], [2.0, 1.0]])])
    logdet = numerics.cholesky_logdet(matrices, check=False)
    assert logdet[0] == 0 and torch.isnan(logdet[1])
    with pytest.raises(NotPositiveDefiniteError):
        numerics.cholesky_logdet(matrices, check=True)
