"""``vmcr2 watch --once`` and ``--json``, and bad paths, through the command function."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from vmcr2_cli.commands.watch import print_once, watch
from vmcr2_cli.errors import BadInput
from vmcr2_cli.tui.watcher import resolve_targets

from watch_fixtures import FakeRun

app = typer.Typer()
app.command()(watch)
runner = CliRunner()


@pytest.fixture
def two_finished_runs(tmp_path):
    runs = tmp_path / "runs"
    a = FakeRun(runs, "20261123-101502-fashion-mnist-mcr2", objective="mcr2", epochs=3)
    b = FakeRun(runs, "20261123-101907-fashion-mnist-vmcr2", objective="vmcr2", epochs=3, gpu=False)
    for run in (a, b):
        run.epochs_upto(3)
        run.finish()
    return runs


def test_once_prints_a_table_row_per_run(two_finished_runs):
    result = runner.invoke(app, ["--once", str(two_finished_runs)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["#", "run", "obj", "status"]
    assert "fashion-mnist-mcr2" in lines[1] and "MCR²" in lines[1] and "✓ finished" in lines[1]
    assert "3/3" in lines[1] and "no GPU" in lines[2]


def test_once_fits_80_columns_and_says_what_it_left_out(two_finished_runs):
    result = runner.invoke(app, ["--once", str(two_finished_runs)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert all(len(line) <= 80 for line in result.output.splitlines())
    assert "not shown at this width" in result.output and "--json" in result.output


def test_once_on_one_run_prints_every_field(two_finished_runs):
    run = two_finished_runs / "20261123-101907-fashion-mnist-vmcr2"
    result = runner.invoke(app, ["--once", str(run)])
    assert result.exit_code == 0, result.output
    for field in ("objective", "V-MCR²", "ΔR", "R_c^v", "mean epoch time", "no GPU", "ETA"):
        assert field in result.output


def test_json_is_one_document_with_every_run(two_finished_runs):
    result = runner.invoke(app, ["--json", str(two_finished_runs)])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    runs = {run["name"]: run for run in document["runs"]}
    assert set(runs) == {"20261123-101502-fashion-mnist-mcr2", "20261123-101907-fashion-mnist-vmcr2"}
    vmcr2 = runs["20261123-101907-fashion-mnist-vmcr2"]
    assert vmcr2["status"] == "finished" and vmcr2["epoch"] == 3 and vmcr2["total_epochs"] == 3
    assert vmcr2["has_gpu"] is False and vmcr2["m_term"] is not None
    assert set(vmcr2) >= {"delta_r", "r", "r_c", "mean_epoch_time_s", "images_per_s", "eta_s", "corrupt_lines"}


def test_json_reports_stalled_runs_from_the_clock(tmp_path, capsys):
    run = FakeRun(tmp_path, "r", epochs=10)
    run.epochs_upto(2)
    print_once(resolve_targets([run.path]), json_out=True, now=run.epoch_end_time(1) + 5)
    assert json.loads(capsys.readouterr().out)["runs"][0]["status"] == "running"
    print_once(resolve_targets([run.path]), json_out=True, now=run.epoch_end_time(1) + 500)
    summary = json.loads(capsys.readouterr().out)["runs"][0]
    assert summary["status"] == "stalled" and "no line for" in summary["stalled_reason"]


def test_json_counts_corrupt_lines(tmp_path):
    run = FakeRun(tmp_path, "r")
    run.epoch(0)
    run.raw("garbage\n")
    result = runner.invoke(app, ["--json", str(run.path)])
    assert json.loads(result.output)["runs"][0]["corrupt_lines"] == 1


@pytest.mark.parametrize("args", [["--once", "nowhere"], ["--json", "nowhere"], ["nowhere"]])
def test_a_bad_path_raises_bad_input(tmp_path, args):
    result = runner.invoke(app, [a.replace("nowhere", str(tmp_path / "nowhere")) for a in args])
    assert isinstance(result.exception, BadInput)
    assert "not a run directory or a folder of runs" in str(result.exception)


def test_a_folder_that_has_no_runs_yet_is_bad_input_for_once(tmp_path):
    result = runner.invoke(app, ["--once", str(tmp_path)])
    assert isinstance(result.exception, BadInput)
    assert "no runs in" in str(result.exception)


def test_a_non_positive_interval_is_bad_input(two_finished_runs):
    result = runner.invoke(app, ["--interval", "0", str(two_finished_runs)])
    assert isinstance(result.exception, BadInput)


def test_the_cli_prints_one_line_and_exits_2_for_a_bad_path(tmp_path, capsys):
    from vmcr2_cli import cli

    if "watch" not in {command.name or command.callback.__name__ for command in cli.app.registered_commands}:
        pytest.skip("cli.py does not register `watch` yet")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["watch", "--once", str(tmp_path / "nowhere")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: not a run directory or a folder of runs") and err.count("\n") == 1


def test_starting_the_command_does_not_import_textual():
    import subprocess
    import sys

    code = "import sys, vmcr2_cli.commands.watch; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"

