"""The invariance experiment on runs that ``vmcr2 train`` constructed: each run's nearest-subspace and kNN
accuracy on the test images and on the same images cyclically translated (rolled, each by its own
seeded random offset), as the MCR² lecture's tables (vector against invariant ReduNet).

    python benchmarks/redunet_shifted.py runs/…-redunet runs/…-redunet-shift \
        --json benchmarks/runs/redunet/shifted.json
    python benchmarks/redunet_shifted.py runs/…-redunet runs/…-redunet-polar --move rotate --angles 48

With ``--move rotate``, images are instead turned about their centre by random multiples of 360°/T
(bilinear: only quarter turns are exact shifts of a polar run's signal). Images are rolled at the
network's input size (Fashion-MNIST: zero-padded to 32×32), by multiples of
the run's ``redunet_pool`` (so that a roll of the image is a roll of the pooled signal the layers see;
``redunet_shifts = "rows"`` runs: horizontal rolls only). Classification as ``vmcr2 eval``'s: eq. 8's
nearest subspace (⌊d/k⌋ directions) and kNN (k = 10, cosine), fitted on the run's training features,
and the network's head, the lecture's rule: argmax_j π̂_j(z) = argmin_j ‖Cʲ z‖ (eq. 14) with the
operators of the construction set's last features (a ReduNet trained on by back-propagation, ``init_from``: its
CE head, a linear map of the features, not invariant). The invariant form's features of a rolled image are
the rolled features (equivariant): nearest subspace and kNN, which compare them with unrolled training
features, are not invariant; its head is (‖Cʲ z‖ does not change when z is rolled).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from vmcr2_cli.evaluation.knn import knn_predict
from vmcr2_cli.evaluation.nearest_subspace import (accuracy, default_components, head_accuracy,
                                                   predict_nearest_subspace)
from vmcr2_cli.evaluation.statistics import class_statistics
from vmcr2_cli.featurizer import load_featurizer
from vmcr2_cli.runs import atomic_write_json
from vmcr2_cli.training.networks import Networks


def rotated(images: torch.Tensor, angles: int, seed: int) -> torch.Tensor:
    """Each image turned about its centre by its own random multiple of 360°/``angles`` (bilinear)."""
    from torchvision.transforms.functional import InterpolationMode, rotate

    generator = torch.Generator().manual_seed(seed)
    turns = torch.randint(angles, (len(images),), generator=generator).tolist()
    return torch.stack([rotate(image, 360.0 * turn / angles, InterpolationMode.BILINEAR)
                        for image, turn in zip(images, turns)])


def rolled(images: torch.Tensor, step: int, horizontal_only: bool, seed: int) -> torch.Tensor:
    """Each image rolled cyclically by its own random offset, a multiple of ``step`` on each axis."""
    generator = torch.Generator().manual_seed(seed)
    height, width = images.shape[-2:]
    moved = torch.empty_like(images)
    for i, image in enumerate(images):
        down = 0 if horizontal_only else step * int(torch.randint(height // step, (), generator=generator))
        right = step * int(torch.randint(width // step, (), generator=generator))
        moved[i] = torch.roll(image, (down, right), (-2, -1))
    return moved


def measure(run: str, seed: int, move: str, angles: int) -> dict:
    featurizer = load_featurizer(run, device="cpu")
    config = featurizer.config
    # The run's own classifier: a constructed network's π̂, or the CE head of one trained on (init_from).
    networks = Networks.of_shape(config, featurizer.preprocessing.network_shape, featurizer.num_classes,
                                 torch.device("cpu"))
    networks.load(featurizer.run.load_checkpoint(), run)
    dataset = featurizer.dataset()
    k, d = featurizer.num_classes, featurizer.feature_dim
    train_images, train_labels = dataset.reference()
    test_images = dataset.test_images
    if tuple(test_images.shape[1:]) != featurizer.preprocessing.network_shape:  # rolled at the network's size
        test_images = F.pad(test_images, featurizer.preprocessing.padding)
    test_labels = dataset.test_labels
    moved = (rotated(test_images, angles, seed) if move == "rotate"
             else rolled(test_images, config.redunet_pool, config.redunet_shifts == "rows", seed))
    train_z = featurizer.features(train_images)
    p = default_components(d, k)
    bases = class_statistics(train_z, train_labels, k, components=p, eps2=config.eps2).bases.float()
    result = {"run": Path(run).name, "model": config.model, "layers": len(featurizer.model.layers), "feature_dim": d,
              "construction_images": config.redunet_samples, "components": p}
    result["moved"] = move if move == "roll" else f"rotate by multiples of 360°/{angles}"
    for name, images in (("test", test_images), ("moved", moved)):
        z = featurizer.features(images)
        result[f"{name}_nearest_subspace_accuracy"] = accuracy(predict_nearest_subspace(z, bases), test_labels)
        result[f"{name}_knn_accuracy"] = accuracy(knn_predict(train_z, train_labels, z, k), test_labels)
        result[f"{name}_head_accuracy"] = head_accuracy(networks.model, networks.objective, z, test_labels)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories of model = redunet or redunet-shift")
    parser.add_argument("--seed", type=int, default=0, help="seed of the offsets")
    parser.add_argument("--move", choices=("roll", "rotate"), default="roll",
                        help="roll (cyclic translations) or rotate the test images")
    parser.add_argument("--angles", type=int, default=48, help="--move rotate: turns by multiples of 360°/ANGLES "
                        "(a polar run's T: its rotations by them are shifts of its signal)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = []
    for run in args.runs:
        results.append(measure(run, args.seed, args.move, args.angles))
        print(json.dumps(results[-1]), flush=True)
    if args.json is not None:
        atomic_write_json(args.json, {"seed": args.seed, "runs": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
