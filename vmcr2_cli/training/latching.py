"""Latching (Algorithm 2) from class moments — of a pass over the dataset, or of an epoch's own
training batches — with the before/after report.

With a ``collective`` (data parallelism) each process holds the features of its share
of the dataset: the class second moments and counts are summed over processes, so Γ
and A come out the same on every process, and the probe batch gathers an equal share
from each.
"""

from __future__ import annotations

import torch

from vmcr2_cli.data.seeding import derive_seed
from vmcr2_cli.metric_keys import LATCH_TERMS
from vmcr2_cli.objectives import ClassPartition, Collective, VariationalMCR2, rate_reduction, whole_batch
from vmcr2_cli.objectives.numerics import full_precision
from vmcr2_cli.objectives.validation import check_features


class ClassMomentSums:
    """Running per-class second moments Σ_{i∈j} z_i z_iᵀ (k, d, d) and class counts (k,) of the
    features added so far: Algorithm 2's statistics, from a pass over the dataset or from an
    epoch's own training batches (``latch_source = "epoch"``).

    In the features' dtype (float32 in training), summed on the device in the order the batches
    come (a resumed epoch continues the same sums, so it is exact); not float64: measured on 60 000 unit features (d = 64), float32
    sums come within 6e-8 (relative) of float64 ones, and float64 would double the moments'
    memory (2 GB at k = 1000, d = 500). ``probe``: the last batch added, with its labels, the
    batch a latch reports its terms on.
    """

    def __init__(self, moments: torch.Tensor, counts: torch.Tensor,
                 probe: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        self.moments, self.counts, self.probe = moments, counts, probe

    @classmethod
    def zeros(cls, num_classes: int, feature_dim: int, device: torch.device,
              dtype: torch.dtype = torch.float32) -> "ClassMomentSums":
        return cls(torch.zeros(num_classes, feature_dim, feature_dim, device=device, dtype=dtype),
                   torch.zeros(num_classes, dtype=torch.long, device=device))

    @torch.no_grad()
    def add(self, Z: torch.Tensor, partition: ClassPartition) -> None:
        """Add a batch: features Z (m, d) and its partition by class (from CPU labels). Only device
        work: no host synchronization."""
        Z = Z.detach().to(self.moments.dtype)
        with full_precision(Z.device):
            for bucket in partition.size_buckets(Z.shape[1], Z.device):
                padded = bucket.pad(Z)
                self.moments.index_add_(0, bucket.classes, padded.mT @ padded)
        self.counts += partition.counts_on(Z.device, torch.long)
        self.probe = (Z, partition.labels_on(Z.device))

    def summed(self, collective: Collective | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(moments, counts) summed over the processes (copies; these sums stay this process's)."""
        moments, counts = self.moments.clone(), self.counts.clone()
        if collective is not None:
            collective.sum(moments)
            collective.sum(counts)
        return moments, counts

    def state_dict(self) -> dict:
        probe = None if self.probe is None else tuple(t.cpu() for t in self.probe)
        return {"moments": self.moments.cpu(), "counts": self.counts.cpu(), "probe": probe}

    @classmethod
    def from_state(cls, state: dict, device: torch.device) -> "ClassMomentSums":
        probe = None if state["probe"] is None else tuple(t.to(device) for t in state["probe"])
        return cls(state["moments"].to(device), state["counts"].to(device), probe)


@torch.no_grad()
def dataset_class_moments(features: torch.Tensor, labels: torch.Tensor, num_classes: int,
                          chunk: int = 8192, collective: Collective | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class second moments (k, d, d) and class counts (k,) of a whole feature set, summed in
    chunks (and over processes); see :class:`ClassMomentSums`."""
    check_features(features, validate=True)
    sums = ClassMomentSums.zeros(num_classes, features.shape[1], features.device, features.dtype)
    for start in range(0, features.shape[0], chunk):
        sums.add(features[start:start + chunk], ClassPartition(labels[start:start + chunk].cpu(), num_classes))
    return sums.summed(collective)


def probe_batch(features: torch.Tensor, labels: torch.Tensor, batch_size: int,
                seed: int, collective: Collective | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random batch of the dataset's features: the scale at which Γ and A live.

    With a collective, batch_size/W random rows of each process's features, gathered.
    """
    if collective is not None:
        batch_size //= collective.world_size
        seed = derive_seed(seed, "latch-probe", collective.rank)
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(features.shape[0], generator=generator)[:batch_size].to(features.device)
    return whole_batch(features[index], collective), whole_batch(labels[index], collective)


@torch.no_grad()
def latch_over_dataset(variational: VariationalMCR2, features: torch.Tensor, labels: torch.Tensor,
                       num_classes: int, batch_size: int, seed: int = 0,
                       collective: Collective | None = None) -> dict[str, float]:
    """Algorithm 2 over a whole feature set: Γ, A from its class moments rescaled to a batch of
    ``batch_size``, reported on a fixed random probe batch (see :func:`latch_from_moments`)."""
    probe = probe_batch(features, labels, batch_size, seed, collective)
    moments, counts = dataset_class_moments(features, labels, num_classes, collective=collective)
    return latch_from_moments(variational, moments, counts, probe, num_classes, batch_size)


@torch.no_grad()
def latch_from_moments(variational: VariationalMCR2, moments: torch.Tensor, counts: torch.Tensor,
                       probe: tuple[torch.Tensor, torch.Tensor], num_classes: int,
                       batch_size: int) -> dict[str, float]:
    """Set Γ, A from summed class moments rescaled to a batch of ``batch_size``.

    Returns the variational terms on the ``probe`` batch (features, labels; the whole batch)
    before and after, and the exact ΔR of that batch, which the variational ΔR^v approximates.
    """
    probe_z, probe_y = probe
    before = variational.terms(probe_z, probe_y)
    variational.latch_from_moments(moments, counts, batch_size=min(batch_size, int(counts.sum())))
    after = variational.terms(probe_z, probe_y)
    exact = rate_reduction(probe_z, probe_y, num_classes=num_classes, eps2=variational.eps2)
    report = {"delta_r": exact.delta_r.item(), "r": exact.r.item(), "r_c": exact.r_c.item()}
    for when, terms in (("before", before), ("after", after)):
        for key in LATCH_TERMS:
            report[f"{key}_{when}"] = getattr(terms, key).item()
    return report
