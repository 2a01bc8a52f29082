"""A run's featurizer as files other tools read: ONNX, TorchScript and safetensors.

The ONNX and TorchScript models take uint8 images (N, C, H, W) as the run's dataset stores them
(Fashion-MNIST 1 × 28 × 28; a folder dataset image_size²) and return (N, d) float32 unit-norm
features: the padding and normalisation are inside the graph (:class:`FeaturizerModule`), the
batch size is free. They compute in float32 on the CPU. The safetensors file holds f_θ's weights,
with the preprocessing, the class names and the resolved config.toml as metadata. Every file is
written to a temporary name beside its target and renamed, so none is left half-written.
"""

from __future__ import annotations

import io
import json
import warnings
from importlib.util import find_spec
from pathlib import Path

import torch
from torch import nn

from vmcr2_cli.data.preprocessing import Preprocess
from vmcr2_cli.errors import BadInput
from vmcr2_cli.featurizer.featurizer import Featurizer
from vmcr2_cli.runs import atomic_write_bytes

INSTALL_HINT = "pip install 'vmcr2[export]'"
EXAMPLE_BATCH = 2  # traced with 2 images; the exported batch dimension is free


class FeaturizerModule(nn.Module):
    """uint8 (N, C, H, W) → (N, d) features: the run's preprocessing, then f_θ."""

    def __init__(self, preprocess: Preprocess, model: nn.Module) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(self.preprocess(images)).float()


def check_available(formats: list[str]) -> None:
    """BadInput naming the missing packages of the formats asked for, before anything is loaded."""
    missing = sorted({package for name in formats for package in FORMATS[name][1] if find_spec(package) is None})
    if missing:
        raise BadInput(f"export --{' --'.join(formats)}: needs {', '.join(missing)}: {INSTALL_HINT}")


def check_expressible(featurizer: Featurizer, formats: list[str]) -> None:
    """BadInput, before anything is written, for a format that cannot express the featurizer: ONNX and
    safetensors have no complex numbers, in which the invariant ReduNet's layers compute (frequency by
    frequency)."""
    real_only = [name for name in formats if name in ("onnx", "safetensors")]
    if real_only and any(buffer.is_complex() for buffer in featurizer.model.buffers()):
        raise BadInput(f"export --{' --'.join(real_only)}: no complex numbers there, in which this invariant "
                       f"ReduNet's layers compute (frequency by frequency); export it with --torchscript")


def exportable(featurizer: Featurizer) -> FeaturizerModule:
    """The featurizer with its preprocessing as one float32 module on the CPU, in eval mode."""
    if featurizer.device.type != "cpu" or featurizer.precision.dtype != "fp32":
        raise ValueError("export a featurizer loaded with device='cpu', precision='fp32'")
    return FeaturizerModule(featurizer.preprocess, featurizer.model).eval()


def example_input(featurizer: Featurizer) -> torch.Tensor:
    return torch.zeros((EXAMPLE_BATCH, *featurizer.preprocessing.shape), dtype=torch.uint8)


def write_onnx(featurizer: Featurizer, path: Path) -> None:
    """An ONNX model (input ``images``, output ``features``, the batch dimension free)."""
    module = exportable(featurizer)
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, (example_input(featurizer),), input_names=["images"],
                                    output_names=["features"], dynamic_shapes=({0: batch},), dynamo=True,
                                    verbose=False, report=False)
    atomic_write_bytes(path, program.model_proto.SerializeToString())


def write_torchscript(featurizer: Featurizer, path: Path) -> None:
    """A TorchScript module (``torch.jit.load``), traced on uint8 images."""
    module = exportable(featurizer)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TorchScript's deprecation notice, tracer notes
        traced = torch.jit.trace(module, example_input(featurizer), check_trace=False)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def write_safetensors(featurizer: Featurizer, path: Path) -> None:
    """f_θ's weights (its state_dict's names) with ``vmcr2.*`` metadata: the preprocessing, the class
    names, the model's name and feature dimension, and the resolved config.toml."""
    from safetensors.torch import save

    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in featurizer.model.state_dict().items()}
    metadata = {
        "format": "pt",
        "vmcr2.model": featurizer.config.model,
        "vmcr2.feature_dim": str(featurizer.feature_dim),
        "vmcr2.preprocessing": json.dumps(featurizer.preprocessing.to_dict()),
        "vmcr2.class_names": json.dumps(featurizer.class_names),
        "vmcr2.checkpoint": featurizer.checkpoint,
        "vmcr2.global_step": str(featurizer.global_step),
        "vmcr2.config": featurizer.run.config_path.read_text(encoding="utf-8"),
    }
    atomic_write_bytes(path, save(tensors, metadata=metadata))


# Each format: its writer and the packages it needs (the ``export`` extra holds them all).
FORMATS = {"onnx": (write_onnx, ("onnx", "onnxscript")), "torchscript": (write_torchscript, ()),
           "safetensors": (write_safetensors, ("safetensors",))}
