"""Specification on a GPU: the training step never synchronizes with the host.

Skipped without CUDA (the project's CI has none); run with ``pytest -m gpu``.
"""

import pytest
import torch
import torch.nn.functional as F

from vmcr2_cli.objectives import ObjectiveSettings, build_objective, rate_reduction

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def batch(m=400, d=32, k=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(m) % k  # stays on the CPU, as the trainer passes it
    Z = F.normalize(torch.randn(k, d, generator=g)[labels] + torch.randn(m, d, generator=g), dim=1)
    return Z.cuda(), labels


@pytest.mark.parametrize("name", ["mcr2", "vmcr2", "vmcr2-block", "vmcr2-tangent", "ce"])
def test_training_step_with_cpu_labels_never_synchronizes(name):
    Z, labels = batch()
    objective_name, _, method = name.partition("-")
    objective = build_objective(objective_name, 32, 20, ObjectiveSettings(atoms_per_class=2, method=method or "paper")).cuda()
    if objective_name == "vmcr2":
        objective.variational.latch(Z, labels)
    objective.step(Z.clone().requires_grad_(), labels)  # warm-up: allocations, pinned copies
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        result = objective.step(Z.clone().requires_grad_(), labels)
        result.loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_cuda_rate_reduction_equals_the_cpu_result():
    Z, labels = batch()
    on_gpu = rate_reduction(Z, labels, 20)
    on_cpu = rate_reduction(Z.cpu(), labels, 20)
    for got, expected in zip(on_gpu, on_cpu, strict=True):
        torch.testing.assert_close(got.cpu(), expected, rtol=1e-4, atol=1e-4)
