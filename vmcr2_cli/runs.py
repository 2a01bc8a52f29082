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
        lock                        held (flock) by the one process that writes the run

Every whole-file write goes through a temporary file and ``os.replace`` so a
crash at any moment leaves either the old or the new file, never half of one. A
run directory appears whole: it is built under a hidden name and renamed into
place with its config.toml and meta.json. The writer's lock is an ``flock``, which
the kernel drops when its process dies, however it dies: a killed run never
leaves a stale lock behind.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import shutil
import socket
import tempfile
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from vmcr2_cli.errors import BadInput, RunWriteFailed, one_line
from vmcr2_cli.metric_keys import METRIC_TYPES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

CONFIG_FILE = "config.toml"
META_FILE = "meta.json"
METRICS_FILE = "metrics.jsonl"
# The checkpoints a run keeps: ``last`` (what --resume continues) and, with keep_best, ``best``.
CHECKPOINT_FILES = {"last": "checkpoints/last.pt", "best": "checkpoints/best.pt"}
CHECKPOINT_FILE = CHECKPOINT_FILES["last"]
EVAL_FILE = "eval.json"
EVAL_FILES = {"last": EVAL_FILE, "best": "eval-best.json"}  # vmcr2 eval of each checkpoint
# Eq. 8's class subspaces of each checkpoint's training features (vmcr2 eval, embed --predict).
SUBSPACE_FILES = {"last": "class-subspaces.npz", "best": "class-subspaces-best.npz"}
FIGURES_DIR = "figures"
LOCK_FILE = "lock"
LATEST_LINK = "latest"

STATUSES = ("running", "finished", "interrupted", "failed")

# ``epoch`` in every line is the 0-based index of the epoch it belongs to (the trainer's
# ``self.epoch``): an epoch line with ``epoch: e`` means e + 1 epochs are done.
EPOCH_INDEX_BASE = 0


def epoch_number(line: dict[str, Any]) -> int:
    """The 1-based number of the epoch a line belongs to: for an epoch line, the epochs done."""
    return int(line["epoch"]) - EPOCH_INDEX_BASE + 1


# Keys of a metrics line that say where it is, not what was measured.
POSITION_KEYS = ("type", "time", "step", "epoch")


def line_scalars(line: dict[str, Any]) -> dict[str, float]:
    """The finite numbers a metrics line measured (not lists, strings, booleans or its position)."""
    return {key: float(value) for key, value in line.items()
            if key not in POSITION_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value)}


def add_epoch_line(epochs: list[dict[str, Any]], line: dict[str, Any]) -> None:
    """Append ``line`` to ``epochs`` (epoch lines, or eval lines, in the order read) as a resumed run means it.

    A run resumed from a checkpoint logs again the epochs (and evaluations) it had logged
    after that checkpoint: the newer line replaces its epoch and everything that followed;
    ``vmcr2 eval`` of the last checkpoint replaces the evaluation training made of it.
    """
    while epochs and epochs[-1]["epoch"] >= line["epoch"]:
        epochs.pop()
    epochs.append(line)


def read_toml(path: Path, where: str) -> dict[str, Any]:
    """A TOML file as a plain table; BadInput starting with ``where`` when it cannot be read."""
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise BadInput(f"{where}: TOML syntax error: {one_line(error)}") from None
    except OSError as error:
        raise BadInput(f"{where}: cannot read: {error.strerror}") from None


# ----------------------------------------------------------------------------- atomic files

