"""Packed datasets against the in-memory path: speed, memory, and an epoch over a set 4× the memory limit.

    python benchmarks/packed_data.py loader --pack DIR [--epochs 3]       # the loader alone, images/s and peak RSS
    python benchmarks/packed_data.py train --pack DIR --profile P [--repeats 1]  # a training epoch, vmcr2 train
    python benchmarks/packed_data.py synthetic OUT --gib 5                # write a synthetic pack of that size
    python benchmarks/packed_data.py bounded --pack OUT --limit-gib 1.25  # in a memory cgroup: hold it, or stream it

Each case runs in a fresh process, its peak resident memory read from ``wait4``. "cold": the pack's pages
are dropped from the page cache (``posix_fadvise(DONTNEED)``) before the epoch; "warm": an epoch has just
read it. ``bounded`` needs root (it makes a memory cgroup, v1 or v2). Results go to --out as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def popen_rusage(command: list[str], cgroup: Path | None = None) -> dict:
    """Run ``command`` (in ``cgroup``): its exit code, wall time, peak RSS (MiB, its own ``wait4`` rusage) and
    its last stdout line where that is JSON."""
    started = time.perf_counter()
    read_out, write_out = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: join the cgroup, send stdout to the pipe, exec
        try:
            if cgroup:
                (cgroup / "cgroup.procs").write_text(str(os.getpid()))
            os.dup2(write_out, 1)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.execvp(command[0], command)
        finally:
            os._exit(127)
    os.close(write_out)
    with os.fdopen(read_out) as pipe:
        out = pipe.read()
    _, status, usage = os.wait4(pid, 0)
    result = {"command": " ".join(command), "exit_code": os.waitstatus_to_exitcode(status),
              "wall_s": round(time.perf_counter() - started, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}
    lines = out.strip().splitlines()
    if lines and lines[-1].startswith("{"):
        result.update(json.loads(lines[-1]))
    return result


# ----------------------------------------------------------------------------- the loader alone

def loader_one(pack: str, variant: str, epochs: int, batch: int) -> None:
    """One variant in this process; prints {"images_per_s": [...]} (one per epoch)."""
    import torch

    from vmcr2_cli.data import DeviceLoader, load_dataset

    torch.set_num_threads(os.cpu_count() or 1)
    dataset = load_dataset("packed", data_root=pack, download=False)
    images = dataset.train_images.read() if variant == "in-memory" else dataset.train_images
    loader = DeviceLoader(images, dataset.train_labels, batch, augment="none", mean=dataset.mean, std=dataset.std)
    if variant == "packed-warm":
        for _ in loader.epoch(0):  # reads the file into the page cache
            pass
    rates = []
    for epoch in range(1, epochs + 1):
        if variant == "packed-cold":
            dataset.train_images.drop_from_page_cache()
        started = time.perf_counter()
        checksum = 0.0
        for _, batch_ in loader.epoch(epoch):
            checksum += float(batch_.images[:, :, 0, 0].sum())  # touch every batch
        rates.append(round(len(loader) * batch / (time.perf_counter() - started)))
    print(json.dumps({"variant": variant, "images_per_s": rates, "streamed": loader.streamed}))


def loader(args) -> dict:
    results = []
    for variant in ("in-memory", "packed-warm", "packed-cold"):
        result = popen_rusage([sys.executable, __file__, "loader-one", args.pack, variant, str(args.epochs),
                               str(args.batch)])
        print(variant, result, flush=True)
        results.append(result)
    return {"pack": args.pack, "bytes": _pack_bytes(args.pack), "batch": args.batch, "cases": results}


# ----------------------------------------------------------------------------- a training epoch

def train(args) -> dict:
    from vmcr2_cli.data.packed import PackedImages, images_file

    common = ["vmcr2", "train", "--profile", args.profile, "--epochs", "1", "--set", "eval_at_end=false",
              "--set", "latch_every=0", "--runs-dir", args.runs_dir, "--json", *args.extra]
    packed = ["--set", "dataset=packed", "--data-root", args.pack]
    manifest = json.loads((Path(args.pack) / "manifest.json").read_text())
    train_file = PackedImages(Path(args.pack) / images_file("train"), manifest["counts"]["train"],
                              tuple(manifest["image_shape"]))
    results = []
    for repeat in range(args.repeats):
        for variant in ("in-memory", "packed-warm", "packed-cold"):
            if variant == "packed-cold":
                train_file.drop_from_page_cache()
            result = popen_rusage(common + ["--name", f"{variant}-{repeat}"] + ([] if variant == "in-memory" else packed))
            epoch = _last_epoch_line(Path(args.runs_dir), f"{variant}-{repeat}")
            result.update(variant=variant, images_per_s=epoch["images_per_s"], epoch_time_s=epoch["epoch_time_s"],
                          loss=epoch["loss"])
            print(variant, {key: result[key] for key in ("images_per_s", "epoch_time_s", "peak_rss_mib", "loss")},
                  flush=True)
            results.append(result)
    return {"pack": args.pack, "profile": args.profile, "cases": results}


def _last_epoch_line(runs: Path, name: str) -> dict:
    from vmcr2_cli.runs import RunDir

    run = RunDir.open(sorted(runs.glob(f"*-{name}"))[-1])
    return [line for line in run.read_metrics() if line["type"] == "epoch"][-1]


# ----------------------------------------------------------------------------- a synthetic pack

def synthetic(args) -> dict:
    """A pack of ``--gib`` GiB: k classes, each a fixed random 1×32×32 pattern plus noise (learnable, cheap)."""
    from vmcr2_cli.data import packing

    shape = (1, 32, 32)
    count = int(args.gib * 1024**3) // int(np.prod(shape))
    generator = np.random.default_rng(0)
    patterns = generator.integers(40, 216, size=(args.classes, *shape), dtype=np.int16)

    def chunks(split: str, start: int):
        total = count if split == "train" else 10_000
        for first in range(start, total, 65536):
            rng = np.random.default_rng(first + (0 if split == "train" else 2**40))
            labels = rng.integers(0, args.classes, size=min(65536, total - first))
            noise = rng.integers(-40, 40, size=(len(labels), *shape), dtype=np.int16)
            yield (patterns[labels] + noise).astype(np.uint8), labels.astype(np.int64)

    source = packing.PackSource(f"synthetic {args.gib} GiB", shape, {"train": count, "test": 10_000},
                                [f"class {j}" for j in range(args.classes)], True,
                                f"synthetic-{args.gib}-{args.classes}", chunks, ((0.5,), (0.2,)))
    started = time.perf_counter()
    packing.pack(source, Path(args.out))
    return {"out": args.out, "images": count, "bytes": _pack_bytes(args.out), "seconds": time.perf_counter() - started}


# ----------------------------------------------------------------------------- in a memory cgroup

def make_cgroup(limit: int) -> Path:
    """A memory cgroup with ``limit`` bytes (v2 where mounted so, else v1), for this benchmark's children."""
    v2 = Path("/sys/fs/cgroup/cgroup.controllers")
    folder = Path("/sys/fs/cgroup" if v2.exists() else "/sys/fs/cgroup/memory") / f"vmcr2-bounded-{os.getpid()}"
    folder.mkdir()
    (folder / ("memory.max" if v2.exists() else "memory.limit_in_bytes")).write_text(str(limit))
    return folder


