"""Polls run directories for new metrics lines, meta.json changes and new runs.

Knows nothing of the dashboard: ``Watcher.poll()`` returns events (``RunFound``,
``RunUpdate``) and hands them to an optional callback; whoever calls ``poll`` decides
how often. The dashboard calls it from a worker thread started by an interval timer,
``--once`` calls it once.

Why polling and not inotify: metrics.jsonl is appended a line at a time, a stat and a
read of the new bytes every half second cost nothing, and polling works the same on
NFS home folders, in containers and on macOS, where inotify is missing or silent.
Each metrics file is read through ``MetricsTail``: only bytes after the last read,
a partial last line held until its newline arrives, corrupt lines skipped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from vmcr2_cli.errors import BadInput
from vmcr2_cli.runs import (CONFIG_FILE, LATEST_LINK, META_FILE, METRICS_FILE, MetricsTail, RunDir,
                            check_not_dangling, is_run_dir, runs_in, writer_alive)

TargetKind = Literal["run", "link", "folder"]
# Step lines parsed per read of a run's new lines: a run with 10⁶ of them opens in a second
# (they feed only the GPU trend and the progress line; the charts are drawn from epoch lines).
STEP_LINES_PER_READ = 5000


# ----------------------------------------------------------------------------- what to watch

@dataclass(frozen=True)
class WatchTarget:
    """A path given on the command line and how to watch it.

    ``run``: one run directory. ``link``: a symlink to a run (``runs/latest``), followed
    again at every poll so a newly started run joins. ``folder``: a folder of runs, whose
    new runs join as they appear.
    """

    path: Path
    kind: TargetKind


def resolve_target(path: Path) -> WatchTarget:
    """How to watch ``path``; ``BadInput`` (one line) when it is neither a run nor a folder of runs."""
    path = Path(path)
    if not path.exists():
        check_not_dangling(path)
        raise BadInput(f"not a run directory or a folder of runs: {path} (no such file or folder)")
    if path.is_file():
        if path.name in (METRICS_FILE, META_FILE, CONFIG_FILE) and is_run_dir(path.parent):
            return resolve_target(path.parent)
        raise BadInput(f"not a run directory or a folder of runs: {path} (a file)")
    if is_run_dir(path):
        return WatchTarget(path, "link" if path.is_symlink() else "run")
    if _looks_like_runs_folder(path):
        return WatchTarget(path, "folder")
    raise BadInput(f"not a run directory or a folder of runs: {path} "
                   f"(no {META_FILE} and {CONFIG_FILE}, and no run directories in it)")


def resolve_targets(paths: list[Path]) -> list[WatchTarget]:
    """``resolve_target`` for each path, in order; BadInput for the first bad one."""
    if not paths:
        raise BadInput("give a run directory, runs/latest or a folder of runs")
    return [resolve_target(Path(p)) for p in paths]


def _looks_like_runs_folder(path: Path) -> bool:
    """A folder of runs holds run directories or ``latest``, or is empty (its runs are yet to start)."""
    try:
        children = list(path.iterdir())
    except OSError:
        return False
    if not children:
        return True
    return any(child.name == LATEST_LINK or (child.is_dir() and is_run_dir(child)) for child in children)


# ----------------------------------------------------------------------------- events

@dataclass
class RunFound:
    """A run joined the watch: its directory, meta.json and config.toml, and the kind of
    target that named it (``link``: ``runs/latest`` now points to it)."""

    run: RunDir
    meta: dict[str, Any]
    config: dict[str, Any]
    via: TargetKind = "run"

    @property
    def key(self) -> str:
        return run_key(self.run)


@dataclass
class RunUpdate:
    """What changed in a watched run since the last poll.

    ``records``: the new complete metrics lines, in order. ``meta``: the new meta.json,
    or None when it did not change. ``corrupt_lines``: lines skipped so far (a total).
    ``process_alive``: whether the training process in meta.json still runs (None:
    unknown, e.g. it runs on another host or the run is not running).
    """

    key: str
    records: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] | None = None
    corrupt_lines: int = 0
    process_alive: bool | None = None


WatchEvent = RunFound | RunUpdate


def run_key(run: RunDir) -> str:
    return str(run.path)


# ----------------------------------------------------------------------------- one run

class RunTail:
    """Follows one run directory: new metrics lines, and meta.json when it is rewritten."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self.key = run_key(run)
        self.metrics: MetricsTail = run.tail_metrics(step_budget=STEP_LINES_PER_READ)
        self._meta_stamp: tuple[int, int] | None = None
        self.meta: dict[str, Any] = {}
        self._process_alive: bool | None = None
        self._reported_corrupt = 0

    def read_config(self) -> dict[str, Any]:
        try:
            return self.run.read_config_table()
        except BadInput:  # a run being created or damaged: shown without its config
            return {}

    def read_meta_if_changed(self) -> dict[str, Any] | None:
        """meta.json when its mtime or size changed since the last read, else None."""
        try:
            stat = self.run.meta_path.stat()
        except OSError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._meta_stamp:
            return None
        try:
            meta = self.run.read_meta()
        except BadInput:  # unreadable or not an object for a moment: keep what we had, try again next poll
            return None
        self._meta_stamp, self.meta = stamp, meta
        return meta

    def poll(self) -> RunUpdate | None:
        """What is new since the last call, or None when nothing is."""
        meta = self.read_meta_if_changed()
        records = self.metrics.read_new()
        alive = writer_alive(self.meta)
        corrupt = self.metrics.corrupt_lines
        if not records and meta is None and alive == self._process_alive and corrupt == self._reported_corrupt:
            return None
        self._process_alive, self._reported_corrupt = alive, corrupt
        return RunUpdate(self.key, records=records, meta=meta, corrupt_lines=corrupt, process_alive=alive)


