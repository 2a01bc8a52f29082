"""Errors that the CLI turns into one line on stderr and an exit code.

Library code raises these (or ValueError for API misuse); ``cli.py`` catches
them, prints ``error: <message>`` and exits with the code, never a traceback.
"""

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class BadInput(Exception):
    """Bad user input: a flag, profile, path or value. Exit code 2."""

    exit_code = EXIT_BAD_INPUT


class RunFailed(Exception):
    """The run itself failed (a non-finite loss, say). Exit code 1."""

    exit_code = EXIT_RUN_FAILED


class RunWriteFailed(RunFailed):
    """A file of the run directory could not be written (a full disk, a lost mount). Exit code 1."""


class Stopped(Exception):
    """The command ends with ``exit_code`` and nothing more to say: its message, if any, is printed
    (a run stopped by a signal: 130; every process of a distributed run ending together)."""

    def __init__(self, exit_code: int) -> None:
        super().__init__(f"exit code {exit_code}")
        self.exit_code = exit_code


def one_line(text: object) -> str:
    """Collapse any whitespace run (newlines included) to one space: messages stay on one line."""
    return " ".join(str(text).split())
