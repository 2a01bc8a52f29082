"""The interface the trainer uses for every objective: ``step(Z, labels) -> StepResult``.

Each objective's ``step`` returns the loss to MINIMIZE w.r.t. the featurizer's θ and
a dict of 0-dim detached metric tensors that stay on the device (no host sync; the
trainer accumulates them and reads them at log points). Trainable parameters of an
objective (the CE head) are its ``parameters()``; V-MCR²'s Γ and A are buffers,
updated by the objective itself and saved in its ``state_dict()``.

Validation: ``validate=None`` (the default) runs the value checks on the CPU, where
they cost no sync, and skips them on accelerators; failed factorizations still give
NaN there, never a plausible number (see ``numerics.py``). Labels are best passed on
the CPU (see ``partition.py``).

Data parallelism: ``step(Z, labels, collective=...)`` takes this process's rows of a
global batch, the global batch's labels and the other processes (see ``sharding.py``).
Loss and metrics are then the global batch's, identical on every process, and the
gradient reaching this process's Z is W times its share, which a DDP featurizer's
averaging over W processes turns into the gradient of the global loss. The CE head,
computed on the gathered batch, gets the global gradient on every process directly.

Adding an objective: a subclass, its builder here and one line in ``vmcr2_cli.objective_registry.OBJECTIVES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from vmcr2_cli.metric_keys import RATE_KEYS, VARIATIONAL_KEYS
from vmcr2_cli.objective_registry import OBJECTIVES, VMCR2_METHOD_ENTRIES, VMCR2_METHODS

from . import block
from .cross_entropy import CrossEntropy
from .numerics import prepare_features
from .partition import ClassPartition
from .rate_reduction import RateReduction, rate_reduction
from .sharding import Collective, batch_partitions, whole_batch
from .tangent import tangent_bound, track
from .validation import check_features, check_positive, check_positive_int
from .variational import VariationalMCR2, VariationalTerms


class StepResult(NamedTuple):
    """loss: 0-dim tensor to minimize w.r.t. θ; metrics: name → 0-dim detached tensor."""

    loss: Tensor
    metrics: dict[str, Tensor]


class TrainingObjective(nn.Module):
    """Base class: ``name``, ``metric_names`` and ``step``."""

    name: ClassVar[str]
    metric_names: ClassVar[tuple[str, ...]]

    def __init__(self, num_classes: int, eps2: float, dtype: torch.dtype, validate: bool | None) -> None:
        super().__init__()
        self.num_classes = check_positive_int("num_classes", num_classes)
        self.eps2 = check_positive("eps2", eps2)
        self.dtype = dtype
        self.validate = validate

    def step(self, Z: Tensor, labels: Tensor | ClassPartition, *, collective: Collective | None = None) -> StepResult:
        """One training step's loss and metrics for features Z (m, d) and labels (m,) (or their partition).

        With a ``collective``, Z is this process's rows and ``labels`` the global batch's.
        """
        raise NotImplementedError

    def _validating(self, Z: Tensor) -> bool:
        return Z.device.type == "cpu" if self.validate is None else self.validate

    def _exact_metrics(self, Z: Tensor, partition: ClassPartition, validate: bool) -> dict[str, Tensor]:
        """The exact r, r_c, delta_r of the batch, without a graph."""
        with torch.no_grad():
            rr = rate_reduction(Z.detach(), partition, self.num_classes, self.eps2, self.dtype, validate=validate)
        return rate_metrics(rr)


class MCR2Objective(TrainingObjective):
    """MCR² (eq. 1): loss = −ΔR of the batch, by the batched fast path."""

    name = "mcr2"
    metric_names = RATE_KEYS

    def __init__(self, num_classes: int, *, eps2: float = 0.5, dtype: torch.dtype = torch.float32,
                 validate: bool | None = None) -> None:
        super().__init__(num_classes, eps2, dtype, validate)

    def step(self, Z: Tensor, labels: Tensor | ClassPartition, *, collective: Collective | None = None) -> StepResult:
        partition, _ = batch_partitions(labels, self.num_classes, Z, collective)
        Z = whole_batch(Z, collective)  # exact ΔR needs every row of the batch, with its gradient
        rr = rate_reduction(Z, partition, self.num_classes, self.eps2, self.dtype, validate=self._validating(Z))
        return StepResult(loss=-rr.delta_r, metrics=rate_metrics(rr))


class VMCR2Objective(TrainingObjective):
    """V-MCR² (eq. 7), trained by Algorithm 1 (``method="paper"``), its block form or its tangent form.

    ``paper``: a proximal step on Γ, A, then loss = μ/(2m)·M for θ (lines 5–12).
    ``block``: the same with A kept on latching's blocks (``block.proximal_step``,
    ``block.theta_loss``): no q×q products, cost flat in k.
    ``tangent``: Γ, A follow the batch (one block power iteration at rate ``track_rate``,
    see ``tangent.track``), then loss = −(R − R_c^⊤), the tangent lower bound of ΔR that
    they define (``tangent.tangent_bound``); μ and ν play no part.
    ``tangent-push``: the same tracking, then the bound taken at a copy of A one proximal
    A-step ahead (``block.pushed_encodings``, step ν_A/L_A at μ): still a lower bound of ΔR,
    no longer tight, its θ-gradient leaning the way Algorithm 1's dictionary moves.
    Latching (Algorithm 2) is the trainer's to schedule: ``objective.variational.latch``
    or ``latch_from_moments``.
    """

    name = "vmcr2"
    metric_names = (*RATE_KEYS, *VARIATIONAL_KEYS)

    def __init__(self, feature_dim: int, num_classes: int, dictionary_size: int, *, eps2: float = 0.5,
                 mu: float = 1.0, nu_gamma: float = 5.0, nu_A: float = 5.0, method: str = "paper",
                 track_rate: float = 1.0, dtype: torch.dtype = torch.float32, validate: bool | None = None) -> None:
        super().__init__(num_classes, eps2, dtype, validate)
        if method not in VMCR2_METHODS:
            raise ValueError(f"unknown V-MCR² method {method!r}; choose one of {', '.join(VMCR2_METHODS)}")
        if VMCR2_METHOD_ENTRIES[method].block_layout and dictionary_size % num_classes:
            raise ValueError(f"the {method} method needs dictionary_size (q={dictionary_size}) divisible by "
                             f"num_classes (k={num_classes}): each class owns q/k atoms")
        if not 0 < track_rate <= 1:
            raise ValueError(f"track_rate must be in (0, 1], got {track_rate}")
        self.method = method
        self.track_rate = float(track_rate)
        self.variational = VariationalMCR2(
            feature_dim, num_classes, dictionary_size, eps2=eps2, mu=mu, nu_gamma=nu_gamma, nu_A=nu_A, dtype=dtype
        )

    def step(self, Z: Tensor, labels: Tensor | ClassPartition, *, collective: Collective | None = None) -> StepResult:
        partition = labels if isinstance(labels, ClassPartition) else ClassPartition(labels, self.num_classes)
        step = getattr(self, VMCR2_METHOD_ENTRIES[self.method].step)  # the method's entry names its step
        return step(Z, partition, self._validating(Z), collective)

    def _paper_step(self, Z: Tensor, partition: ClassPartition, validate: bool,
                    collective: Collective | None) -> StepResult:
        # Algorithm 1, lines 5–10: eq. 7 on the batch, one proximal ascent step on Γ, A.
        terms = self.variational.proximal_step(Z, partition, validate=validate, collective=collective)
        # Lines 11–12: M recomputed with the new Γ, A; θ descends μ/(2m)·M.
        loss = self.variational.theta_loss(Z, partition, validate=validate, collective=collective)
        metrics = self._exact_metrics(whole_batch(Z.detach(), collective), partition, validate)
        return StepResult(loss=loss, metrics=_with_variational(metrics, terms))

    def _block_step(self, Z: Tensor, partition: ClassPartition, validate: bool,
                    collective: Collective | None) -> StepResult:
        def loss_and_terms(batch: Tensor) -> tuple[Tensor, VariationalTerms]:
            terms = block.proximal_step(self.variational, batch.detach(), partition, check=validate)  # lines 5–10
            return block.theta_loss(self.variational, batch, partition), terms  # lines 11–12

        return self._on_the_whole_batch(Z, partition, validate, collective, loss_and_terms)

    def _tangent_step(self, Z: Tensor, partition: ClassPartition, validate: bool,
                      collective: Collective | None, *, push: bool = False) -> StepResult:
        variational = self.variational

        def loss_and_terms(batch: Tensor) -> tuple[Tensor, VariationalTerms]:
            track(variational.gamma, variational.A, batch, partition, self.track_rate)  # the analogue of lines 5–10
            A = (block.pushed_encodings(variational, batch.detach(), partition, check=validate) if push
                 else variational.A)
            bound = tangent_bound(batch, partition, variational.gamma, A, self.eps2, check=validate)
            return -bound.bound, block.block_terms(variational, batch.detach(), partition, check=validate)

        return self._on_the_whole_batch(Z, partition, validate, collective, loss_and_terms)

    def _tangent_push_step(self, Z: Tensor, partition: ClassPartition, validate: bool,
                           collective: Collective | None) -> StepResult:
        return self._tangent_step(Z, partition, validate, collective, push=True)

    def _on_the_whole_batch(self, Z: Tensor, partition: ClassPartition, validate: bool, collective: Collective | None,
                            loss_and_terms) -> StepResult:
        """The block forms pair every sample with its class's atoms and R needs every row: the whole
        batch, gathered with its gradient (as exact MCR² does); every process then takes the same step
        on Γ, A."""
        if validate:
            check_features(Z, validate=True, unit_rows=True)
        batch = prepare_features(whole_batch(Z, collective), self.variational.gamma.dtype)
        partition.check_batch(batch)
        loss, terms = loss_and_terms(batch)
        metrics = self._exact_metrics(batch.detach(), partition, validate)
        return StepResult(loss=loss, metrics=_with_variational(metrics, terms))


class CEObjective(TrainingObjective):
    """Cross-entropy of a linear head on Z; exact ΔR and the head's accuracy as metrics."""

    name = "ce"
    metric_names = (*RATE_KEYS, "accuracy")

    def __init__(self, feature_dim: int, num_classes: int, *, eps2: float = 0.5, dtype: torch.dtype = torch.float32,
                 validate: bool | None = None) -> None:
        super().__init__(num_classes, eps2, dtype, validate)
        self.cross_entropy = CrossEntropy(feature_dim, num_classes)

    def step(self, Z: Tensor, labels: Tensor | ClassPartition, *, collective: Collective | None = None) -> StepResult:
        partition, _ = batch_partitions(labels, self.num_classes, Z, collective)
        Z = whole_batch(Z, collective)  # the head sees the global batch: its gradient is the global one
        logits = self.cross_entropy.logits(Z)
        targets = partition.labels_on(Z.device)
        loss = nn.functional.cross_entropy(logits, targets)
        metrics = self._exact_metrics(Z, partition, self._validating(Z))
        metrics["accuracy"] = (logits.detach().argmax(dim=1) == targets).to(torch.float32).mean()
        return StepResult(loss=loss, metrics=metrics)


