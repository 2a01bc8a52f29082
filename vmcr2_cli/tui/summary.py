"""The per-run summary that the dashboard and ``vmcr2 watch --once`` both show: one source of truth.

``summarize(history, now)`` is pure: the clock is an argument, so "stalled" and the ETA
are the same in a test whatever the wall time.

Status is meta.json's ``status`` (running, finished, interrupted, failed), except that a
running run is **stalled** when

- it has written no metrics line for more than ``max(120 s, 3 × mean epoch time)``, or
- the process named in meta.json (``pid`` on this ``host``) is gone, so it never will.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from vmcr2_cli.metric_keys import RATE_KEYS, VARIATIONAL_KEYS
from vmcr2_cli.runs import STATUSES
from vmcr2_cli.numbers import fmt_duration
from vmcr2_cli.tui.history import RunHistory, as_number

STALL_FLOOR_S = 120.0
"""A running run is stalled after at least this long without a line…"""
STALL_EPOCHS = 3.0
"""…or this many mean epoch times, whichever is longer."""

STALLED = "stalled"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class RunSummary:
    """What ``watch`` shows for one run. Numbers are None where the run has not logged them yet."""

    key: str
    name: str
    path: str
    objective: str | None
    profile: str | None
    dataset: str | None
    device: str | None
    status: str
    """running, finished, interrupted, failed, stalled (a running run that stopped writing), or unknown."""
    stalled_reason: str | None
    epoch: int | None
    """Epochs done (from the last epoch line)."""
    total_epochs: int | None
    step: int | None
    delta_r: float | None
    r: float | None
    r_c: float | None
    r_v: float | None
    r_c_v: float | None
    m_term: float | None
    r_v_over_r: float | None
    """R^v / R: 1 when V-MCR² is faithful to the exact R."""
    invariance: float | None
    """Self-supervised runs: the views' mean cosine to their image's mean view (1 = identical views)."""
    loss: float | None
    lr: float | None
    mean_epoch_time_s: float | None
    images_per_s: float | None
    gpu_util: float | None
    gpu_mem_mb: float | None
    has_gpu: bool | None
    """False when the run's lines carry no GPU readings (a CPU run); None before any line."""
    eta_s: float | None
    elapsed_s: float | None
    last_line_age_s: float | None
    latches: int
    eval_accuracy: float | None
    knn_accuracy: float | None
    """kNN test accuracy of the last eval line: the measure of the self-supervised runs."""
    corrupt_lines: int

    def to_json(self) -> dict[str, Any]:
        """Every field but ``key`` (which is ``path``)."""
        data = asdict(self)
        del data["key"]
        return data


def stall_threshold_s(mean_epoch_time_s: float | None) -> float:
    """Seconds without a line after which a running run counts as stalled."""
    return max(STALL_FLOOR_S, STALL_EPOCHS * (mean_epoch_time_s or 0.0))


def summarize(run: RunHistory, now: float, *, process_alive: bool | None = None) -> RunSummary:
    """The summary of ``run`` at time ``now`` (Unix seconds).

    ``process_alive`` is whether the training process in meta.json still runs
    (None: unknown, e.g. another host); False makes a running run stalled at once.
    """
    latest = run.last_progress or {}
    mean_epoch = run.mean_epoch_time()
    last_activity = run.last_time if run.last_time is not None else run.start_time
    age = max(0.0, now - last_activity) if last_activity is not None else None

    status = run.meta.get("status")
    if status not in STATUSES:
        record_status = (run.last_status_record or {}).get("status")
        status = record_status if record_status in STATUSES else UNKNOWN
    stalled_reason = None
    if status == "running":
        threshold = stall_threshold_s(mean_epoch)
        if process_alive is False:
            stalled_reason = f"process {run.meta.get('pid')} on {run.meta.get('host')} has exited"
        elif age is not None and age > threshold:
            stalled_reason = f"no line for {fmt_duration(age)} (limit {fmt_duration(threshold)})"
        if stalled_reason:
            status = STALLED

    total = run.total_epochs
    done = run.epochs_done
    eta = None
    if status == "running" and total is not None and done is not None and mean_epoch is not None:
        since_epoch = max(0.0, now - (as_number(run.epochs[-1].get("time")) or now))
        eta = max(0.0, (total - done) * mean_epoch - since_epoch)

    last_gpu = run.last_gpu

    start = run.start_time
    end = as_number(run.meta.get("end_time"))
    elapsed = None
    if start is not None:
        elapsed = max(0.0, (end if end is not None else (now if status == "running" else (run.last_time or now)))
                      - start)

    step = as_number(latest.get("step"))
    return RunSummary(
        key=run.key,
        name=run.name,
        path=str(run.path),
        objective=run.objective,
        profile=_profile_name(run.info("profile")),
        dataset=run.info("dataset"),
        device=run.meta.get("device_name") or run.meta.get("device"),
        status=status,
        stalled_reason=stalled_reason,
        epoch=done,
        total_epochs=total,
        step=int(step) if step is not None else None,
        **{key: as_number(latest.get(key)) for key in RATE_KEYS},
        **{key: as_number(latest.get(key)) for key in VARIATIONAL_KEYS},
        invariance=as_number(latest.get("invariance")),
        loss=as_number(latest.get("loss")),
        lr=as_number(latest.get("lr")),
        mean_epoch_time_s=mean_epoch,
        images_per_s=as_number(latest.get("images_per_s")),
        gpu_util=last_gpu.util if last_gpu else None,
        gpu_mem_mb=last_gpu.mem_mb if last_gpu else None,
        has_gpu=run.has_gpu,
        eta_s=eta,
        elapsed_s=elapsed,
        last_line_age_s=age,
        latches=len(run.latches),
        eval_accuracy=_eval_accuracy(run.evals[-1]) if run.evals else None,
        knn_accuracy=as_number(run.evals[-1].get("knn_accuracy")) if run.evals else None,
        corrupt_lines=run.corrupt_lines,
    )


def _profile_name(profile: Any) -> str | None:
    """``--profile`` may be a path to a .toml: show its stem."""
    if not isinstance(profile, str) or not profile:
        return None
    name = profile.replace("\\", "/").rsplit("/", 1)[-1]
    return name[:-5] if name.endswith(".toml") else name


def _eval_accuracy(event: dict[str, Any]) -> float | None:
    """The accuracy an eval line reports (``accuracy``, else ``nearest_subspace_accuracy``, else any ``*accuracy``)."""
    for key in ("accuracy", "nearest_subspace_accuracy"):
        if as_number(event.get(key)) is not None:
            return as_number(event[key])
    for key, value in event.items():
        if key.endswith("accuracy") and as_number(value) is not None:
            return as_number(value)
    return None
