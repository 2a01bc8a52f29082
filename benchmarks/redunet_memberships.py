"""How sure a constructed ReduNet is of a test image's class at its first layer, and whether its last layer
still says the same: the largest membership π̂_j (eq. 14) of each test image at layer 1, and how often
the network's head (π̂ of the last features) picks the class that layer 1's π̂ picked (REDUNET.md §4).

    python benchmarks/redunet_memberships.py runs/…-redunet
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from vmcr2_cli.featurizer import load_featurizer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a run directory of model = redunet or redunet-shift (constructed)")
    args = parser.parse_args()
    featurizer = load_featurizer(args.run, device="cpu")
    model = featurizer.model
    images = featurizer.dataset().test_images
    first, last = [], []
    with torch.no_grad():
        for start in range(0, len(images), 1000):
            batch = featurizer.preprocess(images[start:start + 1000])
            first.append(model.layers[0].memberships(model.input_features(batch)))
            last.append(model.classify(model(batch)))
    memberships, classes = torch.cat(first), torch.cat(last)
    largest = memberships.max(1).values
    print(json.dumps({"run": featurizer.run.name, "test_images": len(images),
                      "layer_1_largest_membership_mean": largest.mean().item(),
                      "layer_1_share_above_0.99": (largest > 0.99).float().mean().item(),
                      "head_agrees_with_layer_1": (classes == memberships.argmax(1)).float().mean().item()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
