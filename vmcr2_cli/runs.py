"""The run directory (DESIGN.md §3): its layout, read and written only here.

::

    runs/
      latest -> <run-id>            relative symlink, replaced atomically
      <run-id>/
        config.toml                 the resolved configuration
        meta.json                   status, command line, versions, device, seed, times
        metrics.jsonl               append-only, one JSON object per line
        checkpoints/last.pt         model, optimizer, Γ and A, epoch and step
        eval.json                   written by eval
        figures/                    PNGs from eval and compare

Every whole-file write goes through a temporary file and ``os.replace`` so a
crash at any moment leaves either the old or the new file, never half of one.
"""

from __future__ import annotations

import json
import math
import os
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from vmcr2_cli.errors import BadInput

CONFIG_FILE = "config.toml"
META_FILE = "meta.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "checkpoints/last.pt"
EVAL_FILE = "eval.json"
FIGURES_DIR = "figures"
LATEST_LINK = "latest"

STATUSES = ("running", "finished", "interrupted", "failed")

# Metric line types and the keys each carries (besides ``type`` and ``time``).
EPOCH_KEYS = ("epoch", "step", "delta_r", "r", "r_c", "loss", "lr", "epoch_time_s",
              "images_per_s", "gpu_util", "gpu_mem_mb")
# r_v_over_r: R^v / R of the same batches, the faithfulness of V-MCR² (1 = the exact R).
VARIATIONAL_KEYS = ("r_v", "r_c_v", "m_term", "r_v_over_r")
METRIC_TYPES = ("epoch", "step", "latch", "eval", "status")


# ----------------------------------------------------------------------------- atomic files

def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    """JSON for the few non-JSON types we log: tensors and numpy scalars become numbers."""
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def clean_number(value: Any) -> Any:
    """NaN and ±inf are not JSON: they are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ----------------------------------------------------------------------------- metrics lines

def metrics_line(kind: str, **values: Any) -> str:
    """One ``metrics.jsonl`` line (with its newline) of type ``kind``."""
    if kind not in METRIC_TYPES:
        raise ValueError(f"unknown metrics line type {kind!r}")
    record = {"type": kind, "time": round(time.time(), 3)}
    record.update({key: clean_number(value) for key, value in values.items()})
    return json.dumps(record, default=_jsonable, allow_nan=False) + "\n"


@dataclass
class MetricsTail:
    """Reads a ``metrics.jsonl`` incrementally: each call returns only the new complete lines.

    A last line still being written stays buffered until its newline arrives; a line
    that is not valid JSON is skipped and counted in ``corrupt_lines``. The file is
    never re-read from the start, so a run with a million lines costs nothing per poll.
    """

    path: Path
    offset: int = 0
    corrupt_lines: int = 0
    _partial: bytes = field(default=b"", repr=False)

    def read_new(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as file:
                size = os.fstat(file.fileno()).st_size
                if size < self.offset:  # truncated or replaced: start over
                    self.offset, self._partial = 0, b""
                file.seek(self.offset)
                chunk = file.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        records = []
        for line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                self.corrupt_lines += 1
                continue
            if isinstance(record, dict) and "type" in record:
                records.append(record)
            else:
                self.corrupt_lines += 1
        return records


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Every complete, valid line of a ``metrics.jsonl`` (a partial last line is ignored)."""
    return MetricsTail(Path(path)).read_new()


# ----------------------------------------------------------------------------- run directory

