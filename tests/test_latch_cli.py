"""End-to-end: `vmcr2 latch` (Algorithm 2 on a checkpoint), `--write`, and resuming from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from eval_fixtures import assert_one_error_line, copy_run, train_tiny, vmcr2
from training_processes import process_holding_the_lock
from vmcr2_cli.objectives import VariationalMCR2
from vmcr2_cli.runs import RunDir


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A V-MCR² run of one epoch, latched only before training (latch_every = 0)."""
    return train_tiny(tmp_path_factory.mktemp("latch-runs"), "--epochs", "1", "--set", "latch_every=0")


@pytest.fixture
def run_dir(trained, tmp_path) -> Path:
    return copy_run(trained, tmp_path / "run")


def dictionary(run_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    objective = RunDir.open(run_dir).load_checkpoint()["objective"]
    return objective["variational.gamma"], objective["variational.A"]


def test_latch_reports_the_terms_before_and_after_and_leaves_the_checkpoint_alone(run_dir, capsys):
    checkpoint = (run_dir / "checkpoints" / "last.pt").read_bytes()
    lines_before = len(RunDir.open(run_dir).read_metrics())
    code, out, err = vmcr2("latch", run_dir, "--json", capsys=capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["written"] is False and report["atoms_per_class"] == 2 and report["dictionary_size"] == 20
    probe = report["probe"]
    assert probe["samples"] == 100
    assert set(probe["before"]) == set(probe["after"]) == {"r_v", "r_c_v", "m_term", "delta_r_v"}
    for terms in (probe["before"], probe["after"]):
        assert terms["delta_r_v"] == pytest.approx(terms["r_v"] - terms["r_c_v"], rel=1e-5)
    assert report["dataset"]["samples"] == 200 and report["dataset"]["dtype"] == "float64"
    assert len(report["classes"]) == 10
    for row in report["classes"]:
        assert 0.0 < row["spectrum_share"] <= 1.0 + 1e-9
        assert 1 <= row["atoms_for_90"] <= row["atoms_for_95"] <= row["atoms_for_99"] <= 16
    assert report["suggested_atoms_per_class"]["99"] == max(row["atoms_for_99"] for row in report["classes"])
    assert (run_dir / "checkpoints" / "last.pt").read_bytes() == checkpoint  # a dry run
    assert len(RunDir.open(run_dir).read_metrics()) == lines_before


def test_latch_output_shows_the_table_and_says_it_was_a_dry_run(run_dir, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = vmcr2("latch", run_dir, capsys=capsys)
    assert code == 0
    for text in ("R^v", "R_c^v", "ΔR^v = R^v − R_c^v", "exact ΔR of the same batch", "share of top 2",
                 "dry run: the checkpoint is unchanged"):
        assert text in out


def test_latch_write_then_resume_trains_on_from_the_latched_gamma_and_A(run_dir, capsys, monkeypatch):
    gamma_trained, A_trained = dictionary(run_dir)
    code, out, _ = vmcr2("latch", run_dir, "--write", "--json", capsys=capsys)
    assert code == 0 and json.loads(out)["written"] is True
    gamma, A = dictionary(run_dir)
    assert not torch.allclose(gamma, gamma_trained)  # the epoch of training had moved Γ off the last latch
    torch.testing.assert_close(gamma.norm(dim=0), torch.ones(20), rtol=0, atol=1e-5)
    blocks = torch.block_diag(*[torch.ones(2, 1)] * 10).bool()  # A[j·s + i, j] only (Algorithm 2)
    assert (A >= 0).all() and (A[~blocks] == 0).all() and (A[blocks] > 0).all()
    state = RunDir.open(run_dir).load_checkpoint()
    assert state["latched"] is True and state["epoch"] == 1 and "optimizer" in state
    latch_line = [line for line in RunDir.open(run_dir).read_metrics() if line["type"] == "latch"][-1]
    assert latch_line["source"] == "vmcr2 latch" and latch_line["epoch"] == 1

    seen = []
    original = VariationalMCR2.proximal_step

    def recording_step(self, Z, labels, **kwargs):
        seen.append((self.gamma.detach().clone(), self.A.detach().clone()))
        return original(self, Z, labels, **kwargs)

    monkeypatch.setattr(VariationalMCR2, "proximal_step", recording_step)
    code, _, err = vmcr2("train", "--resume", run_dir, "--epochs", "2", capsys=capsys)
    assert code == 0, err
    first_gamma, first_A = seen[0]  # what the first step of the resumed run started from
    torch.testing.assert_close(first_gamma, gamma, rtol=0, atol=0)
    torch.testing.assert_close(first_A, A, rtol=0, atol=0)
    run = RunDir.open(run_dir)
    assert run.read_meta()["status"] == "finished"
    assert [line["epoch"] for line in run.read_metrics() if line["type"] == "epoch"] == [0, 1]


def test_latch_refuses_a_run_that_is_not_vmcr2(run_dir, capsys):
    config = run_dir / "config.toml"
    config.write_text(config.read_text().replace('objective = "vmcr2"', 'objective = "mcr2"'))
    code, _, err = vmcr2("latch", run_dir, capsys=capsys)
    assert_one_error_line(code, err, "the run trains mcr2; latching (Algorithm 2) sets the dictionary")


def test_latch_write_refuses_a_run_that_is_still_training(run_dir, capsys):
    before = (run_dir / "checkpoints" / "last.pt").read_bytes()
    with process_holding_the_lock(run_dir) as trainer:
        code, _, err = vmcr2("latch", run_dir, "--write", capsys=capsys)
        assert_one_error_line(code, err, f"the run is in use by pid {trainer.pid}")
        assert vmcr2("latch", run_dir, capsys=capsys)[0] == 0  # a dry run only reads: allowed
    assert (run_dir / "checkpoints" / "last.pt").read_bytes() == before


def test_latch_of_a_path_that_is_not_a_run_or_has_no_checkpoint_is_bad_input(run_dir, tmp_path, capsys):
    assert_one_error_line(*vmcr2("latch", tmp_path / "missing", capsys=capsys)[::2], "not a run directory")
    (run_dir / "checkpoints" / "last.pt").unlink()
    assert_one_error_line(*vmcr2("latch", run_dir, capsys=capsys)[::2], "has no checkpoint yet")
