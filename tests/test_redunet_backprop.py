"""A constructed ReduNet trained on by back-propagation (issue 32, ``init_from``): the lecture's last table,
construction against back-propagation against both, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fixtures_data import isolate_data, write_idx_dataset

from cli_runner import vmcr2
from test_redunet_train import INVARIANT, VECTOR, construct
from vmcr2_cli.config import load_config_file
from vmcr2_cli.models.redunet import ReduNet, ReduNetSettings


@pytest.fixture(autouse=True)
def data(monkeypatch, tmp_path) -> Path:
    isolate_data(monkeypatch, tmp_path)
    write_idx_dataset(tmp_path / "data", n_train=200, n_test=40)
    return tmp_path / "data"


def constructed(tmp_path: Path, data: Path, capsys, *settings: str) -> Path:
    code, out, err = construct(tmp_path, data, *settings, "--set", "eval_at_end=false", epochs=2, runs="built",
                               capsys=capsys)
    assert code == 0, err
    return Path(json.loads(out)["run_dir"])


def fine_tune(tmp_path: Path, data: Path, capsys, source: Path, *settings: str, objective: str = "ce",
              epochs: int = 2, runs: str = "tuned", extra: tuple[str, ...] = ()) -> tuple[int, str, str]:
    return vmcr2("train", "--objective", objective, "--data-root", data, "--runs-dir", tmp_path / runs,
                 "--epochs", epochs, "--batch-size", "100", "--set", "objective_dtype=float64",
                 "--set", "optimizer=adam", "--set", "lr=0.001", *settings, "--set", f"init_from={source}", *extra,
                 "--json", capsys=capsys)


def weights(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)


@pytest.mark.parametrize("head", ["lecture", "calibrated"])
def test_the_constructed_operators_are_where_training_starts_and_back_propagation_moves_them(tmp_path, data, capsys,
                                                                                             head):
    source = constructed(tmp_path, data, capsys, *VECTOR, "--set", f"redunet_head={head}")
    code, out, err = fine_tune(tmp_path, data, capsys, source.parent / "latest", *VECTOR, epochs=1)
    assert code == 0, err
    result = json.loads(out)
    run = Path(result["run_dir"])
    # config.toml names the run that `latest` pointed to, not the link, which will point elsewhere:
    assert load_config_file(run / "config.toml").init_from == str(source.resolve())
    built, tuned = weights(source), weights(run)
    # The same layers, without the construction's head (its operators, and a calibrated head's scale,
    # described features that now move):
    assert ("head_scale" in built["model"]) == (head == "calibrated")
    assert set(tuned["model"]) == {f"layers.{i}.{name}" for i in range(2) for name in ("E", "C", "gamma")}
    moved = {key for key in tuned["model"] if not torch.equal(tuned["model"][key], built["model"][key])}
    assert moved == {f"layers.{i}.{name}" for i in range(2) for name in ("E", "C")}  # γ_j stay
    # and by small steps from where construction left them (2 Adam steps of 1e-3), not from scratch
    assert all((tuned["model"][key] - built["model"][key]).abs().max() <= 2.5e-3 for key in moved)
    assert len(tuned["optimizer"]["state"]) == 4 + 2  # E, C of 2 layers and CE's head (W, b)
    assert 0.0 <= result["head_accuracy"] <= 1.0  # CE's head

    code, out, err = vmcr2("eval", run, "--no-figures", "--json", capsys=capsys)
    assert code == 0, err
    assert json.loads(out)["knn_accuracy"] == pytest.approx(result["knn_accuracy"])
    code, out, err = vmcr2("compare", source, run, capsys=capsys)
    assert code == 0, err
    assert "ReduNet + CE" in out


def test_init_random_keeps_the_architecture_and_draws_the_operators(tmp_path, data, capsys):
    source = constructed(tmp_path, data, capsys, *INVARIANT)
    code, out, err = fine_tune(tmp_path, data, capsys, source, *INVARIANT, "--set", "init_random=true",
                               "--set", "lr=1e-12", epochs=1)  # a step too small to move them: the draw itself
    assert code == 0, err
    built, drawn = weights(source)["model"], weights(Path(json.loads(out)["run_dir"]))["model"]
    assert torch.equal(drawn["lifting.filters"], built["lifting.filters"])
    assert torch.equal(drawn["layers.1.gamma"], built["layers.1.gamma"])
    for key in ("layers.0.E", "layers.1.C"):
        operator = drawn[key]
        assert operator.shape == built[key].shape and operator.is_complex()
        bound = operator.shape[-1] ** -0.5  # uniform in ±1/√C, real and imaginary parts
        parts = torch.view_as_real(operator)
        assert parts.abs().max() <= bound * (1 + 1e-6) and parts.abs().max() > 0.9 * bound
        assert not torch.allclose(operator, built[key])
    code, out, err = vmcr2("compare", source, json.loads(out)["run_dir"], capsys=capsys)
    assert code == 0 and "from random operators" in out, err


def test_a_fine_tuning_resumed_equals_one_trained_at_once(tmp_path, data, capsys):
    source = constructed(tmp_path, data, capsys, *VECTOR)
    constant = ("--set", "lr_schedule=constant")  # the schedule of 1 epoch and of 2 differ otherwise
    code, out, err = fine_tune(tmp_path, data, capsys, source, *VECTOR, *constant, objective="mcr2", epochs=1,
                               runs="cut")
    assert code == 0, err
    cut = Path(json.loads(out)["run_dir"])
    code, out, err = vmcr2("train", "--resume", cut, "--epochs", "2", "--json", capsys=capsys)
    assert code == 0, err
    code, out, err = fine_tune(tmp_path, data, capsys, source, *VECTOR, *constant, objective="mcr2", epochs=2,
                               runs="whole")
    assert code == 0, err
    resumed, whole = weights(cut)["model"], weights(Path(json.loads(out)["run_dir"]))["model"]
    assert resumed.keys() == whole.keys() and all(torch.equal(resumed[key], whole[key]) for key in whole)


@pytest.mark.parametrize("settings, message", [
    (("--set", "redunet_eta=0.2"), "its network has redunet_eta = 0.1, this config redunet_eta = 0.2"),
    (("--set", "redunet_pool=4", "--set", "feature_dim=64"), "its network has feature_dim = 256, this config feature_dim = 64"),
    (("--set", "keep_best=head_accuracy", "--set", "eval_every=1", "--objective", "mcr2"),
     "needs a classification head"),
])
def test_a_fine_tuning_that_cannot_be_is_one_line_and_no_run(tmp_path, data, capsys, settings, message):
    source = constructed(tmp_path, data, capsys, *VECTOR)
    code, out, err = vmcr2("train", "--objective", "ce", *VECTOR, *settings, "--set", f"init_from={source}",
                           "--data-root", data, "--runs-dir", tmp_path / "tuned", "--epochs", "1",
                           "--batch-size", "100", "--set", "objective_dtype=float64", capsys=capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not list((tmp_path / "tuned").glob("2*"))


@pytest.mark.parametrize("settings, message", [
    (("--set", "init_random=true"), "init_random = true draws the operators of init_from's architecture"),
    (("--set", "init_from=nowhere"), "not a run directory: nowhere"),
])
def test_init_settings_without_a_source_are_one_line(tmp_path, data, capsys, settings, message):
    code, out, err = vmcr2("train", "--objective", "ce", *VECTOR, *settings, "--data-root", data,
                           "--runs-dir", tmp_path / "runs", "--epochs", "1", "--batch-size", "100", capsys=capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not list((tmp_path / "runs").glob("2*"))


def test_trained_operators_are_parameters_under_the_same_names():
    torch.manual_seed(0)
    X, labels = torch.randn(40, 1, 4, 4, dtype=torch.float64), torch.arange(40) % 2
    network = ReduNet(ReduNetSettings(layers=2, eps2=0.1), torch.float64)
    Z = network.input_features(X)
    for _ in range(2):
        Z = network.grow(Z, labels, 2)
    names = set(network.state_dict())
    network.train_operators()
    assert {name for name, _ in network.named_parameters()} == {f"layers.{i}.{op}" for i in range(2) for op in "EC"}
    assert set(network.state_dict()) == {name for name in names if not name.startswith("head.")}
    assert network.head is None
    network(X).sum().backward()  # the map of eq. 17, π̂ included, is differentiable in the operators
    assert all(parameter.grad is not None and parameter.grad.abs().sum() > 0 for parameter in network.parameters())
