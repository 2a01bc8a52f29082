"""The featurizer's optimizer and its learning rate at each step."""

from __future__ import annotations

from typing import Iterable

import math

import torch

from vmcr2_cli.config import TrainConfig


def build_optimizer(params: Iterable[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def lr_factor(step: int, steps_per_epoch: int, epochs: int, schedule: str, warmup_epochs: float = 0.0) -> float:
    """Multiplier of the base lr at training step ``step`` (0-based, counted over the whole run).

    A linear warmup over the first ``warmup_epochs`` epochs' steps, then the schedule: ``step`` is
    the paper's (×0.1 once half and again once three quarters of the epochs are done), ``cosine``
    falls from 1 after the warmup to 0 after the last step.
    """
    warmup = round(warmup_epochs * steps_per_epoch)
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "step":
        epoch = step // steps_per_epoch
        return 0.1 ** ((epoch >= epochs // 2) + (epoch >= (3 * epochs) // 4))
    if schedule == "cosine":
        progress = (step - warmup) / max(1, epochs * steps_per_epoch - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return 1.0


class LearningRate:
    """Sets the optimizer's lr before each step from the step's number alone: no state of its own,
    so a run resumed at any step continues the schedule exactly (and a resume that changes
    ``epochs`` stretches it from there)."""

    def __init__(self, optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int) -> None:
        self.optimizer, self.config, self.steps_per_epoch = optimizer, config, steps_per_epoch

    def set(self, step: int) -> float:
        config = self.config
        lr = config.lr * lr_factor(step, self.steps_per_epoch, config.epochs, config.lr_schedule,
                                   config.warmup_epochs)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr
