"""Honest wall-clock timing of a few functions on one device (DESIGN §6).

One call is timed with CUDA events and a ``torch.cuda.synchronize`` on a GPU (so
the time is the device's, not the launch's), with ``time.perf_counter`` on the CPU.
:func:`time_budgeted` times cases in interleaved rounds, each round calling every
case once, so that the ratios between them are fair when the machine's load drifts (a
shared CPU). A case whose calls are slow gets fewer warm-up and timed calls, so that a
sweep over many sizes finishes in minutes; what was cut is said in
:attr:`CaseTiming.note` (``budget_s=math.inf`` gives every case the same counts).
Summaries are the median with the interquartile range and the min–max.
"""

from __future__ import annotations

import ctypes
import statistics
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import torch

Key = TypeVar("Key", bound=Hashable)


class Timing(NamedTuple):
    """Seconds per call over the timed repeats: median, quartiles, extremes, count."""

    median: float
    q1: float
    q3: float
    minimum: float
    maximum: float
    repeats: int


def summarize(seconds: list[float]) -> Timing:
    """The :class:`Timing` of a non-empty list of per-call seconds (inclusive quartiles)."""
    if not seconds:
        raise ValueError("summarize needs at least one time")
    if len(seconds) < 2:
        only = seconds[0]
        return Timing(only, only, only, only, only, 1)
    q1, median, q3 = statistics.quantiles(seconds, n=4, method="inclusive")
    return Timing(median, q1, q3, min(seconds), max(seconds), len(seconds))


def time_call(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds of one ``fn()`` on ``device``: CUDA events and a synchronize on a GPU, perf_counter elsewhere."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # nothing queued before the start event counts
        stream = torch.cuda.current_stream(device)  # the stream fn's kernels are queued on
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(stream)
        fn()
        end.record(stream)
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / 1e3
    begin = time.perf_counter()
    fn()
    return time.perf_counter() - begin


@dataclass(frozen=True)
class TimingPlan:
    """How many calls a case gets.

    Attributes:
        repeats: timed calls per case, at most.
        warmup: untimed calls per case before timing, at most.
        budget_s: seconds of timed calls a case may spend; a slower case stops after
            ``min_repeats`` calls, and one whose single call exceeds ``budget_s /
            min_repeats`` gets one warm-up call only.
        min_repeats: timed calls every case gets (capped by ``repeats``).
    """

    repeats: int
    warmup: int
    budget_s: float
    min_repeats: int = 3

    @property
    def fewest(self) -> int:
        return min(self.min_repeats, self.repeats)

    @property
    def slow_call_s(self) -> float:
        """A call slower than this is 'slow': one warm-up at most, and fewer repeats."""
        return self.budget_s / max(self.fewest, 1)


@dataclass(frozen=True)
class CaseTiming:
    """One case's result under a :class:`TimingPlan`.

    timing: the timed calls' summary; warmup: the warm-up calls made;
    peak_memory_bytes: the most memory one of its calls used beyond what was in use
    before it (see ``measured_call``; None where it cannot be measured); note: what
    was cut, if anything, in words.
    """

    timing: Timing
    warmup: int
    peak_memory_bytes: int | None
    note: str | None


def time_budgeted(
    cases: Mapping[Key, Callable[[], object]],
    plan: TimingPlan,
    device: torch.device,
    *,
    skip_warmup: Mapping[Key, str] | None = None,
) -> dict[Key, CaseTiming]:
    """Warm up, then time the cases in interleaved rounds within ``plan``'s budget.

    Args:
        cases: name → a function doing one step.
        plan: the repeats, warm-ups and time budget.
        device: where the work runs (CUDA: events and synchronize).
        skip_warmup: cases to time without warming up, each with the reason (e.g. the
            same kernels were warmed up at a smaller size and one call is long).
    """
    skip_warmup = dict(skip_warmup or {})
    peaks: dict[Key, int | None] = {name: None for name in cases}
    warmed: dict[Key, int] = {}
    estimate: dict[Key, float] = {}
    for name, fn in cases.items():
        warmed[name] = 0
        if name in skip_warmup:
            continue
        for _ in range(plan.warmup):
            seconds, peak = measured_call(fn, device)
            warmed[name] += 1
            peaks[name] = _larger(peaks[name], peak)
            estimate[name] = seconds
            if seconds > plan.slow_call_s:
                break

    seconds_of: dict[Key, list[float]] = {name: [] for name in cases}

    def wants_more(name: Key) -> bool:
        done = seconds_of[name]
        if len(done) >= plan.repeats:
            return False
        if len(done) < plan.fewest:
            return True
        next_call = statistics.median(done)
        return sum(done) + next_call <= plan.budget_s

    while any(wants_more(name) for name in cases):
        for name, fn in cases.items():
            if wants_more(name):
                seconds, peak = measured_call(fn, device)
                seconds_of[name].append(seconds)
                peaks[name] = _larger(peaks[name], peak)

    results = {}
    for name in cases:
        notes = []
        if name in skip_warmup:
            notes.append(f"no warm-up ({skip_warmup[name]})")
        elif warmed[name] < plan.warmup:
            notes.append(f"{warmed[name]} of {plan.warmup} warm-up calls (one call took "
                         f"{estimate[name]:.3g} s)")
        repeats = len(seconds_of[name])
        if repeats < plan.repeats:
            notes.append(f"{repeats} of {plan.repeats} repeats (time budget {plan.budget_s:g} s)")
        results[name] = CaseTiming(summarize(seconds_of[name]), warmed[name], peaks[name],
                                   "; ".join(notes) or None)
    return results


def measured_call(fn: Callable[[], object], device: torch.device) -> tuple[float, int | None]:
    """(seconds, peak memory of the call above what was in use before it, or None) of one call.

    CUDA: the caching allocator's peak of allocated bytes. CPU (Linux): the process's
    peak resident set (VmHWM, reset through /proc/self/clear_refs) above its resident
    set before the call, after handing the allocator's free memory back to the system
    (glibc's malloc_trim) so that temporaries cannot hide in memory freed earlier;
    None where /proc offers neither.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        seconds = time_call(fn, device)
        return seconds, torch.cuda.max_memory_allocated(device) - before
    _release_free_heap()
    before = resident_bytes("VmRSS") if _reset_resident_peak() else None
    seconds = time_call(fn, device)
    peak = resident_bytes("VmHWM") if before is not None else None
    return seconds, None if peak is None else max(peak - before, 0)


def _release_free_heap() -> None:
    """Return the C heap's free pages to the system (glibc); nothing elsewhere."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_resident_peak() -> bool:
    """Reset the process's peak resident set to its current size (Linux ≥ 4.0); False where impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def resident_bytes(field: str) -> int | None:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in bytes; None where absent."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024  # the kernel writes kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _larger(old: int | None, new: int | None) -> int | None:
    if old is None:
        return new
    return old if new is None else max(old, new)
