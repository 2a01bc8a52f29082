"""Specification of input validation: bad input fails with one clear ValueError."""

import pytest
import torch
import torch.nn.functional as F

from vmcr2_cli.objectives import (
    ObjectiveSettings,
    ClassPartition,
    VariationalMCR2,
    build_objective,
    class_second_moments,
    coding_rate,
    rate_reduction,
)


@pytest.fixture
def Z():
    return F.normalize(torch.randn(12, 5, generator=torch.Generator().manual_seed(0)), dim=1)


@pytest.fixture
def labels():
    return torch.arange(12) % 3


@pytest.fixture
def variational():
    return VariationalMCR2(5, 3, 6)


@pytest.mark.parametrize("shape", [(12,), (2, 6, 5)])
def test_features_must_be_two_dimensional(shape, labels):
    with pytest.raises(ValueError, match="2-D"):
        rate_reduction(torch.randn(shape), labels, 3)


def test_one_label_per_row_of_Z(Z, labels):
    with pytest.raises(ValueError, match="labels has 11 entries but Z has 12 rows"):
        rate_reduction(Z, labels[:11], 3)


@pytest.mark.parametrize("bad", [-1, 3])
def test_labels_must_lie_in_range(Z, labels, bad):
    labels = labels.clone()
    labels[4] = bad
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        rate_reduction(Z, labels, 3)


def test_labels_must_be_integers(Z, labels):
    with pytest.raises(ValueError, match="integer"):
        rate_reduction(Z, labels.float(), 3)


def test_labels_must_be_one_dimensional(Z, labels):
    with pytest.raises(ValueError, match="1-D"):
        ClassPartition(labels[None], 3)


def test_num_classes_must_be_positive(labels):
    with pytest.raises(ValueError, match="num_classes"):
        ClassPartition(labels, 0)


def test_features_must_be_finite(Z, labels):
    Z[0, 0] = float("inf")
    with pytest.raises(ValueError, match="non-finite"):
        class_second_moments(Z, labels, 3)


@pytest.mark.parametrize("eps2", [0.0, -1.0, float("nan")])
def test_eps2_must_be_positive(Z, eps2):
    with pytest.raises(ValueError, match="eps2"):
        coding_rate(Z, eps2)


@pytest.mark.parametrize("method", ["terms", "proximal_step", "theta_loss", "latch"])
def test_variational_methods_need_unit_rows(variational, Z, labels, method):
    with pytest.raises(ValueError, match="unit norm"):
        getattr(variational, method)(2 * Z, labels)


def test_unit_rows_check_is_skipped_without_validation(variational, Z, labels):
    variational.terms(2 * Z, labels, validate=False)


def test_variational_features_must_match_feature_dim(variational, labels):
    with pytest.raises(ValueError, match="feature_dim=5"):
        variational.terms(F.normalize(torch.randn(12, 4), dim=1), labels)


def test_latching_needs_q_divisible_by_k(Z, labels):
    with pytest.raises(ValueError, match="divisible"):
        VariationalMCR2(5, 3, 7).latch(Z, labels)


def test_latching_needs_at_most_d_eigenvectors_per_class(Z, labels):
    with pytest.raises(ValueError, match="q/k ≤ d"):
        VariationalMCR2(5, 3, 18).latch(Z, labels)


def test_latching_from_moments_checks_shapes(variational):
    with pytest.raises(ValueError, match=r"second_moments must have shape"):
        variational.latch_from_moments(torch.zeros(3, 4, 4), torch.ones(3), batch_size=12)
    with pytest.raises(ValueError, match=r"class_counts must have shape"):
        variational.latch_from_moments(torch.zeros(3, 5, 5), torch.ones(4), batch_size=12)


def test_unknown_objective_names_the_choices():
    with pytest.raises(ValueError, match="choose one of ce, mcr2, mcr2-ssl, tcr, vmcr2"):
        build_objective("mse", 5, 3)


def test_vmcr2_needs_atoms():
    with pytest.raises(ValueError, match="dictionary_size"):
        build_objective("vmcr2", 5, 3, ObjectiveSettings(atoms_per_class=0))


def test_symmetric_eigh_matches_eigh_on_rank_deficient_moments_and_leaves_the_threads_as_they_were():
    from vmcr2_cli.objectives.numerics import symmetric_eigh

    z = torch.nn.functional.normalize(torch.randn(50, 2, 16, generator=torch.Generator().manual_seed(0)), dim=-1)
    moments = z.mT @ z  # rank 2 in 16 dimensions, as a class of two samples
    threads = torch.get_num_threads()
    values, vectors = symmetric_eigh(moments)
    assert torch.get_num_threads() == threads and values.dtype == torch.float64
    reference = torch.linalg.eigvalsh(moments.double())
    assert torch.allclose(values, reference, atol=1e-12)
    assert torch.allclose(vectors @ torch.diag_embed(values) @ vectors.mT, moments.double(), atol=1e-12)
