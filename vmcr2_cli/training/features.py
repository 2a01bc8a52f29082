"""Features of a whole image set, computed in batches: in eval mode for classification, and
in train mode, as the training steps see them, for latching."""

from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager
from itertools import islice
from typing import Iterator

import torch
from torch import nn

from vmcr2_cli.data import DeviceLoader, iterate_eval
from vmcr2_cli.data.seeding import step_seed


@torch.no_grad()
def extract_features(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                     mean: tuple[float, ...], std: tuple[float, ...], device: torch.device,
                     batch_size: int, channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(Z, labels) on ``device``: Z is (N, d) float32 with unit rows, in the images' order.

    BatchNorm uses its running statistics and dropout is off; the model's mode is restored.
    """
    was_training = model.training
    model.eval()
    try:
        chunks = [model(batch.images).float() for batch in iterate_eval(
            images, labels, batch_size, device, mean=mean, std=std, channels_last=channels_last)]
    finally:
        model.train(was_training)
    return torch.cat(chunks), labels.to(device)


@contextmanager
def frozen_batchnorm_statistics(model: torch.nn.Module) -> Iterator[None]:
    """Train mode whose BatchNorm layers normalize by batch statistics without updating running ones."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in norms]
    was_training = model.training
    model.train()
    for norm in norms:
        norm.momentum = 0.0  # running = (1 − 0)·running + 0·batch
    try:
        yield
    finally:
        for norm, (momentum, tracked) in zip(norms, saved):
            norm.momentum = momentum
            norm.num_batches_tracked.copy_(tracked)
        model.train(was_training)


@torch.no_grad()
def training_mode_features(model: nn.Module, loader: DeviceLoader, epoch: int, *, seed: int, rank: int = 0,
                           autocast: AbstractContextManager, steps: int | None = None,
                           micro_batch: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of the training set as the training steps see them (Algorithm 2's Z_θ); with
    ``steps``, of the first ``steps`` batches of ``epoch``'s order only (a seeded random sample);
    with ``micro_batch``, each batch in chunks of that many rows, as a step with chunks computes it.

    M compares ΓDiag(A_j)Γᵀ with the second moments of *training* batches, so Γ and A
    are latched on the same features: train mode (dropout on), ``epoch``'s order and
    augmentation, BatchNorm on batch statistics. Eval-mode features differ a lot
    (with the paper's dropout, R of a batch is ~3× smaller) and latching on them
    makes θ chase a target its batches cannot match, collapsing the features.
    BatchNorm's running statistics are left untouched.
    """
    chunks, labels = [], []
    with frozen_batchnorm_statistics(model):
        for step, batch in islice(loader.epoch(epoch), steps):
            torch.manual_seed(step_seed(seed, -1 - step, rank))  # a dropout stream of its own
            for rows in batch.images.split(micro_batch or batch.images.shape[0]):
                with autocast:
                    chunks.append(model(rows).float())
            labels.append(batch.labels)
    return torch.cat(chunks), torch.cat(labels)
