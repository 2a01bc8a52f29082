"""The bench's parts: the timing plan (on a fake clock), settings, the workload, latching, the paper's table."""

from __future__ import annotations

import pytest
import torch

from vmcr2_cli.bench import timing
from vmcr2_cli.bench.figure import VARIANT_STYLES, variant_style
from vmcr2_cli.bench.paper import TABLE_1
from vmcr2_cli.bench.report import format_seconds, format_spread, paper_ratio_text
from vmcr2_cli.bench.results import OBJECTIVE, STEP
from vmcr2_cli.bench.runner import _warmed_before
from vmcr2_cli.bench.settings import BACKBONES, REFERENCE, VARIANTS, VMCR2_VARIANTS, make_settings
from vmcr2_cli.bench.timing import CaseTiming, TimingPlan, summarize, time_budgeted
from vmcr2_cli.objective_registry import VMCR2_METHODS
from vmcr2_cli.bench.workload import latch_on_batch, subspace_features
from vmcr2_cli.errors import BadInput
from vmcr2_cli.models.registry import MODEL_BUILDERS
from vmcr2_cli.objectives import ClassPartition, VariationalMCR2

CPU = torch.device("cpu")


@pytest.fixture
def fake_clock(monkeypatch):
    """Each case's function returns the seconds one call 'takes'; calls are counted."""
    calls: dict[str, int] = {}

    def fake_time_call(fn, device):
        name, seconds = fn()
        calls[name] = calls.get(name, 0) + 1
        return seconds

    monkeypatch.setattr(timing, "time_call", fake_time_call)
    return calls


def case(name: str, seconds: float):
    return lambda: (name, seconds)


def test_summary_is_median_quartiles_and_extremes():
    result = summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (result.median, result.q1, result.q3, result.minimum, result.maximum, result.repeats) == (
        3.0, 2.0, 4.0, 1.0, 5.0, 5)
    assert summarize([2.0]).q1 == summarize([2.0]).q3 == 2.0


def test_fast_cases_get_every_warmup_and_repeat(fake_clock):
    plan = TimingPlan(repeats=10, warmup=2, budget_s=30)
    result = time_budgeted({"fast": case("fast", 0.1)}, plan, CPU)["fast"]
    assert (result.timing.repeats, result.warmup, result.note) == (10, 2, None)
    assert fake_clock["fast"] == 12


def test_a_slow_case_gets_one_warmup_and_the_minimum_repeats_said_in_its_note(fake_clock):
    plan = TimingPlan(repeats=10, warmup=2, budget_s=30)
    results = time_budgeted({"slow": case("slow", 20.0), "fast": case("fast", 0.1)}, plan, CPU)
    slow = results["slow"]
    assert (slow.timing.repeats, slow.warmup) == (3, 1)
    assert "1 of 2 warm-up" in slow.note and "3 of 10 repeats" in slow.note
    assert results["fast"].timing.repeats == 10


def test_a_case_stops_when_its_budget_is_spent(fake_clock):
    plan = TimingPlan(repeats=10, warmup=0, budget_s=30)
    result = time_budgeted({"medium": case("medium", 4.0)}, plan, CPU)["medium"]
    assert result.timing.repeats == 7  # 7 × 4 s ≤ 30 s < 8 × 4 s


def test_skipped_warmup_is_said_in_the_note(fake_clock):
    plan = TimingPlan(repeats=3, warmup=2, budget_s=30)
    result = time_budgeted({"ref": case("ref", 1.0)}, plan, CPU, skip_warmup={"ref": "warm already"})["ref"]
    assert result.warmup == 0 and fake_clock["ref"] == 3 and "no warm-up (warm already)" in result.note


def test_features_have_unit_rows_and_balanced_classes():
    Z, labels = subspace_features(60, 12, 6, 3, CPU, torch.Generator().manual_seed(0))
    assert Z.shape == (60, 12) and labels.device.type == "cpu"
    assert torch.allclose(Z.norm(dim=1), torch.ones(60), atol=1e-6)
    assert torch.bincount(labels).tolist() == [10] * 6


@pytest.mark.parametrize("atoms", [2, 12])  # fewer atoms than samples per class, and more
def test_latching_from_the_small_grams_matches_algorithm_2(atoms):
    generator = torch.Generator().manual_seed(1)
    Z, labels = subspace_features(60, 16, 6, 3, CPU, generator)
    partition = ClassPartition(labels, 6)
    expected, ours = VariationalMCR2(16, 6, 6 * atoms), VariationalMCR2(16, 6, 6 * atoms)
    expected.latch(Z, partition)
    latch_on_batch(ours, Z, partition, generator)
    assert torch.allclose(ours.A, expected.A, atol=1e-4)
    used = expected.A.sum(dim=1) > 1e-4  # atoms with a nonzero eigenvalue: the same directions, up to sign
    cosines = (ours.gamma[:, used] * expected.gamma[:, used]).sum(dim=0).abs()
    assert torch.allclose(cosines, torch.ones_like(cosines), atol=1e-3)
    assert torch.allclose(ours.gamma.norm(dim=0), torch.ones(6 * atoms), atol=1e-5)


def test_paper_table_1_ratios():
    assert {row.dataset: row.ratio for row in TABLE_1} == {
        "MNIST": 1.84, "CIFAR-10": 1.60, "CIFAR-100": 5.06, "Tiny ImageNet": 11.93}


