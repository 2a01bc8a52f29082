"""A bench's timings as one JSON-ready report: a row per variant and k, the ratios, the notes.

The Rich tables (``report.py``), the CSV and the figure (``output.py``, ``figure.py``)
are all drawn from this dict, so ``--json`` carries every figure they show.
"""

from __future__ import annotations

import time

from vmcr2_cli import invocation

from .paper import PAPER_DEVICE, TABLE_1
from .settings import IMAGE_SIZE, REFERENCE, VMCR2_VARIANTS, BenchSettings
from .timing import CaseTiming

BACKBONE = "backbone"  # the row of the backbone alone
# What a case times: the objective alone, a training step, a training step in chunks (--micro-batch).
OBJECTIVE, STEP, CHUNKED_STEP = "objective", "step", "chunked_step"
BUSY_LOAD = 0.5  # load average per CPU above which a CPU bench says the machine was busy
TIMING_FIELDS = ("median_s", "q1_s", "q3_s", "min_s", "max_s", "repeats", "warmup", "peak_memory_mb", "note")

Timings = dict[tuple[str, int | None, str], CaseTiming]  # (variant, k or None, OBJECTIVE/STEP) → result


def build_report(settings: BenchSettings, machine: dict, timings: Timings, started: float) -> dict:
    """The report of a bench that started at ``started`` (Unix seconds) on ``machine`` (see ``environment``)."""
    rows = [_row(settings, timings, BACKBONE, None)] if settings.backbone else []
    rows += [_row(settings, timings, variant, classes) for classes in settings.classes for variant in settings.variants]
    return {
        "tool": "vmcr2 bench",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 3),
        "command": invocation.command_line(),
        "settings": settings.to_json(),
        "environment": machine,
        "rows": rows,
        "ratios": _ratios(settings, timings),
        "paper_table_1": {"device": PAPER_DEVICE, "rows": [row.to_json() for row in TABLE_1]},
        "notes": _notes(settings, machine, rows),
    }


def _row(settings: BenchSettings, timings: Timings, variant: str, classes: int | None) -> dict:
    """One variant at one k (the backbone: k None): its timings alone and in a training step, and
    what follows from them."""
    alone, step = timings.get((variant, classes, OBJECTIVE)), timings.get((variant, classes, STEP))
    row = {"variant": variant, "classes": classes,
           "dictionary_size": settings.dictionary_size(classes) if variant in VMCR2_VARIANTS else None}
    row.update(_timing_fields(alone, ""))
    row["speedup_vs_reference"] = _ratio(timings.get((REFERENCE, classes, OBJECTIVE)), alone)
    row.update(_timing_fields(step, "step_"))
    row["step_speedup_vs_reference"] = _ratio(timings.get((REFERENCE, classes, STEP)), step)
    row["step_share"] = _ratio(alone, step)  # the objective's part of a training step
    row["epoch_s"] = settings.steps_per_epoch() * step.timing.median if step is not None else None
    if settings.micro_batch:
        chunked = timings.get((variant, classes, CHUNKED_STEP))
        row.update(_timing_fields(chunked, "chunked_step_"))
        row["chunked_step_speedup_vs_reference"] = _ratio(timings.get((REFERENCE, classes, CHUNKED_STEP)), chunked)
        row["chunked_step_cost"] = _ratio(chunked, step)  # time in chunks / time whole
        row["chunked_memory_share"] = _memory_ratio(chunked, step)
    return row


def _memory_ratio(numerator: CaseTiming | None, denominator: CaseTiming | None) -> float | None:
    """The ratio of two peak memories; None where either is missing."""
    if numerator is None or denominator is None or numerator.peak_memory_bytes is None \
            or not denominator.peak_memory_bytes:
        return None
    return numerator.peak_memory_bytes / denominator.peak_memory_bytes


def _timing_fields(result: CaseTiming | None, prefix: str) -> dict:
    if result is None:
        return {prefix + name: None for name in TIMING_FIELDS}
    timing = result.timing
    peak = None if result.peak_memory_bytes is None else round(result.peak_memory_bytes / 2**20, 1)
    values = (timing.median, timing.q1, timing.q3, timing.minimum, timing.maximum, timing.repeats,
              result.warmup, peak, result.note)
    return {prefix + name: value for name, value in zip(TIMING_FIELDS, values)}


def _ratio(numerator: CaseTiming | None, denominator: CaseTiming | None) -> float | None:
    """The ratio of two medians; None where either is missing."""
    if numerator is None or denominator is None or not denominator.timing.median > 0:
        return None
    return numerator.timing.median / denominator.timing.median


