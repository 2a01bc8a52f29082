"""The featurizer's optimizer and learning-rate schedule from the configuration."""

from __future__ import annotations

from typing import Iterable

import math

import torch

from vmcr2_cli.config import TrainConfig


def build_optimizer(params: Iterable[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def lr_factor(epoch: int, epochs: int, schedule: str) -> float:
    """Multiplier of the base lr during ``epoch`` (0-based)."""
    if schedule == "step":  # the appendix recipe: ×0.1 at 1/2 and again at 3/4 of training
        return 0.1 ** ((epoch >= epochs // 2) + (epoch >= (3 * epochs) // 4))
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    return 1.0


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Stepped once per epoch."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda epoch: lr_factor(epoch, config.epochs, config.lr_schedule))
