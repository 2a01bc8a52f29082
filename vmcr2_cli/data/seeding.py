"""Seeds derived from (seed, purpose, counters...) — the same on every machine and process.

Python's ``hash`` is salted per process, so a keyed BLAKE2 digest is used instead.
"""

from __future__ import annotations

import hashlib
import struct

import torch


def derive_seed(seed: int, purpose: str, *counters: int) -> int:
    """A 63-bit seed determined by ``seed``, a purpose tag and integer counters only."""
    digest = hashlib.blake2b(purpose.encode(), digest_size=8, key=struct.pack("<q", int(seed)))
    for counter in counters:
        digest.update(struct.pack("<q", int(counter)))
    return int.from_bytes(digest.digest(), "little") & ((1 << 63) - 1)


def cpu_generator(seed: int, purpose: str, *counters: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`derive_seed`."""
    return torch.Generator().manual_seed(derive_seed(seed, purpose, *counters))


def step_seed(seed: int, global_step: int, rank: int = 0) -> int:
    """The seed of the global generator (dropout) for one step of process ``rank``.

    Rank 0 keeps the single-process stream; other ranks draw streams of their own, so
    that the shares of a global batch do not get the same dropout masks.
    """
    if rank:
        return derive_seed(seed, "dropout", rank, global_step)
    return (seed * 1_000_003 + global_step) % (2**63 - 1)
