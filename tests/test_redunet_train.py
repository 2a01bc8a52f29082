"""A ReduNet through the real CLI (issue 32): ``vmcr2 train`` constructs it a layer an epoch line, and
eval, embed, compare and ``--resume`` work on the run as on any other."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fixtures_data import isolate_data, write_idx_dataset

from cli_runner import vmcr2
from watch_fixtures import async_test, wait_until
from vmcr2_cli.config import resolve_config
from vmcr2_cli.featurizer import load_featurizer
from vmcr2_cli.runs import RunDir
from vmcr2_cli.training.construction import balanced_sample
from vmcr2_cli.tui.app import WatchApp
from vmcr2_cli.tui.metric_chart import MetricChart
from vmcr2_cli.tui.runs_table import RunsTable
from vmcr2_cli.tui.watcher import resolve_targets

# Small Fashion-MNIST-format files (28×28, padded to 32×32 as vmcr2 reads them): 200 training images
# (20 a class), 40 test images.
VECTOR = ("--set", "model=redunet", "--set", "feature_dim=256", "--set", "redunet_pool=2",
          "--set", "redunet_samples=100", "--set", "eps2=0.1", "--set", "redunet_eta=0.1")
INVARIANT = ("--set", "model=redunet-shift", "--set", "feature_dim=128", "--set", "redunet_pool=4",
             "--set", "redunet_channels=2", "--set", "redunet_samples=60", "--set", "eps2=0.1",
             "--set", "redunet_eta=0.1", "--set", "redunet_lambda=50")


@pytest.fixture(autouse=True)
def data(monkeypatch, tmp_path) -> Path:
    isolate_data(monkeypatch, tmp_path)
    write_idx_dataset(tmp_path / "data", n_train=200, n_test=40)
    return tmp_path / "data"


def construct(tmp_path: Path, data: Path, *settings: str, epochs: int = 3, runs: str = "runs", capsys=None,
              extra: tuple[str, ...] = ()) -> tuple[int, str, str]:
    return vmcr2("train", "--objective", "mcr2", "--data-root", data, "--runs-dir", tmp_path / runs,
                 "--epochs", epochs, "--batch-size", "100", "--set", "objective_dtype=float64", *settings, *extra,
                 "--json", capsys=capsys)


def lines(run: Path, kind: str) -> list[dict]:
    return [record for record in RunDir(run).read_metrics() if record["type"] == kind]


def test_each_layer_is_an_epoch_line_with_the_rates_and_the_run_evaluates(tmp_path, data, capsys):
    code, out, err = construct(tmp_path, data, *VECTOR, "--set", "eval_every=2", epochs=4, capsys=capsys)
    assert code == 0, err
    result = json.loads(out)
    run = Path(result["run_dir"])
    epochs = lines(run, "epoch")
    assert [line["epoch"] for line in epochs] == [0, 1, 2, 3] and [line["step"] for line in epochs] == [1, 2, 3, 4]
    delta_r = [line["delta_r"] for line in epochs]
    assert all(later > earlier for earlier, later in zip(delta_r, delta_r[1:]))  # ascent, layer by layer
    assert all(line["r"] - line["r_c"] == pytest.approx(line["delta_r"]) and line["loss"] == -line["delta_r"]
               for line in epochs)
    assert [line["epoch"] for line in lines(run, "eval")] == [2, 4]
    assert all(0.0 <= result[key] <= 1.0 for key in ("nearest_subspace_accuracy", "knn_accuracy", "head_accuracy"))
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    # The operators of the 4 layers and of the head (the next layer's, which classifies by π̂):
    assert {key.rsplit(".", 1)[0] for key in state["model"]} == {"layers.0", "layers.1", "layers.2", "layers.3", "head"}
    assert state["model"]["layers.0.C"].shape == (10, 256, 256) and state["model"]["layers.0.E"].dtype == torch.float64

    code, out, err = vmcr2("eval", run, "--no-figures", "--json", capsys=capsys)
    assert code == 0, err
    assert json.loads(out)["knn_accuracy"] == pytest.approx(result["knn_accuracy"])  # the same network, reloaded
    code, out, err = vmcr2("compare", run, capsys=capsys)
    assert code == 0, err and run.name in out

    featurizer = load_featurizer(run)
    images = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    features = featurizer.features(images)
    assert features.shape == (5, 256)
    assert torch.allclose(features.norm(dim=1), torch.ones(5), atol=1e-5)
    code, out, err = vmcr2("export", run, "--torchscript", tmp_path / "redunet.pt", capsys=capsys)
    assert code == 0, err
    exported = torch.jit.load(tmp_path / "redunet.pt")
    assert torch.allclose(exported(images), features, atol=1e-6)


@pytest.mark.parametrize("head", ["lecture", "calibrated"])
def test_a_construction_resumed_with_more_layers_equals_one_built_at_once(tmp_path, data, capsys, head):
    settings = (*VECTOR, "--set", f"redunet_head={head}")
    code, out, err = construct(tmp_path, data, *settings, epochs=2, runs="cut", capsys=capsys)
    assert code == 0, err
    cut = Path(json.loads(out)["run_dir"])
    code, out, err = vmcr2("train", "--resume", cut, "--epochs", "4", "--json", capsys=capsys)
    assert code == 0, err
    code, out, err = construct(tmp_path, data, *settings, epochs=4, runs="whole", capsys=capsys)
    assert code == 0, err
    whole = Path(json.loads(out)["run_dir"])
    resumed_state, whole_state = (torch.load(run / "checkpoints" / "last.pt", weights_only=True) for run in (cut, whole))
    assert resumed_state["model"].keys() == whole_state["model"].keys()
    assert ("head_scale" in whole_state["model"]) == (head == "calibrated")
    assert all(torch.equal(resumed_state["model"][key], whole_state["model"][key]) for key in whole_state["model"])
    drop = ("time", "epoch_time_s", "images_per_s")
    assert ([{k: v for k, v in line.items() if k not in drop} for line in lines(cut, "epoch")]
            == [{k: v for k, v in line.items() if k not in drop} for line in lines(whole, "epoch")])


@pytest.mark.parametrize("shifts, layout, dims, offset", [
    ("2d", (4, 2, 8, 8), (2, 3), (8, 12)),  # C = 2 channels of 8×8
    ("rows", (4, 2, 8), (2,), (20,)),  # each image row a channel of a 1D signal along the columns: C = 2 of 8
])
def test_the_invariant_form_trained_by_the_cli_maps_a_shifted_image_to_its_shifted_features(
        tmp_path, data, capsys, shifts, layout, dims, offset):
    code, out, err = construct(tmp_path, data, *INVARIANT, "--set", f"redunet_shifts={shifts}",
                               "--set", f"feature_dim={layout[1] * layout[-1] ** (len(layout) - 2)}", epochs=2,
                               capsys=capsys)
    assert code == 0, err
    featurizer = load_featurizer(json.loads(out)["run_dir"], precision="fp32")
    images = torch.randint(0, 256, (4, 1, 32, 32), dtype=torch.uint8)  # at the network's shape (28 → 32 padded)
    # Shifts of the image by multiples of the pool (4) are shifts of the 8×8 signal the layers see.
    moved = torch.roll(images, offset, (2, 3)[-len(dims):])
    pooled_offset = tuple(step // 4 for step in offset)
    expected = torch.roll(featurizer.features(images).view(layout), pooled_offset, dims)
    assert torch.allclose(featurizer.features(moved).view(layout), expected, atol=1e-5)
    # and its head (π̂, eq. 14) gives a rolled image the class of the image
    assert torch.equal(featurizer.model.classify(featurizer.features(moved)),
                       featurizer.model.classify(featurizer.features(images)))
    code, out, err = vmcr2("export", featurizer.run.path, "--onnx", tmp_path / "f.onnx", capsys=capsys)
    assert code == 2 and "no complex numbers" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "f.onnx").exists()


def test_the_polar_form_maps_a_quarter_turn_to_a_roll_of_its_angles(tmp_path, data, capsys):
    # 32×32 pooled by 4: 8×8, R = 4 radii, T = 24 angles; C = 2 lifted channels of 24
    code, out, err = construct(tmp_path, data, *INVARIANT, "--set", "redunet_shifts=polar", "--set", "feature_dim=48",
                               epochs=2, capsys=capsys)
    assert code == 0, err
    featurizer = load_featurizer(json.loads(out)["run_dir"], precision="fp32")
    images = torch.randint(0, 256, (4, 1, 32, 32), dtype=torch.uint8)
    turned = torch.rot90(images, 1, (2, 3))
    expected = torch.roll(featurizer.features(images).view(4, 2, 24), -6, 2)  # a quarter of the 24 angles
    assert torch.allclose(featurizer.features(turned).view(4, 2, 24), expected, atol=1e-5)
    assert torch.equal(featurizer.model.classify(featurizer.features(turned)),
                       featurizer.model.classify(featurizer.features(images)))


@pytest.mark.parametrize("settings, message", [
    (("--set", "model=redunet", "--set", "feature_dim=64", "--objective", "ce"), "set objective = 'mcr2'"),
    (VECTOR[:2] + ("--set", "feature_dim=100", "--set", "redunet_pool=2", "--set", "redunet_samples=100"),
     "set feature_dim = 256"),
    (VECTOR + ("--set", "redunet_samples=500"), "redunet_samples = 500 exceeds the 200 training images"),
    (("--set", "redunet_channels=4"), "redunet_channels = 4 has no effect with model = 'mnist-cnn'"),
    (VECTOR + ("--nproc", "2"), "is constructed in one process, not 2"),
])
def test_a_construction_that_cannot_be_is_one_line_and_no_run(tmp_path, data, capsys, settings, message):
    code, out, err = vmcr2("train", "--objective", "mcr2", *settings, "--data-root", data, "--runs-dir",
                           tmp_path / "runs", "--epochs", "2", "--batch-size", "100", capsys=capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not list((tmp_path / "runs").glob("2*"))


def test_the_redunet_profiles_resolve():
    for profile in ("redunet", "redunet-shift"):
        config, _ = resolve_config(profile)
        assert config.model == profile and config.objective == "mcr2"


@pytest.mark.parametrize("dim", [2, 3])
def test_the_gaussian_profiles_construct_layers_that_raise_delta_r_and_the_run_evaluates(tmp_path, capsys, dim):
    code, out, err = vmcr2("train", "--profile", f"redunet-gaussians-{dim}d", "--runs-dir", tmp_path / "runs",
                           "--epochs", "30", "--set", "eval_every=15", "--json", capsys=capsys)
    assert code == 0, err
    run = Path(json.loads(out)["run_dir"])
    delta_r = [line["delta_r"] for line in lines(run, "epoch")]
    assert len(delta_r) == 30 and all(later > earlier for earlier, later in zip(delta_r, delta_r[1:]))
    evals = lines(run, "eval")
    assert [line["epoch"] for line in evals] == [15, 30] and evals[-1]["knn_accuracy"] > 0.9
    assert load_featurizer(run).embed(torch.full((4, 1, 1, dim), 128, dtype=torch.uint8)).shape == (4, dim)


def test_the_construction_set_is_balanced_and_a_class_that_runs_out_leaves_its_share_to_the_others():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 4)
    chosen = balanced_sample(labels, 30, seed=0)
    assert torch.bincount(labels[chosen]).tolist() == [13, 13, 4] and len(set(chosen.tolist())) == 30
    assert torch.equal(chosen, balanced_sample(labels, 30, seed=0))
    assert not torch.equal(chosen, balanced_sample(labels, 30, seed=1))


@async_test
async def test_watch_shows_the_rates_along_the_layers(tmp_path, data):
    code, out, err = construct(tmp_path, data, *VECTOR, epochs=3)
    assert code == 0, err
    run = Path(json.loads(out)["run_dir"])
    app = WatchApp(resolve_targets([run]), interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: run.name in {s.name for s in app.query_one(RunsTable).summaries})
        summary = {s.name: s for s in app.query_one(RunsTable).summaries}[run.name]
        assert summary.epoch == 3 and summary.delta_r == pytest.approx(lines(run, "epoch")[-1]["delta_r"])
        assert app.query_one("#chart-delta_r", MetricChart).series[0].xs == [1, 2, 3]