def _with_variational(metrics: dict[str, Tensor], terms) -> dict[str, Tensor]:
    """The exact metrics and eq. 7's terms beside them, with R^v / R (faithfulness, 1 = exact)."""
    r_v = terms.r_v.detach()
    values = (r_v, terms.r_c_v.detach(), terms.m_term.detach(), r_v / metrics["r"].to(r_v.dtype))
    return {**metrics, **dict(zip(VARIATIONAL_KEYS, values, strict=True))}


def rate_metrics(rr: RateReduction) -> dict[str, Tensor]:
    return dict(zip(RATE_KEYS, (rr.r.detach(), rr.r_c.detach(), rr.delta_r.detach()), strict=True))


@dataclass(frozen=True)
class ObjectiveSettings:
    """An objective's hyperparameters as one object (paper §4.1 defaults); each builder reads its own.

    ``atoms_per_class``: s; V-MCR²'s dictionary holds q = s·k atoms (the paper's 10·k or
    20·k). ``nu_A``, ``nu_gamma``: the proximal steps in units of 1/L; ``method`` and
    ``track_rate``: how V-MCR² trains θ (see :class:`VMCR2Objective`); ``views`` and
    ``invariance_weight``: the self-supervised objectives' n and TCR's λ (``self_supervised.py``).
    """

    eps2: float = 0.5
    dtype: torch.dtype = torch.float32
    atoms_per_class: int = 20
    mu: float = 1.0
    nu_gamma: float = 5.0
    nu_A: float = 5.0
    method: str = "paper"
    track_rate: float = 1.0
    views: int = 8
    invariance_weight: float = 200.0

    @classmethod
    def of(cls, config: Any) -> "ObjectiveSettings":
        """The settings of a training configuration (a ``config.TrainConfig``)."""
        return cls(eps2=config.eps2, dtype=getattr(torch, config.objective_dtype),
                   atoms_per_class=config.atoms_per_class, mu=config.mu, nu_gamma=config.nu_gamma,
                   nu_A=config.nu_a, method=config.vmcr2_method, track_rate=config.track_rate,
                   views=config.views, invariance_weight=config.invariance_weight)


