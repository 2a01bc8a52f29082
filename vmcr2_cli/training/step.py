"""One training step (Algorithm 1, lines 4–12): the one the trainer runs and the bench times.

A step with ``micro_batch`` (gradient caching): the rate objectives are not sums over
samples — a batch's ΔR is not the sum of its chunks' — so accumulating the chunks' own
losses would optimize another objective. Instead the network computes the batch's
features in chunks without a graph (pass 1); the objective, its Γ/A step and ∂loss/∂Z
are computed on the whole batch; then each chunk is computed again with its graph and
back-propagates its rows of ∂loss/∂Z (pass 2). By the chain rule the θ-gradients are the
whole batch's (up to the order of float sums), for one extra forward pass, and no more
than one chunk's graph is ever held. Both passes of a chunk draw the same random numbers
(dropout): each chunk's generator state is kept in pass 1 and restored in pass 2.

BatchNorm normalizes each chunk by its own statistics (as each process of a DDP run
without SyncBatchNorm does with its share), so for BatchNorm networks the step is the
one of those smaller batches, not the whole batch's; pass 1 leaves the running
statistics alone, so that each chunk updates them once.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from typing import Callable

import torch
from torch import nn

from vmcr2_cli.objectives import ClassPartition, Collective, StepResult
from vmcr2_cli.training.features import frozen_batchnorm_statistics

RandomState = tuple[torch.Tensor, torch.Tensor | None]  # the CPU generator's state, the device's


def training_step(model: nn.Module, objective, optimizer: torch.optim.Optimizer, autocast: AbstractContextManager,
                  images: torch.Tensor, partition: ClassPartition, collective: Collective | None = None,
                  observe: Callable[[torch.Tensor], None] | None = None, micro_batch: int = 0) -> StepResult:
    """Features of ``images`` under ``autocast``, the objective's step, backward and the optimizer's step.

    ``objective``: anything with ``step(Z, partition, collective=…) -> StepResult`` (a
    ``TrainingObjective``). ``partition``: the (global) batch's classes, from CPU labels.
    ``observe``: called with the batch's float32 features (this process's rows) before θ moves.
    ``micro_batch``: rows the network computes at once (0: all); see the module docstring.
    """
    optimizer.zero_grad(set_to_none=True)  # before the forward: last step's gradients are not held through it
    result = step_gradients(model, objective, autocast, images, partition, collective, observe, micro_batch)
    optimizer.step()  # line 12: θ ← θ − ν_θ ∇_θ (μ/2m) M
    return result


def step_gradients(model: nn.Module, objective, autocast: AbstractContextManager, images: torch.Tensor,
                   partition: ClassPartition, collective: Collective | None = None,
                   observe: Callable[[torch.Tensor], None] | None = None, micro_batch: int = 0) -> StepResult:
    """Lines 4–11: the objective's step on the batch's features and its gradients added to ``.grad``
    (θ's and the objective's own parameters'); under DDP the θ-gradients are averaged over ranks."""
    chunked = 0 < micro_batch < images.shape[0]
    if chunked:
        Z, states = features_without_graph(model, images, micro_batch, autocast)  # line 4, pass 1
        Z.requires_grad_(True)
    else:
        with autocast:
            Z = model(images)  # Algorithm 1, line 4
        Z = Z.float()  # the objectives take float32 features whatever the backbone computed in
    if observe is not None:
        observe(Z.detach())
    result = objective.step(Z, partition, collective=collective)  # lines 5–11
    result.loss.backward()
    if chunked:
        backward_by_chunks(model, images, Z.grad, micro_batch, autocast, states)  # pass 2
    return result


def features_without_graph(model: nn.Module, images: torch.Tensor, micro_batch: int,
                           autocast: AbstractContextManager) -> tuple[torch.Tensor, list[RandomState]]:
    """Pass 1: the float32 features of ``images`` in chunks of ``micro_batch``, no graph kept, and the
    random state each chunk started from. DDP's own module runs it: a pass without a graph needs none
    of DDP's hooks."""
    network = getattr(model, "module", model)
    features, states = [], []
    with torch.no_grad(), frozen_batchnorm_statistics(network):
        for chunk in images.split(micro_batch):
            states.append(_random_state(chunk.device))
            with autocast:
                features.append(network(chunk).float())
    return torch.cat(features), states


def backward_by_chunks(model: nn.Module, images: torch.Tensor, grad_Z: torch.Tensor, micro_batch: int,
                       autocast: AbstractContextManager, states: list[RandomState]) -> None:
    """Pass 2: each chunk again, with its graph and pass 1's random state, back-propagating its rows of
    ∂loss/∂Z. Under DDP the gradients are reduced once, at the last chunk (the others under ``no_sync``)."""
    chunks = list(zip(images.split(micro_batch), grad_Z.split(micro_batch), states))
    accumulate = getattr(model, "no_sync", contextlib.nullcontext)
    for index, (chunk, grad, state) in enumerate(chunks):
        _set_random_state(state, chunk.device)
        with contextlib.nullcontext() if index == len(chunks) - 1 else accumulate():
            with autocast:
                z = model(chunk)
            z.float().backward(grad)


def fitting_micro_batch(attempt: Callable[[int], None], rows: int, micro_batch: int = 0) -> int | None:
    """The largest micro_batch, halving from the one that ran out of memory (``micro_batch``, 0: all
    ``rows`` at once), with which ``attempt(micro_batch)`` — a step's gradients — runs without running out
    of device memory; None when not even one row at a time fits. Measured, so every attempt computes."""
    size = (micro_batch or rows) // 2
    while size >= 1:
        try:
            attempt(size)
            return size
        except torch.OutOfMemoryError:
            size //= 2
    return None


def _random_state(device: torch.device) -> RandomState:
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _set_random_state(state: RandomState, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)
