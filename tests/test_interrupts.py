"""StopRequested: the first signal asks training to stop, a second has the signal's default effect."""

from __future__ import annotations

import os
import signal

import pytest

from vmcr2_cli.training.interrupts import StopRequested


@pytest.mark.parametrize("started_with", [signal.default_int_handler, signal.SIG_IGN])
def test_a_second_sigint_raises_keyboard_interrupt_even_if_the_process_started_ignoring_it(started_with):
    """A non-interactive shell starts background jobs (`vmcr2 train … &`) with SIGINT ignored."""
    before = signal.signal(signal.SIGINT, started_with)
    try:
        with StopRequested() as stop:
            os.kill(os.getpid(), signal.SIGINT)
            assert stop.requested and stop.signal_name == "SIGINT"
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is started_with  # what the process had, once training is over
    finally:
        signal.signal(signal.SIGINT, before)


def test_under_a_launcher_every_signal_only_asks_to_stop():
    before = signal.getsignal(signal.SIGTERM)
    with StopRequested(under_launcher=True) as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.signal_name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before
