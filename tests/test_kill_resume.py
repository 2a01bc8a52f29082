"""benchmarks/kill_resume.py keeps working: a few SIGKILLs at random moments, each run resumed exactly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "kill_resume.py"


@pytest.mark.slow
@pytest.mark.parametrize("moments", ["training", "life"])
def test_runs_killed_at_random_moments_all_resume_to_the_uninterrupted_result(tmp_path, moments):
    out = tmp_path / "kill_resume.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--runs", "3", "--moments", moments, "--seed", "3",
                           "--out", str(out)], capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(out.read_text())
    assert summary["ok"] == summary["runs"] == 3 and summary["moments"] == moments
    assert all(result["ok"] for result in summary["results"])
