"""Rank 0 alone writes the run directory; the other processes hold a :class:`FollowerRun`.

:class:`TrainingRun` is everything a training process does with its run: the real
:class:`~vmcr2_cli.runs.RunDir` (rank 0) and the follower both implement it, the follower's
writes doing nothing. The follower forwards nothing else, so a write added to RunDir cannot
reach another rank's hands unnoticed: using it there is an AttributeError, not a write without
the run's lock (or, on a node that cannot see the run folder, an error inside a signal handler).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from vmcr2_cli.runs import RunDir


class TrainingRun(Protocol):
    """What the trainer and the run's lifecycle use of the run they hold."""

    @property
    def path(self) -> Path: ...

    @property
    def name(self) -> str: ...

    def checkpoint_file(self, which: str = "last") -> Path: ...

    def append_metrics(self, kind: str, **values: Any) -> None: ...

    def save_checkpoint(self, state: dict[str, Any], which: str = "last") -> None: ...

    def set_status(self, status: str, *, meta: dict[str, Any] | None = None, **line: Any) -> None: ...


class FollowerRun:
    """A run directory seen from a rank other than 0: its path and name, and writes that do nothing.

    The folder need not exist on this node (multi-node without a shared file system): nothing
    here touches it. Reading it (a checkpoint, meta.json) is rank 0's too: the follower has no
    method for it.
    """

    def __init__(self, run: RunDir) -> None:
        self._run = run  # for its paths, which are computed, not read

    @property
    def path(self) -> Path:
        return self._run.path

    @property
    def name(self) -> str:
        return self._run.name

    def checkpoint_file(self, which: str = "last") -> Path:
        return self._run.checkpoint_file(which)

    def append_metrics(self, kind: str, **values: Any) -> None:
        pass

    def save_checkpoint(self, state: dict[str, Any], which: str = "last") -> None:
        pass

    def set_status(self, status: str, *, meta: dict[str, Any] | None = None, **line: Any) -> None:
        pass


def run_for_rank(run: RunDir, is_main: bool) -> TrainingRun:
    """``run`` on rank 0, a FollowerRun of it elsewhere."""
    return run if is_main else FollowerRun(run)
