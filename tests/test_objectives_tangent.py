"""Specification of the tangent form of V-MCR² (objectives/tangent.py) and of its method switch."""

import pytest
import torch

from test_objectives_variational import clustered_batch, generator, subspace_batch
from vmcr2_cli.objectives import ObjectiveSettings, ClassPartition, VariationalMCR2, VMCR2Objective, build_objective, rate_reduction
from vmcr2_cli.objectives import block
from vmcr2_cli.objectives.block import dictionary_blocks
from vmcr2_cli.objectives.tangent import tangent_bound, track

F64 = torch.float64
EPS2 = 0.5


def latched(Z, labels, k, s):
    """A dictionary latched (Algorithm 2) on the batch itself, s atoms per class."""
    v = VariationalMCR2(Z.shape[1], k, s * k, dtype=F64, generator=generator(0))
    v.latch(Z, ClassPartition(labels, k))
    return v


def random_blocks(d, k, s, seed):
    """A block dictionary with orthonormal atoms inside each class and a random spectrum A ≥ 0."""
    g = generator(seed)
    blocks = torch.linalg.qr(torch.randn(k, d, s, generator=g, dtype=F64)).Q
    gamma = blocks.permute(1, 0, 2).reshape(d, k * s)
    A = torch.zeros(k, s, k, dtype=F64)
    classes = torch.arange(k)
    A[classes, :, classes] = 5 * torch.rand(k, s, generator=g, dtype=F64)
    return gamma, A.reshape(k * s, k)


def sphere_tangent(gradient, Z):
    """The part of a gradient w.r.t. Z that moves the rows along the unit sphere."""
    return gradient - (gradient * Z).sum(dim=1, keepdim=True) * Z


def gradient_of(value_fn, Z):
    Z = Z.clone().requires_grad_()
    (gradient,) = torch.autograd.grad(value_fn(Z), Z)
    return gradient


@pytest.mark.parametrize("sizes", [[6, 6, 6], [2, 9, 5], [7, 0, 4]])
def test_bound_equals_delta_r_and_its_gradient_after_latching_on_the_batch(sizes):
    Z, labels = clustered_batch(sizes, d=5, seed=1)
    k = len(sizes)
    v = latched(Z, labels, k, s=5)  # s = d: the atoms hold each class's whole spectrum
    partition = ClassPartition(labels, k)
    bound = tangent_bound(Z, partition, v.gamma, v.A, EPS2)
    exact = rate_reduction(Z, labels, k, EPS2, F64)
    assert bound.bound.item() == pytest.approx(exact.delta_r.item(), rel=1e-10)
    g_bound = gradient_of(lambda X: tangent_bound(X, partition, v.gamma, v.A, EPS2).bound, Z)
    g_exact = gradient_of(lambda X: rate_reduction(X, labels, k, EPS2, F64).delta_r, Z)
    torch.testing.assert_close(g_bound, g_exact, rtol=1e-9, atol=1e-11)


