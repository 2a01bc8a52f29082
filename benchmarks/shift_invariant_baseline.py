"""How much of Fashion-MNIST's class survives a shift-invariant read-out: kNN (k = 10, cosine) on the
magnitudes of each image's 2D Fourier transform, which no cyclic translation changes, against kNN on
the pixels — the ceiling an invariant classifier (such as the invariant ReduNet's head, REDUNET.md §4)
works under, with the same training images.

    python benchmarks/shift_invariant_baseline.py --train 500 --json benchmarks/runs/redunet/invariant-baseline-500.json
    python benchmarks/shift_invariant_baseline.py --train 60000 --json benchmarks/runs/redunet/invariant-baseline-60000.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from vmcr2_cli.config import resolve_config
from vmcr2_cli.data.registry import preprocessing_of
from vmcr2_cli.evaluation.knn import knn_predict
from vmcr2_cli.evaluation.nearest_subspace import accuracy
from vmcr2_cli.runs import atomic_write_json
from vmcr2_cli.training.construction import balanced_sample
from vmcr2_cli.training.setup import load_training_data


def pixels(images: torch.Tensor, padding: tuple[int, ...], pool: int) -> torch.Tensor:
    """uint8 images → float in [0, 1], zero-padded to the network's size as vmcr2 reads them (Fashion-MNIST:
    28 × 28 → 32 × 32), averaged over pool × pool blocks."""
    padded = F.pad(images.float() / 255.0, padding)
    return F.avg_pool2d(padded, pool) if pool > 1 else padded


def spectrum_magnitudes(X: torch.Tensor) -> torch.Tensor:
    """|x̂(f)| of each image's 2D DFT: the same for every cyclic translation of the image."""
    return torch.fft.rfft2(X).abs().flatten(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=500, help="training images, a class-balanced seeded sample")
    parser.add_argument("--pool", type=int, default=2, help="average pool×pool blocks first (the profiles: 2)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    dataset = load_training_data(resolve_config("default")[0])
    images, labels = dataset.train_images, dataset.train_labels
    chosen = balanced_sample(labels, args.train, seed=0)
    padding = preprocessing_of(dataset).padding
    train_x, train_y = pixels(images[chosen], padding, args.pool), labels[chosen]
    test_x, test_y = pixels(dataset.test_images, padding, args.pool), dataset.test_labels
    k = dataset.num_classes
    result = {"train_images": args.train, "pool": args.pool, "test_images": len(test_y)}
    for name, read in (("pixels", lambda X: X.flatten(1)), ("fourier_magnitudes", spectrum_magnitudes)):
        predicted = knn_predict(read(train_x), train_y, read(test_x), k)
        result[f"knn_{name}_accuracy"] = accuracy(predicted, test_y)
    print(json.dumps(result))
    if args.json is not None:
        atomic_write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
