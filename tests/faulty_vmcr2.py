"""``vmcr2`` with one fault produced for real at a chosen moment, for the fault tests.

    python tests/faulty_vmcr2.py FAULT -- train --profile synthetic …

FAULT is one of:

- ``signal-in-checkpoint:SIG[:N]``: the process sends itself SIG while it writes its
  N-th checkpoint (default the 2nd), half of the file's bytes written.
- ``double-sigint-in-checkpoint[:N]``: SIGINT, then SIGINT again, during that write.
- ``signal-in-latch:SIG``: SIG during the first latching (Algorithm 2).
- ``signal-in-eval:SIG``: SIG during the final evaluation.
- ``nan-features-at-step:N``: the featurizer's output becomes NaN at global step N.

The package has no test hooks: this wrapper patches it from outside, then runs the
real entry point.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time


def _signal(name: str) -> int:
    return getattr(signal, name if name.startswith("SIG") else f"SIG{name}")


class _Interrupting:
    """A file whose write() sends ``signals`` to this process once half of the bytes are in it."""

    def __init__(self, file, signals: list[int]) -> None:
        self._file, self._signals = file, signals

    def write(self, data: bytes) -> int:
        half = len(data) // 2
        self._file.write(data[:half])
        self._file.flush()
        for number in self._signals:
            # To the main thread, and the next only once the handler has run (the trainer's replaces
            # itself by the default one): two SIGINTs pending at once are handled once, which a user's
            # two presses of Ctrl-C, seconds apart, never are.
            handler = signal.getsignal(number)
            signal.pthread_kill(threading.main_thread().ident, number)
            deadline = time.monotonic() + 5
            while signal.getsignal(number) is handler and time.monotonic() < deadline:
                time.sleep(0.001)  # the handler runs in this (the main) thread, between these calls
        return half + self._file.write(data[half:])

    def __getattr__(self, name: str):
        return getattr(self._file, name)

    def __enter__(self) -> "_Interrupting":
        self._file.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._file.__exit__(*exc)


def _in_checkpoint_write(signals: list[int], which: int) -> None:
    """The real ``atomic_write_bytes`` of the ``which``-th checkpoint, its file write interrupted."""
    from vmcr2_cli import runs

    real = runs.atomic_write_bytes
    calls = {"n": 0}

    def write(path, data):
        if str(path).endswith("last.pt"):
            calls["n"] += 1
        if calls["n"] != which or not str(path).endswith("last.pt"):
            return real(path, data)
        fdopen = os.fdopen
        os.fdopen = lambda fd, mode: _Interrupting(fdopen(fd, mode), signals)
        try:
            return real(path, data)
        finally:
            os.fdopen = fdopen

    runs.atomic_write_bytes = write


def _before(module_name: str, function: str, number: int) -> None:
    import importlib

    module = importlib.import_module(module_name)
    real = getattr(module, function)

    def wrapped(*args, **kwargs):
        os.kill(os.getpid(), number)
        return real(*args, **kwargs)

    setattr(module, function, wrapped)


def _nan_features_at(step: int) -> None:
    import torch

    from vmcr2_cli.training import trainer as trainer_module

    real_init = trainer_module.Trainer.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)

        def poison(module, inputs, output):
            if module.training and self.global_step == step:
                return output * torch.nan
            return output

        self.model.register_forward_hook(poison)

    trainer_module.Trainer.__init__ = init


def install(fault: str) -> None:
    name, _, arg = fault.partition(":")
    if name == "signal-in-checkpoint":
        sig, _, which = arg.partition(":")
        _in_checkpoint_write([_signal(sig)], int(which or 2))
    elif name == "double-sigint-in-checkpoint":
        _in_checkpoint_write([signal.SIGINT, signal.SIGINT], int(arg or 2))
    elif name == "signal-in-latch":
        _before("vmcr2_cli.training.trainer", "latch_over_dataset", _signal(arg))
    elif name == "signal-in-eval":
        _before("vmcr2_cli.evaluation.during_training", "measure", _signal(arg))
    elif name == "nan-features-at-step":
        _nan_features_at(int(arg))
    else:
        raise SystemExit(f"unknown fault {fault!r}")


if __name__ == "__main__":
    fault, separator, *arguments = sys.argv[1:]
    assert separator == "--", "usage: faulty_vmcr2.py FAULT -- ARGS…"
    install(fault)
    from vmcr2_cli.cli import main

    main(arguments)
