"""How watch writes numbers, durations and statuses, in the dashboard and in ``--once`` alike.

Colours are the 16 ANSI colours (by number), so a plain SSH terminal shows every
distinction the dashboard makes; statuses also carry a symbol, so none rests on colour.
"""

from __future__ import annotations

from vmcr2_cli.objective_registry import OBJECTIVES

# Rich styles (ANSI colour names) and symbols of each status.
STATUS_STYLES = {
    "running": ("●", "green"),
    "stalled": ("!", "bold yellow"),
    "finished": ("✓", "bold"),
    "interrupted": ("‖", "yellow"),
    "failed": ("✗", "bold red"),
    "unknown": ("?", "dim"),
}

OTHER_COLOURS = (7, 8)  # runs of an objective this vmcr2 does not know (each known one has its own, in the registry)
LATCH_COLOUR = 11
LATCH_MARKER = "◆"
EVAL_MARKER = "●"
NO_VALUE = "—"


def status_text(status: str) -> tuple[str, str]:
    """``(text, rich style)`` of a status, e.g. ``("● running", "green")``."""
    symbol, style = STATUS_STYLES.get(status, STATUS_STYLES["unknown"])
    return f"{symbol} {status}", style


def run_colours(objectives: list[str | None]) -> list[int]:
    """An ANSI colour number per run, in order: each objective cycles through its own family."""
    used: dict[str | None, int] = {}
    colours = []
    for objective in objectives:
        entry = OBJECTIVES.get(objective or "")
        family = entry.terminal_colours if entry else OTHER_COLOURS
        n = used.get(objective, 0)
        used[objective] = n + 1
        colours.append(family[n % len(family)])
    return colours


def fmt_duration(seconds: float | None) -> str:
    """``42s``, ``12m05s``, ``3h12m``, ``2d04h``."""
    if seconds is None:
        return NO_VALUE
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def fmt_value(value: float | None) -> str:
    """A metric (ΔR, R, loss…) with about five significant digits."""
    if value is None:
        return NO_VALUE
    size = abs(value)
    if size == 0:
        return "0"
    if size >= 1e5 or size < 1e-3:
        return f"{value:.3g}"
    if size >= 1000:
        return f"{value:.0f}"
    if size >= 100:
        return f"{value:.2f}"
    if size >= 10:
        return f"{value:.3f}"
    return f"{value:.4f}"


def fmt_seconds(seconds: float | None) -> str:
    """An epoch time: ``12.3s``, or a duration past a minute."""
    if seconds is None:
        return NO_VALUE
    return f"{seconds:.1f}s" if seconds < 60 else fmt_duration(seconds)


def fmt_rate(per_second: float | None) -> str:
    """Images per second: ``812``, ``4,321``, ``12.3k``."""
    if per_second is None:
        return NO_VALUE
    if per_second >= 1e4:
        return f"{per_second / 1e3:.1f}k"
    return f"{per_second:,.0f}"


def fmt_memory(mb: float | None) -> str:
    if mb is None:
        return NO_VALUE
    return f"{mb / 1024:.1f} GiB" if mb >= 1024 else f"{mb:.0f} MiB"


def fmt_gpu(has_gpu: bool | None, util: float | None, mem_mb: float | None) -> str:
    """``87% 10.2 GiB``, ``no GPU`` for a CPU run, ``—`` before any line."""
    if has_gpu is False:
        return "no GPU"
    if util is None and mem_mb is None:
        return NO_VALUE
    parts = []
    if util is not None:
        parts.append(f"{util:.0f}%")
    if mem_mb is not None:
        parts.append(fmt_memory(mem_mb))
    return " ".join(parts)


def fmt_epoch(done: int | None, total: int | None) -> str:
    return f"{NO_VALUE if done is None else done}/{NO_VALUE if total is None else total}"


def fmt_accuracy(accuracy: float | None) -> str:
    """An accuracy as a percentage (fractions ≤ 1 are scaled)."""
    if accuracy is None:
        return NO_VALUE
    return f"{accuracy * 100 if accuracy <= 1 else accuracy:.1f}%"


def fmt_int(value: int | None) -> str:
    return NO_VALUE if value is None else f"{value:,}"
