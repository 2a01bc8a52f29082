"""The disk refuses: a read-only runs folder is found before training starts; a write that fails
mid-run (a full disk, a file-size limit) keeps the previous checkpoint whole and ends the run as
failed, saying so in one line."""

from __future__ import annotations

import contextlib
import io
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import torch

from cli_runner import TINY_SYNTHETIC, vmcr2
from fixtures_data import isolate_data
from vmcr2_cli.runs import RunDir

QUICK = [*TINY_SYNTHETIC, "--set", "log_every=1", "--epochs", "2"]


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    isolate_data(monkeypatch, tmp_path)


@contextlib.contextmanager
def mounted_tmpfs(folder: Path, size: str, *options: str) -> Iterator[Path]:
    """A tmpfs of ``size`` at ``folder``; the test is skipped where mounting is not allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join((f"size={size}", *options)), "tmpfs",
                            str(folder)], capture_output=True, text=True)
    if mount.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@contextlib.contextmanager
def read_only_folder(folder: Path) -> Iterator[Path]:
    """A folder no process of this user can write into: a read-only mount as root (root ignores
    permission bits), mode 0555 otherwise."""
    if os.geteuid() == 0:
        with mounted_tmpfs(folder, "1m", "ro") as mounted:
            yield mounted
        return
    folder.mkdir(parents=True)
    folder.chmod(0o555)
    try:
        yield folder
    finally:
        folder.chmod(0o755)


def test_a_read_only_runs_folder_is_one_line_before_the_data_loads(tmp_path, capsys, monkeypatch):
    from vmcr2_cli.training import setup

    loaded = []
    monkeypatch.setattr(setup, "load_dataset", lambda *a, **k: loaded.append(1))
    with read_only_folder(tmp_path / "ro") as folder:
        for runs_dir in (folder, folder / "runs" / "deeper"):
            code, _, err = vmcr2("train", *QUICK, "--runs-dir", runs_dir, capsys=capsys)
            assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
            assert f"--runs-dir {runs_dir}: cannot write in {folder}" in err
            assert list(folder.iterdir()) == []
    assert not loaded


def test_a_runs_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "runs").write_text("")
    code, _, err = vmcr2("train", *QUICK, "--runs-dir", tmp_path / "runs" / "x", capsys=capsys)
    assert code == 2 and "is a file, not a folder" in err and err.count("\n") == 1


def _train_in_subprocess(tmp_path: Path, runs_dir: Path, file_size_limit: int | None = None):
    def limit() -> None:
        if file_size_limit is not None:  # writes past it fail with EFBIG (Python ignores SIGXFSZ)
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run([sys.executable, "-m", "vmcr2_cli", "train", *QUICK, "--runs-dir", str(runs_dir)],
                          capture_output=True, text=True, timeout=240, preexec_fn=limit)


def _first_checkpoint_size(tmp_path: Path) -> tuple[int, int]:
    """Sizes of the checkpoint after the first latch (no optimizer state yet) and after an epoch."""
    assert vmcr2("train", *QUICK, "--epochs", "1", "--runs-dir", tmp_path / "probe")[0] == 0
    run = RunDir.open(tmp_path / "probe" / "latest")
    state = run.load_checkpoint()
    after_epoch = run.checkpoint_path.stat().st_size
    state["optimizer"]["state"] = {}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return len(buffer.getvalue()), after_epoch


def assert_failed_keeping_the_first_checkpoint(done: subprocess.CompletedProcess, runs_dir: Path, reason: str):
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr, done.stderr
    assert last.startswith("error: cannot write ") and "last.pt" in last and reason in last, last
    assert "the last good checkpoint (epoch 0, step 0) is kept" in last, last
    run = RunDir.open(runs_dir / "latest")
    state = run.load_checkpoint()  # whole: the failed write never replaced it
    assert state["global_step"] == 0 and state["latched"]
    assert not [p for p in run.path.rglob("*") if p.name.endswith(".tmp")]
    return run


def test_a_file_size_limit_during_a_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, capsys):
    first, after_epoch = _first_checkpoint_size(tmp_path)
    assert after_epoch > first + 1000  # the epoch's checkpoint adds the optimizer state
    runs_dir = tmp_path / "runs"
    done = _train_in_subprocess(tmp_path, runs_dir, file_size_limit=(first + after_epoch) // 2)
    run = assert_failed_keeping_the_first_checkpoint(done, runs_dir, "File too large")
    meta = run.read_meta()
    assert meta["status"] == "failed" and "last.pt" in meta["error"]
    assert vmcr2("train", "--resume", run.path, capsys=capsys)[0] == 0  # room again: it goes on
    assert run.read_meta()["status"] == "finished"


def test_a_full_disk_during_a_checkpoint_write_keeps_the_previous_checkpoint(tmp_path):
    first, after_epoch = _first_checkpoint_size(tmp_path)
    # Room for the first checkpoint and the run's small files, not for a second checkpoint beside it
    # (the write goes to a temporary file first, so both are on disk for a moment).
    size = first + after_epoch // 2 + 64 * 1024
    with mounted_tmpfs(tmp_path / "small", f"{size}") as small:
        done = _train_in_subprocess(tmp_path, small / "runs")
        assert_failed_keeping_the_first_checkpoint(done, small / "runs", "No space left on device")
