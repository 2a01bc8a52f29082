"""The network's own training floor on this machine, and how close `vmcr2 train` comes to it.

    python3 benchmarks/training_floor.py [--profile default] [--steps 60] [--no-job] [--out FILE.json]

1. The floor: images/s of a plain loop over the profile's network, batch and optimizer
   (random images of the dataset's shape, a stand-in loss on the features, no data pipeline,
   no objective, no logging), in fp32 and in bf16 autocast, contiguous and channels-last.
   "Native bf16" is what the CPU reports (AVX512-BF16 or AMX); on a CPU without it bf16
   is emulated and slower.
2. The job: the profile's whole `vmcr2 train` as a subprocess (start-up, latching,
   evaluation and all), its wall time, and the ratio of that wall time to the time its
   epochs' images take at the fastest floor. The issue's goal is ≤ 1.5.

Nothing else should run on the machine while it measures; the script prints what the
one-minute load was when it started.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vmcr2_cli.config import parse_override, resolve_config  # noqa: E402
from vmcr2_cli.models import build_featurizer  # noqa: E402
from vmcr2_cli.training.precision import cpu_has_native_bf16  # noqa: E402
from vmcr2_cli.training.setup import load_training_data  # noqa: E402


def floor_images_per_s(config, image_shape: tuple[int, ...], *, bf16: bool, channels_last: bool, steps: int,
                       warmup: int = 5, compile: bool = False) -> tuple[float, float]:
    """Images/s of ``steps`` plain training steps of the config's network on the CPU, and the seconds
    the warm-up steps took (with ``compile``, torch.compile's compilation is in them)."""
    channels, height, width = image_shape
    torch.manual_seed(0)
    model = build_featurizer(config.model, in_channels=channels, feature_dim=config.feature_dim, stem=config.stem,
                             width=config.width, image_size=(height, width), dropout=config.dropout)
    images = torch.randn(config.batch_size, channels, height, width)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = (torch.optim.Adam if config.optimizer == "adam" else torch.optim.SGD)(model.parameters(), lr=config.lr)
    model.train()
    forward = torch.compile(model) if compile else model

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            Z = forward(images)
        loss = -(Z.float() @ Z.float().T).square().mean()  # any scalar of the features: the floor is the network
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    start = time.perf_counter()
    for _ in range(warmup):
        step()
    warm = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * config.batch_size / (time.perf_counter() - start), warm


def run_job(profile: str, extra: list[str]) -> tuple[float, dict]:
    """Wall seconds of the profile's `vmcr2 train` in an empty folder, and its final record."""
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "vmcr2_cli", "train", "--profile", profile,
                               "--runs-dir", folder, "--json", *extra],
                              cwd=REPO, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"vmcr2 train failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        return wall, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--steps", type=int, default=60, help="timed steps of each floor loop")
    parser.add_argument("--no-job", action="store_true", help="measure the floor only")
    parser.add_argument("--compile", action="store_true", help="also the fastest layout under torch.compile "
                        "(its compile time is reported beside it)")
    parser.add_argument("--set", action="append", default=[], help="key=value passed to the profile and the job")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    overrides = dict(parse_override(item) for item in args.set)
    config, _ = resolve_config(args.profile, None, overrides)
    native = cpu_has_native_bf16()
    dataset = load_training_data(config)
    print(f"CPU threads {torch.get_num_threads()}, native bf16 {native}, 1-min load {os.getloadavg()[0]:.2f}, "
          f"torch {torch.__version__}; profile {args.profile}: {config.model} width {config.width}, "
          f"d = {config.feature_dim}, batch {config.batch_size}, {config.optimizer}")
    floors = {}
    for bf16 in (False, True):
        for channels_last in (False, True):
            name = f"{'bf16' if bf16 else 'fp32'}{', channels-last' if channels_last else ''}"
            floors[name], _ = floor_images_per_s(config, dataset.image_shape, bf16=bf16, channels_last=channels_last,
                                                 steps=args.steps)
            print(f"floor {name:<22} {floors[name]:8.0f} images/s")
    if args.compile:
        best = max(floors, key=floors.get)
        name = f"{best}, torch.compile"
        floors[name], warm = floor_images_per_s(config, dataset.image_shape, bf16=best.startswith("bf16"),
                                                channels_last="channels-last" in best, steps=args.steps,
                                                compile=True)
        print(f"floor {name:<22} {floors[name]:8.0f} images/s (compiling and 5 warm-up steps: {warm:.1f} s)")
    report = {"native_bf16": native, "floor_images_per_s": floors}
    if not args.no_job:
        best = max(floors, key=floors.get)
        steps_per_epoch = dataset.num_train // config.batch_size
        floor_s = config.epochs * steps_per_epoch * config.batch_size / floors[best]
        extra = [arg for item in args.set for arg in ("--set", item)]
        wall, record = run_job(args.profile, extra)
        report.update(job_wall_s=wall, job_record=record, floor_epochs_s=floor_s, ratio=wall / floor_s)
        print(f"job: vmcr2 train --profile {args.profile} {' '.join(extra)}: {wall:.1f} s wall, "
              f"{config.epochs} epochs at the {best} floor {floor_s:.1f} s, ratio {wall / floor_s:.2f}")
        print(f"job's accuracy: {json.dumps({k: v for k, v in record.items() if 'accuracy' in k})}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
