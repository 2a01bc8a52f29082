"""How much memory a dataset held whole may take here, checked before it is loaded (not after the OOM killer)."""

from __future__ import annotations

import resource
from pathlib import Path

from vmcr2_cli.errors import BadInput

GIB = 1024**3


def available_memory() -> tuple[int, str] | None:
    """(bytes this process may still take, the limit that sets it): the least of the machine's available
    memory, the cgroup's limit less its use, and the address-space limit (``ulimit -v``) less the
    process's size. None where none of them can be read."""
    limits = []
    meminfo = _fields(Path("/proc/meminfo"))
    if "MemAvailable" in meminfo:
        limits.append((meminfo["MemAvailable"] * 1024, "available memory"))
    cgroup = _cgroup_memory()
    if cgroup is not None:
        limits.append((cgroup, "the cgroup's memory limit"))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    status = _fields(Path("/proc/self/status"))
    if soft != resource.RLIM_INFINITY and "VmSize" in status:
        limits.append((soft - status["VmSize"] * 1024, "the address-space limit (ulimit -v)"))
    return min(limits) if limits else None


def check_fits_in_memory(nbytes: int, what: str) -> None:
    """BadInput (one line) when ``nbytes`` of decoded images would not fit: say to pack them instead."""
    available = available_memory()
    if available is not None and nbytes > available[0]:
        raise BadInput(f"{what} decodes to {nbytes / GIB:.1f} GiB of images, more than the "
                       f"{max(available[0], 0) / GIB:.1f} GiB {available[1]} leaves; pack it on disk once and train "
                       f"from the pack: vmcr2 pack SOURCE DIR, then dataset = \"packed\" with data_root = DIR")


def _cgroup_memory() -> int | None:
    """The process's memory cgroup's limit less what it holds other than reclaimable file cache (v2 or v1);
    None without a limit."""
    try:
        entries = [line.split(":", 2) for line in Path("/proc/self/cgroup").read_text().splitlines()]
    except OSError:
        return None
    for hierarchy, controllers, path in entries:
        if hierarchy == "0" and controllers == "":  # v2: one hierarchy, every controller
            folder = Path("/sys/fs/cgroup") / path.lstrip("/")
            limit, used = _read_int(folder / "memory.max"), _read_int(folder / "memory.current")
            cache = _fields(folder / "memory.stat", separator=" ").get("inactive_file", 0)
        elif "memory" in controllers.split(","):
            folder = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            limit, used = _read_int(folder / "memory.limit_in_bytes"), _read_int(folder / "memory.usage_in_bytes")
            cache = _fields(folder / "memory.stat", separator=" ").get("total_inactive_file", 0)
        else:
            continue
        if limit is not None and used is not None and limit < 2**62:  # v1 writes "no limit" as a huge number
            return limit - (used - cache)
    return None


def _fields(path: Path, separator: str = ":") -> dict[str, int]:
    """'Name:  123 kB' lines (or 'name 123', ``separator`` ' ') as {Name: 123}."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    fields = {}
    for line in lines:
        name, _, value = line.partition(separator)
        parts = value.split()
        if parts and parts[0].isdigit():
            fields[name] = int(parts[0])
    return fields


def _read_int(path: str | Path) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
