"""A batch spread over several processes (data parallelism), as the objectives see it.

Under data parallelism each process holds an equal, contiguous share of the rows of
one *global* batch, in rank order: process r has rows [r·m/W, (r+1)·m/W) of the m rows.
The objectives are defined on the global batch, so their ``step`` and the V-MCR² methods
take, besides this process's rows Z, the labels (or ClassPartition) of the *whole*
batch — known on every process without communication, since every process draws the
same global batch — and a ``collective``: the two operations they need from the other
processes. ``collective=None`` (the default everywhere) is one process, the plain path.

Nothing here imports ``torch.distributed``: any object with these members will do;
``vmcr2_cli.distributed.Distributed`` is the one built on PyTorch's process groups.
"""

from __future__ import annotations

from typing import Protocol

from torch import Tensor

from .partition import ClassPartition, as_partition


class Collective(Protocol):
    """What an objective needs from the other processes of a data-parallel batch."""

    rank: int
    world_size: int

    def gather_rows(self, Z: Tensor) -> Tensor:
        """All processes' rows, (W·m_r, …) in rank order; the same tensor on every process.

        Autograd: the gradient that reaches this process's Z is W times this process's
        rows of the gathered tensor's gradient. Every process computes the same function
        of the gathered rows, so that is the sum over processes of their gradients —
        what ``torch.distributed.nn.functional.all_gather`` would reduce-scatter — and a
        DDP featurizer, which averages θ-gradients over the W processes, ends up with
        the gradient of the global batch's loss.
        """
        ...

    def sum(self, tensor: Tensor) -> Tensor:
        """``tensor`` summed over processes (in place; no gradient)."""
        ...


def whole_batch(Z: Tensor, collective: Collective | None) -> Tensor:
    """The global batch's features from this process's rows (Z itself for one process)."""
    return Z if collective is None else collective.gather_rows(Z)


def batch_partitions(labels: Tensor | ClassPartition, num_classes: int, Z: Tensor,
                     collective: Collective | None) -> tuple[ClassPartition, ClassPartition]:
    """(the global batch's partition, this process's rows' partition), checked against Z.

    ``labels`` are the global batch's; Z holds this process's rows (all of them for one
    process, when both partitions are the same object).
    """
    if collective is None:
        partition = as_partition(labels, num_classes, Z)
        return partition, partition
    world_size = collective.world_size
    partition = as_partition(labels, num_classes)
    if partition.num_samples != Z.shape[0] * world_size:
        raise ValueError(
            f"labels has {partition.num_samples} entries but the {world_size} processes hold "
            f"{world_size}×{Z.shape[0]} rows of Z: pass the labels of the whole batch"
        )
    return partition, partition.rows_of(collective.rank, world_size)
