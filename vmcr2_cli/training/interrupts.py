"""Ctrl-C and SIGTERM become a request to stop at the next step boundary."""

from __future__ import annotations

import signal
from types import FrameType


class StopRequested:
    """Context manager: while active, the first SIGINT/SIGTERM sets ``requested``.

    The trainer checks the flag after each step, checkpoints and exits 130. A second
    signal restores the default behaviour, so a stuck run can still be killed.
    """

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def __enter__(self) -> "StopRequested":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
