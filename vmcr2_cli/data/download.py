"""Download one file with a progress bar and an MD5 check, never hanging.

``urlopen`` is looked up on this module at call time, so tests replace it
(``monkeypatch.setattr(download, "urlopen", ...)``) and never touch the network.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from vmcr2_cli.errors import one_line

# Seconds to wait for a connection, and for each read once connected: a dead network
# fails fast, while a slow but moving download is never cut off.
TIMEOUT_S = 10.0
CHUNK_BYTES = 1 << 20

urlopen = urllib.request.urlopen


class DownloadFailed(Exception):
    """A download did not produce a file with the expected checksum. The message is one line."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset as published: its name, its mirrors (tried in order), its MD5."""

    filename: str
    urls: tuple[str, ...]
    md5: str


def fetch(remote: RemoteFile, folder: Path) -> Path:
    """Download ``remote`` into ``folder`` and return its path.

    Tries each mirror in turn; the file appears (atomically) only once its MD5 matches.
    Raises DownloadFailed naming every mirror's failure.
    """
    target = folder / remote.filename
    failures = []
    for url in remote.urls:
        try:
            _fetch_url(url, target, remote.md5)
            return target
        except DownloadFailed as failure:
            failures.append(str(failure))
    raise DownloadFailed("; ".join(failures))


def _fetch_url(url: str, target: Path, md5: str) -> None:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    try:
        response = urlopen(url, timeout=TIMEOUT_S)
    except Exception as error:  # URLError, timeouts, refused connections, anything else
        raise DownloadFailed(f"{url}: {one_line(error)}") from error

    target.parent.mkdir(parents=True, exist_ok=True)  # only once a server answered
    # stderr: the progress bar must not pollute a command's --json output on stdout.
    console = Console(stderr=True)
    digest = hashlib.md5()
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with response, os.fdopen(fd, "wb") as out:
            total = response.headers.get("Content-Length") if response.headers else None
            with Progress(
                TextColumn(f"downloading {target.name}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=console,
                disable=not console.is_terminal,
            ) as progress:
                task = progress.add_task("download", total=int(total) if total else None)
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    progress.advance(task, len(chunk))
        if digest.hexdigest() != md5:
            raise DownloadFailed(f"{url}: checksum mismatch (MD5 {digest.hexdigest()}, expected {md5})")
        os.chmod(partial, 0o644)  # mkstemp makes it private; a cache may be shared
        os.replace(partial, target)
    except DownloadFailed:
        raise
    except Exception as error:  # a connection dropped or timed out mid-way, a full disk
        raise DownloadFailed(f"{url}: {one_line(error)}") from error
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def md5_of(path: Path) -> str:
    """The MD5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
