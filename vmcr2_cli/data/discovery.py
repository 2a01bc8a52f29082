"""Where dataset files are looked for, in order, and what happens when none are found.

Search order (the first complete copy wins):

1. the ``data_root`` argument (the ``--data-root`` flag);
2. the ``VMCR2_DATA`` environment variable (one folder, or several joined by ``os.pathsep``);
3. the cache folder: the ``cache_dir`` argument, else ``$XDG_CACHE_HOME/vmcr2``,
   else ``~/.cache/vmcr2``; downloads and decoded caches go here;
4. system copies (:data:`SYSTEM_DATA_ROOTS`; Debian's ``dataset-fashion-mnist`` package
   installs ``/usr/share/datasets/fashion-mnist/*.gz``), replaced by the folders in
   ``VMCR2_SYSTEM_DATA`` when that variable is set (set it empty to search none: tests);
5. a download into the cache folder, unless ``download=False`` or ``VMCR2_OFFLINE=1``.

In each root a dataset's files may lie directly in the root or in a subfolder named
after the dataset (:class:`Layout` lists the names), or be an official archive.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vmcr2_cli.data import download as _download
from vmcr2_cli.data.download import DownloadFailed, RemoteFile
from vmcr2_cli.data.errors import DatasetNotFound
from vmcr2_cli.errors import one_line

ENV_DATA = "VMCR2_DATA"
ENV_OFFLINE = "VMCR2_OFFLINE"
ENV_SYSTEM_DATA = "VMCR2_SYSTEM_DATA"

# Read at call time, so tests can monkeypatch it to () or to a temporary folder.
SYSTEM_DATA_ROOTS: tuple[Path, ...] = (Path("/usr/share/datasets"),)


@dataclass(frozen=True)
class SearchRoot:
    """A folder searched for datasets, and why it is searched (for messages)."""

    path: Path
    origin: str  # "--data-root", "VMCR2_DATA", "cache" or "system"


@dataclass(frozen=True)
class Layout:
    """How a dataset may be laid out below a search root.

    ``files``: the files of a complete copy. ``folders``: candidate folders relative to a
    root, "" being the root itself. ``archives``: candidate official archives relative to
    a root. ``gz_variants``: each file may also be stored gzipped as ``<file>.gz``.
    ``described``: what to tell users to put there, when ``files`` (the files checked for)
    does not say it all.
    """

    dataset: str
    files: tuple[str, ...]
    folders: tuple[str, ...]
    archives: tuple[str, ...] = ()
    gz_variants: bool = False
    described: str = ""


@dataclass(frozen=True)
class Located:
    """A complete copy: a folder (``files`` maps each required name to its path) or an archive."""

    path: Path
    root: SearchRoot
    is_archive: bool
    files: dict[str, Path] = field(default_factory=dict)


# A check run on each complete folder before it is accepted: returns None to accept it,
# or a short note saying why it was skipped (e.g. Fashion-MNIST files where MNIST was asked).
FolderCheck = Callable[[Path, dict[str, Path]], "str | None"]


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/vmcr2`` or ``~/.cache/vmcr2``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "vmcr2"


def downloads_allowed(download: bool) -> bool:
    """False when the caller said so or ``VMCR2_OFFLINE`` is set to anything but 0/empty."""
    offline = os.environ.get(ENV_OFFLINE, "").strip().lower() not in ("", "0", "false", "no")
    return download and not offline


def search_roots(data_root: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None) -> list[SearchRoot]:
    """The folders searched, in priority order, without duplicates (missing ones included)."""
    roots: list[SearchRoot] = []
    if data_root:
        roots.append(SearchRoot(Path(data_root).expanduser(), "--data-root"))
    for part in os.environ.get(ENV_DATA, "").split(os.pathsep):
        if part.strip():
            roots.append(SearchRoot(Path(part.strip()).expanduser(), ENV_DATA))
    roots.append(SearchRoot(Path(cache_dir).expanduser() if cache_dir else default_cache_dir(), "cache"))
    system = os.environ.get(ENV_SYSTEM_DATA)
    system_roots = SYSTEM_DATA_ROOTS if system is None else [p for p in system.split(os.pathsep) if p.strip()]
    roots.extend(SearchRoot(Path(p), "system") for p in system_roots)
    unique, seen = [], set()
    for root in roots:
        key = os.path.abspath(root.path)
        if key not in seen:
            seen.add(key)
            unique.append(root)
    return unique


def locate(layout: Layout, roots: Sequence[SearchRoot], check: FolderCheck | None = None) -> tuple[Located | None, list[str]]:
    """The first complete copy in ``roots`` (folders before archives within a root).

    Returns it (or None) and notes on incomplete or rejected copies, for the error message.
    """
    notes: list[str] = []
    for root in roots:
        if not root.path.is_dir():
            continue
        for folder in layout.folders:
            directory = root.path / folder if folder else root.path
            if not directory.is_dir():
                continue
            found, missing = _resolve_files(directory, layout)
            if missing and found:
                notes.append(f"{directory} is incomplete (missing {', '.join(missing)})")
            if missing:
                continue
            note = check(directory, found) if check else None
            if note:
                notes.append(note)
                continue
            return Located(directory, root, is_archive=False, files=found), notes
        for archive in layout.archives:
            path = root.path / archive
            if path.is_file():
                return Located(path, root, is_archive=True), notes
    return None, notes


def _resolve_files(directory: Path, layout: Layout) -> tuple[dict[str, Path], list[str]]:
    found, missing = {}, []
    for name in layout.files:
        candidates = [directory / name] + ([directory / f"{name}.gz"] if layout.gz_variants else [])
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            missing.append(name)
        else:
            found[name] = path
    return found, missing


def find_dataset(
    layout: Layout,
    roots: Sequence[SearchRoot],
    *,
    download: bool,
    remote_files: Sequence[RemoteFile] = (),
    download_folder: str = "",
    check: FolderCheck | None = None,
) -> Located:
    """Locate a dataset, downloading ``remote_files`` into ``<cache>/<download_folder>`` if needed.

    Raises DatasetNotFound (one line: the files, the folders, the download's failure).
    """
    located, notes = locate(layout, roots, check)
    if located is not None:
        return located
    cache = next((r for r in roots if r.origin == "cache"), None)
    if not remote_files or cache is None:
        reason = "no download available for this dataset"
    elif not downloads_allowed(download):
        reason = "downloads are off (download=False or VMCR2_OFFLINE set)"
    else:
        folder = cache.path / download_folder if download_folder else cache.path
        try:
            for remote in remote_files:
                if not (folder / remote.filename).is_file():
                    _download.fetch(remote, folder)
        except (DownloadFailed, OSError) as failure:
            reason = f"download failed: {one_line(failure)}"
        else:
            located, more_notes = locate(layout, [cache], check)
            if located is not None:
                return located
            notes += more_notes
            reason = f"downloaded into {folder} but the files are not a complete copy"
    raise DatasetNotFound(not_found_message(layout, roots, notes, reason))


def not_found_message(layout: Layout, roots: Sequence[SearchRoot], notes: Sequence[str], reason: str) -> str:
    """One line: what to put where, what was found wrong, and why no download happened."""
    files = layout.described or ", ".join(layout.files) + (" (each may be .gz)" if layout.gz_variants else "")
    what = f"put {files}"
    if layout.archives:
        what += f", or the archive {layout.archives[0]},"
    places = ", ".join(str(r.path) for r in roots)
    subfolders = [f"{f}/" for f in layout.folders if f and "/" not in f]
    where = f"in one of {places}"
    if subfolders:
        where += f" (directly or in {' or '.join(subfolders)})"
    parts = [f"{layout.dataset} not found: {what} {where}, or set {ENV_DATA} to such a folder"]
    parts += notes
    parts.append(reason)
    return one_line("; ".join(parts))
