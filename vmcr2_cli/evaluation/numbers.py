"""Numbers in the reports of eval, latch and compare: JSON has no NaN or infinity, and a
table shows a missing value as a dash."""

from __future__ import annotations

import math
from typing import Any

from vmcr2_cli.tui.formatting import NO_VALUE


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
