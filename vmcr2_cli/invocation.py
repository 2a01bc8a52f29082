"""The command line this process runs, as meta.json and bench reports record it.

``cli.main`` records its arguments, so a run started in-process (tests, notebooks,
``compare --train``) records its own command, not the host program's ``sys.argv``.
"""

from __future__ import annotations

import shlex
import sys

_arguments: list[str] | None = None


def record(arguments: list[str] | None) -> None:
    """Remember the arguments after ``vmcr2`` (None: this process's ``sys.argv``)."""
    global _arguments
    _arguments = None if arguments is None else [str(argument) for argument in arguments]


def command_line() -> str:
    """``vmcr2 …`` as typed, quoted for a shell."""
    return shlex.join(["vmcr2", *(sys.argv[1:] if _arguments is None else _arguments)])
