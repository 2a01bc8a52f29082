"""How vmcr2 writes numbers and durations, in train, eval, latch, compare, bench and watch alike.

JSON has no NaN or infinity (:func:`finite_or_none`); a table shows a missing value as a dash.
"""

from __future__ import annotations

import math
from typing import Any

NO_VALUE = "—"


def finite(value: Any) -> float | None:
    """``value`` if it is a finite number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return value


def finite_or_none(value: Any) -> Any:
    """``value`` with every NaN or ±inf float, however deeply nested, replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(item) for item in value]
    return value


def fmt(value: Any, spec: str = ".4f") -> str:
    """``format(value, spec)``, or a dash for a missing value."""
    return NO_VALUE if value is None else format(value, spec)


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


def fmt_accuracy(accuracy: float | None) -> str:
    """An accuracy as a percentage (fractions ≤ 1 are scaled)."""
    if accuracy is None:
        return NO_VALUE
    return f"{accuracy * 100 if accuracy <= 1 else accuracy:.1f}%"


def fmt_int(value: int | None) -> str:
    return NO_VALUE if value is None else f"{value:,}"
