"""Run a bench: for each class count, time every variant alone (and in a training step).

Within one class count all cases are timed in interleaved rounds (``timing.py``), so
the ratios between variants are measured under the same conditions, in one run. The
timings become one JSON-ready report (``results.py``).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

import torch

from vmcr2_cli.training.setup import resolve_device

from . import environment
from .cases import Backbone, ObjectiveUnderTest, backbone_step, objective_step, training_step
from .report import format_seconds
from .results import BACKBONE, CHUNKED_STEP, OBJECTIVE, STEP, Timings, build_report
from .settings import IMAGE_SIZE, REFERENCE, BenchSettings
from .timing import TimingPlan, time_budgeted
from .workload import subspace_features, synthetic_images

Progress = Callable[[str], None]


def run_bench(settings: BenchSettings, progress: Progress = lambda message: None) -> dict:
    """Time ``settings``' variants at each of its class counts; the report as a JSON-ready dict."""
    device = resolve_device(settings.device)  # BadInput when CUDA is asked for and absent
    threads_before = torch.get_num_threads()
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    try:
        started, load_before = time.time(), environment.load_average()
        timings = _time_all(settings, device, progress)
        machine = {**environment.describe(device), "load_average_1m": {"start": load_before,
                                                                       "end": environment.load_average()}}
    finally:
        torch.set_num_threads(threads_before)
    return build_report(settings, machine, timings, started)


def _time_all(settings: BenchSettings, device: torch.device, progress: Progress) -> Timings:
    """Every case of the sweep, timed."""
    plan = TimingPlan(repeats=settings.repeats, warmup=settings.warmup, budget_s=settings.budget_s)
    backbone = _backbone(settings, device) if settings.backbone else None
    timings: Timings = {}
    for classes in settings.classes:
        progress(f"k = {classes}: timing {', '.join(settings.variants)}"
                 + (f" and their training steps with {settings.backbone}" if backbone else "") + " …")
        cases = _cases(settings, classes, device, backbone, include_backbone=not timings)
        measured = time_budgeted(cases, plan, device, skip_warmup=_warmed_before(cases, timings, classes, plan))
        for (variant, what), result in measured.items():
            timings[(variant, None if variant == BACKBONE else classes, what)] = result
            progress(f"  {variant:<15} {what:<9} median {format_seconds(result.timing.median)} "
                     f"over {result.timing.repeats} calls")
        del cases
        _release_memory(device)
    return timings


def _backbone(settings: BenchSettings, device: torch.device) -> Backbone:
    """The featurizer (seeded weights) with its one batch of synthetic images, reused at every k."""
    torch.manual_seed(settings.seed)  # the backbone's initial weights
    generator = torch.Generator().manual_seed(settings.seed)
    images = synthetic_images(settings.batch_size, settings.image_channels, IMAGE_SIZE, device, generator)
    return Backbone(settings, device, images)


def _cases(settings: BenchSettings, classes: int, device: torch.device, backbone: Backbone | None,
           include_backbone: bool) -> dict[tuple[str, str], Callable[[], None]]:
    """(variant or BACKBONE, OBJECTIVE/STEP) → the step to time at k = ``classes``, on fresh features."""
    generator = torch.Generator().manual_seed(settings.seed * 1_000_003 + classes)
    Z, labels = subspace_features(settings.batch_size, settings.dim, classes, settings.atoms_per_class, device,
                                  generator)
    backbone_features = (backbone.sample_features(), labels) if backbone else None
    cases = {}
    if backbone and include_backbone:
        cases[(BACKBONE, STEP)] = backbone_step(backbone)
    for variant in settings.variants:
        alone = ObjectiveUnderTest(variant, settings, classes, device, (Z, labels), generator)
        cases[(variant, OBJECTIVE)] = objective_step(alone, Z, labels)
        if backbone:
            # Its own objective (CE's head, V-MCR²'s Γ and A) latched on the backbone's features.
            in_step = ObjectiveUnderTest(variant, settings, classes, device, backbone_features, generator)
            cases[(variant, STEP)] = training_step(backbone, in_step, labels)
            if settings.micro_batch:
                in_chunks = ObjectiveUnderTest(variant, settings, classes, device, backbone_features, generator)
                cases[(variant, CHUNKED_STEP)] = training_step(backbone, in_chunks, labels, settings.micro_batch)
    return cases


def _warmed_before(cases, timings: Timings, classes: int, plan: TimingPlan) -> dict[tuple[str, str], str]:
    """Reference cases to time without warm-up at this k.

    The reference repeats the same d×d work once per class at every k, so its kernels
    are warm after a smaller k; when one call would be slow, a warm-up call would only
    double the wait. Its objective's time is extrapolated linearly in k from the
    largest k timed so far; a training step adds the rest of its step there.
    """
    skip = {}
    for variant, what in cases:
        if variant != REFERENCE:
            continue
        before = [k for (v, k, w) in timings if v == variant and w == what]
        if not before:
            continue
        k_before = max(before)
        objective = timings[(variant, k_before, OBJECTIVE)].timing.median
        rest = timings[(variant, k_before, what)].timing.median - objective if what != OBJECTIVE else 0.0
        expected = objective * classes / k_before + rest
        if expected > plan.slow_call_s:
            skip[(variant, what)] = f"warmed up at k = {k_before}; one call ≈ {expected:.0f} s"
    return skip


def _release_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
