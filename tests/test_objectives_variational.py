"""Specification of V-MCR² (eq. 7): terms, eq. 9, gradients, proximal step, latching."""

import pytest
import torch
import torch.nn.functional as F

from vmcr2_cli.objectives import VariationalMCR2, class_second_moments, rate_reduction

F64 = torch.float64


def generator(seed):
    return torch.Generator().manual_seed(seed)


def labels_from_sizes(sizes, seed=0):
    labels = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return labels[torch.randperm(len(labels), generator=generator(seed))]


def clustered_batch(sizes, d, seed, spread=0.7):
    """Unit rows around one random centre per class."""
    g = generator(seed)
    labels = labels_from_sizes(sizes, seed)
    centres = torch.randn(len(sizes), d, generator=g, dtype=F64)
    return F.normalize(centres[labels] + spread * torch.randn(len(labels), d, generator=g, dtype=F64), dim=1), labels


def subspace_batch(sizes, d, rank, seed):
    """Unit rows; the rows of class j span a random subspace of dimension ≤ rank."""
    g = generator(seed)
    labels = labels_from_sizes(sizes, seed)
    bases = torch.randn(len(sizes), d, rank, generator=g, dtype=F64)
    coefficients = torch.randn(len(labels), rank, generator=g, dtype=F64)
    return F.normalize(torch.einsum("mr,mdr->md", coefficients, bases[labels]), dim=1), labels


def model(d, k, q, seed, random_A=True, **kwargs):
    v = VariationalMCR2(d, k, q, dtype=F64, generator=generator(seed), **kwargs)
    if random_A:
        v.A.copy_(torch.rand(q, k, generator=generator(seed + 1), dtype=F64))
    return v


def objective_by_autograd(v, Z, labels, gamma, A):
    """Eq. 7 written out with explicit d×d matrices, differentiable in (gamma, A)."""
    m, d = Z.shape
    alpha = d / (m * v.eps2)
    r_v = torch.logdet(torch.eye(d, dtype=F64) + alpha * (gamma * A.sum(1)) @ gamma.T) / 2
    r_c_v, M = 0.0, 0.0
    for j in range(v.num_classes):
        Z_j = Z[labels == j]
        m_j = Z_j.shape[0]
        if m_j == 0:
            continue
        r_c_v = r_c_v + (m_j / m) / 2 * torch.log1p(d / (m_j * v.eps2) * A[:, j]).sum()
        M = M + (m / m_j) * (Z_j.T @ Z_j - (gamma * A[:, j]) @ gamma.T).square().sum()
    return r_v - r_c_v - v.mu / (2 * m) * M


def objective(v, Z, labels):
    terms = v.terms(Z, labels)
    return terms.delta_r_v - v.mu / (2 * Z.shape[0]) * terms.m_term


SHAPES = {"q > d": (12, 4, 24), "q < d": (12, 4, 8)}  # (d, k, q)


@pytest.mark.parametrize("d,k,q", SHAPES.values(), ids=SHAPES.keys())
def test_matching_term_by_eq9_equals_the_explicit_class_sum(d, k, q):
    Z, labels = clustered_batch([5, 0, 17, 2], d, seed=1)
    v = model(d, k, q, seed=1)
    torch.testing.assert_close(v.terms(Z, labels).m_term, v.matching_term_reference(Z, labels), rtol=1e-10, atol=0)


@pytest.mark.parametrize("d,k,q", SHAPES.values(), ids=SHAPES.keys())
def test_variational_rates_equal_their_definitions(d, k, q):
    Z, labels = clustered_batch([5, 0, 7, 2], d, seed=2)
    v = model(d, k, q, seed=2)
    m, eps2 = Z.shape[0], v.eps2
    sizes = torch.bincount(labels, minlength=k).to(F64)
    r_v = torch.logdet(torch.eye(d, dtype=F64) + d / (m * eps2) * (v.gamma * v.A.sum(1)) @ v.gamma.T) / 2
    present = sizes > 0
    r_c_v = ((sizes[present] / m) / 2 * torch.log1p(d / (sizes[present] * eps2) * v.A[:, present]).sum(0)).sum()
    terms = v.terms(Z, labels)
    torch.testing.assert_close(terms.r_v, r_v)
    torch.testing.assert_close(terms.r_c_v, r_c_v)
    torch.testing.assert_close(terms.delta_r_v, r_v - r_c_v)


