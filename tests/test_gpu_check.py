"""benchmarks/gpu_check.sh in its reduced CPU mode: every step runs, and the summaries say so.

CI runs the script itself after the tests (.ci/run); this checks what it writes.
"""

import json
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.sh"


@pytest.mark.slow
def test_the_cpu_mode_runs_every_step_and_writes_both_summaries(tmp_path):
    done = subprocess.run(["bash", str(SCRIPT), "--cpu", "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    statuses = {step["name"]: step["status"] for step in summary["steps"]}
    assert statuses.pop("CUDA tests (pytest -m gpu)") == "skipped"
    assert set(statuses.values()) == {"passed"}, statuses
    trainings = [step for step in summary["steps"] if step["name"].startswith("train")]
    assert len(trainings) == 9 and all(step["figures"]["status"] == "finished" for step in trainings)
    assert trainings[-1]["figures"]["backend"] == "gloo"
    bench = next(step for step in summary["steps"] if step["name"].startswith("bench: objectives"))
    assert {row["variant"] for row in bench["figures"]["rows"]} >= {"mcr2", "vmcr2", "vmcr2-block"}
    text = (tmp_path / "gpu_check.md").read_text()
    assert "## trainings (one epoch)" in text and "| train 1 epoch: tinyimagenet-vmcr2-block | finished |" in text


def test_without_a_gpu_the_full_check_refuses_with_exit_code_2(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    done = subprocess.run(["bash", str(SCRIPT), "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "--cpu" in done.stderr
