"""The backbone's arithmetic on a device: bf16 autocast where the hardware computes it, and the
memory format its convolutions run fastest in (benchmarks/training_floor.py measures both).

``precision = "bf16"`` asks for bf16 autocast of the featurizer. On CUDA it is used as asked.
On a CPU it is used only where the CPU computes bf16 natively (AVX512-BF16 or AMX): there
oneDNN's bf16 convolutions and matmuls run about twice as fast as fp32; elsewhere bf16 is
emulated, slower than fp32, and the run stays fp32. The objectives never see bf16: features
leave the backbone as float32 and the objectives compute in float32 or float64
(``objectives.numerics``).

Memory format, as measured (training_floor.py, the default profile's network, 2 cores):
channels-last is faster in fp32 on every CPU measured (+20% on an AMD EPYC and on an
Intel Xeon), and in bf16 on CPUs with AMX (+9%, Intel Xeon) but slower on those with
AVX512-BF16 alone (−10%, AMD EPYC). On CUDA it is faster in both.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch


def _cpu_reports(probe: str) -> bool:
    """A CPU capability as torch detects it; False where this torch cannot tell."""
    return bool(getattr(torch.cpu, probe, lambda: False)())


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what ``platform`` knows: float kernels,
    and so a seed's trajectory, differ between CPUs, so runs and benches name theirs."""
    import platform
    from pathlib import Path

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_has_amx() -> bool:
    """True where this CPU has AMX tiles (Intel Sapphire Rapids and later)."""
    return _cpu_reports("_is_amx_tile_supported")


def cpu_has_native_bf16() -> bool:
    """True where this CPU computes bf16 in hardware (AVX512-BF16 or AMX tiles)."""
    return _cpu_reports("_is_avx512_bf16_supported") or cpu_has_amx()


@dataclass(frozen=True)
class BackbonePrecision:
    """How the featurizer runs on one device: ``dtype`` "bf16" or "fp32", ``channels_last``, and
    ``reason``, one phrase saying why (meta.json and the run's first line)."""

    dtype: str
    channels_last: bool
    reason: str
    device_type: str

    @property
    def autocast(self) -> AbstractContextManager:
        """A fresh autocast context for the backbone's forward pass (bf16, or disabled)."""
        return torch.autocast(device_type=self.device_type, dtype=torch.bfloat16, enabled=self.dtype == "bf16")

    def describe(self) -> str:
        layout = "channels-last" if self.channels_last else "contiguous"
        return f"{self.dtype} ({self.reason}), {layout}"


def backbone_precision(device: torch.device, requested: str) -> BackbonePrecision:
    """The precision and memory format the featurizer runs in on ``device`` for ``precision = requested``."""
    if device.type == "cuda":
        # NHWC convolutions are faster on CUDA's tensor cores, in bf16 and fp32 alike.
        reason = "asked" if requested == "bf16" else "precision = fp32"
        return BackbonePrecision(requested, True, reason, "cuda")
    if device.type != "cpu":  # another accelerator: as asked, in its default layout
        return BackbonePrecision(requested, False, "asked", device.type)
    if requested == "fp32":
        return BackbonePrecision("fp32", True, "precision = fp32", "cpu")
    if cpu_has_native_bf16():
        return BackbonePrecision("bf16", cpu_has_amx(), "the CPU computes bf16 natively", "cpu")
    return BackbonePrecision("fp32", True, "no native bf16 on this CPU: emulated bf16 is slower", "cpu")
