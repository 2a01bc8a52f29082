"""Rank 0 alone writes the run directory; the other processes hold a :class:`FollowerRun`."""

from __future__ import annotations

from typing import Any

from vmcr2_cli.runs import RunDir


class FollowerRun:
    """A run directory seen from a rank other than 0: its path and name, and no writes.

    The trainer writes metrics, checkpoints and meta.json through whatever run it holds;
    handing the other ranks this stand-in keeps every write on rank 0 without a rank test
    at each call. The folder need not exist on this node (multi-node without a shared
    file system): nothing here touches it.
    """

    def __init__(self, run: RunDir) -> None:
        self._run = run

    def __getattr__(self, name: str) -> Any:  # path, name, checkpoint_path, …
        return getattr(self._run, name)

    def append_metrics(self, kind: str, **values: Any) -> None:
        pass

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        pass

    def write_meta(self, meta: dict[str, Any]) -> None:
        pass

    def update_meta(self, **changes: Any) -> dict[str, Any]:
        return {}

    def write_eval(self, results: dict[str, Any], which: str = "last") -> None:
        pass


def run_for_rank(run: RunDir, is_main: bool) -> RunDir | FollowerRun:
    """``run`` on rank 0, a FollowerRun of it elsewhere."""
    return run if is_main else FollowerRun(run)
