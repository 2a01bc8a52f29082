"""Label noise as in the MCR² paper's robustness experiments."""

from __future__ import annotations

import torch

from vmcr2_cli.data.seeding import cpu_generator


def apply_label_noise(labels: torch.Tensor, fraction: float, num_classes: int, seed: int = 0) -> torch.Tensor:
    """A copy of ``labels`` (int64, (N,)) in which round(fraction·N) entries, chosen at random
    without replacement, are re-drawn uniformly over the ``num_classes`` classes.

    As in the paper, a re-drawn label may equal the original, so the fraction of labels
    that actually change is about fraction·(1 − 1/k). Depends only on the arguments.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"label noise must be a fraction in [0, 1], got {fraction}")
    noisy = labels.clone()
    count = round(fraction * labels.numel())
    if count == 0:
        return noisy
    rng = cpu_generator(seed, "label-noise")
    chosen = torch.randperm(labels.numel(), generator=rng)[:count]
    noisy[chosen] = torch.randint(num_classes, (count,), generator=rng, dtype=labels.dtype)
    return noisy
