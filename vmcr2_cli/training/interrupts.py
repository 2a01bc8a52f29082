"""Ctrl-C and SIGTERM become a request to stop at the next step boundary."""

from __future__ import annotations

import signal
from types import FrameType


class StopRequested:
    """Context manager: while active, the first SIGINT/SIGTERM sets ``requested``.

    The trainer checks the flag after each step, checkpoints and exits 130. A second
    signal restores the default behaviour, so a stuck run can still be killed.

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
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        self.signal_name = self.signal_name or signal.Signals(signum).name
        if not self.under_launcher:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)

    def __enter__(self) -> "StopRequested":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
