"""What a checkpoint must hold, and the checks that it fits the run loading it.

Written by the trainer (``Trainer.state_dict``); read by ``train --resume``, eval and
latch, which refuse in one line a file that is not a checkpoint, one newer than this
vmcr2, one whose run's config.toml was edited, or weights that do not fit the model.
"""

from __future__ import annotations

import torch

from vmcr2_cli.config import RESUME_CHANGEABLE, TrainConfig
from vmcr2_cli.errors import BadInput

# 2: the learning rate follows from the global step (no scheduler state); best.pt adds "best".
CHECKPOINT_VERSION = 2
CHECKPOINT_KEYS = ("version", "model", "objective", "optimizer", "epoch", "step_in_epoch",
                   "global_step", "latched", "accumulator")
# Keys of config.toml that may differ from the checkpoint's copy: what --resume may change, and the label.
EDITABLE_KEYS = (*RESUME_CHANGEABLE, "description")


def check_checkpoint(state: object, config: TrainConfig, where: str) -> None:
    """BadInput (one line) unless ``state`` is a checkpoint of this version or older, written
    under ``config`` (up to the keys a resume may change)."""
    if not isinstance(state, dict):
        raise BadInput(f"{where}: not a vmcr2 checkpoint (a {type(state).__name__}, not a dict)")
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing:
        raise BadInput(f"{where}: not a vmcr2 checkpoint (no {', '.join(missing)})")
    version = state["version"]
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise BadInput(f"{where}: the checkpoint is of version {version}, newer than this vmcr2 reads "
                       f"({CHECKPOINT_VERSION}): upgrade vmcr2 to continue or evaluate it")
    saved = state.get("config")  # absent from checkpoints written before it was stored
    if isinstance(saved, dict):
        now = config.to_dict()
        edited = [key for key in saved if key in now and key not in EDITABLE_KEYS and saved[key] != now[key]]
        if edited:
            changes = ", ".join(f"{key} {saved[key]!r} → {now[key]!r}" for key in edited)
            raise BadInput(f"{where}: config.toml was edited after the checkpoint was written ({changes}); "
                           f"put it back, or train a new run")


def state_difference(saved: object, expected: dict[str, torch.Tensor]) -> str | None:
    """How a saved state_dict differs from the one a module has (first difference), or None."""
    if not isinstance(saved, dict):
        return f"is a {type(saved).__name__}, not a state_dict"
    missing = [key for key in expected if key not in saved]
    if missing:
        return f"lacks {', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}"
    unexpected = [key for key in saved if key not in expected]
    if unexpected:
        return f"has {', '.join(unexpected[:3])}{' …' if len(unexpected) > 3 else ''}, which this one does not"
    for key, tensor in expected.items():
        value = saved[key]
        if not isinstance(value, torch.Tensor) or value.shape != tensor.shape:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            return f"has {key} of shape {shape}, this one {tuple(tensor.shape)}"
    return None
