"""Weights & Biases: a run's metrics also logged to a W&B run (``--set wandb=offline|online``).

Optional (``pip install 'vmcr2[wandb]'``): without the package one line says how to enable it
and training goes on. Every metrics line's numbers go under TensorBoard's names
(``epoch/delta_r``, ``eval/knn_accuracy``) at the run's global step; the resolved config is
the W&B config. The W&B run's id is kept in meta.json (``wandb_run_id``), so ``vmcr2 train
--resume`` continues the same W&B run. Offline runs live in the run directory
(``runs/<id>/wandb/offline-run-*``, for a later ``wandb sync``) and touch no network. The
runner opens mirrors on rank 0 alone, so under DDP one process logs.
"""

from __future__ import annotations

import secrets
from typing import Any

from vmcr2_cli.runs import RunDir

ENABLE_HINT = ("Weights & Biases: pip install 'vmcr2[wandb]' to log this run there (wandb = {mode}); "
               "training goes on without it")


class WandbMirror:
    """A run's metrics as W&B history rows (a ``mirrors.Mirror``)."""

    name = "Weights & Biases"

    def __init__(self, wandb_run: Any) -> None:
        self.wandb_run = wandb_run

    def log(self, scalars: dict[str, float], step: int) -> None:
        self.wandb_run.log(scalars, step=step)

    def close(self) -> None:
        self.wandb_run.finish()


def open_wandb(run: RunDir, config: Any) -> tuple[WandbMirror | None, str | None]:
    """The mirror logging ``run`` to W&B and None; or None and a line saying why not (None, None: off)."""
    if config.wandb == "off":
        return None, None
    try:
        import wandb
    except ImportError:
        return None, ENABLE_HINT.format(mode=config.wandb)
    except Exception as error:  # noqa: BLE001 — a broken install fails in its own ways
        return None, _did_not_start(error)
    run_id = run.read_meta().get("wandb_run_id") or secrets.token_hex(4)  # W&B's own ids: 8 characters
    try:
        wandb_run = wandb.init(project=config.wandb_project, entity=config.wandb_entity or None, mode=config.wandb,
                               dir=str(run.path), id=run_id, resume="allow", name=run.name,
                               config=config.to_dict(),
                               settings=wandb.Settings(silent=True, console="off", save_code=False))
    except Exception as error:  # noqa: BLE001 — not logged in, no network, a broken install
        return None, _did_not_start(error)
    run.update_meta(wandb_run_id=run_id)
    return WandbMirror(wandb_run), None


def _did_not_start(error: Exception) -> str:
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"Weights & Biases did not start ({first_line}); training goes on without it"
