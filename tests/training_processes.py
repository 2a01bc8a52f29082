"""Other processes for the CLI tests: a `vmcr2 train` in a process of its own, followed through its
metrics.jsonl, and a process that holds a run's writer lock, as a training run does."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

HOLD = """
import sys, time
from pathlib import Path
from vmcr2_cli.runs import RunDir
lock = RunDir(Path(sys.argv[1])).lock("train")
print("locked", flush=True)
time.sleep(120)
"""


def spawn_vmcr2(*args: str | Path) -> subprocess.Popen:
    """``vmcr2 ARGS…`` in a process of its own, its output piped."""
    return subprocess.Popen([sys.executable, "-m", "vmcr2_cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def wait_for_step(metrics: Path, step: int, process: subprocess.Popen, timeout: float = 240.0) -> None:
    """Until ``metrics`` holds a step line at ``step`` or later; fails if the process ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metrics.exists():
            for line in metrics.read_text().splitlines():
                if line.startswith('{"type": "step"') and json.loads(line)["step"] >= step:
                    return
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    raise AssertionError(f"no step {step} within {timeout} s")


@contextlib.contextmanager
def process_holding_the_lock(run_dir: Path) -> Iterator[subprocess.Popen]:
    """A live process that holds ``run_dir``'s lock for the block, then is killed (SIGKILL)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"locked"
        yield holder
    finally:
        holder.kill()
        holder.wait()
