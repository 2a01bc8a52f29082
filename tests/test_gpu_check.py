"""benchmarks/gpu_check.sh in its reduced CPU mode: every step runs, and the summaries say so.

CI runs the script itself after the tests (.ci/run); this checks what it writes.
"""

import json
import os
import signal
import subprocess
import sys
import time
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
    trainings = [step for step in summary["steps"] if step["name"].startswith(("train", "resume"))]
    assert len(trainings) == 12 and all(step["figures"]["status"] == "finished" for step in trainings)
    assert trainings[-1]["figures"]["backend"] == "gloo"
    resumed = next(step for step in trainings if step["name"].startswith("resume"))
    assert resumed["figures"]["epoch_1_latched"] and resumed["figures"]["epoch_1_step_lines"] > 0
    census = next(step for step in summary["steps"] if step["name"].startswith("sync census"))
    assert census["figures"]["steps"] == 4 and census["figures"]["sites"] == []  # a CPU never waits for itself
    lines = [json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
    assert lines == summary["steps"]
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


def _start(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(["bash", str(SCRIPT), "--cpu", "--out", str(out), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for_steps(out: Path, count: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    steps = out / "steps.jsonl"
    while time.monotonic() < deadline:
        if steps.is_file() and len(steps.read_text().splitlines()) >= count:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} steps after {timeout} s")


def test_a_check_killed_mid_way_keeps_every_step_that_finished(tmp_path):
    """SIGKILL to the whole session: nothing can run on the way out, yet every finished step is on disk."""
    process = _start(tmp_path)
    _wait_for_steps(tmp_path, 4, process)
    os.killpg(process.pid, signal.SIGKILL)
    _, printed_err = process.communicate(timeout=30)
    lines = [json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
    assert [line["name"] for line in lines[:4]] == ["imports without textual", "vmcr2 train --help without textual",
                                                     "write the datasets (CIFAR-100, Tiny ImageNet formats)",
                                                     "train 1 epoch: cifar100-vmcr2"]
    assert all(line["status"] == "passed" for line in lines)
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    assert summary["steps"] == lines  # rewritten after each step, so it holds all of them
    assert "| train 1 epoch: cifar100-vmcr2 | passed |" in (tmp_path / "gpu_check.md").read_text()
    assert any(log.name.startswith("04-train-1-epoch") for log in (tmp_path / "logs").iterdir())


def test_sigterm_records_the_running_step_as_killed_and_the_rest_as_not_started(tmp_path):
    process = _start(tmp_path)
    _wait_for_steps(tmp_path, 3, process)
    # The third step's record written whole (the summary follows its line), then the fourth — a
    # training of several seconds — under way: the signal lands inside a step, not between two.
    summary = tmp_path / "gpu_check.json"
    while not (summary.is_file() and len(json.loads(summary.read_text())["steps"]) >= 3):
        time.sleep(0.05)
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM
    steps = json.loads((tmp_path / "gpu_check.json").read_text())["steps"]
    statuses = [step["status"] for step in steps]
    assert len(steps) == 20 and "failed" not in statuses  # every step is listed, finished or not
    # The three it waited for, recorded whole (a signal waits while a record is written), then the
    # running step killed, then the rest not started.
    killed = statuses.index("killed")
    assert killed >= 3 and statuses[:killed] == ["passed"] * killed and statuses.count("killed") == 1
    assert all(step["status"] == "skipped" and "not started" in step["reason"] for step in steps[killed + 1:])
    assert out.count("\n") >= 4  # one line per step as it ended


def test_no_step_starts_once_the_budget_is_spent(tmp_path):
    process = _start(tmp_path, "--budget-s", "3")
    process.communicate(timeout=120)
    steps = json.loads((tmp_path / "gpu_check.json").read_text())["steps"]
    assert len(steps) == 20 and steps[0]["status"] == "passed"
    spent = [step for step in steps if step["reason"] == "the time budget was spent"]
    assert spent and all(step["status"] == "skipped" for step in spent)
    assert all(step["seconds"] <= 4 for step in steps)  # a step running at the deadline is stopped there


def test_a_step_that_raises_is_recorded_as_failed_and_the_check_goes_on(tmp_path):
    """Reading a step's figures (a run stopped half-made, say) must not end the check."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT.with_suffix(".py"))
    gpu_check = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = gpu_check  # its dataclasses look their module up there
    spec.loader.exec_module(gpu_check)
    check = gpu_check.Check(gpu_check.CPU, tmp_path, {"device": "cpu"}, "cpu")
    check.step("broken", lambda name: 1 / 0)
    check.step("fine", lambda name: gpu_check.Result(name, [], "passed"))
    steps = [json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
    assert [(step["name"], step["status"]) for step in steps] == [("broken", "failed"), ("fine", "passed")]
    assert "ZeroDivisionError" in steps[0]["reason"]
