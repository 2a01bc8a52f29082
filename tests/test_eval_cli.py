"""End-to-end: `vmcr2 eval` on small real runs, and its bad-input paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from eval_fixtures import assert_one_error_line, copy_run, train_tiny, vmcr2
from fixtures_data import isolate_data, write_idx_dataset
from vmcr2_cli.objectives import rate_reduction_reference
from vmcr2_cli.runs import RunDir

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A V-MCR² and a CE run of one epoch each (trained once for the module)."""
    root = tmp_path_factory.mktemp("eval-runs")
    return {objective: train_tiny(root / objective, "--objective", objective, "--epochs", "1")
            for objective in ("vmcr2", "ce")}


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # Rich wraps tables at the terminal's width


@pytest.fixture
def vmcr2_run(runs, tmp_path) -> Path:
    return copy_run(runs["vmcr2"], tmp_path / "vmcr2-run")


def test_eval_writes_eval_json_a_metrics_line_and_the_figures(vmcr2_run, capsys):
    code, out, err = vmcr2("eval", vmcr2_run, "--json", capsys=capsys)
    assert code == 0, err
    results = json.loads(out)
    run = RunDir.open(vmcr2_run)
    assert run.read_eval() == results
    assert results["components"] == 16 // 10 and results["num_classes"] == 10 and results["num_train"] == 200
    for key in ("nearest_subspace_accuracy", "knn_accuracy"):
        assert 0.0 <= results[key] <= 1.0
    assert results["head_accuracy"] is None  # not a CE run
    exact = results["exact"]
    assert exact["dtype"] == "float64" and exact["samples"] == 200
    assert exact["delta_r"] == pytest.approx(exact["r"] - exact["r_c"])
    logged = results["logged"]
    last_epoch = [line for line in run.read_metrics() if line["type"] == "epoch"][-1]
    assert logged["delta_r"] == last_epoch["delta_r"] and logged["epoch"] == 1
    structure = results["structure"]
    assert len(structure["principal_cosines"]) == 10 and len(results["classes"]) == 10
    assert structure["nc1"] >= 0 and 0 <= structure["mean_abs_cos"] <= 1
    eval_line = [line for line in run.read_metrics() if line["type"] == "eval"][-1]
    assert eval_line["nearest_subspace_accuracy"] == results["nearest_subspace_accuracy"]
    assert eval_line["exact_delta_r"] == exact["delta_r"] and eval_line["source"] == "vmcr2 eval"
    for name in ("heatmap", "subspaces"):
        path = Path(results["figures"][name])
        assert path.parent == run.figures_dir and path.read_bytes()[:8] == PNG_MAGIC


def test_eval_of_a_ce_run_reports_the_head_accuracy_too(runs, tmp_path, capsys):
    run = copy_run(runs["ce"], tmp_path / "ce-run")
    code, out, _ = vmcr2("eval", run, "--no-figures", capsys=capsys)
    assert code == 0
    assert "CE head" in out and "nearest subspace (eq. 8, 1 directions per class)" in out
    assert "exact: the whole training set, 200 samples, float64" in out and "as logged: batch mean over epoch 1" in out
    results = RunDir.open(run).read_eval()
    assert 0.0 <= results["head_accuracy"] <= 1.0 and results["figures"] == {}


def test_eval_follows_latest_and_saves_the_features(vmcr2_run, tmp_path, capsys):
    (tmp_path / "latest").symlink_to(vmcr2_run.name)
    features = tmp_path / "features.npz"
    code, out, _ = vmcr2("eval", tmp_path / "latest", "--components", "3", "--save-features", features,
                         "--no-figures", "--json", capsys=capsys)
    assert code == 0
    assert json.loads(out)["components"] == 3 and json.loads(out)["features_file"] == str(features)
    saved = np.load(features)
    assert saved["train_features"].shape == (200, 16) and saved["test_features"].shape == (60, 16)
    assert saved["train_labels"].shape == (200,) and set(saved["test_labels"].tolist()) == set(range(10))
    np.testing.assert_allclose(np.linalg.norm(saved["train_features"], axis=1), 1.0, rtol=1e-5)


