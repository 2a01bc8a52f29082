"""Latching's class moments over a dataset: summed chunk by chunk, equal to the whole sum."""

import torch
import torch.nn.functional as F

from vmcr2_cli.training.latching import dataset_class_moments


def test_dataset_moments_are_the_sums_over_chunks():
    g = torch.Generator().manual_seed(0)
    features = F.normalize(torch.randn(1000, 8, generator=g), dim=1)
    labels = torch.randint(0, 3, (1000,), generator=g)
    moments, counts = dataset_class_moments(features, labels, 3, chunk=128)
    assert moments.dtype == features.dtype
    whole = features.double()
    for j in range(3):
        rows = whole[labels == j]
        assert torch.allclose(moments[j].double(), rows.T @ rows, rtol=1e-5, atol=1e-5)
    assert counts.tolist() == torch.bincount(labels, minlength=3).tolist()