@pytest.mark.parametrize("d,k,q", SHAPES.values(), ids=SHAPES.keys())
def test_closed_form_gradients_equal_autograd(d, k, q):
    Z, labels = clustered_batch([5, 0, 17, 2], d, seed=3)
    v = model(d, k, q, seed=3)
    gamma, A = v.gamma.clone().requires_grad_(), v.A.clone().requires_grad_()
    expected_gamma, expected_A = torch.autograd.grad(objective_by_autograd(v, Z, labels, gamma, A), (gamma, A))
    result = v.gradients(Z, labels)
    torch.testing.assert_close(result.grad_gamma, expected_gamma, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(result.grad_A, expected_A, rtol=1e-9, atol=1e-12)


def test_theta_loss_is_the_weighted_matching_term():
    Z, labels = clustered_batch([4, 6, 0, 3], 6, seed=4)
    v = model(6, 4, 8, seed=4, mu=0.3)
    expected = 0.3 / (2 * Z.shape[0]) * v.matching_term_reference(Z, labels)
    torch.testing.assert_close(v.theta_loss(Z, labels), expected, rtol=1e-10, atol=0)


def test_theta_loss_passes_gradcheck():
    Z, labels = clustered_batch([2, 7, 0, 3], 5, seed=5)  # a class of 7 > d rows: both buckets
    v = model(5, 4, 12, seed=5)
    # gradcheck perturbs Z off the unit sphere; M is defined for any Z, so skip that check.
    loss = lambda Z: v.theta_loss(Z, labels, validate=False)  # noqa: E731
    assert torch.autograd.gradcheck(loss, (Z.clone().requires_grad_(),))


def test_proximal_step_returns_the_terms_before_its_update():
    Z, labels = clustered_batch([5, 5, 5], 6, seed=6)
    v = model(6, 3, 9, seed=6)
    before = v.terms(Z, labels)
    returned = v.proximal_step(Z, labels)
    for got, expected in zip(returned, before, strict=True):
        torch.testing.assert_close(got, expected)
    assert not torch.allclose(v.terms(Z, labels).m_term, before.m_term)


def test_proximal_step_keeps_A_nonnegative_and_gamma_unit_columns():
    Z, labels = clustered_batch([5, 9, 2], 6, seed=7)
    v = model(6, 3, 9, seed=7)
    for _ in range(3):
        v.proximal_step(Z, labels)
    assert (v.A >= 0).all()
    torch.testing.assert_close(v.gamma.norm(dim=0), torch.ones(9, dtype=F64))


def test_proximal_step_leaves_columns_of_absent_classes_unchanged():
    Z, labels = clustered_batch([5, 0, 9, 0], 6, seed=8)
    v = model(6, 4, 8, seed=8)
    A_before = v.A.clone()
    v.proximal_step(Z, labels)
    assert torch.equal(v.A[:, [1, 3]], A_before[:, [1, 3]])
    assert not torch.equal(v.A[:, [0, 2]], A_before[:, [0, 2]])


def test_proximal_step_does_nothing_to_gamma_while_A_is_zero():
    Z, labels = clustered_batch([5, 5], 6, seed=9)
    v = model(6, 2, 4, seed=9, random_A=False)
    gamma = v.gamma.clone()
    v.proximal_step(Z, labels)
    torch.testing.assert_close(v.gamma, gamma, rtol=1e-15, atol=1e-15)
    assert torch.isfinite(v.A).all()


CASES = {  # (class sizes, d, k, q)
    "balanced, q > d": ([10, 10, 10, 10], 8, 4, 16),
    "unbalanced with an absent class, q < d": ([0, 3, 25, 8, 14], 40, 5, 20),
    "q much larger than d": ([30, 2, 50, 9, 0, 40, 12, 60, 33, 20], 16, 10, 160),
}


@pytest.mark.parametrize("sizes,d,k,q", CASES.values(), ids=CASES.keys())
def test_proximal_steps_of_one_over_L_do_not_decrease_the_objective(sizes, d, k, q):
    for seed in range(4):
        Z, labels = clustered_batch(sizes, d, seed=seed)
        v = model(d, k, q, seed=seed, nu_gamma=1.0, nu_A=1.0)
        for _ in range(8):
            before = objective(v, Z, labels)
            v.proximal_step(Z, labels)
            assert objective(v, Z, labels) >= before - 1e-10


@pytest.mark.parametrize("sizes,d,k,q", CASES.values(), ids=CASES.keys())
def test_paper_step_sizes_do_not_decrease_the_objective_after_latching(sizes, d, k, q):
    # Algorithm 1 starts from a latch; here latched on a perturbed copy of the batch.
    for seed in range(4):
        Z, labels = clustered_batch(sizes, d, seed=seed)
        v = model(d, k, q, seed=seed, random_A=False, nu_gamma=5.0, nu_A=5.0)
        v.latch(F.normalize(Z + 0.3 * torch.randn(Z.shape, generator=generator(seed), dtype=F64), dim=1), labels)
        for _ in range(8):
            before = objective(v, Z, labels)
            v.proximal_step(Z, labels)
            assert objective(v, Z, labels) >= before - 1e-10


def test_latching_a_batch_makes_the_variational_form_exact():
    # Every class spans at most s = q/k = 3 dimensions, so its top-3 eigenpairs are exact.
    Z, labels = subspace_batch([7, 12, 0, 2], d=10, rank=3, seed=10)
    v = model(10, 4, 12, seed=10, random_A=False)
    v.latch(Z, labels)
    exact, terms = rate_reduction(Z, labels, 4), v.terms(Z, labels)
    torch.testing.assert_close(terms.r_v, exact.r, rtol=1e-10, atol=0)
    torch.testing.assert_close(terms.r_c_v, exact.r_c, rtol=1e-10, atol=0)
    assert terms.m_term.abs() < 1e-10


def test_latching_from_dataset_moments_rescales_to_the_batch():
    # A dataset of 5 shuffled copies of the batch has exactly 5× the batch's moments
    # (N = 5m); the m/N rescale must bring A back to the batch's eigenvalues.
    Z, labels = subspace_batch([7, 12, 0, 2], d=10, rank=3, seed=11)
    m, copies = Z.shape[0], 5
    moments, counts = torch.zeros(4, 10, 10, dtype=F64), torch.zeros(4, dtype=torch.int64)
    for copy in range(copies):
        order = torch.randperm(m, generator=generator(copy))
        moments += class_second_moments(Z[order], labels[order], 4)
        counts += torch.bincount(labels, minlength=4)
    v = model(10, 4, 12, seed=11, random_A=False)
    v.latch_from_moments(moments, counts, batch_size=m)
    exact, terms = rate_reduction(Z, labels, 4), v.terms(Z, labels)
    torch.testing.assert_close(terms.delta_r_v, exact.delta_r, rtol=1e-10, atol=0)
    assert terms.m_term.abs() < 1e-10


def test_latching_from_dataset_moments_without_the_rescale_would_not_match():
    Z, labels = subspace_batch([7, 12, 0, 2], d=10, rank=3, seed=11)
    moments = 5 * class_second_moments(Z, labels, 4)
    counts = 5 * torch.bincount(labels, minlength=4)
    v = model(10, 4, 12, seed=11, random_A=False)
    v.latch_from_moments(moments, counts, batch_size=5 * Z.shape[0])  # scale 1: dataset sums
    assert v.terms(Z, labels).m_term > 1.0


def test_latched_dictionary_blocks_hold_each_class_eigenvectors():
    Z, labels = subspace_batch([6, 8], d=5, rank=2, seed=12)
    v = model(5, 2, 4, seed=12, random_A=False)
    v.latch(Z, labels)
    torch.testing.assert_close(v.gamma.norm(dim=0), torch.ones(4, dtype=F64))
    assert torch.count_nonzero(v.A[:2, 1]) == 0 and torch.count_nonzero(v.A[2:, 0]) == 0
    for j, block in enumerate((slice(0, 2), slice(2, 4))):
        Z_j = Z[labels == j]
        torch.testing.assert_close((v.gamma[:, block] * v.A[block, j]) @ v.gamma[:, block].T, Z_j.T @ Z_j)


def test_gamma_and_A_are_buffers_saved_in_the_state_dict():
    v = model(6, 3, 9, seed=13)
    assert list(v.parameters()) == []
    assert set(v.state_dict()) == {"gamma", "A", "cross_gram_energy"}


def test_loading_a_state_dict_refreshes_the_cached_dictionary_products():
    Z, labels = clustered_batch([4, 4, 4], 6, seed=14)
    first, second = model(6, 3, 9, seed=14), model(6, 3, 9, seed=15)
    first.terms(Z, labels)  # fills first's cache
    first.load_state_dict(second.state_dict())
    for got, expected in zip(first.terms(Z, labels), second.terms(Z, labels), strict=True):
        torch.testing.assert_close(got, expected)
