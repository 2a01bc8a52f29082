"""``vmcr2 export --onnx / --torchscript / --safetensors``: each file read back by its own runtime gives the
featurizer's features (onnxruntime, plain ``torch.jit.load``, ``safetensors.safe_open``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_runner import vmcr2
from eval_fixtures import assert_one_error_line
from fixtures_data import isolate_data, write_idx_dataset

from vmcr2_cli import load_featurizer

onnxruntime = pytest.importorskip("onnxruntime")
safetensors_torch = pytest.importorskip("safetensors.torch")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("export")
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate_data(monkeypatch, tmp)
        write_idx_dataset(tmp / "data", "fashion-mnist", n_train=200, n_test=40)
        code, _, err = vmcr2("train", "--runs-dir", str(tmp / "runs"), "--data-root", str(tmp / "data"),
                             "--epochs", "1", "--batch-size", "100", "--set", "feature_dim=16",
                             "--set", "atoms_per_class=4", "--set", "eval_at_end=false")
    assert code == 0, err
    return (tmp / "runs" / "latest").resolve()


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("files")
    files = {"onnx": out / "f.onnx", "torchscript": out / "f.pt", "safetensors": out / "f.safetensors"}
    code, stdout, err = vmcr2("export", str(run), *[arg for name, path in files.items()
                                                    for arg in (f"--{name}", str(path))])
    assert code == 0, err
    assert "uint8 N×1×28×28 → N×16" in stdout
    return files


def images(count: int = 5) -> np.ndarray:
    """uint8 (N, 1, 28, 28): the shape Fashion-MNIST's files hold (the exported models pad it)."""
    return np.random.default_rng(0).integers(0, 256, (count, 1, 28, 28), dtype=np.uint8)


def reference(run: Path, batch: np.ndarray) -> np.ndarray:
    return load_featurizer(run, device="cpu", precision="fp32").embed(batch)


def test_onnxruntime_gives_the_featurizer_s_features_at_any_batch_size(run, exported):
    session = onnxruntime.InferenceSession(str(exported["onnx"]), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in session.get_inputs()] == [("images", "tensor(uint8)")]
    for count in (1, 5):
        batch = images(count)
        (features,) = session.run(["features"], {"images": batch})
        assert features.shape == (count, 16)
        np.testing.assert_allclose(features, reference(run, batch), atol=1e-5)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_plain_torch_jit_load_gives_the_featurizer_s_features(run, exported):
    module = torch.jit.load(str(exported["torchscript"]))
    with torch.no_grad():
        features = module(torch.from_numpy(images(7))).numpy()
    np.testing.assert_allclose(features, reference(run, images(7)), atol=1e-5)


def test_the_run_s_default_precision_agrees_with_the_exported_float32(run, exported):
    (features,) = onnxruntime.InferenceSession(str(exported["onnx"])).run(None, {"images": images()})
    assert float((features * load_featurizer(run).embed(images())).sum(1).min()) > 0.999  # bf16 or fp32


def test_safetensors_holds_the_weights_and_the_preprocessing_as_metadata(run, exported):
    from safetensors import safe_open

    featurizer = load_featurizer(run, device="cpu", precision="fp32")
    with safe_open(str(exported["safetensors"]), framework="pt") as file:
        metadata = file.metadata()
        weights = {name: file.get_tensor(name) for name in file.keys()}
    state = featurizer.model.state_dict()
    assert set(weights) == set(state) and all(torch.equal(weights[name], state[name]) for name in state)
    assert json.loads(metadata["vmcr2.preprocessing"]) == featurizer.preprocessing.to_dict()
    assert metadata["vmcr2.model"] == "mnist-cnn" and metadata["vmcr2.feature_dim"] == "16"
    assert 'dataset = "fashion-mnist"' in metadata["vmcr2.config"]
    assert json.loads(metadata["vmcr2.class_names"])[9] == "Ankle boot"


def test_a_missing_export_package_is_one_line_with_the_extra_to_install(run, tmp_path, monkeypatch, capsys):
    from vmcr2_cli.featurizer import exporters

    real = exporters.find_spec
    monkeypatch.setattr(exporters, "find_spec", lambda name: None if name == "onnxscript" else real(name))
    code, _, err = vmcr2("export", str(run), "--onnx", str(tmp_path / "f.onnx"), "--torchscript",
                         str(tmp_path / "f.pt"), capsys=capsys)
    assert_one_error_line(code, err, "needs onnxscript: pip install 'vmcr2[export]'")
    assert not list(tmp_path.iterdir())  # refused before any file, the TorchScript one included


@pytest.mark.parametrize("args, message", [
    (["--onnx", "{tmp}/a", "--torchscript", "{tmp}/a"], "two model files of the same name"),
    (["--onnx", "{tmp}"], "is a folder; name a file"),
    (["--checkpoint", "best", "--onnx", "{tmp}/a.onnx"], "the run keeps no best checkpoint"),
    (["{run}", "--safetensors", "{tmp}/a"], "name one run, not 2"),
    ([], "say what to write"),
])
def test_bad_exports_are_one_line_and_write_nothing(run, tmp_path, capsys, args, message):
    args = [arg.format(tmp=tmp_path, run=run) for arg in args]
    code, _, err = vmcr2("export", str(run), *args, capsys=capsys)
    assert_one_error_line(code, err, message)
    assert not list(tmp_path.iterdir())
