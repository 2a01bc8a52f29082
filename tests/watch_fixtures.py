"""Run directories for the ``watch`` tests, written the way the trainer writes them (DESIGN.md §3).

``FakeRun`` writes meta.json and config.toml, then appends metrics lines on demand, with
values that depend only on the epoch and fixed times (``T0`` + epochs × epoch time), so
tests and snapshots are the same on every machine and at every hour.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import time
from pathlib import Path
from typing import Any

T0 = 1_790_000_000.0  # a fixed start time (Unix seconds)


class FakeRun:
    """A run directory ``folder/name`` being written, one line at a time.

    Epoch lines carry the 0-based index of the epoch they close (as the trainer writes
    them): ``epoch(0)`` is the first. Its time is ``T0 + (index + 1) × epoch_time``.
    """

    def __init__(self, folder: Path, name: str, *, objective: str = "mcr2", epochs: int = 20,
                 profile: str = "fashion-mnist-paper", dataset: str = "fashion-mnist",
                 gpu: bool = True, epoch_time: float = 30.0, status: str = "running",
                 start_time: float = T0, steps_per_epoch: int = 60, gain: float = 1.0) -> None:
        self.path = Path(folder) / name
        self.path.mkdir(parents=True, exist_ok=True)
        self.objective, self.epochs, self.gpu = objective, epochs, gpu
        self.epoch_time, self.start_time, self.steps_per_epoch = epoch_time, start_time, steps_per_epoch
        self.gain = gain  # how fast this run's ΔR grows: runs that differ draw distinct curves
        self.meta: dict[str, Any] = {
            "status": status, "run_id": name, "profile": profile, "objective": objective,
            "dataset": dataset, "epochs": epochs, "device": "cuda" if gpu else "cpu",
            "device_name": "NVIDIA H100 80GB HBM3" if gpu else "x86_64", "start_time": start_time,
            "end_time": None, "command": f"vmcr2 train --profile {profile} --objective {objective}",
        }
        self.write_meta()
        (self.path / "config.toml").write_text(
            f'description = "a test run"\nobjective = "{objective}"\ndataset = "{dataset}"\n'
            f"epochs = {epochs}\nbatch_size = 1000\n", encoding="utf-8")
        (self.path / "checkpoints").mkdir(exist_ok=True)
        self.metrics = self.path / "metrics.jsonl"
        self.metrics.touch()

    # ------------------------------------------------------------------ meta.json
    def write_meta(self, **changes: Any) -> None:
        self.meta.update(changes)
        tmp = self.path / ".meta.json.tmp"
        tmp.write_text(json.dumps(self.meta, indent=2), encoding="utf-8")
        tmp.replace(self.path / "meta.json")

    def finish(self, status: str = "finished") -> None:
        self.write_meta(status=status, end_time=self.start_time + self.epochs * self.epoch_time)
        self.line("status", time=self.start_time + self.epochs * self.epoch_time, status=status)

    # ------------------------------------------------------------------ metrics.jsonl
    def raw(self, text: str) -> None:
        """Append ``text`` as is (a partial line, a corrupt one…)."""
        with open(self.metrics, "a", encoding="utf-8") as file:
            file.write(text)

    def line(self, kind: str, **values: Any) -> dict[str, Any]:
        record = {"type": kind, **values}
        self.raw(json.dumps(record) + "\n")
        return record

    def values(self, index: int) -> dict[str, Any]:
        """The metrics of epoch ``index`` (0-based): smooth curves, the same every time."""
        t = index + 1
        r = 40.0 + 20.0 * self.gain * (1 - math.exp(-t / (6 * self.gain))) + (2.0 if self.objective == "vmcr2" else 0.0)
        r_c = 30.0 - 15.0 * (1 - math.exp(-t / (8 * self.gain)))
        values = {
            "epoch": index, "step": t * self.steps_per_epoch, "delta_r": r - r_c, "r": r, "r_c": r_c,
            "loss": -(r - r_c), "lr": 1e-3, "epoch_time_s": self.epoch_time + (index % 3) * 0.5,
            "images_per_s": 2000.0 + 10 * (index % 5),
            "gpu_util": (80.0 + index % 7) if self.gpu else None,
            "gpu_mem_mb": (10240.0 + 16 * index) if self.gpu else None,
        }
        if self.objective == "vmcr2":
            values.update({"r_v": r - 1.0, "r_c_v": r_c + 0.5, "m_term": 50.0 * math.exp(-t / 5) + 1.0,
                           "r_v_over_r": (r - 1.0) / r})
        return values

    def epoch_end_time(self, index: int) -> float:
        return self.start_time + (index + 1) * self.epoch_time

    def epoch(self, index: int, **overrides: Any) -> dict[str, Any]:
        values = {**self.values(index), **overrides}
        return self.line("epoch", time=self.epoch_end_time(index), **values)

    def step(self, index: int, step_in_epoch: int, **overrides: Any) -> dict[str, Any]:
        values = self.values(index)
        values.pop("epoch_time_s")
        values["step"] = index * self.steps_per_epoch + step_in_epoch
        time = self.start_time + index * self.epoch_time + step_in_epoch * self.epoch_time / self.steps_per_epoch
        return self.line("step", time=time, **{**values, **overrides})

    def epochs_upto(self, count: int) -> None:
        """Epoch lines for the first ``count`` epochs."""
        for index in range(count):
            self.epoch(index)

    def latch(self, index: int) -> dict[str, Any]:
        """A latch after epoch ``index`` (the trainer latches every latch_every epochs)."""
        v = self.values(index)
        return self.line("latch", time=self.epoch_end_time(index) + 1.0, epoch=index, step=v["step"],
                         delta_r=v["delta_r"], r=v["r"], r_c=v["r_c"],
                         r_v_before=v.get("r_v", 0.0) - 0.3, r_v_after=v.get("r_v", 0.0))

    def eval(self, accuracy: float = 0.912, *, done: int | None = None, **values: Any) -> dict[str, Any]:
        """An eval line after ``done`` epochs (default: all of them, the end's evaluation)."""
        done = self.epochs if done is None else done
        return self.line("eval", time=self.epoch_end_time(done - 1) + 2.0, epoch=done,
                         step=done * self.steps_per_epoch, nearest_subspace_accuracy=accuracy, **values)


def at(seconds_after_t0: float):
    """A clock frozen at ``T0 + seconds_after_t0``."""
    return lambda: T0 + seconds_after_t0


def async_test(test):
    """Run an ``async def`` test in its own event loop (no pytest-asyncio needed)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(test(*args, **kwargs))

    return run


# A bound for a machine loaded by other work (CI beside a training run), not a pause: the wait ends as
# soon as the condition holds.
WAIT_S = 30.0


async def wait_until(pilot, condition, timeout: float = WAIT_S) -> None:
    """Let the app run until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {condition.__doc__ or condition}")
        await pilot.pause(0.02)
