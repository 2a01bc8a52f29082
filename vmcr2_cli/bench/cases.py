"""The timed steps: each objective alone, and a whole training step with a backbone.

Every step does what ``vmcr2 train`` does per batch (see ``training/trainer.py``):
it groups the batch by class from the CPU labels (``ClassPartition``), calls the
objective's ``step`` — for V-MCR² the Γ/A update of its method and the θ loss, for
every objective the exact ΔR the trainer logs — and back-propagates the loss. The
``mcr2-reference`` variant replaces the objective by ``rate_reduction_reference``
(one d×d Cholesky per class in a Python loop: the cost profile of the original MCR²
code, the paper's baseline). The whole training step is the trainer's own
(``training/step.py``): the backbone's forward at ``--precision`` in the trainer's
memory format (``training/precision.py``: bf16 autocast by default on a GPU and on a CPU
that computes bf16 natively), the objective's step,
``zero_grad``, backward and the optimizer's step. Data loading and augmentation are not
part of any step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from vmcr2_cli.models import build_featurizer
from vmcr2_cli.objectives import (ClassPartition, ObjectiveSettings, StepResult, TrainingObjective, build_objective,
                                  rate_reduction_reference)
from vmcr2_cli.training.networks import on_device
from vmcr2_cli.training.precision import backbone_precision
from vmcr2_cli.training.step import training_step as run_training_step

from .settings import REFERENCE, VMCR2_VARIANTS, BenchSettings
from .workload import latch_on_batch

Step = Callable[[], None]

# The paper's optimizer for MCR² and V-MCR² (§4.1); its cost is the same for every lr.
LEARNING_RATE = 1e-3


class ObjectiveUnderTest:
    """One variant at one class count: its loss function and the parameters it trains (CE's head).

    Args:
        variant: one of ``settings.VARIANTS``.
        settings: the bench settings (shape, ε², dtype).
        classes: k.
        device: where it runs.
        latch_features: features to latch V-MCR²'s Γ and A on (Algorithm 1 starts
            latched), with their CPU labels.
    """

    def __init__(self, variant: str, settings: BenchSettings, classes: int, device: torch.device,
                 latch_features: tuple[Tensor, Tensor], generator: torch.Generator) -> None:
        self.variant = variant
        self.classes = classes
        self.objective: TrainingObjective | None = None
        self.eps2, self.dtype = settings.eps2, settings.torch_dtype
        if variant == REFERENCE:
            return
        method = VMCR2_VARIANTS.get(variant)
        objective_settings = ObjectiveSettings(eps2=settings.eps2, dtype=settings.torch_dtype,
                                               atoms_per_class=settings.atoms_per_class, method=method or "paper")
        self.objective = build_objective("vmcr2" if method else variant, settings.dim, classes,
                                         objective_settings).to(device)
        if method:
            Z, labels = latch_features
            latch_on_batch(self.objective.variational, Z, ClassPartition(labels, classes), generator)

    def step(self, Z: Tensor, partition: ClassPartition, collective=None) -> StepResult:
        """The objective's ``step`` (what the trainer calls); the reference: −ΔR by its per-class loop."""
        if self.objective is None:
            return StepResult(-rate_reduction_reference(Z, partition.labels, self.classes, self.eps2,
                                                        self.dtype).delta_r, {})
        return self.objective.step(Z, partition, collective=collective)

    def parameters(self) -> list[nn.Parameter]:
        return [] if self.objective is None else list(self.objective.parameters())


def objective_step(under_test: ObjectiveUnderTest, Z: Tensor, labels: Tensor) -> Step:
    """Forward and backward of the objective alone on fixed features Z (a fresh leaf each call)."""
    parameters = under_test.parameters()

    def step() -> None:
        features = Z.detach().requires_grad_()
        partition = ClassPartition(labels, under_test.classes)  # per step, from CPU labels, as the trainer does
        loss = under_test.step(features, partition).loss
        for parameter in parameters:
            parameter.grad = None
        loss.backward()

    return step


class Backbone:
    """A featurizer in training mode with its batch of synthetic images, as the trainer runs it."""

    def __init__(self, settings: BenchSettings, device: torch.device, images: Tensor) -> None:
        self.device = device
        precision = backbone_precision(device, settings.precision)
        self.images = images.contiguous(memory_format=torch.channels_last) if precision.channels_last else images
        model = build_featurizer(settings.backbone, in_channels=settings.image_channels,
                                 feature_dim=settings.dim, stem=settings.stem)
        self.model = on_device(model, device, precision).train()
        self.autocast = precision.autocast

    def features(self) -> Tensor:
        """The batch's features (m, d), with a graph, at the trainer's precision."""
        with self.autocast:
            return self.model(self.images)

    @torch.no_grad()
    def sample_features(self) -> Tensor:
        """Features of the batch without a graph, in float32 (for latching)."""
        return self.features().float()

    def optimizer(self, extra: list[nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.SGD(list(self.model.parameters()) + extra, lr=LEARNING_RATE)


def training_step(backbone: Backbone, under_test: ObjectiveUnderTest, labels: Tensor, micro_batch: int = 0) -> Step:
    """Forward, objective, backward and optimizer step (Algorithm 1's lines 4–12 for V-MCR²); with
    ``micro_batch``, the network in chunks of that many images (``training/step.py``)."""
    optimizer = backbone.optimizer(under_test.parameters())

    def step() -> None:
        partition = ClassPartition(labels, under_test.classes)  # per step, from CPU labels, as the trainer does
        run_training_step(backbone.model, under_test, optimizer, backbone.autocast, backbone.images, partition,
                          micro_batch=micro_batch)

    return step


def backbone_step(backbone: Backbone) -> Step:
    """The baseline: the backbone's forward and backward with a trivial loss, and the optimizer step."""
    optimizer = backbone.optimizer([])

    def step() -> None:
        loss = backbone.features().float().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step