@pytest.mark.parametrize("seconds, text", [(0.000123, "123 µs"), (0.138, "138 ms"), (10.14, "10.1 s"),
                                           (1234.0, "1,234 s"), (None, "—")])
def test_times_are_shown_with_three_figures_in_a_fitting_unit(seconds, text):
    assert format_seconds(seconds) == text


def test_the_spread_is_shown_in_the_medians_unit():
    assert format_spread(0.135, 0.162, 0.138) == "135–162"


def test_paper_ratio_names_the_seconds_and_a_different_shape():
    mnist, _, _, tiny = (row.to_json() for row in TABLE_1)
    assert paper_ratio_text({**tiny, "same_shape": True}) == "Tiny ImageNet: 527.85 / 44.23 = 11.93×"
    assert paper_ratio_text({**mnist, "same_shape": False}) == "MNIST: 11.56 / 6.29 = 1.84× (other m, d, q)"


def test_every_bench_backbone_is_a_registered_model():
    assert set(BACKBONES) <= set(MODEL_BUILDERS)


@pytest.mark.parametrize("backbone, dataset_size, expected", [
    ("mnist-cnn", None, (60_000, "mnist")),
    ("resnet18", None, (50_000, "cifar100")),
    ("resnet18", "Tiny-ImageNet", (100_000, "tinyimagenet")),
    ("resnet18", "12000", (12_000, None)),
])
def test_the_projected_epoch_is_the_backbones_dataset_unless_named(backbone, dataset_size, expected):
    settings = make_settings(classes="10", backbone=backbone, dataset_size=dataset_size)
    assert (settings.dataset_size, settings.dataset_name) == expected


def test_a_slow_reference_at_a_larger_k_skips_warmup_extrapolating_its_objective_linearly():
    def measured(seconds: float) -> CaseTiming:
        return CaseTiming(summarize([seconds]), warmup=1, peak_memory_bytes=None, note=None)

    timings = {(REFERENCE, 10, OBJECTIVE): measured(1.0), (REFERENCE, 10, STEP): measured(3.0)}
    plan = TimingPlan(repeats=10, warmup=2, budget_s=30)  # a call over 10 s is slow
    cases = {(REFERENCE, OBJECTIVE): None, (REFERENCE, STEP): None, ("mcr2", OBJECTIVE): None}
    skipped = _warmed_before(cases, timings, 100, plan)
    # objective: 1 s · 100/10 = 10 s, not slow; step: 10 s + the 2 s rest of its step, slow
    assert skipped == {(REFERENCE, STEP): "warmed up at k = 10; one call ≈ 12 s"}


def test_every_vmcr2_method_is_a_bench_variant_with_a_style():
    assert sorted(VMCR2_VARIANTS.values()) == sorted(VMCR2_METHODS)
    assert set(VMCR2_VARIANTS) <= set(VARIANTS)
    assert set(VARIANT_STYLES) <= set(VARIANTS)
    assert len({variant_style(variant)[0] for variant in VARIANTS}) == len(VARIANTS)  # each its own label


def test_a_cpu_call_reports_the_memory_it_touched():
    _, small = timing.measured_call(lambda: torch.ones(1000).sum(), torch.device("cpu"))
    _, large = timing.measured_call(lambda: torch.ones(25_000_000).sum(), torch.device("cpu"))  # 100 MB
    if large is None:
        pytest.skip("this system has no /proc/self/clear_refs")
    assert large >= 90e6 > small


def test_bench_precisions_and_dataset_sizes_are_trainings_own():
    from vmcr2_cli.bench.settings import DATASET_SIZES, PRECISIONS
    from vmcr2_cli.config import FIELDS
    from vmcr2_cli.data.registry import DATASETS

    assert PRECISIONS == FIELDS["precision"].metadata["choices"]
    assert all(DATASETS[name].num_train == size for name, size in DATASET_SIZES.items())
    with pytest.raises(BadInput, match="--precision: unknown 'fp16'"):
        make_settings(classes="10", precision="fp16")


def test_the_benchs_training_step_is_the_trainers_step(monkeypatch):
    """The timed step calls training/step.py, which the trainer's own step also calls."""
    from vmcr2_cli.bench import cases
    from vmcr2_cli.bench.settings import make_settings as settings_of

    calls = []
    real = cases.run_training_step
    monkeypatch.setattr(cases, "run_training_step", lambda *args, **kw: calls.append(args) or real(*args, **kw))
    settings = settings_of(classes="4", batch_size=16, dim=8, atoms_per_class=2, backbone="mnist-cnn",
                           device="cpu", variants="vmcr2")
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(16, 1, 32, 32, generator=generator)
    labels = torch.arange(16) % 4
    backbone = cases.Backbone(settings, torch.device("cpu"), images)
    under_test = cases.ObjectiveUnderTest("vmcr2", settings, 4, torch.device("cpu"),
                                          (backbone.sample_features(), labels), generator)
    before = [p.detach().clone() for p in backbone.model.parameters()]
    cases.training_step(backbone, under_test, labels)()
    assert len(calls) == 1 and calls[0][0] is backbone.model and calls[0][1] is under_test
    assert any(not torch.equal(a, b) for a, b in zip(before, backbone.model.parameters()))
