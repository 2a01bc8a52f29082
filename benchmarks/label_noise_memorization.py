"""How much of its label noise a run learned (REPRODUCTION.md §0.5): for the training images whose label
was re-drawn to another class, the share that the run's own classifiers put in the noisy class
(memorized) and in the true one (seen through the noise).

    python benchmarks/label_noise_memorization.py RUN… [--json FILE]

The classifiers are the ones the run is judged by, fitted on the labels it trained with (noisy):
eq. 8's nearest subspace (⌊d/k⌋ directions a class, from the training features) and, for CE, its head.
A featurizer that did not learn the noise keeps a relabelled image with its true class, so nearest
subspace puts it there; one that learned it moves the image to its noisy class. The same shares on the
images whose label was kept say how well the classifier fits the clean part. And eq. 1 over the whole
training set with either labelling: features that kept the true partition compress it (R_c lower, ΔR
higher) better than the labels they trained with.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from vmcr2_cli.evaluation.nearest_subspace import default_components, predict_nearest_subspace
from vmcr2_cli.evaluation.statistics import class_statistics
from vmcr2_cli.featurizer import load_featurizer
from vmcr2_cli.objectives import rate_reduction
from vmcr2_cli.runs import atomic_write_json
from vmcr2_cli.training.networks import Networks


def shares(predicted: torch.Tensor, noisy: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    """Of the relabelled images: the share predicted as their noisy and as their true label; of the others,
    the share predicted as their (true) label."""
    relabelled = noisy != clean
    return {"relabelled_as_noisy_label": (predicted == noisy)[relabelled].float().mean().item(),
            "relabelled_as_true_label": (predicted == clean)[relabelled].float().mean().item(),
            "kept_as_their_label": (predicted == clean)[~relabelled].float().mean().item()}


def measure(run: str) -> dict:
    featurizer = load_featurizer(run, device="cpu")
    config = featurizer.config
    dataset = featurizer.dataset()
    noisy, clean = dataset.train_labels, dataset.clean_train_labels
    if clean is None:
        raise SystemExit(f"error: {run} trained without label noise")
    k, d = featurizer.num_classes, featurizer.feature_dim
    train_z = featurizer.features(dataset.train_images)
    bases = class_statistics(train_z, noisy, k, components=default_components(d, k), eps2=config.eps2).bases.float()
    result = {"run": Path(run).name, "objective": config.objective, "label_noise": config.label_noise,
              "relabelled_fraction": (noisy != clean).float().mean().item(),
              "nearest_subspace": shares(predict_nearest_subspace(train_z, bases), noisy, clean)}
    # Eq. 1 on the whole training set, eval mode: which partition do the features hold, the noisy or the true?
    for name, labels in (("noisy", noisy), ("true", clean)):
        rates = rate_reduction(train_z.double(), labels, k, config.eps2, torch.float64)
        result[f"delta_r_{name}_labels"] = rates.delta_r.item()
        result[f"r_c_{name}_labels"] = rates.r_c.item()
    networks = Networks.of_shape(config, featurizer.preprocessing.network_shape, k, torch.device("cpu"))
    networks.load(featurizer.run.load_checkpoint(), run)
    cross_entropy = getattr(networks.objective, "cross_entropy", None)
    if cross_entropy is not None:
        with torch.no_grad():
            result["head"] = shares(cross_entropy.logits(train_z).argmax(1), noisy, clean)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories trained with label_noise > 0")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = [measure(run) for run in args.runs]
    for result in results:
        print(json.dumps(result))
    if args.json:
        atomic_write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
