"""What one run has logged so far, kept in the shape the dashboard and the summary read.

``RunHistory.apply(records)`` takes the new ``metrics.jsonl`` records (as returned by
``MetricsTail.read_new``) and sorts them into: the epoch lines (the charts' points),
a compact GPU time series (from step and epoch lines), latch and eval events, the
latest progress line (step or epoch) and the time of the newest line. Step lines are
not kept whole: a long run writes hundreds of thousands of them.

No Textual here: ``vmcr2 watch --once`` uses this too.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmcr2_cli.runs import add_epoch_line, epoch_number

# Charts and the summary count epochs done, 1 … total (``runs.epoch_number``).
PROGRESS_TYPES = ("epoch", "step")
# The GPU time series keeps at most this many readings: past it, every other one is dropped,
# so a dashboard left open for weeks holds the whole run's trend in bounded memory.
MAX_GPU_SAMPLES = 20_000


@dataclass(frozen=True)
class GpuSample:
    """One GPU reading from a step or epoch line (either value may be missing)."""

    time: float
    util: float | None
    mem_mb: float | None


@dataclass
class RunHistory:
    """The records of one run directory read so far, plus its meta.json and config.toml.

    ``key`` identifies the run among those watched (its resolved path); ``name`` is the
    run directory's name, e.g. ``20261123-101502-tinyimagenet-vmcr2``.
    """

    key: str
    name: str
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    gpu: list[GpuSample] = field(default_factory=list)
    last_gpu: GpuSample | None = None
    lines_without_gpu: int = 0
    latches: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    last_progress: dict[str, Any] | None = None
    last_status_record: dict[str, Any] | None = None
    first_time: float | None = None
    last_time: float | None = None
    records: int = 0
    corrupt_lines: int = 0
    # Series derived from ``epochs``, rebuilt only when an epoch line arrives: the charts
    # ask for them at every redraw, a 2000-epoch run would otherwise cost that each time.
    _version: int = field(default=0, repr=False)
    _derived: dict[str, tuple[int, Any]] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ updates
    def apply(self, records: list[dict[str, Any]]) -> None:
        """Fold new records (in file order) into the history."""
        for record in records:
            self.records += 1
            time = as_number(record.get("time"))
            if time is not None:
                self.first_time = time if self.first_time is None else min(self.first_time, time)
                self.last_time = time if self.last_time is None else max(self.last_time, time)
            kind = record.get("type")
            if kind in PROGRESS_TYPES:
                self.last_progress = record
                util, mem = as_number(record.get("gpu_util")), as_number(record.get("gpu_mem_mb"))
                if util is not None or mem is not None:
                    if time is not None:
                        self.gpu.append(GpuSample(time, util, mem))
                        if len(self.gpu) > MAX_GPU_SAMPLES:
                            del self.gpu[1::2]
                    self.last_gpu = GpuSample(time or 0.0, util, mem)
                else:
                    self.lines_without_gpu += 1
                if kind == "epoch":
                    self._add_epoch(record)
            elif kind == "latch":
                self.latches.append(record)
            elif kind == "eval":
                if isinstance(record.get("epoch"), int):
                    add_epoch_line(self.evals, record)  # one per epoch: a resumed run measures again
                else:
                    self.evals.append(record)
            elif kind == "status":
                self.last_status_record = record

    def _add_epoch(self, record: dict[str, Any]) -> None:
        index = as_number(record.get("epoch"))
        if index is None:
            return
        r_v, r = as_number(record.get("r_v")), as_number(record.get("r"))
        if "r_v_over_r" not in record and r_v is not None and r:  # runs from before the key was logged
            record = {**record, "r_v_over_r": r_v / r}
        add_epoch_line(self.epochs, record)
        self._version += 1

    def _cached(self, name: str, build):
        """``build()``, computed again only after the epoch lines changed."""
        version, value = self._derived.get(name, (-1, None))
        if version != self._version:
            value = build()
            self._derived[name] = (self._version, value)
        return value

    # ------------------------------------------------------------------ meta.json / config.toml
    def info(self, key: str) -> Any:
        """A field of meta.json, else of config.toml, else None."""
        value = self.meta.get(key)
        return self.config.get(key) if value is None else value

    @property
    def objective(self) -> str | None:
        return self.info("objective")

    @property
    def is_variational(self) -> bool:
        return self.objective == "vmcr2" or any("m_term" in line for line in self.epochs[-1:])

    @property
    def has_gpu(self) -> bool | None:
        """True once a line carries a GPU reading; False while its lines carry none (a CPU run);
        None before any progress line."""
        if self.last_gpu is not None:
            return True
        return False if self.lines_without_gpu else None

    @property
    def total_epochs(self) -> int | None:
        value = as_number(self.info("epochs"))
        return int(value) if value is not None else None

    @property
    def start_time(self) -> float | None:
        start = as_number(self.meta.get("start_time"))
        return start if start is not None else self.first_time

    # ------------------------------------------------------------------ derived series
    @property
    def epochs_done(self) -> int | None:
        """Epochs finished so far (from the last epoch line), None before the first."""
        if not self.epochs:
            return None
        return epoch_number(self.epochs[-1])

    @staticmethod
    def epoch_x(line: dict[str, Any]) -> int:
        """The chart's x of an epoch line: epochs done when it was written (1 …)."""
        return epoch_number(line)

    def line_x(self, line: dict[str, Any], axis: str) -> float | None:
        """A line's x on ``axis``: epochs done, the global step, or minutes since the run started."""
        if axis == "epoch":
            return self.epoch_x(line)
        if axis == "step":
            return as_number(line.get("step"))
        time, start = as_number(line.get("time")), self.start_time
        return None if time is None or start is None else (time - start) / 60

    def series(self, key: str, axis: str = "epoch") -> tuple[list[float], list[float]]:
        """``key`` over ``axis`` (see ``line_x``), skipping lines where it or the x is missing or null."""
        def build() -> tuple[list[float], list[float]]:
            xs, ys = [], []
            for line in self.epochs:
                value, x = as_number(line.get(key)), self.line_x(line, axis)
                if value is not None and x is not None:
                    xs.append(x)
                    ys.append(value)
            return xs, ys

        return self._cached(f"series:{key}:{axis}", build)

    def eval_series(self, key: str, axis: str = "epoch") -> tuple[list[float], list[float]]:
        """``key`` of the eval lines (accuracies measured during training and by vmcr2 eval) over
        ``axis``; on the epoch axis an eval line's ``epoch`` is the epochs done when it measured."""
        xs, ys = [], []
        for line in self.evals:
            value = as_number(line.get(key))
            x = as_number(line.get("epoch")) if axis == "epoch" else self.line_x(line, axis)
            if value is not None and x is not None:
                xs.append(x)
                ys.append(value)
        return xs, ys

    def event_x(self, event: dict[str, Any], axis: str = "epoch") -> float:
        """Where a latch or eval event sits on ``axis``.

        On the epoch axis it is placed by ``step``: after the last epoch line written at
        or before the event's step (the first latch of V-MCR² happens at step 0, before
        any epoch: x = 0); without a step, its ``epoch`` is taken as a count of epochs done.
        """
        if axis != "epoch":
            x = self.line_x(event, axis)
            return x if x is not None else 0.0
        step = as_number(event.get("step"))
        if step is None:
            epoch = as_number(event.get("epoch"))
            return float(epoch) if epoch is not None else 0.0
        steps, xs = self._cached("steps", lambda: (
            [as_number(line.get("step")) or 0 for line in self.epochs],
            [float(self.epoch_x(line)) for line in self.epochs]))
        index = bisect_right(steps, step)
        return xs[index - 1] if index else 0.0

    def mean_epoch_time(self) -> float | None:
        _, times = self.series("epoch_time_s")
        return sum(times) / len(times) if times else None


def as_number(value: Any) -> float | None:
    """A finite int/float, else None (JSON null, strings, booleans)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return value
