"""Float64 statistics of a whole feature set: exact ΔR in batches, spectra, angles, NC1."""

from __future__ import annotations

import math

import pytest
import torch

from vmcr2_cli.evaluation.statistics import class_moment_groups, class_statistics
from vmcr2_cli.evaluation.structure import (dominant_bases, effective_dimension, energy_dimension, feature_cosines,
                                            heatmap_sample, off_diagonal, principal_cosines, spectrum_share,
                                            within_class_variability)
from vmcr2_cli.objectives import class_second_moments, rate_reduction, rate_reduction_reference


def unbalanced_features(seed: int = 0, d: int = 12, k: int = 5):
    """Unit features (float32) of k classes with sizes 1 … 60, class 3 absent."""
    generator = torch.Generator().manual_seed(seed)
    sizes = [60, 1, 17, 0, 45][:k]
    labels = torch.cat([torch.full((n,), j) for j, n in enumerate(sizes)])
    labels = labels[torch.randperm(labels.numel(), generator=generator)]
    z = torch.randn(labels.numel(), d, generator=generator) + 2.0 * torch.nn.functional.one_hot(labels, d).float()
    return torch.nn.functional.normalize(z, dim=1), labels


@pytest.mark.parametrize("chunk, memory_mb", [(7, 1e-9), (1000, 256.0)])
def test_float64_delta_r_over_a_dataset_equals_the_one_piece_reference(chunk, memory_mb):
    # memory_mb ≈ 0 forces one class per group and chunk = 7 many batches per class.
    z, labels = unbalanced_features()
    batched = class_statistics(z, labels, 5, components=2, eps2=0.5, chunk=chunk, memory_mb=memory_mb)
    whole = rate_reduction(z.double(), labels, num_classes=5, eps2=0.5)
    reference = rate_reduction_reference(z.double(), labels, num_classes=5, eps2=0.5)
    got = (batched.r, batched.r_c, batched.delta_r)
    for value, fast, ref in zip(got, whole, reference):
        assert value == pytest.approx(fast.item(), rel=1e-12, abs=1e-12)
        assert value == pytest.approx(ref.item(), rel=1e-12, abs=1e-12)


def test_class_statistics_rates_spectra_and_means_match_a_direct_computation():
    z, labels = unbalanced_features(seed=1)
    stats = class_statistics(z, labels, 5, components=3, eps2=0.5, chunk=11, memory_mb=1e-9)
    exact = rate_reduction(z.double(), labels, num_classes=5, eps2=0.5)
    assert stats.r == pytest.approx(exact.r.item(), rel=1e-12)
    assert stats.r_c == pytest.approx(exact.r_c.item(), rel=1e-12)
    assert stats.delta_r == pytest.approx(exact.delta_r.item(), rel=1e-12)
    moments = class_second_moments(z.double(), labels, 5)
    torch.testing.assert_close(stats.total_moment, z.double().T @ z.double())
    torch.testing.assert_close(stats.eigenvalues, torch.linalg.eigvalsh(moments).flip(-1).clamp_min(0))
    assert stats.counts.tolist() == [60, 1, 17, 0, 45]
    torch.testing.assert_close(stats.means[2], z[labels == 2].double().mean(0))
    assert stats.bases.shape == (5, 12, 3) and stats.bases[3].abs().sum() == 0  # the absent class
    assert stats.class_r_c[3] == 0 and stats.class_r_c.sum().item() == pytest.approx(stats.r_c)


def test_moment_groups_cover_every_class_once_under_any_memory_limit():
    z, labels = unbalanced_features(seed=2)
    groups = list(class_moment_groups(z, labels, 5, chunk=4, memory_mb=12 * 12 * 8 * 2 / 2**20))  # 2 classes
    assert [(g.start, g.stop) for g in groups] == [(0, 2), (2, 4), (4, 5)]
    moments = torch.cat([g.moments for g in groups])
    torch.testing.assert_close(moments, class_second_moments(z.double(), labels, 5))


def test_labels_outside_the_classes_are_refused():
    with pytest.raises(ValueError, match="labels must lie in"):
        class_statistics(torch.ones(3, 2), torch.tensor([0, 1, 2]), num_classes=2, components=1)


def orthonormal_blocks(d: int, sizes: list[int]) -> torch.Tensor:
    """(k, d, p) bases whose class j spans the next sizes[j] coordinate axes (zero-padded to p)."""
    start, bases = 0, torch.zeros(len(sizes), d, max(sizes), dtype=torch.float64)
    for j, size in enumerate(sizes):
        bases[j, start:start + size, :size] = torch.eye(size, dtype=torch.float64)
        start += size
    return bases


def test_principal_cosines_are_zero_for_orthogonal_and_one_for_identical_subspaces():
    bases = orthonormal_blocks(8, [2, 3, 1])
    cosines = principal_cosines(bases)
    torch.testing.assert_close(cosines, torch.eye(3, dtype=torch.float64))
    same = principal_cosines(torch.stack([bases[1], bases[1]]))
    torch.testing.assert_close(same, torch.ones(2, 2, dtype=torch.float64))


