"""Rate reduction without labels: each image's random views are its class.

A batch holds B images × n views, image-major (image i's views are rows i·n … i·n + n − 1,
as ``DeviceLoader`` with ``views = n`` lays them out); the dataset's labels play no part.

- ``mcr2-ssl`` (the MCR² lecture's Experiment II): maximize ΔR(Z, Π) of eq. 1 with Π the
  views' grouping, k = B classes of n samples each — the many-tiny-classes regime that the
  batched small-side Cholesky of ``rate_reduction`` handles in one call.
- ``tcr`` (EMP-SSL, Tong et al. 2023): maximize the mean over views v of R(Z_v), the coding
  rate of the B features of view v, plus λ times the mean cosine between each view and the mean
  of its image's views. The mean of R(Z_v) is R_c of the partition *by view* (n classes of B
  rows, m_v/m = 1/n), so it uses the same batched path.

Both log the exact R, R_c, ΔR of the views' grouping (comparable between the two) and the
views' mean cosine to their image's mean view (``invariance``, 1 = every view identical).

No V-MCR² form: Γ and A are dictionaries of *persistent* classes, latched over the dataset
and carried from batch to batch, while here a class is one image's views and lives for one
batch (a dataset-level dictionary would need one block per training image, s·N atoms). The
μ → ∞ limit of Algorithm 1 with Γ, A refitted to each batch (``vmcr2_method = "tangent"``)
has exact MCR²'s θ-gradient, which is ``mcr2-ssl`` itself.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .partition import ClassPartition
from .rate_reduction import rate_reduction
from .sharding import Collective, whole_batch
from .training_objective import StepResult, TrainingObjective, rate_metrics
from .validation import check_positive_int


def view_partition(num_images: int, views: int) -> ClassPartition:
    """The classes of an image-major batch: rows i·n … i·n + n − 1 are class i (B classes)."""
    return ClassPartition(torch.arange(num_images).repeat_interleave(views), num_images)


def invariance(Z: Tensor, views: int) -> Tensor:
    """The mean cosine between each view's feature and the mean of its image's views (0-dim)."""
    grouped = Z.reshape(-1, views, Z.shape[1])
    return torch.nn.functional.cosine_similarity(grouped, grouped.mean(dim=1, keepdim=True), dim=2).mean()


class SelfSupervisedObjective(TrainingObjective):
    """The batch's two groupings, built once per batch size, and the metrics of both objectives."""

    metric_names = ("r", "r_c", "delta_r", "invariance")

    def __init__(self, views: int, eps2: float, dtype: torch.dtype, validate: bool | None) -> None:
        super().__init__(1, eps2, dtype, validate)  # the dataset's classes play no part
        self.views = check_positive_int("views", views)
        self._partitions: dict[int, tuple[ClassPartition, ClassPartition]] = {}

    def partitions(self, Z: Tensor) -> tuple[ClassPartition, ClassPartition]:
        """The whole batch Z (B·n rows) grouped by image (B classes, :func:`view_partition`) and by
        view (n classes: row i·n + v belongs to view v)."""
        rows = Z.shape[0]
        if rows % self.views:
            raise ValueError(f"a batch of {rows} rows is not whole images of {self.views} views each")
        if rows not in self._partitions:
            images = rows // self.views
            by_view = ClassPartition(torch.arange(self.views).repeat(images), self.views)
            self._partitions[rows] = view_partition(images, self.views), by_view
        return self._partitions[rows]

    def _rates(self, Z: Tensor, partition: ClassPartition, validate: bool):
        return rate_reduction(Z, partition, partition.num_classes, self.eps2, self.dtype, validate=validate)


class MCR2SSLObjective(SelfSupervisedObjective):
    """Self-supervised MCR²: loss = −ΔR(Z, Π_views) of the whole batch."""

    name = "mcr2-ssl"

    def step(self, Z: Tensor, labels: Tensor | ClassPartition, *, collective: Collective | None = None) -> StepResult:
        Z = whole_batch(Z, collective)  # the views of every image, with their gradient
        by_image, _ = self.partitions(Z)
        rr = self._rates(Z, by_image, self._validating(Z))
        return StepResult(loss=-rr.delta_r, metrics={**rate_metrics(rr), "invariance": invariance(Z.detach(), self.views)})


class TCRObjective(SelfSupervisedObjective):
    """Total coding rate with view invariance: loss = −mean_v R(Z_v) − λ·mean cos(z_iv, z̄_i)."""

    name = "tcr"
    metric_names = (*SelfSupervisedObjective.metric_names, "r_views")

    def __init__(self, views: int, *, eps2: float = 0.5, invariance_weight: float = 200.0,
                 dtype: torch.dtype = torch.float32, validate: bool | None = None) -> None:
        super().__init__(views, eps2, dtype, validate)
        if invariance_weight < 0:
            raise ValueError(f"invariance_weight must be >= 0, got {invariance_weight}")
        self.invariance_weight = float(invariance_weight)

    def step(self, Z: Tensor, labels: Tensor | ClassPartition, *, collective: Collective | None = None) -> StepResult:
        Z = whole_batch(Z, collective)
        validate = self._validating(Z)
        by_image, by_view = self.partitions(Z)
        r_views = self._rates(Z, by_view, validate).r_c  # mean_v R(Z_v): R_c of the partition by view
        pull = invariance(Z, self.views)
        loss = -r_views - self.invariance_weight * pull.to(r_views.dtype)
        with torch.no_grad():
            metrics = rate_metrics(self._rates(Z.detach(), by_image, validate))
        return StepResult(loss=loss, metrics={**metrics, "invariance": pull.detach(), "r_views": r_views.detach()})


def build_mcr2_ssl(feature_dim: int, num_classes: int, settings, validate: bool | None) -> MCR2SSLObjective:
    return MCR2SSLObjective(settings.views, settings.eps2, settings.dtype, validate)


def build_tcr(feature_dim: int, num_classes: int, settings, validate: bool | None) -> TCRObjective:
    return TCRObjective(settings.views, eps2=settings.eps2, invariance_weight=settings.invariance_weight,
                        dtype=settings.dtype, validate=validate)
