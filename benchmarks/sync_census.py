"""Where a V-MCR² run makes the host wait for the GPU: a census of host synchronizations.

    python3 benchmarks/sync_census.py --data-root DIR [--device cuda] [--epochs 2] [--set key=value …] [--out FILE.json]

Trains ``--epochs`` epochs of the tinyimagenet profile's V-MCR² (latching every epoch, step lines
every 5 steps, no final evaluation) in process, under ``torch.cuda.set_sync_debug_mode("warn")``:
torch warns at each operation that synchronizes with the device, and each warning is counted at
the innermost line of vmcr2 that made it (``file:line function``). A step that syncs every time
shows a count of about the number of steps; the log points, latches and epoch ends show their own
counts. On a CPU there is nothing to synchronize: the run still trains (so the script stays
working) and the census is empty. gpu_check.sh runs it on a GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vmcr2_cli.config import parse_override, resolve_config  # noqa: E402
from vmcr2_cli.runs import RunDir  # noqa: E402
from vmcr2_cli.training.setup import load_training_data, resolve_device  # noqa: E402
from vmcr2_cli.training.trainer import Trainer  # noqa: E402

PACKAGE = str(REPO / "vmcr2_cli")


class _NeverStop:
    requested = False
    signal_name = ""


def site_of(stack: list[traceback.FrameSummary]) -> str:
    """The innermost frame of vmcr2's own code in ``stack`` (else the innermost frame)."""
    ours = [frame for frame in stack if frame.filename.startswith(PACKAGE)]
    frame = (ours or stack)[-1]
    return f"{Path(frame.filename).relative_to(REPO) if frame.filename.startswith(str(REPO)) else frame.filename}:" \
           f"{frame.lineno} {frame.name}"


def census(config, device: torch.device) -> dict:
    """Train ``config`` on ``device`` and count the synchronizations by site."""
    counts: Counter[str] = Counter()
    messages: dict[str, str] = {}

    def record(message, category, filename, lineno, file=None, line=None) -> None:
        site = site_of(traceback.extract_stack()[:-1])
        counts[site] += 1
        messages.setdefault(site, str(message).splitlines()[0][:200])

    dataset = load_training_data(config)
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(config, dataset, RunDir.create(Path(folder), "census"), device)
        cuda = device.type == "cuda"
        begin = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = record
            if cuda:
                torch.cuda.set_sync_debug_mode("warn")
            try:
                trainer.fit(_NeverStop())
            finally:
                if cuda:
                    torch.cuda.set_sync_debug_mode("default")
        seconds = time.perf_counter() - begin
    return {"device": str(device), "cuda": cuda, "epochs": config.epochs, "steps": trainer.global_step,
            "steps_per_epoch": trainer.loader.steps_per_epoch, "seconds": round(seconds, 2),
            "sites": [{"site": site, "count": count, "message": messages[site]}
                      for site, count in counts.most_common()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True, help="folder holding tiny-imagenet-200 (or its zip)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], help="key=value over the tinyimagenet profile")
    parser.add_argument("--out", type=Path, help="also write the census as JSON")
    args = parser.parse_args()
    values = {"data_root": args.data_root, "device": args.device, "epochs": args.epochs, "latch_every": 1,
              "log_every": 5, "eval_at_end": False, **dict(parse_override(item) for item in args.set)}
    config, _ = resolve_config("tinyimagenet", "vmcr2", values)
    result = census(config, resolve_device(config.device))
    for site in result["sites"]:
        print(f"{site['count']:6d}  {site['site']}  ({site['message']})")
    print(f"{len(result['sites'])} sync sites over {result['steps']} steps ({result['steps_per_epoch']} an epoch) "
          f"on {result['device']} in {result['seconds']} s")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
