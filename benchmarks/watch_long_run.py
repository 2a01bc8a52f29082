"""How fast `vmcr2 watch` opens a run with a million metrics lines, and in how much memory.

    python benchmarks/watch_long_run.py [--epochs 1000] [--steps-per-epoch 999]

Writes a run directory whose metrics.jsonl holds epochs × (steps + 1) lines as the trainer
writes them (``runs.metrics_line``, GPU readings on every line), then measures:

- ``vmcr2 watch --once`` in a process of its own: wall time and peak resident memory;
- the dashboard (Textual's own harness, 100×30): seconds from start until the runs table
  shows the run at its last epoch — the first paint with the data in it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vmcr2_cli.runs import RunDir, metrics_line


def write_run(folder: Path, epochs: int, steps_per_epoch: int) -> RunDir:
    run = RunDir.create(folder, "long-run", config_text=f'objective = "vmcr2"\nepochs = {epochs}\n',
                        meta={"status": "running", "objective": "vmcr2", "epochs": epochs, "start_time": time.time()})
    values = {"delta_r": 12.5, "r": 40.1, "r_c": 27.6, "loss": -12.5, "lr": 1e-3, "images_per_s": 20000.0,
              "gpu_util": 93.0, "gpu_mem_mb": 20480.0, "r_v": 39.0, "r_c_v": 27.0, "m_term": 3.2, "r_v_over_r": 0.97}
    with open(run.metrics_path, "w", encoding="utf-8") as file:
        step = 0
        for epoch in range(epochs):
            for _ in range(steps_per_epoch):
                step += 1
                file.write(metrics_line("step", epoch=epoch, step=step, **values))
            file.write(metrics_line("epoch", epoch=epoch, step=step, epoch_time_s=30.0, **values))
    return run


def watch_once(run: RunDir) -> tuple[float, float]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "vmcr2_cli", "watch", "--json", str(run.path)],
                          capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    assert json.loads(done.stdout)["runs"][0]["epoch"] > 0
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


async def dashboard_first_paint(run: RunDir, epochs: int) -> float:
    from vmcr2_cli.tui.app import WatchApp
    from vmcr2_cli.tui.runs_table import RunsTable
    from vmcr2_cli.tui.watcher import resolve_targets

    start = time.perf_counter()
    app = WatchApp(resolve_targets([run.path]), interval=0.5)
    async with app.run_test(size=(100, 30)) as pilot:
        while not any(s.epoch == epochs for s in app.query_one(RunsTable).summaries):
            if time.perf_counter() - start > 60:
                raise SystemExit("the dashboard did not show the run within 60 s")
            await pilot.pause(0.01)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--steps-per-epoch", type=int, default=999)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vmcr2-watch-") as tmp:
        run = write_run(Path(tmp), args.epochs, args.steps_per_epoch)
        lines = args.epochs * (args.steps_per_epoch + 1)
        size = run.metrics_path.stat().st_size / 2**20
        once_s, once_rss = watch_once(run)
        paint_s = asyncio.run(dashboard_first_paint(run, args.epochs))
    print(f"metrics.jsonl: {lines:,} lines, {size:.0f} MiB")
    print(f"vmcr2 watch --json: {once_s:.2f} s, peak RSS {once_rss:.0f} MiB (the process: Python, torch-free imports, "
          f"the read)")
    print(f"dashboard: the run at its last epoch in the runs table after {paint_s:.2f} s")


if __name__ == "__main__":
    main()
