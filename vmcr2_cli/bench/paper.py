"""The paper's Table 1: seconds per training epoch on an NVIDIA A100 (PyTorch 1.9), and its shapes (§4.1)."""

from __future__ import annotations

from typing import NamedTuple


class PaperEpochTime(NamedTuple):
    """One row of Table 1 with the shape it was measured at."""

    dataset: str
    classes: int
    mcr2_s: float
    vmcr2_s: float
    batch_size: int
    dim: int
    atoms_per_class: int

    @property
    def ratio(self) -> float:
        """MCR²/V-MCR² epoch time, rounded as the paper's figures allow (2 decimals)."""
        return round(self.mcr2_s / self.vmcr2_s, 2)

    def epoch_seconds(self) -> dict[str, float]:
        """Seconds per epoch by objective name (``vmcr2 train --objective``)."""
        return {"mcr2": self.mcr2_s, "vmcr2": self.vmcr2_s}

    def to_json(self) -> dict:
        return {**self._asdict(), "ratio": self.ratio}


TABLE_1 = (
    PaperEpochTime("MNIST", 10, 11.56, 6.29, batch_size=1000, dim=128, atoms_per_class=20),
    PaperEpochTime("CIFAR-10", 10, 33.06, 20.71, batch_size=1000, dim=128, atoms_per_class=20),
    PaperEpochTime("CIFAR-100", 100, 157.45, 31.14, batch_size=2000, dim=500, atoms_per_class=10),
    PaperEpochTime("Tiny ImageNet", 200, 527.85, 44.23, batch_size=2000, dim=500, atoms_per_class=10),
)
PAPER_DEVICE = "NVIDIA A100-SXM4 40GB, PyTorch 1.9.0 (whole epochs, Table 1)"
