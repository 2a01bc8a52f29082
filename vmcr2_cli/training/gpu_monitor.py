"""GPU utilization and memory through NVML; ``None`` values without an NVIDIA GPU."""

from __future__ import annotations

import torch


class GpuMonitor:
    """Samples the utilization (%) and used memory (MiB) of the training device."""

    def __init__(self, device: torch.device) -> None:
        self._handle = None
        if device.type != "cuda":
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            index = device.index if device.index is not None else torch.cuda.current_device()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            self._nvml = pynvml
        except Exception:  # no driver, no library, a MIG slice...: report null, never fail a run
            self._handle = None

    def sample(self) -> dict[str, float | None]:
        if self._handle is None:
            return {"gpu_util": None, "gpu_mem_mb": None}
        try:
            util = self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu
            memory = self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used / 2**20
            return {"gpu_util": float(util), "gpu_mem_mb": round(memory, 1)}
        except Exception:
            return {"gpu_util": None, "gpu_mem_mb": None}
