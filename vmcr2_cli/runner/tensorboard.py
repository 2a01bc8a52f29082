"""TensorBoard event files beside metrics.jsonl: ``tensorboard --logdir runs`` shows every run.

Written through ``torch.utils.tensorboard`` when the ``tensorboard`` package is installed
(``pip install 'vmcr2[tensorboard]'``); without it training runs as before and says once
how to enable them.

Tags are ``<line type>/<key>`` (``epoch/delta_r``, ``step/loss``, ``latch/delta_r_v_after``,
``eval/nearest_subspace_accuracy``), every scalar at the run's global step, so MCR²,
V-MCR² and CE runs of one profile line up; the resolved config.toml is the text
``config``. A resumed run purges the events after its checkpoint's step, as it logs
those steps again.
"""

from __future__ import annotations

from typing import Any

from vmcr2_cli.runs import RunDir

TENSORBOARD_DIR = "tensorboard"
ENABLE_HINT = "TensorBoard logs: pip install 'vmcr2[tensorboard]' (then tensorboard --logdir runs)"


class TensorBoardMirror:
    """A run's metrics as TensorBoard scalars (a ``mirrors.Mirror``)."""

    name = "TensorBoard"

    def __init__(self, writer: Any) -> None:
        self.writer = writer

    def log(self, scalars: dict[str, float], step: int) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        self.writer.close()


def open_tensorboard(run: RunDir, config_text: str, purge_from: int | None) -> tuple[TensorBoardMirror | None,
                                                                                      str | None]:
    """The mirror writing ``run/tensorboard/`` and None, or None and the hint to enable it.

    ``purge_from``: the first step a resumed run logs again (its checkpoint's step + 1;
    0 when it starts over), whose earlier events are dropped; None for a new run.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # the tensorboard package is missing
        return None, ENABLE_HINT
    writer = SummaryWriter(log_dir=str(run.path / TENSORBOARD_DIR), purge_step=purge_from, flush_secs=10)
    if not purge_from:
        writer.add_text("config", "```toml\n" + config_text + "```", 0)
    return TensorBoardMirror(writer), None