def build_mcr2(feature_dim: int, num_classes: int, settings: ObjectiveSettings,
               validate: bool | None) -> MCR2Objective:
    return MCR2Objective(num_classes, eps2=settings.eps2, dtype=settings.dtype, validate=validate)


def build_vmcr2(feature_dim: int, num_classes: int, settings: ObjectiveSettings,
                validate: bool | None) -> VMCR2Objective:
    return VMCR2Objective(feature_dim, num_classes, settings.atoms_per_class * num_classes, eps2=settings.eps2,
                          mu=settings.mu, nu_gamma=settings.nu_gamma, nu_A=settings.nu_A, method=settings.method,
                          track_rate=settings.track_rate, dtype=settings.dtype, validate=validate)


def build_ce(feature_dim: int, num_classes: int, settings: ObjectiveSettings, validate: bool | None) -> CEObjective:
    return CEObjective(feature_dim, num_classes, eps2=settings.eps2, dtype=settings.dtype, validate=validate)


def build_objective(name: str, feature_dim: int, num_classes: int, settings: ObjectiveSettings = ObjectiveSettings(),
                    *, validate: bool | None = None) -> TrainingObjective:
    """The objective called ``name`` (one of ``objective_registry.OBJECTIVES``) for features of ``feature_dim``."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of {', '.join(sorted(OBJECTIVES))}")
    return OBJECTIVES[name].build(feature_dim, num_classes, settings, validate)