def _ratios(settings: BenchSettings, timings: Timings) -> list[dict]:
    """Per k: MCR² (the reference) / V-MCR² time, ours and, where k matches, the paper's; and each
    V-MCR² variant's time over the exact batched MCR²'s and over its own at the smallest k."""
    entries = []
    smallest = settings.classes[0]
    for classes in settings.classes:
        paper = [row for row in TABLE_1 if row.classes == classes]
        entries.append({
            "classes": classes,
            "objective_ratio": _ratio(timings.get((REFERENCE, classes, OBJECTIVE)),
                                      timings.get(("vmcr2", classes, OBJECTIVE))),
            "step_ratio": _ratio(timings.get((REFERENCE, classes, STEP)), timings.get(("vmcr2", classes, STEP))),
            "paper": [{**row.to_json(), "same_shape": (row.batch_size, row.dim, row.atoms_per_class)
                       == (settings.batch_size, settings.dim, settings.atoms_per_class)} for row in paper],
            "vmcr2": {variant: {"over_mcr2": _ratio(timings.get((variant, classes, OBJECTIVE)),
                                                    timings.get(("mcr2", classes, OBJECTIVE))),
                                "over_smallest_k": _ratio(timings.get((variant, classes, OBJECTIVE)),
                                                          timings.get((variant, smallest, OBJECTIVE)))}
                      for variant in settings.variants if variant in VMCR2_VARIANTS},
        })
    return entries


def _notes(settings: BenchSettings, machine: dict, rows: list[dict]) -> list[str]:
    notes = []
    load = machine["load_average_1m"]["start"]
    cpus = machine["cpu_count"] or 1
    if machine["device"] == "cpu" and load is not None and load >= BUSY_LOAD * cpus:
        notes.append(f"The machine was busy when the bench started (1-minute load average {load:.2f} on {cpus} "
                     "CPUs): other processes competed for the cores, so times are slower and noisier than on "
                     "an idle machine; the interleaved rounds spread the disturbance over all variants.")
        if machine["torch_threads"] > 1:
            notes.append(f"With {machine['torch_threads']} threads on a busy machine every operation waits for "
                         "its slowest thread: the many small operations of mcr2-reference suffer most, which "
                         "inflates its ratios; --threads 1 measures them more fairly there.")
    for row in rows:
        where = row["variant"] if row["classes"] is None else f"{row['variant']} at k = {row['classes']}"
        if row["note"]:
            notes.append(f"{where}, objective alone: {row['note']}")
        if row["step_note"]:
            notes.append(f"{where}, training step: {row['step_note']}")
    notes.append("mcr2-reference: exact ΔR with one d×d Cholesky per class in a Python loop, the cost profile "
                 "of the original MCR² code (the paper's MCR²); mcr2: the same ΔR, all classes in one batched "
                 "factorization of the smaller m_j×m_j side.")
    notes.append("Each step runs as `vmcr2 train` runs it: the batch grouped by class from CPU labels, the "
                 "objective's step (V-MCR²: its method's Γ/A update and θ loss) and backward; V-MCR² and ce "
                 "also compute the exact ΔR the trainer logs (no gradient), mcr2 gets it with its loss.")
    if any(variant in VMCR2_VARIANTS for variant in settings.variants):
        notes.append("V-MCR² variants (vmcr2_method): vmcr2 = Algorithm 1 as written (paper), vmcr2-block = "
                     "Algorithm 1 with A kept on latching's blocks (block), vmcr2-tangent = the tangent form "
                     "(tangent), vmcr2-tangent-push = the tangent form at a spectrum one A-step ahead "
                     "(tangent-push). Their Γ and A are latched on the batch before timing (Algorithm 1 starts "
                     "latched); the timed steps then update them as training does.")
    if any(row["peak_memory_mb"] is not None for row in rows):
        notes.append("peak mem: the most memory one call used beyond what was in use before it (GPU: allocated "
                     "tensors; CPU: resident set growth, after returning free heap memory to the system).")
    if settings.backbone:
        notes.append(f"Training step: {settings.backbone} forward, objective, backward, SGD step on synthetic "
                     f"{settings.image_channels}×{IMAGE_SIZE}×{IMAGE_SIZE} images (backbone at --precision "
                     f"{settings.precision}, as training runs it on this device; objectives in " + settings.dtype + "). share = objective alone / "
                     "training step. epoch = "
                     f"{settings.steps_per_epoch()} steps (⌊{settings.dataset_size}/{settings.batch_size}⌋) "
                     "× step median; data loading, latching and evaluation are not included.")
    notes.append("Paper, Table 1: MCR²/V-MCR² time per epoch on an A100 (whole epochs; MNIST and CIFAR-10 at "
                 "m = 1000, d = 128, q = 20·k; CIFAR-100 and Tiny ImageNet at m = 2000, d = 500, q = 10·k).")
    return notes

