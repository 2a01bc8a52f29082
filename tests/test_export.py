"""`vmcr2 export --csv`: one row per run and epoch, the values metrics.jsonl holds, readable by csv readers."""

from __future__ import annotations

import csv
import io

import pytest

from cli_runner import TINY_SYNTHETIC, vmcr2
from vmcr2_cli.runs import RunDir

QUICK = [*TINY_SYNTHETIC, "--epochs", "2"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    runs = tmp_path_factory.mktemp("export") / "runs"
    for objective, evaluations in (("mcr2", ["--set", "eval_every=1"]), ("vmcr2", [])):
        code, _, err = vmcr2("train", *QUICK, "--objective", objective, "--name", objective, "--runs-dir", runs,
                             *evaluations)
        assert code == 0, err
    return runs


def test_one_row_per_run_and_epoch_with_the_logged_values(two_runs, tmp_path, capsys):
    out = tmp_path / "epochs.csv"
    code, stdout, err = vmcr2("export", two_runs, "--csv", out, capsys=capsys)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(row["objective"], row["epoch"]) for row in rows] == [("mcr2", "1"), ("mcr2", "2"),
                                                                  ("vmcr2", "1"), ("vmcr2", "2")]
    for run in (RunDir.open(path) for path in sorted(two_runs.iterdir()) if not path.is_symlink()):
        logged = [line for line in run.read_metrics() if line["type"] == "epoch"]
        mine = [row for row in rows if row["run_id"] == run.name]
        assert [float(row["delta_r"]) for row in mine] == pytest.approx([line["delta_r"] for line in logged])
    assert all(row["m_term"] == "" for row in rows if row["objective"] == "mcr2")  # a missing value: empty
    assert all(float(row["r_v_over_r"]) > 0 for row in rows if row["objective"] == "vmcr2")


def test_an_evaluated_epochs_row_holds_its_eval_lines_numbers(two_runs, tmp_path, capsys):
    out = tmp_path / "epochs.csv"
    assert vmcr2("export", two_runs, "--csv", out, capsys=capsys)[0] == 0
    rows = {(row["objective"], row["epoch"]): row for row in csv.DictReader(io.StringIO(out.read_text()))}
    for run in (RunDir.open(path) for path in sorted(two_runs.iterdir()) if not path.is_symlink()):
        objective = run.read_config_table()["objective"]
        evals = {line["epoch"]: line for line in run.read_metrics() if line["type"] == "eval"}
        assert sorted(evals) == ([1, 2] if objective == "mcr2" else [2])  # eval_every = 1, or the end's alone
        for epoch in (1, 2):
            row = rows[(objective, str(epoch))]
            if epoch in evals:
                line = evals[epoch]
                assert float(row["nearest_subspace_accuracy"]) == pytest.approx(line["nearest_subspace_accuracy"])
                assert float(row["knn_accuracy"]) == pytest.approx(line["knn_accuracy"])
                assert float(row["nearest_subspace_accuracy_p2"]) == pytest.approx(
                    line["nearest_subspace_accuracy_by_components"]["2"])
            else:
                assert row["nearest_subspace_accuracy"] == row["knn_accuracy"] == ""


def test_stdout_and_bad_input(two_runs, tmp_path, capsys):
    code, stdout, _ = vmcr2("export", two_runs / "latest", "--csv", "-", capsys=capsys)
    assert code == 0 and stdout.splitlines()[0].startswith("run_id,objective,vmcr2_method,dataset,epoch,step,time")
    assert len(stdout.splitlines()) == 3
    for args, message in [([two_runs], "--csv FILE"), ([tmp_path / "nothing", "--csv", "-"], "not a run directory"),
                          ([two_runs, "--csv", tmp_path], "is a folder")]:
        code, _, err = vmcr2("export", *args, capsys=capsys)
        assert code == 2 and message in err and err.count("\n") == 1, err
