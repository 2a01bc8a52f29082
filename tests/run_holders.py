"""Another process that holds a run's writer lock, as a training run does."""

from __future__ import annotations

import contextlib
import subprocess
import sys
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