# ----------------------------------------------------------------------------- every run

class Watcher:
    """Watches targets (runs, ``latest`` links, folders of runs) and reports what changes.

    ``poll()`` finds runs that joined, reads what is new in each, and returns the events
    (also passed to ``on_events``, run by run, when given). Never raises for a file that
    vanishes or is half written: it is simply looked at again next time. Not thread-safe:
    one ``poll`` at a time (the dashboard runs it in one worker thread at a time).
    """

    def __init__(self, targets: list[WatchTarget],
                 on_events: Callable[[list[WatchEvent]], None] | None = None) -> None:
        self.targets = list(targets)
        self.on_events = on_events
        self.tails: dict[str, RunTail] = {}

    def discover(self) -> list[tuple[RunDir, TargetKind]]:
        """The run directories the targets name now, in target order, each once, with the
        kind of the first target that names it."""
        found: dict[str, tuple[RunDir, TargetKind]] = {}
        for target in self.targets:
            if target.kind == "folder":
                try:
                    runs = list(runs_in(target.path))
                except OSError:
                    runs = []
            else:
                resolved = target.path.resolve()
                runs = [RunDir(resolved)] if resolved.is_dir() and is_run_dir(resolved) else []
            for run in runs:
                found.setdefault(run_key(run), (run, target.kind))
        return list(found.values())

    def poll(self) -> list[WatchEvent]:
        """Read what is new; ``on_events`` gets it run by run (so a reader can show the
        first runs while the next ones are still being read), and it is all returned."""
        events: list[WatchEvent] = []

        def report(batch: list[WatchEvent]) -> None:
            if batch:
                events.extend(batch)
                if self.on_events is not None:
                    self.on_events(batch)

        joined: set[str] = set()
        for run, via in self.discover():
            key = run_key(run)
            if key not in self.tails:
                tail = RunTail(run)
                self.tails[key] = tail
                joined.add(key)
                meta = tail.read_meta_if_changed() or {}
                found: list[WatchEvent] = [RunFound(run, meta, tail.read_config(), via)]
                update = tail.poll()
                report(found + ([update] if update is not None else []))
        for key, tail in self.tails.items():
            if key in joined:
                continue  # read just above
            update = tail.poll()
            if update is not None:
                report([update])
        return events
