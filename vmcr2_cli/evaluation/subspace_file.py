"""Eq. 8's class subspaces of a checkpoint, kept in the run (``class-subspaces.npz``, one per checkpoint),
so that ``vmcr2 embed --predict`` and ``Featurizer.predict`` need no training data once they exist.

Written by ``vmcr2 eval`` and by the first prediction; read with ``allow_pickle=False``; a file fitted
on another state of the checkpoint (its ``global_step`` differs) is not used.
"""

from __future__ import annotations

import io

import numpy as np
import torch

from vmcr2_cli.runs import RunDir, atomic_write_bytes


def save_class_subspaces(run: RunDir, which: str, bases: torch.Tensor, global_step: int) -> None:
    """``bases`` (k, d, p), fitted on checkpoint ``which`` at ``global_step``, into the run (atomically)."""
    buffer = io.BytesIO()
    np.savez(buffer, bases=bases.detach().float().cpu().numpy(), global_step=np.int64(global_step))
    atomic_write_bytes(run.subspace_file(which), buffer.getvalue())


def saved_class_subspaces(run: RunDir, which: str, global_step: int, num_classes: int,
                          feature_dim: int) -> torch.Tensor | None:
    """The saved (k, d, p) bases of checkpoint ``which`` at ``global_step``; None when there are none that fit."""
    path = run.subspace_file(which)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            bases, step = archive["bases"], int(archive["global_step"])
    except (OSError, ValueError, KeyError, TypeError):  # damaged or foreign: fitted again
        return None
    if step != global_step or bases.ndim != 3 or bases.shape[:2] != (num_classes, feature_dim):
        return None
    return torch.from_numpy(bases.astype(np.float32))
