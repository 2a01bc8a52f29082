"""How watch shows statuses, runs and GPUs, in the dashboard and in ``--once`` alike (numbers: ``vmcr2_cli.numbers``).

Colours are the 16 ANSI colours (by number), so a plain SSH terminal shows every
distinction the dashboard makes; statuses also carry a symbol, so none rests on colour.
"""

from __future__ import annotations

from vmcr2_cli.numbers import NO_VALUE, fmt_memory
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
