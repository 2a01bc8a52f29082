"""The pieces every featurizer ends with."""

import torch
from torch import nn
from torch.nn import functional as F


class Normalize(nn.Module):
    """Projects features onto the unit sphere (the constraint Z ∈ S of eq. 1).

    Done in float32 even under autocast: the objectives need unit rows to float32
    accuracy, and a bf16 norm is off by ~1e-2.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x.float(), dim=1)


def reshaping_head(in_features: int, feature_dim: int) -> nn.Sequential:
    """Architecture 2 of the appendix: the layers that replace ResNet18's fc."""
    return nn.Sequential(
        nn.Linear(in_features, 512, bias=False),
        nn.BatchNorm1d(512),
        nn.ReLU(inplace=True),
        nn.Linear(512, feature_dim, bias=True),
        Normalize(),
    )
