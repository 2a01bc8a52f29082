"""The featurizer's optimizer, and what is set from the step's number: the lr and V-MCR²'s μ."""

from __future__ import annotations

from typing import Any, Iterable

import math

import torch

from vmcr2_cli.config import TrainConfig
from vmcr2_cli.metric_keys import CONTINUATION_KEYS


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


def mu_at(step: int, total_steps: int, mu: float, mu_final: float) -> float:
    """V-MCR²'s μ at training step ``step`` (0-based) of ``total_steps``.

    ``mu_final`` 0: ``mu`` throughout (Algorithm 1 as written). Else a μ continuation: μ grows
    geometrically from ``mu`` at the first step to ``mu_final`` at the last (and stays there past
    it), so that Γ, A start free to move (small μ learns fast, REPRODUCTION.md §1) and end held to
    the features, as in the μ → ∞ limit the tangent method trains by.
    """
    if not mu_final:
        return mu
    progress = min(step / max(1, total_steps - 1), 1.0)
    return mu * (mu_final / mu) ** progress


class StepSchedule:
    """Sets the optimizer's lr — and, in a μ continuation, V-MCR²'s μ — before each step from the
    step's number alone: no state of its own, so a run resumed at any step continues both exactly
    (and a resume that changes ``epochs`` stretches them from there)."""

    def __init__(self, optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int,
                 variational: Any = None) -> None:
        self.optimizer, self.config, self.steps_per_epoch = optimizer, config, steps_per_epoch
        # The VariationalMCR2 whose μ the continuation sets; None keeps μ as built.
        self.variational = variational if config.mu_final else None

    def set(self, step: int) -> None:
        config = self.config
        lr = config.lr * lr_factor(step, self.steps_per_epoch, config.epochs, config.lr_schedule,
                                   config.warmup_epochs)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.variational is not None:
            self.variational.mu = self.mu(step)

    def mu(self, step: int) -> float:
        config = self.config
        return mu_at(step, config.epochs * self.steps_per_epoch, config.mu, config.mu_final)

    def logged(self, step: int) -> dict[str, float]:
        """What a metrics line records of step ``step``'s schedule beyond its lr: μ, in a continuation."""
        return {} if self.variational is None else dict(zip(CONTINUATION_KEYS, (self.mu(step),), strict=True))
