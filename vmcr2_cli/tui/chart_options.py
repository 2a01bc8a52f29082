"""How the epoch charts are drawn, changed by keys: smoothing, raw, log y, the x axis.

The smoothing is TensorBoard's: an exponential moving average debiased for its start
(``last = w·last + (1 − w)·y``, shown as ``last / (1 − w^n)``), so the first points are not
pulled towards 0 and a weight of 0 is the raw curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

# The weights ``s`` steps through (0: no smoothing), and the x axes ``x`` steps through.
SMOOTHING_WEIGHTS = (0.0, 0.6, 0.8, 0.9, 0.95, 0.99)
X_AXES = ("epoch", "step", "time")
X_LABELS = {"epoch": "epoch", "step": "step", "time": "min since start"}


@dataclass(frozen=True)
class ChartOptions:
    smoothing: float = 0.0
    raw: bool = False  # show the unsmoothed curves, keeping the chosen weight for later
    log_y: bool = False
    x_axis: str = "epoch"

    @property
    def weight(self) -> float:
        """The EMA weight in effect (0 when raw)."""
        return 0.0 if self.raw else self.smoothing

    def next_smoothing(self) -> "ChartOptions":
        index = SMOOTHING_WEIGHTS.index(self.smoothing) if self.smoothing in SMOOTHING_WEIGHTS else 0
        return replace(self, smoothing=SMOOTHING_WEIGHTS[(index + 1) % len(SMOOTHING_WEIGHTS)], raw=False)

    def next_x_axis(self) -> "ChartOptions":
        return replace(self, x_axis=X_AXES[(X_AXES.index(self.x_axis) + 1) % len(X_AXES)])

    def describe(self) -> str:
        """What the title of a chart says besides its x axis: ``EMA 0.9 · log y``."""
        parts = []
        if self.smoothing:
            parts.append(f"EMA {self.smoothing:g}" + (" off (raw)" if self.raw else ""))
        if self.log_y:
            parts.append("log y")
        return " · ".join(parts)


def x_label(options: ChartOptions) -> str:
    """The ``by …`` part of a chart's title: its x axis and what else the options change."""
    described = options.describe()
    return X_LABELS[options.x_axis] + (f" · {described}" if described else "")


def ema(values: list[float], weight: float) -> list[float]:
    """TensorBoard's debiased exponential moving average of ``values`` (weight 0: the values)."""
    if not weight:
        return list(values)
    smoothed, last, count = [], 0.0, 0
    for value in values:
        if math.isfinite(value):
            last = weight * last + (1 - weight) * value
            count += 1
        smoothed.append(last / (1 - weight ** count) if count else value)
    return smoothed