@dataclass(frozen=True)
class RunDir:
    """A run directory; ``RunDir.open`` checks that a path is one."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def meta_path(self) -> Path:
        return self.path / META_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_FILE

    @property
    def eval_path(self) -> Path:
        return self.path / EVAL_FILE

    @property
    def figures_dir(self) -> Path:
        return self.path / FIGURES_DIR

    # --- creation and lookup
    @classmethod
    def create(cls, runs_dir: Path, run_id: str) -> "RunDir":
        """A new, empty run directory ``runs_dir/run_id`` (a suffix is added if taken)."""
        runs_dir = Path(runs_dir)
        runs_dir.mkdir(parents=True, exist_ok=True)
        candidate, n = run_id, 1
        while True:
            try:
                (runs_dir / candidate).mkdir()
                break
            except FileExistsError:
                n += 1
                candidate = f"{run_id}-{n}"
        run = cls(runs_dir / candidate)
        (run.path / "checkpoints").mkdir()
        return run

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        """The run at ``path`` (``runs/latest`` is followed); BadInput if it is not one."""
        given = Path(path)
        resolved = given.resolve()
        if not resolved.is_dir():
            raise BadInput(f"not a run directory: {path} (no such folder)")
        if not (resolved / META_FILE).is_file() or not (resolved / CONFIG_FILE).is_file():
            raise BadInput(f"not a run directory: {path} (no {META_FILE} and {CONFIG_FILE})")
        return cls(resolved)

    # --- meta.json
    def read_meta(self) -> dict[str, Any]:
        try:
            return json.loads(self.meta_path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise BadInput(f"run {self.path}: unreadable {META_FILE}: {error}") from None

    def write_meta(self, meta: dict[str, Any]) -> None:
        if meta.get("status") not in STATUSES:
            raise ValueError(f"meta status must be one of {STATUSES}, not {meta.get('status')!r}")
        atomic_write_json(self.meta_path, meta)

    def update_meta(self, **changes: Any) -> dict[str, Any]:
        meta = self.read_meta()
        meta.update(changes)
        self.write_meta(meta)
        return meta

    def set_status(self, status: str, *, meta: dict[str, Any] | None = None, **line: Any) -> None:
        """Record that the run is now ``status``: in meta.json, with ``meta``'s fields and its end
        time (None while running), and as a ``status`` line of metrics.jsonl with ``line``'s fields."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
        self.update_meta(status=status, end_time=None if status == "running" else time.time(), **(meta or {}))
        self.append_metrics("status", status=status, **line)

    # --- metrics.jsonl
    def append_metrics(self, kind: str, **values: Any) -> None:
        """Append one line and flush it, so readers see it at once."""
        with open(self.metrics_path, "a", encoding="utf-8") as file:
            file.write(metrics_line(kind, **values))
            file.flush()

    def read_metrics(self) -> list[dict[str, Any]]:
        return read_metrics(self.metrics_path)

    def tail_metrics(self) -> MetricsTail:
        return MetricsTail(self.metrics_path)

    # --- checkpoints/last.pt
    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Serialize ``state`` in memory, then replace ``last.pt`` atomically."""
        import io

        import torch

        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(self.checkpoint_path, buffer.getvalue())

    def load_checkpoint(self, map_location: Any = "cpu") -> dict[str, Any]:
        """The checkpoint's state; ``weights_only`` so a checkpoint from elsewhere cannot run code."""
        import torch

        if not self.checkpoint_path.is_file():
            raise BadInput(f"run {self.path}: no checkpoint ({CHECKPOINT_FILE})")
        try:
            return torch.load(self.checkpoint_path, map_location=map_location, weights_only=True)
        except Exception as error:  # a damaged or foreign file: say so in one line
            raise BadInput(f"run {self.path}: unreadable checkpoint: {error}".splitlines()[0]) from None

    # --- eval.json
    def read_eval(self) -> dict[str, Any] | None:
        if not self.eval_path.is_file():
            return None
        try:
            return json.loads(self.eval_path.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def write_eval(self, results: dict[str, Any]) -> None:
        atomic_write_json(self.eval_path, results)


def point_latest(run: RunDir) -> None:
    """Make ``<runs>/latest`` a relative symlink to ``run``, replaced atomically."""
    link = run.path.parent / LATEST_LINK
    tmp = run.path.parent / f".{LATEST_LINK}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(run.name, tmp)
    os.replace(tmp, link)


def is_run_dir(path: Path) -> bool:
    return (path / META_FILE).is_file() and (path / CONFIG_FILE).is_file()


def runs_in(folder: Path) -> Iterator[RunDir]:
    """The run directories directly inside ``folder`` (``latest`` skipped), oldest name first."""
    for child in sorted(Path(folder).iterdir()):
        if child.name != LATEST_LINK and child.is_dir() and is_run_dir(child):
            yield RunDir(child.resolve())


def writer_alive(meta: dict[str, Any]) -> bool | None:
    """Whether the process that trains a 'running' run (``pid`` on ``host`` in meta.json) still exists.

    None when that cannot be told from here: the run is not running, ran on another host,
    or names no pid.
    """
    pid, host = meta.get("pid"), meta.get("host")
    if meta.get("status") != "running" or not isinstance(pid, int) or pid <= 0 or host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, as another user's process
        return True
    return True
