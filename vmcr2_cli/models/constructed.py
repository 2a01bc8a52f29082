"""A ReduNet as ``vmcr2 train`` builds one: the network of a configuration, empty until its layers are
constructed (training/construction.py) or loaded from a checkpoint."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vmcr2_cli.errors import BadInput
from vmcr2_cli.models.redunet import ConstructedNetwork, ReduNet, ReduNetSettings
from vmcr2_cli.models.redunet_shift import Lifting, ShiftReduNet, signal_layout


@dataclass(frozen=True)
class Construction:
    """What a ReduNet is made with: its settings and the precision its layers compute in."""

    settings: ReduNetSettings
    dtype: torch.dtype = torch.float64


def redunet(invariant: bool, in_channels: int, feature_dim: int, image_size: tuple[int, int],
            construction: Construction) -> ConstructedNetwork:
    """An empty ReduNet for (in_channels, *image_size) images; its lifting (invariant form) drawn from the
    global generator. BadInput unless ``feature_dim`` is the size of its features."""
    settings = construction.settings
    pooled = tuple(side // settings.pool for side in image_size)
    signal_channels, shape = signal_layout(settings.shifts, in_channels, pooled)
    if invariant:
        size = settings.channels * math.prod(shape)
        how = f"{settings.channels} lifted channels × {'×'.join(map(str, shape))} ({settings.shifts})"
    else:
        size, how = in_channels * pooled[0] * pooled[1], f"{in_channels}×{pooled[0]}×{pooled[1]}"
    if min(pooled) < 1:
        raise BadInput(f"redunet_pool = {settings.pool} exceeds the {image_size[0]}×{image_size[1]} images")
    if feature_dim != size:
        name = "redunet-shift" if invariant else "redunet"
        raise BadInput(f"feature_dim = {feature_dim} does not fit model {name!r}: its features are the "
                       f"{'pooled ' if settings.pool > 1 else ''}input's {how} = {size} numbers; "
                       f"set feature_dim = {size}")
    if not invariant:
        return ReduNet(settings, construction.dtype)
    seed = int(torch.randint(0, 2**31 - 1, ()).item())  # from the generator the run's seed set
    lifting = Lifting(signal_channels, settings.channels, shape, kernel=settings.kernel, seed=seed)
    return ShiftReduNet(settings, lifting, construction.dtype)
