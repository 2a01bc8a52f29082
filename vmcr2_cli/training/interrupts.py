"""Ctrl-C and SIGTERM become a request to stop at the next step boundary."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from types import FrameType
from typing import Iterator


class TrainingInterrupted(Exception):
    """Ctrl-C or SIGTERM: the state was checkpointed at a step boundary (or, during the final
    evaluation, training was complete)."""


# What a second signal does when the process had been started with the signal ignored.
_DEFAULT_EFFECT = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}


class StopRequested:
    """Context manager: while active, the first SIGINT/SIGTERM sets ``requested``.

    The trainer checks the flag after each step, checkpoints and exits 130. A second
    signal has its default effect (KeyboardInterrupt for SIGINT, termination for SIGTERM),
    so a stuck run can still be killed — also when the process started with the signal
    ignored, as a non-interactive shell starts its background jobs (``cmd &``): restoring
    that SIG_IGN would make the second signal do nothing.

    ``under_launcher``: the process is one of torchrun's workers. The launcher forwards
    the user's Ctrl-C and, once a worker exits, SIGTERMs the others; those signals must
    not kill a rank that is still writing its checkpoint, so every signal only sets the
    flag. Killing a stuck run is the launcher's job then: it SIGKILLs workers that are
    still alive 30 s after its signal.
    """

    def __init__(self, under_launcher: bool = False) -> None:
        self.requested = False
        self.signal_name = ""
        self.under_launcher = under_launcher
        self._immediate = False
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        self.signal_name = self.signal_name or signal.Signals(signum).name
        if self._immediate:
            raise TrainingInterrupted(self.signal_name)
        if not self.under_launcher:
            for sig, handler in self._previous.items():
                signal.signal(sig, _DEFAULT_EFFECT[sig] if handler in (signal.SIG_IGN, None) else handler)

    @contextmanager
    def immediate(self) -> Iterator[None]:
        """For work that writes nothing until it ends (the final evaluation): a signal, or one
        that came before, raises TrainingInterrupted at once instead of waiting for a step."""
        if self.requested:
            raise TrainingInterrupted(self.signal_name)
        self._immediate = True
        try:
            yield
        finally:
            self._immediate = False

    def __enter__(self) -> "StopRequested":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
