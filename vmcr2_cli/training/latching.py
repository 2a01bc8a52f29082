"""Latching (Algorithm 2) over a whole dataset, with the before/after report."""

from __future__ import annotations

import torch

from vmcr2_cli.objectives import VariationalMCR2, class_second_moments, rate_reduction


@torch.no_grad()
def dataset_class_moments(features: torch.Tensor, labels: torch.Tensor, num_classes: int,
                          chunk: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class second moments Σ_{i∈j} z_i z_iᵀ (k, d, d) and class counts (k,), summed in chunks."""
    moments = None
    for start in range(0, features.shape[0], chunk):
        part = class_second_moments(features[start:start + chunk], labels[start:start + chunk], num_classes)
        moments = part if moments is None else moments + part
    counts = torch.bincount(labels, minlength=num_classes)
    return moments, counts


def probe_batch(features: torch.Tensor, labels: torch.Tensor, batch_size: int,
                seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random batch of the dataset's features: the scale at which Γ and A live."""
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(features.shape[0], generator=generator)[:batch_size].to(features.device)
    return features[index], labels[index]


@torch.no_grad()
def latch_over_dataset(variational: VariationalMCR2, features: torch.Tensor, labels: torch.Tensor,
                       num_classes: int, batch_size: int, seed: int = 0) -> dict[str, float]:
    """Set Γ, A from the dataset's class moments rescaled to a batch of ``batch_size``.

    Returns the variational terms on a probe batch before and after, and the exact ΔR
    of that batch, which the variational ΔR^v approximates.
    """
    probe_z, probe_y = probe_batch(features, labels, batch_size, seed)
    before = variational.terms(probe_z, probe_y)
    moments, counts = dataset_class_moments(features, labels, num_classes)
    variational.latch_from_moments(moments, counts, batch_size=min(batch_size, features.shape[0]))
    after = variational.terms(probe_z, probe_y)
    exact = rate_reduction(probe_z, probe_y, num_classes=num_classes, eps2=variational.eps2)
    report = {"delta_r": exact.delta_r.item(), "r": exact.r.item(), "r_c": exact.r_c.item()}
    for when, terms in (("before", before), ("after", after)):
        for key in ("r_v", "r_c_v", "m_term", "delta_r_v"):
            report[f"{key}_{when}"] = getattr(terms, key).item()
    return report
