"""Shared by the eval, latch and compare CLI tests: calling the CLI, tiny runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fixtures_data import isolate_data
from cli_runner import vmcr2

# Seconds on a laptop CPU: 10 synthetic classes of 20 images, 2 steps an epoch, d = 16.
TINY = ["--profile", "synthetic", "--set", "synthetic_train_per_class=20", "--set", "synthetic_test_per_class=6",
        "--batch-size", "100", "--set", "feature_dim=16", "--set", "atoms_per_class=2", "--set", "log_every=1",
        "--set", "eval_at_end=false"]


def train_tiny(runs_dir: Path, *extra: str) -> Path:
    """A tiny synthetic run (in this process, offline, no cache outside ``runs_dir``); returns its directory."""
    with pytest.MonkeyPatch.context() as monkeypatch:  # usable from module-scoped fixtures
        isolate_data(monkeypatch, runs_dir)
        code, _, err = vmcr2("train", *TINY, "--runs-dir", str(runs_dir), "--json", *extra)
    assert code == 0, err
    return (Path(runs_dir) / "latest").resolve()


def copy_run(run: Path, destination: Path) -> Path:
    shutil.copytree(run, destination)
    return destination


def assert_one_error_line(code: int, err: str, message: str) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert message in err, err

