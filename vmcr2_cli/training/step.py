"""One training step (Algorithm 1, lines 4–12): the one the trainer runs and the bench times."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Callable

import torch
from torch import nn

from vmcr2_cli.objectives import ClassPartition, Collective, StepResult


def training_step(model: nn.Module, objective, optimizer: torch.optim.Optimizer, autocast: AbstractContextManager,
                  images: torch.Tensor, partition: ClassPartition, collective: Collective | None = None,
                  observe: Callable[[torch.Tensor], None] | None = None) -> StepResult:
    """Features of ``images`` under ``autocast``, the objective's step, backward and the optimizer's step.

    ``objective``: anything with ``step(Z, partition, collective=…) -> StepResult`` (a
    ``TrainingObjective``). ``partition``: the (global) batch's classes, from CPU labels.
    ``observe``: called with the batch's float32 features (this process's rows) before θ moves.
    """
    with autocast:
        Z = model(images)  # Algorithm 1, line 4
    Z = Z.float()  # the objectives take float32 features whatever the backbone computed in
    if observe is not None:
        observe(Z.detach())
    result = objective.step(Z, partition, collective=collective)  # lines 5–11
    optimizer.zero_grad(set_to_none=True)
    result.loss.backward()  # under DDP the θ-gradients are averaged over ranks here
    optimizer.step()  # line 12: θ ← θ − ν_θ ∇_θ (μ/2m) M
    return result
