"""ReduNet on Fashion-MNIST, vector form against the shift-invariant form, on the test images as they are
and cyclically translated (the MCR² lecture's invariance experiment; issue 32, item 2).

    python benchmarks/redunet_invariance.py --classes 0 1 --json benchmarks/runs/redunet/invariance-0-1.json

Both networks are constructed (no back-propagation) from ``--per-class`` training images of each
class; the invariant one lifts each image to ``--channels`` channels by random circular filters.
A test image's class is the one whose compression operator leaves the least of it, argmin_j ‖Cʲ z‖
(eq. 14's rule, with the operators of a last layer constructed on the final features): for the
invariant network that residual does not change when the image is translated. Accuracy is measured
on the test images of the chosen classes, and on the same images each translated cyclically by a
random (seeded) offset — over many images, the mean over all translations.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from vmcr2_cli.data import load_dataset
from vmcr2_cli.models.redunet import ReduNetLayer, ReduNetSettings, construct_redunet
from vmcr2_cli.models.redunet_shift import ShiftReduNetLayer, construct_shift_redunet
from vmcr2_cli.runs import atomic_write_json


def normalized(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    return (images.double() / 255 - mean) / std


def translated(images: torch.Tensor, seed: int) -> torch.Tensor:
    """Each image rolled by its own random offset (rows, columns), cyclically."""
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.randint(0, images.shape[-1], (len(images), 2), generator=generator)
    return torch.stack([torch.roll(image, (int(dy), int(dx)), (-2, -1)) for image, (dy, dx) in zip(images, offsets)])


def accuracy(classify, images: torch.Tensor, labels: torch.Tensor, batch: int = 250) -> float:
    predicted = torch.cat([classify(images[start:start + batch]) for start in range(0, len(images), batch)])
    return (predicted == labels).double().mean().item()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--per-class", type=int, default=250, help="construction images of each class")
    parser.add_argument("--test-per-class", type=int, default=500)
    parser.add_argument("--layers", type=int, default=20)
    parser.add_argument("--eta", type=float, default=0.5)
    parser.add_argument("--eps2", type=float, default=1.0, help="ε² of the vector form")
    parser.add_argument("--eps2-invariant", type=float, default=0.01, help="ε² of the invariant form")
    parser.add_argument("--lam", type=float, default=50.0)
    parser.add_argument("--channels", type=int, default=5, help="the invariant form's lifted channels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    dataset = load_dataset("fashion-mnist", data_root=args.data_root, download=False)
    mean, std = dataset.mean[0], dataset.std[0]
    generator = torch.Generator().manual_seed(args.seed)

    def pick(images, labels, count):
        chosen = [(labels == c).nonzero().flatten() for c in args.classes]
        chosen = [members[torch.randperm(len(members), generator=generator)[:count]] for members in chosen]
        index = torch.cat(chosen)
        remapped = torch.cat([torch.full((len(members),), j) for j, members in enumerate(chosen)])
        return normalized(images[index], mean, std), remapped

    X, y = pick(dataset.train_images, dataset.train_labels, args.per_class)
    X_test, y_test = pick(dataset.test_images, dataset.test_labels, args.test_per_class)
    X_moved = translated(X_test, args.seed + 1)
    k = len(args.classes)
    settings = ReduNetSettings(layers=args.layers, eta=args.eta, eps2=args.eps2, lam=args.lam)
    shift_settings = ReduNetSettings(layers=args.layers, eta=args.eta, eps2=args.eps2_invariant, lam=args.lam)
    m, d = len(X), X[0].numel()
    results: dict = {"classes": [dataset.class_names[c] for c in args.classes], "per_class": args.per_class,
                     "test_per_class": args.test_per_class, "layers": args.layers, "eta": args.eta,
                     "eps2": args.eps2, "eps2_invariant": args.eps2_invariant, "lam": args.lam,
                     "channels": args.channels, "seed": args.seed,
                     # η·α: the step against the gradient's scale α = d/(mε²) (C/(mε²) invariant)
                     "eta_alpha": args.eta * d / (m * args.eps2),
                     "eta_alpha_invariant": args.eta * args.channels / (m * args.eps2_invariant)}

    started = time.perf_counter()
    vector, vector_rates = construct_redunet(X, y, k, settings)
    with torch.no_grad():
        final = ReduNetLayer.construct(vector(X), y, k, eta=args.eta, eps2=args.eps2, lam=args.lam)
        classify = lambda batch: final.memberships(vector(batch)).argmax(dim=1)  # noqa: E731
        results["vector"] = {"test": accuracy(classify, X_test, y_test), "translated": accuracy(classify, X_moved, y_test),
                             "delta_r": [rate.delta_r.item() for rate in vector_rates],
                             "seconds": time.perf_counter() - started}
    print(json.dumps({"vector": {key: value for key, value in results["vector"].items() if key != "delta_r"}}),
          flush=True)

    started = time.perf_counter()
    invariant, invariant_rates = construct_shift_redunet(X, y, k, shift_settings, channels=args.channels,
                                                         seed=args.seed)
    with torch.no_grad():
        final_shift = ShiftReduNetLayer.construct(invariant.features(X), y, k, eta=args.eta, eps2=args.eps2_invariant,
                                                  lam=args.lam)
        classify = lambda batch: final_shift.memberships(invariant.features(batch)).argmax(dim=1)  # noqa: E731
        results["invariant"] = {"test": accuracy(classify, X_test, y_test),
                                "translated": accuracy(classify, X_moved, y_test),
                                "delta_r": [rate.delta_r.item() for rate in invariant_rates],
                                "seconds": time.perf_counter() - started}
    print(json.dumps({"invariant": {key: value for key, value in results["invariant"].items() if key != "delta_r"}}),
          flush=True)
    if args.json is not None:
        atomic_write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
