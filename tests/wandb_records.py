"""A reader of W&B's offline ``.wandb`` files, for the tests: recent wandb writes them from its
compiled core and ships no Python reader, so this reads the records itself.

The format (wandb's "datastore", LevelDB's log format): a 7-byte header (``:W&B``, magic
0xBEE1, version 0), then 32 KiB blocks of chunks, each a 7-byte header (CRC-32, length,
type: 1 full, 2 first, 3 middle, 4 last) and its bytes; a block's tail shorter than a header
is padding. A whole record is a ``wandb_internal_pb2.Record`` protobuf.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Iterator

BLOCK = 32 * 1024
HEADER = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[Any]:
    """Every record of one .wandb file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B datastore file"
    position, pending = 7, b""
    while position + HEADER.size <= len(data):
        left = BLOCK - position % BLOCK
        if left < HEADER.size:
            position += left
            continue
        _, length, kind = HEADER.unpack_from(data, position)
        if kind == 0:  # zeros: the rest of the block is padding
            position += left
            continue
        chunk = data[position + HEADER.size:position + HEADER.size + length]
        position += HEADER.size + length
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def run_ids(run_dir: Path) -> set[str]:
    """The W&B run ids of every offline run under ``run_dir/wandb``."""
    return {record.run.run_id for path in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
            for record in records(path) if record.WhichOneof("record_type") == "run"}


def history(run_dir: Path) -> dict[int, dict[str, float]]:
    """Every history row logged under ``run_dir/wandb`` (all its offline runs), by step; a later run's
    value of a key at a step replaces an earlier one's (a resumed run logs again what followed its
    checkpoint)."""
    rows: dict[int, dict[str, float]] = {}
    for path in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb")):
        for record in records(path):
            if record.WhichOneof("record_type") != "history":
                continue
            items = {item.key or "/".join(item.nested_key): json.loads(item.value_json)
                     for item in record.history.item}
            step = record.history.step.num if record.history.HasField("step") else items.get("_step")
            rows.setdefault(int(step), {}).update({key: value for key, value in items.items()
                                                   if not key.startswith("_")})
    return rows
