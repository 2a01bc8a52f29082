"""Specification of the exact coding rate reduction (eq. 1): fast path, reference, moments."""

import pytest
import torch
import torch.nn.functional as F

from vmcr2_cli.objectives import (
    RateReduction,
    class_second_moments,
    coding_rate,
    rate_reduction,
    rate_reduction_reference,
)

F64 = torch.float64


def unit_rows(m, d, seed, dtype=F64):
    return F.normalize(torch.randn(m, d, generator=torch.Generator().manual_seed(seed), dtype=dtype), dim=1)


def labels_from_sizes(sizes, seed=0):
    labels = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]


def direct_logdet(matrix):
    sign, value = torch.linalg.slogdet(matrix)
    assert sign > 0
    return value


def test_public_example_returns_named_terms():
    Z, labels = unit_rows(30, 8, seed=0), torch.arange(30) % 3
    rr = rate_reduction(Z, labels, num_classes=3, eps2=0.5)
    assert isinstance(rr, RateReduction)
    assert rr.r.shape == rr.r_c.shape == rr.delta_r.shape == ()
    torch.testing.assert_close(rr.delta_r, rr.r - rr.r_c)


@pytest.mark.parametrize("m", [5, 40], ids=["m<d", "m>d"])
def test_coding_rate_equals_eq1_on_either_side(m):
    d, eps2 = 12, 0.5
    Z = unit_rows(m, d, seed=1)
    expected = direct_logdet(torch.eye(d, dtype=F64) + d / (m * eps2) * Z.T @ Z) / 2
    torch.testing.assert_close(coding_rate(Z, eps2), expected, rtol=1e-12, atol=0)


CLASS_SIZES = {
    "balanced": [6, 6, 6, 6],
    "unbalanced": [1, 2, 9, 4],
    "absent classes": [5, 0, 3, 0, 7],
    "singleton classes": [1, 1, 1, 1, 1],
    "classes larger and smaller than d in one batch": [1, 3, 20, 0, 5, 2],
    "every class larger than d": [12, 15, 30],
}


@pytest.mark.parametrize("sizes", CLASS_SIZES.values(), ids=CLASS_SIZES.keys())
def test_fast_path_equals_the_per_class_reference(sizes):
    d = 8
    labels = labels_from_sizes(sizes, seed=len(sizes))
    Z = unit_rows(len(labels), d, seed=sum(sizes))
    fast = rate_reduction(Z, labels, num_classes=len(sizes), eps2=0.5)
    reference = rate_reduction_reference(Z, labels, num_classes=len(sizes), eps2=0.5)
    for got, expected in zip(fast, reference, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=0)


def test_reference_equals_eq1_written_out():
    sizes, d, eps2 = [3, 0, 5], 4, 0.5
    labels = labels_from_sizes(sizes)
    Z = unit_rows(len(labels), d, seed=3)
    m = len(labels)
    r_c = sum(
        (m_j / m) / 2 * direct_logdet(torch.eye(d, dtype=F64) + d / (m_j * eps2) * Z[labels == j].T @ Z[labels == j])
        for j, m_j in enumerate(sizes)
        if m_j > 0
    )
    torch.testing.assert_close(rate_reduction_reference(Z, labels, 3, eps2).r_c, r_c)


def test_absent_classes_contribute_nothing():
    labels = labels_from_sizes([4, 5, 6])
    Z = unit_rows(15, 6, seed=4)
    with_absent = rate_reduction(Z, labels, num_classes=10)
    without = rate_reduction(Z, labels, num_classes=3)
    torch.testing.assert_close(with_absent.r_c, without.r_c, rtol=1e-14, atol=0)


def test_rows_need_not_have_unit_norm():
    Z = 3.0 * unit_rows(12, 4, seed=5)
    labels = torch.arange(12) % 2
    torch.testing.assert_close(rate_reduction(Z, labels, 2).r_c, rate_reduction_reference(Z, labels, 2).r_c)


def test_rate_reduction_passes_gradcheck():
    labels = labels_from_sizes([1, 2, 9, 0, 3])  # a class of 9 > d rows: both buckets
    Z = unit_rows(len(labels), 5, seed=6).requires_grad_()
    assert torch.autograd.gradcheck(lambda Z: rate_reduction(Z, labels, 5).delta_r, (Z,))


def test_fast_gradient_equals_the_reference_gradient():
    labels = labels_from_sizes([2, 7, 0, 4])
    Z = unit_rows(len(labels), 6, seed=7)
    fast = torch.autograd.grad(rate_reduction(Z.requires_grad_(), labels, 4).delta_r, Z)[0]
    reference = torch.autograd.grad(rate_reduction_reference(Z, labels, 4).delta_r, Z)[0]
    torch.testing.assert_close(fast, reference, rtol=1e-8, atol=1e-10)


def test_class_second_moments_are_per_class_ZjT_Zj():
    labels = labels_from_sizes([3, 0, 12, 1])
    Z = unit_rows(len(labels), 5, seed=8)
    moments = class_second_moments(Z, labels, num_classes=4)
    assert moments.shape == (4, 5, 5)
    for j in range(4):
        torch.testing.assert_close(moments[j], Z[labels == j].T @ Z[labels == j])


def test_class_second_moments_add_up_over_batches():
    labels = torch.randint(0, 4, (30,), generator=torch.Generator().manual_seed(9))
    Z = unit_rows(30, 5, seed=9)
    whole = class_second_moments(Z, labels, 4)
    parts = class_second_moments(Z[:13], labels[:13], 4) + class_second_moments(Z[13:], labels[13:], 4)
    torch.testing.assert_close(parts, whole)
