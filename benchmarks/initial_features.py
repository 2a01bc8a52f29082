"""The floor of any learned featurizer: how well a profile's *randomly initialized* network's features
classify and cluster, by the measures ``vmcr2 eval --methods …`` applies to a trained run.

The network is built exactly as ``vmcr2 train`` builds it (the profile's architecture, width, d
and seed), never trained; its eval-mode features of the training and test sets are scored by
nearest subspace, kNN, the linear probe, k-means and clustering by compression.

Usage (the floor rows of benchmarks/SELF_SUPERVISED.md):
    python benchmarks/initial_features.py --profile fashion-mnist-ssl [--objective mcr2-ssl]
    python benchmarks/initial_features.py --profile default --methods nearsub,knn,probe
"""

from __future__ import annotations

import argparse
import json

from vmcr2_cli.config import parse_override, resolve_config
from vmcr2_cli.evaluation.classical import check_available, parse_methods
from vmcr2_cli.evaluation.evaluate import method_scores
from vmcr2_cli.evaluation.nearest_subspace import accuracy, default_components
from vmcr2_cli.evaluation.statistics import nearest_subspace_predictions
from vmcr2_cli.training.networks import Networks
from vmcr2_cli.training.setup import load_training_data, resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="fashion-mnist-ssl")
    parser.add_argument("--objective", default=None, help="the profile's objective unless given (its ε² scores RRC)")
    parser.add_argument("--methods", default="nearsub,knn,probe,kmeans,rrc")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="as vmcr2 train --set")
    args = parser.parse_args()
    config, _ = resolve_config(args.profile, args.objective, dict(parse_override(text) for text in args.set))
    methods = parse_methods(args.methods)
    check_available(methods)
    dataset = load_training_data(config)
    networks = Networks.build(config, dataset, resolve_device(config.device))
    k = dataset.num_classes
    train_z, train_y = networks.evaluation_features(dataset.train_images, dataset.train_labels, dataset,
                                                    config.batch_size)
    test_z, test_y = networks.evaluation_features(dataset.test_images, dataset.test_labels, dataset,
                                                  config.batch_size)
    components = default_components(config.feature_dim, k)
    _, predicted = nearest_subspace_predictions(train_z, train_y, test_z, k, components=components, eps2=config.eps2)
    results = {"profile": args.profile, "objective": config.objective, "feature_dim": config.feature_dim,
               "seed": config.seed, "nearest_subspace_accuracy": accuracy(predicted, test_y)}
    scores = method_scores(train_z, train_y, test_z, test_y, k, methods, eps2=config.eps2, seed=config.seed)
    results.update({key: value for key, value in scores.items() if value is not None})
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
