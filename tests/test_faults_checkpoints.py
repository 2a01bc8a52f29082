"""Damaged and foreign checkpoints: `train --resume`, `eval` and `latch` say what is wrong in one
line, exit 2, run nothing from the file and leave the run as it was."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest
import torch

from eval_fixtures import copy_run, train_tiny, vmcr2
from fixtures_data import isolate_data
from vmcr2_cli.runs import LOCK_FILE
from vmcr2_cli.training.checkpoints import CHECKPOINT_VERSION


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Three finished runs of one epoch: V-MCR² (the victim), and two it may be confused with."""
    root = tmp_path_factory.mktemp("fault-runs")
    return {"vmcr2": train_tiny(root / "vmcr2", "--epochs", "1"),
            "wider": train_tiny(root / "wider", "--epochs", "1", "--set", "feature_dim=32"),
            "ce": train_tiny(root / "ce", "--epochs", "1", "--objective", "ce")}


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    isolate_data(monkeypatch, tmp_path)


def assert_fails_in_one_line(code: int, err: str, message: str) -> None:
    """Exit 2 and one ``error:`` line, the last, after at most the command's progress notes."""
    lines = err.splitlines()
    assert code == 2 and "Traceback" not in err, err
    assert [line for line in lines if line.startswith("error: ")] == lines[-1:], err
    assert message in lines[-1], err


def snapshot(run_dir: Path) -> dict[str, str]:
    """Every file of the run and its digest (the lock file's note of its last holder aside)."""
    return {str(path.relative_to(run_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(run_dir.rglob("*")) if path.is_file() and path.name != LOCK_FILE}


def _load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def truncated(run: Path, others: dict) -> None:
    data = (run / "checkpoints/last.pt").read_bytes()
    cut = random.Random(len(data)).randrange(1, len(data) - 1)  # a byte inside the file
    (run / "checkpoints/last.pt").write_bytes(data[:cut])


def zero_bytes(run: Path, others: dict) -> None:
    (run / "checkpoints/last.pt").write_bytes(b"")


def not_a_torch_file(run: Path, others: dict) -> None:
    (run / "checkpoints/last.pt").write_text('{"epoch": 1}\n')


def another_runs_checkpoint(run: Path, others: dict) -> None:
    (run / "checkpoints/last.pt").write_bytes((others["wider"] / "checkpoints/last.pt").read_bytes())


def _without_config(source: Path, run: Path) -> None:
    """A checkpoint of ``source`` as versions before the config was stored in it wrote them."""
    state = _load(source / "checkpoints/last.pt")
    del state["config"]
    torch.save(state, run / "checkpoints/last.pt")


def another_model_shape(run: Path, others: dict) -> None:
    _without_config(others["wider"], run)


def another_objective(run: Path, others: dict) -> None:
    _without_config(others["ce"], run)


def newer_version(run: Path, others: dict) -> None:
    state = _load(run / "checkpoints/last.pt")
    state["version"] = 99
    torch.save(state, run / "checkpoints/last.pt")


def not_a_checkpoint_dict(run: Path, others: dict) -> None:
    torch.save({"weights": torch.ones(3)}, run / "checkpoints/last.pt")


def edited_config(run: Path, others: dict) -> None:
    config = run / "config.toml"
    config.write_text(config.read_text().replace("lr = 0.001", "lr = 0.5"))


DAMAGES = {
    truncated: "unreadable checkpoint",
    zero_bytes: "unreadable checkpoint",
    not_a_torch_file: "unreadable checkpoint",
    another_runs_checkpoint: "config.toml was edited after the checkpoint was written (feature_dim 32 → 16)",
    another_model_shape: "does not fit the run's config.toml: its model has 7.weight of shape (32, 3136), "
                         "this one (16, 3136)",
    another_objective: "does not fit the run's config.toml: its objective lacks variational.gamma, "
                       "variational.A",
    newer_version: f"the checkpoint is of version 99, newer than this vmcr2 reads ({CHECKPOINT_VERSION})",
    not_a_checkpoint_dict: "not a vmcr2 checkpoint (no version, model, objective",
    edited_config: "config.toml was edited after the checkpoint was written (lr 0.001 → 0.5)",
}
COMMANDS = {"resume": ("train", "--resume"), "eval": ("eval",), "latch": ("latch", "--write")}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("damage", DAMAGES, ids=[d.__name__ for d in DAMAGES])
def test_a_damaged_or_foreign_checkpoint_is_one_line_and_leaves_the_run_as_it_was(trained, tmp_path, capsys,
                                                                                  damage, command):
    run = copy_run(trained["vmcr2"], tmp_path / "run")
    damage(run, trained)
    before = snapshot(run)
    code, _, err = vmcr2(*COMMANDS[command], run, capsys=capsys)
    assert_fails_in_one_line(code, err, DAMAGES[damage])
    assert snapshot(run) == before


@pytest.mark.parametrize("command", COMMANDS)
def test_a_checkpoint_with_a_code_payload_is_refused_and_the_code_never_runs(trained, tmp_path, capsys, command):
    run = copy_run(trained["vmcr2"], tmp_path / "run")
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    state = _load(run / "checkpoints/last.pt")
    state["extra"] = Payload()
    torch.save(state, run / "checkpoints/last.pt")
    code, _, err = vmcr2(*COMMANDS[command], run, capsys=capsys)
    assert_fails_in_one_line(code, err, "unreadable checkpoint")
    assert not marker.exists()


def test_no_torch_load_in_the_package_goes_without_weights_only():
    package = Path(__file__).resolve().parents[1] / "vmcr2_cli"
    calls = [(path, line) for path in package.rglob("*.py") for line in path.read_text().splitlines()
             if "torch.load(" in line]
    assert calls, "the checkpoint loader is in the package"
    assert all("weights_only=True" in line for _, line in calls), calls


def test_resume_of_a_checkpoint_without_a_stored_config_still_works(trained, tmp_path, capsys):
    """Checkpoints written before the config was stored in them resume as before."""
    run = copy_run(trained["vmcr2"], tmp_path / "run")
    _without_config(run, run)
    assert vmcr2("train", "--resume", run, "--epochs", "2", capsys=capsys)[0] == 0
    assert _load(run / "checkpoints/last.pt")["epoch"] == 2


def test_eval_may_follow_a_resume_that_changed_the_epochs(trained, tmp_path, capsys):
    """What --resume may change (epochs, device, …) is not an edit of the run."""
    run = copy_run(trained["vmcr2"], tmp_path / "run")
    config = run / "config.toml"
    config.write_text(config.read_text().replace("epochs = 1", "epochs = 5").replace('device = "auto"',
                                                                                      'device = "cpu"'))
    assert vmcr2("eval", run, "--json", capsys=capsys)[0] == 0