_UMASK = os.umask(0o022)  # read once, at import (os.umask can only be read by setting it)
os.umask(_UMASK)


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
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's file is private (0600); a written file is as open() makes it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(folder: Path) -> None:
    """Make a rename in ``folder`` durable: without it a power cut may bring the old name back."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """An OSError while writing ``path`` becomes RunWriteFailed, one line naming the file."""
    try:
        yield
    except OSError as error:
        raise RunWriteFailed(f"cannot write {path}: {error.strerror or error}") from None


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


# metrics_line writes ``type`` first: a line's type is read off its first bytes without
# parsing the rest (a long run writes ~10⁶ step lines; readers that skip them stay fast).
_TYPE_PREFIX = b'{"type": "'
READ_CHUNK_BYTES = 8 << 20
# A line is at least this long; it bounds how many lines a number of bytes holds.
MIN_LINE_BYTES = 100


def _type_prefix(kind: str) -> bytes:
    """How a line of type ``kind`` as ``metrics_line`` writes it begins."""
    return _TYPE_PREFIX + kind.encode("ascii") + b'"'


@dataclass
class MetricsTail:
    """Reads a ``metrics.jsonl`` incrementally: each call returns only the new complete lines.

    A last line still being written stays buffered until its newline arrives; a line
    that is not valid JSON is skipped and counted in ``corrupt_lines``. The file is
    never re-read from the start, and it is read in chunks of ``READ_CHUNK_BYTES``.

    ``skip_types``: line types not parsed at all (counted in ``skipped_lines``).
    ``step_budget``: at most about this many ``step`` lines are parsed per call, evenly
    spaced, the newest always: a reader that wants their trend, not each of 10⁶ lines,
    stays fast and its memory bounded. None parses every one.
    """

    path: Path
    skip_types: tuple[str, ...] = ()
    step_budget: int | None = None
    offset: int = 0
    corrupt_lines: int = 0
    skipped_lines: int = 0
    _partial: bytes = field(default=b"", repr=False)
    _skipped: tuple[bytes, ...] = field(default=(), init=False, repr=False)  # prefixes of skip_types' lines

    def __post_init__(self) -> None:
        self._skipped = tuple(_type_prefix(kind) for kind in self.skip_types)

    def read_new(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as file:
                size = os.fstat(file.fileno()).st_size
                if size < self.offset:  # truncated or replaced: start over
                    self.offset, self._partial = 0, b""
                file.seek(self.offset)
                stride = 1
                if self.step_budget is not None:
                    stride = max(1, (size - self.offset) // (self.step_budget * MIN_LINE_BYTES))
                records: list[dict[str, Any]] = []
                while chunk := file.read(READ_CHUNK_BYTES):
                    self.offset += len(chunk)
                    *lines, self._partial = (self._partial + chunk).split(b"\n")
                    self._parse(lines, stride, records)
        except FileNotFoundError:
            return []
        return records

    def _parse(self, lines: list[bytes], stride: int, records: list[dict[str, Any]]) -> None:
        skipped = self._skipped
        step = _type_prefix("step")
        newest_step = -1  # kept whatever the stride: the latest progress
        if stride > 1:
            newest_step = next((i for i in reversed(range(len(lines))) if lines[i].startswith(step)), -1)
        steps_seen = 0
        for index, line in enumerate(lines):
            if skipped and line.startswith(skipped):
                self.skipped_lines += 1
                continue
            if stride > 1 and line.startswith(step):
                steps_seen += 1
                if steps_seen % stride and index != newest_step:
                    self.skipped_lines += 1
                    continue
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


def read_metrics(path: Path, skip_types: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Every complete, valid line of a ``metrics.jsonl`` (a partial last line is ignored),
    except those of ``skip_types``."""
    return MetricsTail(Path(path), skip_types=skip_types).read_new()


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
        return self.checkpoint_file("last")

    def checkpoint_file(self, which: str = "last") -> Path:
        """``checkpoints/last.pt`` or ``checkpoints/best.pt`` (``CHECKPOINT_FILES``)."""
        return self.path / CHECKPOINT_FILES[which]

    @property
    def eval_path(self) -> Path:
        return self.eval_file("last")

    def eval_file(self, which: str = "last") -> Path:
        """eval.json (the last checkpoint's evaluation) or eval-best.json (best.pt's)."""
        return self.path / EVAL_FILES[which]

    def subspace_file(self, which: str = "last") -> Path:
        """class-subspaces.npz (fitted on the last checkpoint's features) or class-subspaces-best.npz."""
        return self.path / SUBSPACE_FILES[which]

    @property
    def figures_dir(self) -> Path:
        return self.path / FIGURES_DIR

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_FILE

    # --- creation and lookup
    @classmethod
    def create(cls, runs_dir: Path, run_id: str, *, config_text: str | None = None,
               meta: dict[str, Any] | None = None) -> "RunDir":
        """A new run directory ``runs_dir/run_id`` (a suffix is added if taken), holding
        ``config_text`` as config.toml and ``meta`` (with its ``run_id``) as meta.json.

        Built under a hidden name and renamed into place: a crash at any moment leaves no
        half-made run directory, only, at worst, a hidden ``.<run_id>.*.tmp`` folder.
        """
        runs_dir = Path(runs_dir)
        runs_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=runs_dir, prefix=f".{run_id}.", suffix=".tmp"))
        try:
            (staging / "checkpoints").mkdir()
            if config_text is not None:
                (staging / CONFIG_FILE).write_text(config_text, encoding="utf-8")
            candidate, n = run_id, 1
            while True:
                if meta is not None:  # it names the run: written again for each candidate name
                    cls(staging).write_meta({**meta, "run_id": candidate})
                if not (runs_dir / candidate).exists():
                    try:
                        os.rename(staging, runs_dir / candidate)
                        break
                    except OSError as error:  # taken between the check and the rename
                        if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                            raise
                n += 1
                candidate = f"{run_id}-{n}"
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _fsync_directory(runs_dir)
        return cls(runs_dir / candidate)

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        """The run at ``path`` (``runs/latest`` is followed); BadInput if it is not one."""
        given = Path(path)
        resolved = given.resolve()
        check_not_dangling(given, "not a run directory: ")
        if not resolved.is_dir():
            raise BadInput(f"not a run directory: {path} (no such folder)")
        if not (resolved / META_FILE).is_file() or not (resolved / CONFIG_FILE).is_file():
            raise BadInput(f"not a run directory: {path} (no {META_FILE} and {CONFIG_FILE})")
        return cls(resolved)

    # --- config.toml
    def read_config_table(self) -> dict[str, Any]:
        """config.toml as a plain table, unvalidated (``config.load_config_file`` validates it)."""
        return read_toml(self.config_path, f"run {self.path}: {CONFIG_FILE}")

    # --- meta.json
    def read_meta(self) -> dict[str, Any]:
        try:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:  # ValueError: bad JSON or bad UTF-8
            raise BadInput(f"run {self.path}: unreadable {META_FILE}: {one_line(error)}") from None
        if not isinstance(meta, dict):
            raise BadInput(f"run {self.path}: {META_FILE} is not a JSON object")
        return meta

    def write_meta(self, meta: dict[str, Any]) -> None:
        if meta.get("status") not in STATUSES:
            raise ValueError(f"meta status must be one of {STATUSES}, not {meta.get('status')!r}")
        with _writing(self.meta_path):
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
        """Append one line and flush it, so readers see it at once.

        After a last line left without its newline (a writer killed mid-line) the new line
        starts on a line of its own: the cut one stays one corrupt line, this one is whole.
        """
        line = metrics_line(kind, **values).encode("utf-8")
        with _writing(self.metrics_path), open(self.metrics_path, "a+b") as file:
            end = file.seek(0, os.SEEK_END)
            if end and os.pread(file.fileno(), 1, end - 1) != b"\n":
                line = b"\n" + line
            file.write(line)
            file.flush()

    def read_metrics(self, skip_types: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        return read_metrics(self.metrics_path, skip_types)

    def tail_metrics(self, **options: Any) -> MetricsTail:
        return MetricsTail(self.metrics_path, **options)

    def drop_partial_metrics_line(self) -> None:
        """Cut a last line without its newline (a writer killed mid-line), so that the next
        appended line does not fuse with it into one corrupt line."""
        try:
            with open(self.metrics_path, "rb+") as file:
                size = file.seek(0, os.SEEK_END)
                if not size:
                    return
                file.seek(size - 1)
                if file.read(1) == b"\n":
                    return
                keep = size
                while keep > 0:  # find the last newline, reading backwards
                    start = max(0, keep - 65536)
                    file.seek(start)
                    newline = file.read(keep - start).rfind(b"\n")
                    if newline >= 0:
                        keep = start + newline + 1
                        break
                    keep = start
                file.truncate(keep)
        except FileNotFoundError:
            return

    # --- the writer's lock
    def lock(self, purpose: str) -> "RunLock":
        """Become the run's one writer until ``RunLock.release`` (or the process ends).

        BadInput naming the process that holds it, when one does: another ``train`` or
        ``train --resume``, or a ``latch --write``.
        """
        return RunLock.acquire(self, purpose)

    # --- checkpoints/last.pt, checkpoints/best.pt
    def save_checkpoint(self, state: dict[str, Any], which: str = "last") -> None:
        """Serialize ``state`` in memory, then replace the checkpoint file atomically: if the write
        fails (a full disk), the previous checkpoint is left as it was."""
        import io

        import torch

        buffer = io.BytesIO()
        torch.save(state, buffer)
        path = self.checkpoint_file(which)
        with _writing(path):
            atomic_write_bytes(path, buffer.getvalue())

    def load_checkpoint(self, map_location: Any = "cpu", which: str = "last", mmap: bool = False) -> dict[str, Any]:
        """The checkpoint's state; ``weights_only`` so a checkpoint from elsewhere cannot run code.
        ``mmap``: tensors are read from the file only when used (for a look at its records)."""
        import torch

        path = self.checkpoint_file(which)
        if not path.is_file():
            raise BadInput(f"run {self.path}: no checkpoint ({CHECKPOINT_FILES[which]})")
        try:
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
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

    def write_eval(self, results: dict[str, Any], which: str = "last") -> None:
        path = self.eval_file(which)
        with _writing(path):
            atomic_write_json(path, results)


class RunLock:
    """An exclusive ``flock`` on ``<run>/lock``; the file says who holds it, for the message
    another writer gets. The kernel releases it when the holder's process ends."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, run: RunDir, purpose: str) -> "RunLock":
        try:
            fd = os.open(run.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise BadInput(f"{purpose} {run.path}: cannot open {LOCK_FILE}: {error.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise BadInput(f"{purpose} {run.path}: the run is in use by {holder}; "
                               f"wait for it to end or stop it first") from None
            raise BadInput(f"{purpose} {run.path}: cannot lock {LOCK_FILE}: {error.strerror}") from None
        from vmcr2_cli import invocation

        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} ({invocation.command_line()})\n"
                  .encode("utf-8"), 0)
        return cls(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # the lock goes with the descriptor; the file stays, unlocked
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def check_writable(runs_dir: Path, option: str = "--runs-dir", named: Path | None = None) -> None:
    """BadInput unless run directories (or files) can be made in ``runs_dir``: a read-only folder is found
    before the data loads and the work starts. Creates nothing that it leaves behind. ``named``: the path
    the user gave, when not ``runs_dir`` itself (an output file's)."""
    shown = named if named is not None else runs_dir
    folder = Path(runs_dir).absolute()
    while not folder.exists():  # the nearest folder that exists is where ours would be made
        folder = folder.parent
    if not folder.is_dir():
        raise BadInput(f"{option} {shown}: {folder} is a file, not a folder")
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as error:
        raise BadInput(f"{option} {shown}: cannot write in {folder}: {error.strerror}") from None


def check_output_file(path: Path, option: str) -> None:
    """BadInput unless ``path`` can be written (atomically) as a file: checked before the work."""
    if Path(path).is_dir():
        raise BadInput(f"{option} {path}: is a folder; name a file")
    check_writable(Path(path).absolute().parent, option, named=path)


def with_suffix_npz(path: Path) -> Path:
    """``path`` as ``np.savez`` would name it: ``.npz`` appended unless it ends so already."""
    path = Path(path)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def point_latest(run: RunDir) -> None:
    """Make ``<runs>/latest`` a relative symlink to ``run``, replaced atomically."""
    link = run.path.parent / LATEST_LINK
    tmp = run.path.parent / f".{LATEST_LINK}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(run.name, tmp)
    os.replace(tmp, link)


def check_not_dangling(path: Path, prefix: str = "") -> None:
    """BadInput when ``path`` is a symlink to nothing (``runs/latest`` after its run was deleted)."""
    if path.is_symlink() and not path.exists():
        raise BadInput(f"{prefix}{path} points to {os.readlink(path)}, which does not exist")


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
