"""The objectives of vmcr2: exact MCR² (eq. 1), V-MCR² (eq. 7) and cross-entropy.

A reusable library; rows of Z are samples::

    from vmcr2_cli.objectives import rate_reduction
    rr = rate_reduction(Z, labels, num_classes=k, eps2=0.5)   # rr.r, rr.r_c, rr.delta_r

Modules: ``partition`` (a batch grouped by class, once), ``rate_reduction`` (exact
ΔR, batched, and the per-class reference), ``variational`` (Γ, A, the proximal step,
latching), ``cross_entropy`` (the CE head), ``training`` (the trainer's interface),
``numerics`` (precision and Cholesky policy), ``validation`` (input checks),
``sharding`` (a batch spread over data-parallel processes).
"""

from .cross_entropy import CrossEntropy
from .numerics import NotPositiveDefiniteError
from .partition import ClassPartition
from .rate_reduction import (
    RateReduction,
    class_second_moments,
    coding_rate,
    rate_reduction,
    rate_reduction_reference,
)
from .sharding import Collective, whole_batch
from .training_objective import (
    OBJECTIVES,
    CEObjective,
    MCR2Objective,
    ObjectiveSettings,
    StepResult,
    TrainingObjective,
    VMCR2Objective,
    build_objective,
)
from .validation import NonFiniteFeaturesError
from .variational import VariationalGradients, VariationalMCR2, VariationalTerms

__all__ = [
    "CEObjective",
    "ClassPartition",
    "Collective",
    "CrossEntropy",
    "MCR2Objective",
    "NonFiniteFeaturesError",
    "NotPositiveDefiniteError",
    "OBJECTIVES",
    "ObjectiveSettings",
    "RateReduction",
    "StepResult",
    "TrainingObjective",
    "VMCR2Objective",
    "VariationalGradients",
    "VariationalMCR2",
    "VariationalTerms",
    "build_objective",
    "class_second_moments",
    "coding_rate",
    "rate_reduction",
    "rate_reduction_reference",
    "whole_batch",
]