def test_principal_cosines_measure_a_known_angle():
    angle = 0.3
    line_a = torch.tensor([[1.0], [0.0], [0.0]], dtype=torch.float64)
    line_b = torch.tensor([[math.cos(angle)], [math.sin(angle)], [0.0]], dtype=torch.float64)
    cosines = principal_cosines(torch.stack([line_a, line_b]))
    assert cosines[0, 1].item() == pytest.approx(math.cos(angle))
    assert off_diagonal(cosines).tolist() == pytest.approx([math.cos(angle)] * 2)


def test_principal_cosines_of_subspaces_of_different_ranks_average_over_the_smaller():
    plane = torch.tensor([[1.0, 0], [0, 1], [0, 0]], dtype=torch.float64)
    line = torch.tensor([[0.0, 0], [0, 0], [1, 0]], dtype=torch.float64)  # rank 1, second column zero
    tilted = torch.tensor([[1.0, 0], [0, 0], [0, 0]], dtype=torch.float64)  # inside the plane
    cosines = principal_cosines(torch.stack([plane, line, tilted]))
    assert cosines[0, 1].item() == pytest.approx(0.0) and cosines[0, 2].item() == pytest.approx(1.0)


def test_dominant_bases_keep_the_leading_directions_only():
    bases = orthonormal_blocks(6, [3, 3])
    kept = dominant_bases(bases, torch.tensor([1, 0]))
    assert (kept.abs().amax(dim=1) > 0).sum(-1).tolist() == [1, 1]  # at least one direction stays


def test_effective_and_energy_dimensions_of_known_spectra():
    spectra = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [8.0, 1.0, 1.0, 0.0]])
    torch.testing.assert_close(effective_dimension(spectra)[:3], torch.tensor([3.0, 1.0, 0.0], dtype=torch.float64))
    assert energy_dimension(spectra, 0.9).tolist() == [3, 1, 0, 2]
    share = spectrum_share(spectra, atoms=1)
    assert share[0].item() == pytest.approx(1 / 3) and share[3].item() == pytest.approx(0.8)
    assert math.isnan(share[2].item())


def test_nc1_is_zero_when_every_class_collapsed_to_its_mean_and_matches_the_lecture_formula():
    generator = torch.Generator().manual_seed(3)
    means = torch.nn.functional.normalize(torch.randn(4, 6, generator=generator), dim=1)
    labels = torch.arange(4).repeat_interleave(25)
    collapsed = class_statistics(means[labels], labels, 4, components=1)
    assert within_class_variability(collapsed).nc1 == pytest.approx(0.0, abs=1e-9)

    z = torch.nn.functional.normalize(means[labels] + 0.3 * torch.randn(100, 6, generator=generator), dim=1).double()
    stats = class_statistics(z, labels, 4, components=1)
    class_means = torch.stack([z[labels == j].mean(0) for j in range(4)])
    centred = z - class_means[labels]
    sigma_w = centred.T @ centred / 100  # 1/(nK) Σ_k Σ_i (h − h̄_k)(h − h̄_k)ᵀ, n = 25, K = 4
    between = class_means - z.mean(0)
    sigma_b = between.T @ between / 4
    expected = torch.trace(sigma_w @ torch.linalg.pinv(sigma_b, hermitian=True, rtol=1e-10)).item()
    variability = within_class_variability(stats)
    assert variability.nc1 == pytest.approx(expected, rel=1e-8)
    assert variability.trace_ratio == pytest.approx((torch.trace(sigma_w) / torch.trace(sigma_b)).item(), rel=1e-8)


def test_feature_cosines_separate_within_from_between_classes():
    z = torch.tensor([[1.0, 0], [1.0, 0], [0, 1.0], [0, -1.0]])
    within, between = feature_cosines(z, torch.tensor([0, 0, 1, 1]))
    assert within == pytest.approx(1.0) and between == pytest.approx(0.0)


def test_heatmap_sample_draws_ten_random_classes_sorted_when_there_are_more():
    labels = torch.arange(30).repeat_interleave(20)
    z = torch.randn(600, 4)
    sample, sample_labels, shown = heatmap_sample(z, labels, 30, max_classes=10, samples=100, seed=0)
    assert len(shown) == 10 and shown == sorted(shown)
    assert sample.shape == (100, 4) and sample_labels.tolist() == sorted(sample_labels.tolist())
    assert set(sample_labels.tolist()) == set(shown)
    assert heatmap_sample(z, labels, 30, seed=0)[2] == shown  # the same classes every time


def test_energy_bases_keep_each_classs_fewest_directions_holding_the_share_at_most_p():
    from vmcr2_cli.evaluation.statistics import class_statistics
    from vmcr2_cli.evaluation.structure import energy_bases

    generator = torch.Generator().manual_seed(0)
    scales = torch.tensor([[1.0, 1.0, 0.1, 0.1, 0, 0], [1.0, 0.05, 0.05, 0.05, 0, 0]])  # class 0: 2 dims; 1: 1
    features = torch.cat([torch.randn(400, 6, generator=generator) * scales[j] for j in range(2)])
    labels = torch.arange(2).repeat_interleave(400)
    stats = class_statistics(features, labels, 2, components=4)
    kept = (energy_bases(stats.bases, stats.eigenvalues, 0.9).abs().amax(dim=1) > 0).sum(-1)
    assert kept.tolist() == [2, 1]
    kept = (energy_bases(stats.bases, stats.eigenvalues, 0.999).abs().amax(dim=1) > 0).sum(-1)
    assert kept.tolist() == [4, 4]  # capped at p = 4
