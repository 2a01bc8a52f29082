"""Errors of the data layer. Both are bad input (exit code 2, one line, no traceback)."""

from __future__ import annotations

from vmcr2_cli.errors import BadInput


class DatasetNotFound(BadInput):
    """No copy of a dataset was found and none could be downloaded.

    The message is one line: which files to put where, and why the download failed.
    """


class DatasetCorrupt(BadInput):
    """A dataset file exists but is not what its format says (truncated, wrong magic...)."""
