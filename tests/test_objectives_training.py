"""Specification of the trainer's interface: build_objective and step(Z, labels)."""

import copy

import pytest
import torch
import torch.nn.functional as F

from vmcr2_cli.objectives import (
    ObjectiveSettings,
    OBJECTIVES,
    ClassPartition,
    StepResult,
    TrainingObjective,
    build_objective,
    rate_reduction,
)


def batch(m=30, d=6, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(m) % k
    centres = torch.randn(k, d, generator=g)
    return F.normalize(centres[labels] + 0.5 * torch.randn(m, d, generator=g), dim=1), labels


def make(name):
    return build_objective(name, feature_dim=6, num_classes=3, settings=ObjectiveSettings(atoms_per_class=3))


def test_build_objective_knows_every_objective():
    assert set(OBJECTIVES) == {"mcr2", "vmcr2", "ce", "mcr2-ssl", "tcr"}
    for name in OBJECTIVES:
        objective = make(name)
        assert isinstance(objective, TrainingObjective) and objective.name == name


@pytest.mark.parametrize("name", ["mcr2", "vmcr2", "ce"])
def test_step_returns_a_loss_to_minimize_and_detached_scalar_metrics(name):
    objective = make(name)
    Z, labels = batch()
    Z.requires_grad_()
    result = objective.step(Z, labels)
    assert isinstance(result, StepResult)
    assert result.loss.shape == () and result.loss.requires_grad
    assert tuple(result.metrics) == objective.metric_names
    assert all(value.shape == () and not value.requires_grad for value in result.metrics.values())
    result.loss.backward()
    assert torch.isfinite(Z.grad).all() and Z.grad.abs().sum() > 0


def test_mcr2_loss_is_minus_the_exact_rate_reduction():
    Z, labels = batch()
    result = make("mcr2").step(Z, labels)
    rr = rate_reduction(Z, labels, 3)
    torch.testing.assert_close(result.loss, -rr.delta_r)
    torch.testing.assert_close(result.metrics["delta_r"], rr.delta_r)


def test_vmcr2_step_is_a_proximal_step_then_the_theta_loss():
    objective = make("vmcr2")
    Z, labels = batch()
    objective.variational.latch(Z, labels)
    twin = copy.deepcopy(objective.variational)
    result = objective.step(Z, labels)
    terms = twin.proximal_step(Z, labels)
    torch.testing.assert_close(result.loss, twin.theta_loss(Z, labels))
    torch.testing.assert_close(objective.variational.gamma, twin.gamma)
    torch.testing.assert_close(result.metrics["m_term"], terms.m_term)
    torch.testing.assert_close(result.metrics["r"], rate_reduction(Z, labels, 3).r)


def test_vmcr2_keeps_gamma_and_A_as_buffers_in_its_state_dict():
    objective = make("vmcr2")
    assert list(objective.parameters()) == []
    assert {"variational.gamma", "variational.A"} <= set(objective.state_dict())


def test_ce_trains_its_linear_head():
    objective = make("ce")
    head = objective.cross_entropy.head
    assert (head.in_features, head.out_features) == (6, 3)
    assert {id(p) for p in objective.parameters()} == {id(head.weight), id(head.bias)}


def test_ce_accuracy_is_the_fraction_of_correct_head_predictions():
    objective = make("ce")
    Z, labels = batch()
    accuracy = objective.step(Z, labels).metrics["accuracy"]
    predictions = objective.cross_entropy.logits(Z).argmax(1)
    assert accuracy.item() == pytest.approx((predictions == labels).float().mean().item())


def test_step_accepts_a_prebuilt_partition():
    objective = make("vmcr2")
    Z, labels = batch()
    objective.step(Z, ClassPartition(labels, 3))


def test_each_vmcr2_method_is_one_entry_that_the_objective_config_and_bench_read():
    from vmcr2_cli.bench.settings import VMCR2_VARIANTS
    from vmcr2_cli.config import FIELDS
    from vmcr2_cli.objective_registry import VMCR2_METHOD_ENTRIES, methods_with_key
    from vmcr2_cli.objectives.training_objective import VMCR2Objective

    for name, method in VMCR2_METHOD_ENTRIES.items():
        assert callable(getattr(VMCR2Objective, method.step))
        assert VMCR2_VARIANTS[method.bench] == name
        for key in method.keys:  # a key of this method's applies to exactly the methods that list it
            assert FIELDS[key].metadata["applies"] == ("vmcr2_method", methods_with_key(key))
    assert methods_with_key("track_rate") == ("tangent", "tangent-push")
    assert methods_with_key("mu") == ("paper", "block", "tangent-push")
    assert methods_with_key("nu_gamma") == ("paper", "block")  # tangent-push moves A alone
