"""Features of a whole image set, computed in batches (eval mode, no augmentation)."""

from __future__ import annotations

import torch
from torch import nn

from vmcr2_cli.data import iterate_eval


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
