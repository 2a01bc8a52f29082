"""Specification of V-MCR² on the block layout (objectives/block.py): equal to the dense
Algorithm 1 wherever it claims to be, on balanced, unbalanced and absent classes."""

import pytest
import torch

from test_objectives_variational import clustered_batch, generator
from vmcr2_cli.objectives import ObjectiveSettings, ClassPartition, VariationalMCR2, VMCR2Objective, block, build_objective

F64 = torch.float64
EPS2 = 0.5
RTOL = 1e-10

# (class sizes, d, s): balanced; unbalanced with an absent class; q = s·k > d; one sample classes.
CASES = {
    "balanced": ([8, 8, 8, 8], 10, 2),
    "unbalanced, absent class": ([3, 0, 14, 6, 9], 12, 3),
    "q > d": ([5, 9, 2, 7, 4, 6], 8, 3),
    "one-sample classes": ([1, 2, 1, 0, 3, 1, 2], 9, 2),
}


def block_dictionary(d, k, s, seed, mu=1.0):
    """A V-MCR² module with a block-layout dictionary whose atoms are unit but not orthogonal."""
    g = generator(seed)
    v = VariationalMCR2(d, k, s * k, mu=mu, dtype=F64, generator=g)
    blocks, spectra = block.dictionary_blocks(v.gamma, v.A, k)
    spectra.copy_(3 * torch.rand(k, s, generator=g, dtype=F64))
    return v


def batch_and_dictionary(sizes, d, s, seed, mu=1.0):
    """A clustered batch of the given class sizes, its partition, and a block dictionary (k = len(sizes))."""
    k = len(sizes)
    Z, labels = clustered_batch(sizes, d, seed=seed)
    return k, Z, labels, ClassPartition(labels, k), block_dictionary(d, k, s, seed=seed + 1, mu=mu)


def block_mask(k, s):
    """(q, k) True on each class's own atoms."""
    return torch.block_diag(*[torch.ones(s, 1, dtype=torch.bool)] * k)


@pytest.mark.parametrize("sizes,d,s", CASES.values(), ids=CASES.keys())
def test_block_ascent_equals_the_dense_gradients_on_a_block_dictionary(sizes, d, s):
    k, Z, labels, partition, v = batch_and_dictionary(sizes, d, s, seed=1)
    fast, dense = block.ascent(v, Z, partition, check=True), v.gradients(Z, partition)
    for name in ("r_v", "r_c_v", "m_term", "delta_r_v"):
        assert getattr(fast.terms, name).item() == pytest.approx(getattr(dense.terms, name).item(), rel=RTOL), name
    torch.testing.assert_close(fast.grad_atoms.reshape(s * k, d).T, dense.grad_gamma,
                               rtol=RTOL, atol=1e-12)
    torch.testing.assert_close(fast.grad_spectra.reshape(-1), dense.grad_A.T[block_mask(k, s).T], rtol=RTOL,
                               atol=1e-12)
    assert fast.L_gamma.item() == pytest.approx(dense.L_gamma.item(), rel=RTOL)


def test_before_any_latch_the_block_L_A_is_eq19_on_the_diagonal_blocks_alone():
    sizes, d, s = CASES["unbalanced, absent class"]
    k, Z, labels, partition, v = batch_and_dictionary(sizes, d, s, seed=3, mu=0.7)
    m = Z.shape[0]
    mask = block_mask(k, s).to(F64)
    G2 = (v.gamma.T @ v.gamma).square() * (mask @ mask.T)
    expected = v.mu / m * (m / min(n for n in sizes if n)) * torch.linalg.matrix_norm(G2)
    assert block.ascent(v, Z, partition, check=True).L_A.item() == pytest.approx(
        expected.item(), rel=RTOL)


@pytest.mark.parametrize("sizes,d,s", CASES.values(), ids=CASES.keys())
def test_block_step_is_the_dense_step_projected_onto_the_blocks(sizes, d, s):
    k, Z, labels, partition, v = batch_and_dictionary(sizes, d, s, seed=5)
    dense = v.gradients(Z, partition)
    L_A = block.ascent(v, Z, partition, check=True).L_A
    gamma = v.gamma + v.nu_gamma / dense.L_gamma * dense.grad_gamma
    gamma = gamma / gamma.norm(dim=0)
    present = torch.tensor(sizes) > 0
    A = torch.where(present, torch.relu(v.A + v.nu_A / L_A * dense.grad_A), v.A) * block_mask(k, s)
    block.proximal_step(v, Z, partition, check=True)
    torch.testing.assert_close(v.gamma, gamma, rtol=RTOL, atol=1e-12)
    torch.testing.assert_close(v.A, A, rtol=RTOL, atol=1e-12)


def test_block_step_keeps_absent_classes_and_the_layout():
    sizes, d, s = CASES["unbalanced, absent class"]
    k, Z, labels, partition, v = batch_and_dictionary(sizes, d, s, seed=7)
    before = v.A.clone()
    for _ in range(5):
        block.proximal_step(v, Z, partition, check=True)
    assert torch.equal(v.A[:, 1], before[:, 1])  # class 1 is absent
    assert torch.count_nonzero(v.A * ~block_mask(k, s)) == 0
    assert (v.A >= 0).all()
    torch.testing.assert_close(v.gamma.norm(dim=0), torch.ones(s * k, dtype=F64))


