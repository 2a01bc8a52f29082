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


def _signal(name: str) -> int:
    return getattr(signal, name if name.startswith("SIG") else f"SIG{name}")


def _in_checkpoint_write(signals: list[int], which: int) -> None:
    from vmcr2_cli import runs

    real = runs.atomic_write_bytes
    calls = {"n": 0}

    def write(path, data):
        if not str(path).endswith("last.pt"):
            return real(path, data)
        calls["n"] += 1
        if calls["n"] != which:
            return real(path, data)

        half = len(data) // 2

        class Interrupting(bytes):
            """The bytes to write; each signal goes off once half of them are in the file."""

        # Write the first half through the real path's temporary file, signal, then the rest.
        import tempfile

        path = runs.Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data[:half])
                file.flush()
                for number in signals:
                    os.kill(os.getpid(), number)  # the handler runs before the next bytecode
                file.write(data[half:])
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
        except BaseException:
            runs.Path(tmp).unlink(missing_ok=True)
            raise

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
        _before("vmcr2_cli.training.finish", "final_evaluation", _signal(arg))
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