def test_bound_is_tight_when_the_atoms_span_each_class_subspace():
    Z, labels = subspace_batch([8, 8, 8, 8], d=12, rank=3, seed=2)
    v = latched(Z, labels, 4, s=3)  # s = the classes' rank < d
    bound = tangent_bound(Z, ClassPartition(labels, 4), v.gamma, v.A, EPS2)
    assert bound.bound.item() == pytest.approx(rate_reduction(Z, labels, 4, EPS2, F64).delta_r.item(), rel=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_bound_never_exceeds_delta_r_for_any_block_dictionary(seed):
    Z, labels = clustered_batch([5, 8, 3, 6], d=7, seed=seed)
    gamma, A = random_blocks(7, 4, 3, seed)
    bound = tangent_bound(Z, ClassPartition(labels, 4), gamma, A, EPS2)
    assert bound.bound.item() <= rate_reduction(Z, labels, 4, EPS2, F64).delta_r.item() + 1e-12
    assert bound.r.item() == pytest.approx(rate_reduction(Z, labels, 4, EPS2, F64).r.item(), rel=1e-12)


def test_bound_ignores_classes_absent_from_the_batch():
    Z, labels = clustered_batch([5, 0, 6], d=6, seed=3)
    gamma, A = random_blocks(6, 3, 2, 3)
    other = A.clone()
    other[2:4, 1] = 100.0  # class 1's spectrum: absent, must not matter
    partition = ClassPartition(labels, 3)
    assert tangent_bound(Z, partition, gamma, A, EPS2).bound.item() == pytest.approx(
        tangent_bound(Z, partition, gamma, other, EPS2).bound.item(), rel=1e-14)


def cosine(a, b):
    return ((a * b).sum() / (a.norm() * b.norm())).item()


def test_gradient_is_the_mcr2_direction_where_the_paper_step_is_not():
    """From a dictionary latched on other samples, one refit makes θ's direction ΔR's own;
    Algorithm 1's θ-direction from the same state is dominated by the batch's mismatch."""
    Z, labels = clustered_batch([12, 12, 12], d=16, seed=4, spread=1.0)
    other, other_labels = clustered_batch([12, 12, 12], d=16, seed=5, spread=1.0)
    partition = ClassPartition(labels, 3)
    ascent = sphere_tangent(gradient_of(lambda X: rate_reduction(X, labels, 3, EPS2, F64).delta_r, Z), Z)
    tangent = latched(other, other_labels, 3, s=12)
    track(tangent.gamma, tangent.A, Z, partition, rate=1.0)
    bound = lambda X: tangent_bound(X, partition, tangent.gamma, tangent.A, EPS2).bound  # noqa: E731
    paper = latched(other, other_labels, 3, s=12)
    paper.proximal_step(Z, partition)
    theta_loss = lambda X: paper.theta_loss(X, partition)  # noqa: E731
    assert cosine(sphere_tangent(gradient_of(bound, Z), Z), ascent) > 0.99
    assert cosine(-sphere_tangent(gradient_of(theta_loss, Z), Z), ascent) < 0.5


def test_tracking_at_rate_one_from_a_batch_latch_changes_nothing():
    Z, labels = clustered_batch([6, 6, 6], d=6, seed=6)
    v = latched(Z, labels, 3, s=6)
    before = (v.gamma * v.A.sum(1)) @ v.gamma.T
    track(v.gamma, v.A, Z, ClassPartition(labels, 3), rate=1.0)
    torch.testing.assert_close((v.gamma * v.A.sum(1)) @ v.gamma.T, before, rtol=1e-10, atol=1e-12)


def test_tracking_keeps_orthonormal_blocks_zero_off_blocks_and_absent_classes():
    Z, labels = clustered_batch([9, 0, 4, 1], d=8, seed=7)
    gamma, A = random_blocks(8, 4, 3, 7)
    absent_atoms = gamma[:, 3:6].clone()
    track(gamma, A, Z, ClassPartition(labels, 4), rate=0.4)
    blocks, spectra = dictionary_blocks(gamma, A, 4)
    eye = torch.eye(3, dtype=F64).expand(4, 3, 3)
    torch.testing.assert_close(blocks.mT @ blocks, eye, rtol=0, atol=1e-12)
    off_block = A.clone().view(4, 3, 4)
    off_block[torch.arange(4), :, torch.arange(4)] = 0
    assert off_block.abs().max().item() == 0
    torch.testing.assert_close(gamma[:, 3:6], absent_atoms, rtol=0, atol=0)
    present = spectra[[0, 2, 3]]
    assert bool((spectra >= 0).all()) and bool((present[:, :-1] >= present[:, 1:] - 1e-12).all())


def test_tracking_converges_to_the_batch_latch():
    Z, labels = subspace_batch([10, 10], d=9, rank=2, seed=8)
    gamma, A = random_blocks(9, 2, 2, 8)
    partition = ClassPartition(labels, 2)
    for _ in range(200):
        track(gamma, A, Z, partition, rate=0.5)
    target = latched(Z, labels, 2, s=2)
    torch.testing.assert_close((gamma * A.sum(1)) @ gamma.T, (target.gamma * target.A.sum(1)) @ target.gamma.T,
                               rtol=1e-8, atol=1e-10)


def test_tangent_step_loss_is_minus_the_bound_of_the_refitted_dictionary():
    Z, labels = clustered_batch([6, 6, 6], d=6, seed=11)
    objective = build_objective("vmcr2", 6, 3, ObjectiveSettings(atoms_per_class=3, method="tangent", dtype=F64))
    objective.variational.latch(Z, ClassPartition(labels, 3))
    result = objective.step(Z.clone().requires_grad_(), labels)
    bound = tangent_bound(Z, ClassPartition(labels, 3), objective.variational.gamma, objective.variational.A, EPS2)
    assert result.loss.item() == pytest.approx(-bound.bound.item(), rel=1e-12)
    assert set(result.metrics) == set(VMCR2Objective.metric_names)


def test_paper_method_is_algorithm_1_unchanged():
    """method="paper" (the default) is a proximal step then μ/(2m)·M, as before the switch."""
    Z, labels = clustered_batch([6, 6, 6], d=6, seed=12)
    objective = build_objective("vmcr2", 6, 3, ObjectiveSettings(atoms_per_class=3, dtype=F64))
    reference = VariationalMCR2(6, 3, 9, dtype=F64)
    objective.variational.latch(Z, ClassPartition(labels, 3))
    reference.latch(Z, ClassPartition(labels, 3))
    loss = objective.step(Z, labels).loss
    reference.proximal_step(Z, labels)
    assert objective.method == "paper"
    assert loss.item() == pytest.approx(reference.theta_loss(Z, labels).item(), rel=1e-14)


def test_bad_method_and_track_rate_are_refused():
    with pytest.raises(ValueError, match="unknown V-MCR² method"):
        build_objective("vmcr2", 4, 2, ObjectiveSettings(atoms_per_class=2, method="adam"))
    with pytest.raises(ValueError, match="track_rate"):
        build_objective("vmcr2", 4, 2, ObjectiveSettings(atoms_per_class=2, method="tangent", track_rate=0))
    with pytest.raises(ValueError, match="divisible"):
        VMCR2Objective(4, 2, dictionary_size=5, method="tangent")


def test_algorithm_1_latched_on_the_batch_tends_to_a_distorted_ascent_as_mu_grows():
    """The tangent method is the closed-form limit; one proximal step of Algorithm 1 is not:
    its θ-direction converges as μ grows, but to one that differs from ∇ΔR."""
    Z, labels = clustered_batch([12, 12, 12], d=16, seed=4, spread=1.0)
    partition = ClassPartition(labels, 3)
    ascent = sphere_tangent(gradient_of(lambda X: rate_reduction(X, labels, 3, EPS2, F64).delta_r, Z), Z)

    def paper_direction(mu):
        v = latched(Z, labels, 3, s=16)
        v.mu = mu
        v.proximal_step(Z, partition)
        return -sphere_tangent(gradient_of(lambda X: v.theta_loss(X, partition), Z), Z)

    large, larger = cosine(paper_direction(1e4), ascent), cosine(paper_direction(1e6), ascent)
    assert large == pytest.approx(larger, abs=1e-4) and 0.3 < larger < 0.9


def test_tracking_one_sample_classes_in_float32_stays_finite():
    # A refit on one sample makes each Ritz matrix nearly rank one, where float32 eigh
    # returned NaN or failed (this shape did before the Ritz step moved to float64).
    Z, labels = subspace_batch([1] * 300, d=64, rank=10, seed=17)
    Z, k = Z.float(), 300
    partition = ClassPartition(labels, k)
    v = VariationalMCR2(64, k, 10 * k, generator=generator(0))
    v.latch(Z, partition)
    for _ in range(4):
        track(v.gamma, v.A, Z, partition, 1.0)
    assert torch.isfinite(v.gamma).all() and torch.isfinite(v.A).all()


@pytest.mark.parametrize("mu", [0.1, 1.0, 10.0])
def test_the_pushed_bound_is_below_the_tight_one_and_what_the_push_step_trains(mu):
    """tangent-push takes the bound at a spectrum one A-step ahead: still ≤ ΔR (the bound holds at
    any Φ), below the tight bound of the tracked dictionary, and the objective's loss is minus it."""
    Z, labels = clustered_batch([6, 6, 6], d=6, seed=13)
    partition = ClassPartition(labels, 3)
    settings = ObjectiveSettings(atoms_per_class=6, method="tangent-push", mu=mu, dtype=F64)
    objective = build_objective("vmcr2", 6, 3, settings)
    v = objective.variational
    v.latch(Z, partition)
    result = objective.step(Z.clone().requires_grad_(), labels)  # tracks (rate 1: a refit), then pushes a copy
    pushed = block.pushed_encodings(v, Z, partition, check=True)
    pushed_bound = tangent_bound(Z, partition, v.gamma, pushed, EPS2).bound.item()
    tight = tangent_bound(Z, partition, v.gamma, v.A, EPS2).bound.item()
    assert result.loss.item() == pytest.approx(-pushed_bound, rel=1e-12)
    assert tight == pytest.approx(rate_reduction(Z, labels, 3, EPS2, F64).delta_r.item(), rel=1e-9)
    assert pushed_bound < tight - 1e-9


def test_the_push_shrinks_as_mu_grows():
    """The A-step is ν_A/L_A·∇ with L_A ∝ μ: the larger μ, the closer the pushed bound to the tight one."""
    Z, labels = clustered_batch([6, 6, 6], d=6, seed=14)
    partition = ClassPartition(labels, 3)
    v = latched(Z, labels, 3, s=6)
    gaps = []
    for mu in (0.3, 3.0, 30.0):
        v.mu = mu
        pushed = block.pushed_encodings(v, Z, partition, check=True)
        gaps.append(tangent_bound(Z, partition, v.gamma, v.A, EPS2).bound.item()
                    - tangent_bound(Z, partition, v.gamma, pushed, EPS2).bound.item())
    assert gaps[0] > gaps[1] > gaps[2] > 0
