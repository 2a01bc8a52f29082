"""ClassPartition: a batch grouped by class once, so per-class work is batched.

Every per-class quantity of MCR² (the Grams Z_j Z_jᵀ, the second moments Z_jᵀZ_j,
the logdets of R_c) is computed on a padded (classes, rows, d) layout with one
batched call instead of a Python loop over the k classes. This module builds the
index tensors for that layout once per batch.

Host synchronization: the layout has data-dependent shapes (the largest class
``n_max``, which classes are present), so it is computed on the host from the labels.
Pass labels on the CPU — as ``pack_padded_sequence`` takes CPU lengths — and nothing
waits for the device: the index tensors are built on the CPU and copied to the
features' device asynchronously (from pinned memory for CUDA). Labels on an
accelerator work too, at the cost of one device→host copy (one sync) per partition.
Build the partition once per step and pass it to every objective function in place
of the labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .validation import check_positive_int


@dataclass(frozen=True)
class ClassBucket:
    """Classes padded together to a common number of rows.

    Attributes:
        classes: (b,) the class ids in this bucket, on the device.
        rows: rows per class in the padded layout (the bucket's largest class).
        sample_index: (n,) the batch rows that belong to this bucket, or None when
            the bucket holds every row of the batch.
        flat_index: (n,) for each of those rows, its row in the (b·rows, d) layout.
    """

    classes: Tensor
    rows: int
    sample_index: Tensor | None
    flat_index: Tensor

    @property
    def num_classes(self) -> int:
        return int(self.classes.shape[0])

    def pad(self, Z: Tensor) -> Tensor:
        """(m, d) batch → (b, rows, d): class i's rows first, zero rows after. Differentiable."""
        members = Z if self.sample_index is None else Z.index_select(0, self.sample_index)
        flat = Z.new_zeros(self.num_classes * self.rows, Z.shape[1])
        return flat.index_copy(0, self.flat_index, members).view(self.num_classes, self.rows, -1)


class ClassPartition:
    """A batch's samples grouped by class.

    Args:
        labels: (m,) integer class ids in [0, num_classes). Best on the CPU (see the
            module docstring); any device works.
        num_classes: k.

    Attributes (CPU tensors):
        labels: (m,) int64 class of each sample.
        counts: (k,) int64 samples per class m_j (0 for classes absent from the batch).
        order: (m,) a stable sort of the samples by class.
        slot: (m,) each sample's position within its class, in batch order.
        n_max: the largest class size, a Python int.
    """

    def __init__(self, labels: Tensor, num_classes: int) -> None:
        check_positive_int("num_classes", num_classes)
        if not isinstance(labels, Tensor):
            raise ValueError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
        if labels.dim() != 1:
            raise ValueError(f"labels must be 1-D (one class id per sample), got shape {tuple(labels.shape)}")
        if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
            raise ValueError(f"labels must be an integer tensor, got {labels.dtype}")
        if labels.shape[0] == 0:
            raise ValueError("labels is empty: a batch needs at least one sample")
        host = labels.detach().to("cpu", torch.int64)  # one sync if labels are on a device
        low, high = int(host.min()), int(host.max())
        if low < 0 or high >= num_classes:
            raise ValueError(
                f"labels must lie in [0, {num_classes}) for num_classes={num_classes}, "
                f"got values in [{low}, {high}]"
            )
        self.num_classes = num_classes
        self.num_samples = int(host.shape[0])
        self.labels = host
        self.counts = torch.bincount(host, minlength=num_classes)
        self.order = torch.argsort(host, stable=True)
        class_start = self.counts.cumsum(0) - self.counts
        self.slot = torch.empty_like(host)
        self.slot[self.order] = torch.arange(self.num_samples) - class_start[host[self.order]]
        self.n_max = int(self.counts.max())
        self._device_copies: dict[tuple, Tensor] = {}
        self._buckets: dict[tuple, tuple[ClassBucket, ...]] = {}
        self._shares: dict[tuple[int, int], ClassPartition] = {}

    # ---- device copies -------------------------------------------------------------

    def _on(self, name: str, tensor: Tensor, device: torch.device, dtype: torch.dtype | None = None) -> Tensor:
        """``tensor`` on ``device`` (and in ``dtype``), copied once and cached."""
        key = (name, torch.device(device), dtype)
        if key not in self._device_copies:
            value = tensor if dtype is None else tensor.to(dtype)
            if key[1].type == "cuda":
                value = value.pin_memory()  # pinned → the copy below is truly asynchronous
            self._device_copies[key] = value.to(device, non_blocking=True)
        return self._device_copies[key]

    def labels_on(self, device: torch.device) -> Tensor:
        """(m,) int64 labels on ``device``."""
        return self._on("labels", self.labels, device)

    def counts_on(self, device: torch.device, dtype: torch.dtype) -> Tensor:
        """(k,) class sizes m_j on ``device`` as ``dtype``."""
        return self._on("counts", self.counts, device, dtype)

    def check_batch(self, Z: Tensor) -> None:
        """Z must have one row per label."""
        if Z.shape[0] != self.num_samples:
            raise ValueError(
                f"labels has {self.num_samples} entries but Z has {Z.shape[0]} rows: "
                f"one label per row of Z"
            )

    def rows_of(self, rank: int, world_size: int) -> "ClassPartition":
        """The partition of process ``rank``'s share of the batch under data parallelism.

        The batch's m rows are split into ``world_size`` equal, contiguous shares in rank
        order (``DeviceLoader``'s split): rows [rank·m/W, (rank+1)·m/W). Cached.
        """
        if world_size == 1:
            return self
        if self.num_samples % world_size or not 0 <= rank < world_size:
            raise ValueError(
                f"a batch of {self.num_samples} does not split into {world_size} equal shares "
                f"(rank {rank})"
            )
        key = (rank, world_size)
        if key not in self._shares:
            share = self.num_samples // world_size
            self._shares[key] = ClassPartition(self.labels[rank * share : (rank + 1) * share], self.num_classes)
        return self._shares[key]

    # ---- layouts -------------------------------------------------------------------

    def pad(self, Z: Tensor) -> Tensor:
        """(m, d) → (k, n_max, d): class j's rows in ``[j, :m_j]``, zero rows elsewhere.

        Memory k·n_max·d; prefer :meth:`size_buckets` when class sizes differ a lot.
        """
        self.check_batch(Z)
        flat_index = self._on("flat_index_all", self.labels * self.n_max + self.slot, Z.device)
        flat = Z.new_zeros(self.num_classes * self.n_max, Z.shape[1])
        return flat.index_copy(0, flat_index, Z).view(self.num_classes, self.n_max, -1)

    def size_buckets(self, feature_dim: int, device: torch.device) -> tuple[ClassBucket, ...]:
        """The present classes in at most two buckets of similar size, each padded to its largest.

        Per class, the cheaper of the m_j×m_j Gram and the d×d second moment is factored,
        so padding a bucket to ``rows`` costs about ``b·rows·d·min(rows, d)`` to build
        and ``b·min(rows, d)³/3`` to factor. One bucket is used unless splitting the
        classes (sorted by size) at one point is cheaper under that model, which keeps
        a few big classes from inflating the padding of many small ones.

        Memory bound: a bucket pads each class to its largest, so the padded tensor has
        at most ρ·m·d entries, ρ being the largest/smallest class size ratio inside a
        bucket (1 for balanced batches, the usual case); the Grams have b·rows² ≤
        ρ·m·d entries and the second moments b·d² entries.
        """
        key = (int(feature_dim), torch.device(device))
        if key not in self._buckets:
            self._buckets[key] = self._build_buckets(int(feature_dim), torch.device(device))
        return self._buckets[key]

    def _build_buckets(self, d: int, device: torch.device) -> tuple[ClassBucket, ...]:
        present = torch.nonzero(self.counts).reshape(-1)
        sizes, by_size = torch.sort(self.counts[present], stable=True)
        classes = present[by_size]
        first_bucket = _split_point(sizes, d)
        groups = [(classes[:first_bucket], int(sizes[first_bucket - 1]))]
        if first_bucket < len(sizes):
            groups.append((classes[first_bucket:], int(sizes[-1])))
        buckets = []
        for group, (bucket_classes, rows) in enumerate(groups):
            position = torch.full((self.num_classes,), -1, dtype=torch.int64)
            position[bucket_classes] = torch.arange(len(bucket_classes))
            sample_position = position[self.labels]
            if len(groups) == 1:
                sample_index, flat = None, sample_position * rows + self.slot
            else:
                members = torch.nonzero(sample_position >= 0).reshape(-1)
                sample_index = self._on(f"bucket{group}_samples", members, device)
                flat = sample_position[members] * rows + self.slot[members]
            buckets.append(
                ClassBucket(
                    classes=self._on(f"bucket{group}_classes", bucket_classes, device),
                    rows=rows,
                    sample_index=sample_index,
                    flat_index=self._on(f"bucket{group}_flat", flat, device),
                )
            )
        return tuple(buckets)


def _split_point(sizes: Tensor, d: int) -> int:
    """How many of the (ascending) class sizes go into the first bucket; len(sizes) = one bucket."""
    sizes = sizes.to(torch.float64)
    num = len(sizes)
    first = torch.arange(1, num + 1, dtype=torch.float64)

    def padded_cost(num_classes: Tensor, rows: Tensor) -> Tensor:
        side = torch.clamp(rows, max=d)
        return num_classes * (rows * d * side + side**3 / 3)

    cost = padded_cost(first, sizes) + padded_cost(num - first, sizes[-1].expand(num))
    if cost[-1] <= cost.min():
        return num
    return int(torch.argmin(cost)) + 1


def as_partition(labels: Tensor | ClassPartition, num_classes: int, Z: Tensor | None = None) -> ClassPartition:
    """``labels`` as a ClassPartition for ``num_classes`` classes, checked against Z's rows (if given)."""
    if isinstance(labels, ClassPartition):
        if labels.num_classes != num_classes:
            raise ValueError(
                f"the partition was built for {labels.num_classes} classes, "
                f"this objective has num_classes={num_classes}"
            )
        partition = labels
    else:
        partition = ClassPartition(labels, num_classes)
    if Z is not None:
        partition.check_batch(Z)
    return partition
