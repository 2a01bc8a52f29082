"""The machine and software a bench ran on, named in its output."""

from __future__ import annotations

import os
import platform

import torch

from vmcr2_cli.training.precision import cpu_name


def describe(device: torch.device) -> dict:
    """Device, its name, CPU, threads and versions, as JSON-ready values."""
    from vmcr2_cli import __version__

    cuda = device.type == "cuda"
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if cuda else cpu_name(),
        "gpu_memory_gb": round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1) if cuda else None,
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "versions": {
            "vmcr2": __version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda if cuda else None,
            "cudnn": torch.backends.cudnn.version() if cuda else None,
        },
    }


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none): other work competing for the CPU."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def short_name(environment: dict) -> str:
    """'cpu (Intel Xeon …, 2 threads)' or 'cuda:0 (NVIDIA H100 80GB HBM3)' for titles."""
    if environment["device"].startswith("cuda"):
        return f"{environment['device']} ({environment['device_name']})"
    threads = environment["torch_threads"]
    return f"{environment['device']} ({environment['device_name']}, {threads} thread{'s' * (threads != 1)})"
