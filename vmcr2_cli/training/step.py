"""One training step (Algorithm 1, lines 4–12): the one the trainer runs and the bench times."""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch
from torch import nn

from vmcr2_cli.objectives import ClassPartition, Collective, StepResult


def training_step(model: nn.Module, objective, optimizer: torch.optim.Optimizer, autocast: AbstractContextManager,
                  images: torch.Tensor, partition: ClassPartition, collective: Collective | None = None) -> StepResult:
    """Features of ``images`` under ``autocast``, the objective's step, backward and the optimizer's step.

    ``objective``: anything with ``step(Z, partition, collective=…) -> StepResult`` (a
    ``TrainingObjective``). ``partition``: the (global) batch's classes, from CPU labels.
    """
    with autocast:
        Z = model(images)  # Algorithm 1, line 4
    result = objective.step(Z, partition, collective=collective)  # lines 5–11
    optimizer.zero_grad(set_to_none=True)
    result.loss.backward()  # under DDP the θ-gradients are averaged over ranks here
    optimizer.step()  # line 12: θ ← θ − ν_θ ∇_θ (μ/2m) M
    return result