def test_dense_algorithm_1_leaves_the_block_layout():
    # Why the block method is a constraint, not a rewriting: the dense ReLU step gives
    # classes codes on other classes' atoms.
    sizes, d, s = CASES["q > d"]
    k, Z, labels, _, v = batch_and_dictionary(sizes, d, s, seed=9)
    v.proximal_step(Z, labels)
    assert torch.count_nonzero(v.A * ~block_mask(k, s)) > 0


@pytest.mark.parametrize("sizes,d,s", CASES.values(), ids=CASES.keys())
def test_block_theta_loss_and_its_gradient_equal_the_dense_ones(sizes, d, s):
    k, Z, labels, partition, v = batch_and_dictionary(sizes, d, s, seed=11, mu=0.3)
    fast_Z, dense_Z = Z.clone().requires_grad_(), Z.clone().requires_grad_()
    fast, dense = block.theta_loss(v, fast_Z, partition), v.theta_loss(dense_Z, partition)
    assert fast.item() == pytest.approx(dense.item(), rel=RTOL)
    fast.backward()
    dense.backward()
    torch.testing.assert_close(fast_Z.grad, dense_Z.grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("sizes", [[5, 5, 5], [2, 9, 0], [1, 1, 7]])
def test_block_terms_equal_the_dense_eq7_terms_on_a_block_dictionary(sizes):
    Z, labels = clustered_batch(sizes, d=6, seed=13)
    v = block_dictionary(6, 3, 2, seed=14)
    partition = ClassPartition(labels, 3)
    fast, dense = block.block_terms(v, Z, partition), v.terms(Z, partition)
    for name in ("r_v", "r_c_v", "m_term", "delta_r_v"):
        assert getattr(fast, name).item() == pytest.approx(getattr(dense, name).item(), rel=RTOL), name


def test_block_method_step_equals_the_paper_step_projected():
    sizes, d, s = CASES["balanced"]
    k = len(sizes)
    Z, labels = clustered_batch(sizes, d, seed=15)
    objective = build_objective("vmcr2", d, k, ObjectiveSettings(atoms_per_class=s, method="block", mu=0.5, dtype=F64))
    objective.variational.latch(Z, ClassPartition(labels, k))
    reference = block_dictionary(d, k, s, seed=0, mu=0.5)
    reference.load_state_dict(objective.variational.state_dict())
    features = Z.clone().requires_grad_()
    result = objective.step(features, labels)
    terms = block.proximal_step(reference, Z, ClassPartition(labels, k), check=True)
    assert result.metrics["m_term"].item() == pytest.approx(terms.m_term.item(), rel=RTOL)
    assert result.loss.item() == pytest.approx(reference.theta_loss(Z, labels).item(), rel=RTOL)
    assert set(result.metrics) == set(VMCR2Objective.metric_names)
    result.loss.backward()
    assert torch.isfinite(features.grad).all()


def test_block_method_needs_q_divisible_by_k():
    with pytest.raises(ValueError, match="divisible"):
        VMCR2Objective(8, 3, dictionary_size=10, method="block")


@pytest.mark.parametrize("sizes,d,s", CASES.values(), ids=CASES.keys())
def test_after_a_latch_the_block_L_A_is_the_dense_one(sizes, d, s):
    k = len(sizes)
    Z, labels = clustered_batch(sizes, d, seed=17)
    other, other_labels = clustered_batch([6] * k, d, seed=18)
    v = VariationalMCR2(d, k, s * k, dtype=F64, generator=generator(19))
    v.latch(other, ClassPartition(other_labels, k))  # measures the cross-class Gram energy
    partition = ClassPartition(labels, k)
    assert block.ascent(v, Z, partition, check=True).L_A.item() == pytest.approx(
        v.gradients(Z, partition).L_A.item(), rel=RTOL)


def test_the_cross_class_gram_energy_is_the_same_in_any_chunking():
    v = block_dictionary(7, 5, 3, seed=20)
    G2 = (v.gamma.T @ v.gamma).square()
    mask = block_mask(5, 3).to(F64)
    expected = (G2.square() * (1 - mask @ mask.T)).sum().item()
    for chunk in (1, 9, 10**6):
        v.measure_cross_gram_energy(chunk_entries=chunk)
        assert v.cross_gram_energy.item() == pytest.approx(expected, rel=RTOL)


def test_a_state_dict_from_before_the_cross_energy_loads_unmeasured():
    v = block_dictionary(6, 3, 2, seed=21)
    v.measure_cross_gram_energy()
    old = {key: value for key, value in v.state_dict().items() if key != "cross_gram_energy"}
    fresh = VariationalMCR2(6, 3, 6, dtype=F64)
    fresh.load_state_dict(old)
    assert torch.equal(fresh.gamma, v.gamma) and torch.isnan(fresh.cross_gram_energy)


@pytest.mark.parametrize("sizes,d,s", CASES.values(), ids=CASES.keys())
def test_pushed_encodings_are_the_proximal_steps_A_and_leave_the_dictionary_alone(sizes, d, s):
    k, Z, labels, partition, v = batch_and_dictionary(sizes, d, s, seed=21)
    gamma, A = v.gamma.clone(), v.A.clone()
    pushed = block.pushed_encodings(v, Z, partition, check=True)
    torch.testing.assert_close(v.gamma, gamma, rtol=0, atol=0)  # a copy is pushed: Γ, A untouched
    torch.testing.assert_close(v.A, A, rtol=0, atol=0)
    block.proximal_step(v, Z, partition, check=True)  # Algorithm 1's step (block form) from the same point
    torch.testing.assert_close(pushed, v.A, rtol=RTOL, atol=1e-12)
    assert not torch.equal(pushed, A)
