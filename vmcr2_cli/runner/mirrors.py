"""Where a run's metrics lines are copied besides metrics.jsonl: TensorBoard, Weights & Biases.

metrics.jsonl stays the run's record; a mirror is a copy for the tools researchers already
use. Every line with a step goes to every mirror as ``<line type>/<key>`` scalars at the run's
global step (``epoch/delta_r``, ``eval/knn_accuracy``). A mirror that fails (a full disk, a
broken install) is dropped with one warning and training goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from vmcr2_cli.runs import RunDir, line_scalars


class Mirror(Protocol):
    """A logger that takes a metrics line's scalars, named ``<line type>/<key>``, at their step
    (``runner/tensorboard.py``, ``runner/wandb_mirror.py``)."""

    name: str

    def log(self, scalars: dict[str, float], step: int) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class MirroredRun(RunDir):
    """A run directory whose metrics lines also go to ``mirrors``; ``warn`` says once that one failed."""

    mirrors: list = field(default_factory=list)
    warn: Callable[[str], None] = print

    def append_metrics(self, kind: str, **values: Any) -> None:
        super().append_metrics(kind, **values)
        step = values.get("step")
        if not isinstance(step, int):
            return
        scalars = {f"{kind}/{key}": value for key, value in line_scalars(values).items()}
        if not scalars:
            return
        for mirror in list(self.mirrors):
            self._guarded(mirror, lambda: mirror.log(scalars, step))

    def close(self) -> None:
        """Close every mirror; the lines written after (the run's final status) stay in metrics.jsonl alone."""
        for mirror in list(self.mirrors):
            self._guarded(mirror, mirror.close)
        self.mirrors.clear()

    def _guarded(self, mirror: Mirror, call: Callable[[], None]) -> None:
        try:
            call()
        except Exception as error:  # noqa: BLE001 — any logger failure: the training goes on
            self.mirrors.remove(mirror)
            self.warn(f"{mirror.name} stopped logging ({type(error).__name__}: {error}); training goes on, "
                      f"metrics.jsonl keeps every line")