def bounded(args) -> dict:
    limit = int(args.limit_gib * 1024**3)
    cgroup = make_cgroup(limit)
    try:
        hold = popen_rusage([sys.executable, "-c",
                             "from vmcr2_cli.data import load_dataset; import json; "
                             f"d = load_dataset('packed', data_root={args.pack!r}, download=False); "
                             "x = d.train_images.read(); print(json.dumps({'held_bytes': x.numel()}))"], cgroup)
        print("in-memory", hold, flush=True)
        stream = popen_rusage(["vmcr2", "train", "--profile", "synthetic", "--set", "dataset=packed", "--data-root",
                               args.pack, "--epochs", "1", "--batch-size", "1000", "--set", "eval_at_end=false",
                               "--set", "latch_every=0", "--objective", args.objective, "--set", "log_every=500",
                               "--runs-dir", args.runs_dir, "--name", "bounded", "--json"], cgroup)
        epoch = _last_epoch_line(Path(args.runs_dir), "bounded")
        stream.update(images_per_s=epoch["images_per_s"], epoch_time_s=epoch["epoch_time_s"], loss=epoch["loss"])
        print("packed", stream, flush=True)
    finally:
        peaks = [int((cgroup / name).read_text()) for name in ("memory.max_usage_in_bytes", "memory.peak")
                 if (cgroup / name).exists()]  # v1's name, v2's (kernels from 5.19)
        peak = peaks[0] if peaks else None
        cgroup.rmdir()
    return {"pack": args.pack, "bytes": _pack_bytes(args.pack), "limit_bytes": limit, "cgroup_peak_bytes": peak,
            "in_memory": hold, "packed": stream}


def _pack_bytes(pack: str) -> int:
    return sum(path.stat().st_size for path in Path(pack).glob("*-images.u8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("loader-one")
    one.add_argument("pack"), one.add_argument("variant"), one.add_argument("epochs", type=int)
    one.add_argument("batch", type=int)
    for name in ("loader", "train", "bounded"):
        command = commands.add_parser(name)
        command.add_argument("--pack", required=True)
        command.add_argument("--out")
    commands.choices["loader"].add_argument("--epochs", type=int, default=3)
    commands.choices["loader"].add_argument("--batch", type=int, default=1000)
    commands.choices["train"].add_argument("--profile", default="fashion-mnist-pairs")
    commands.choices["train"].add_argument("--repeats", type=int, default=1)
    commands.choices["train"].add_argument("--runs-dir", default="/tmp/vmcr2-packed-runs")
    commands.choices["train"].add_argument("extra", nargs="*", help="more vmcr2 train arguments (after --)")
    commands.choices["bounded"].add_argument("--limit-gib", type=float, default=1.25)
    commands.choices["bounded"].add_argument("--objective", default="mcr2")
    commands.choices["bounded"].add_argument("--runs-dir", default="/tmp/vmcr2-bounded-runs")
    make = commands.add_parser("synthetic")
    make.add_argument("out"), make.add_argument("--gib", type=float, default=5.0)
    make.add_argument("--classes", type=int, default=10)
    args = parser.parse_args()
    if args.command == "loader-one":
        return loader_one(args.pack, args.variant, args.epochs, args.batch)
    result = {"loader": loader, "train": train, "synthetic": synthetic, "bounded": bounded}[args.command](args)
    text = json.dumps(result, indent=2)
    print(text)
    if getattr(args, "out", None) and args.command != "synthetic":
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