def test_a_path_that_is_not_a_run_is_bad_input(tmp_path, capsys):
    assert_one_error_line(*vmcr2("eval", tmp_path / "nowhere", capsys=capsys)[::2], "not a run directory")
    (tmp_path / "empty").mkdir()
    assert_one_error_line(*vmcr2("eval", tmp_path / "empty", capsys=capsys)[::2], "not a run directory")


def test_a_run_without_a_checkpoint_is_bad_input(vmcr2_run, capsys):
    (vmcr2_run / "checkpoints" / "last.pt").unlink()
    code, _, err = vmcr2("eval", vmcr2_run, capsys=capsys)
    assert_one_error_line(code, err, "has no checkpoint yet (checkpoints/last.pt)")


def test_a_damaged_checkpoint_is_bad_input(vmcr2_run, capsys):
    (vmcr2_run / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    code, _, err = vmcr2("eval", vmcr2_run, capsys=capsys)
    assert_one_error_line(code, err, "unreadable checkpoint")


@pytest.mark.parametrize("args, message", [
    (["--components", "17"], "--components 17: must be between 1 and the feature dimension d = 16"),
    (["--knn-k", "0"], "--knn-k 0: must be at least 1"),
    (["--device", "gpu"], "--device 'gpu'"),
])
def test_bad_options_are_one_line_and_exit_code_2(vmcr2_run, capsys, args, message):
    code, _, err = vmcr2("eval", vmcr2_run, "--no-figures", *args, capsys=capsys)
    assert_one_error_line(code, err, message)


def test_eval_on_fashion_mnist_files_matches_the_one_piece_reference_of_its_features(tmp_path, capsys):
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate_data(monkeypatch, tmp_path)
        write_idx_dataset(tmp_path / "data", name="fashion-mnist", n_train=200, n_test=40)
        code, _, err = vmcr2("train", "--profile", "fashion-mnist", "--objective", "mcr2", "--data-root",
                             tmp_path / "data", "--runs-dir", tmp_path / "runs", "--epochs", "1", "--batch-size",
                             "100", "--set", "width=0.25", "--set", "feature_dim=16", "--set", "eval_at_end=false",
                             capsys=capsys)
        assert code == 0, err
        features = tmp_path / "features.npz"
        code, out, err = vmcr2("eval", tmp_path / "runs" / "latest", "--save-features", features, "--no-figures",
                               "--json", capsys=capsys)
    assert code == 0, err
    results = json.loads(out)
    assert results["dataset"] == "fashion-mnist" and results["num_train"] == 200 and results["num_test"] == 40
    assert [row["name"] for row in results["classes"]][:2] == ["T-shirt/top", "Trouser"]
    saved = np.load(features)
    reference = rate_reduction_reference(torch.from_numpy(saved["train_features"]).double(),
                                         torch.from_numpy(saved["train_labels"]), num_classes=10, eps2=0.5)
    exact = results["exact"]
    for key, value in (("r", reference.r), ("r_c", reference.r_c), ("delta_r", reference.delta_r)):
        assert exact[key] == pytest.approx(value.item(), rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("objective", ["vmcr2", "ce"])
def test_the_accuracy_train_prints_at_the_end_is_the_one_eval_reports(tmp_path, capsys, objective):
    run = train_tiny(tmp_path / "runs", "--objective", objective, "--epochs", "1", "--set", "eval_at_end=true")
    meta = RunDir.open(run).read_meta()
    code, out, err = vmcr2("eval", str(run), "--json", "--no-figures", capsys=capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["nearest_subspace_accuracy"] == meta["nearest_subspace_accuracy"]
    if objective == "ce":
        assert result["head_accuracy"] == meta["head_accuracy"]
