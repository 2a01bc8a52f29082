"""``vmcr2 bench`` end to end at tiny sizes on the CPU: outputs, their agreement, bad input.

No timing thresholds here: the figures are checked for presence and consistency,
never for speed (the machines that run the tests are shared and slow).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import torch
from rich.console import Console

from cli_runner import vmcr2
from vmcr2_cli.bench.output import CSV_FILE, JSON_FILE, PLOT_FILE
from vmcr2_cli.bench.report import render
from vmcr2_cli.bench.results import BACKBONE
from vmcr2_cli.bench.settings import VARIANTS, make_settings


TINY = ["--batch-size", "32", "--dim", "8", "--atoms-per-class", "2", "--classes", "2,4", "--repeats", "2",
        "--warmup", "1", "--device", "cpu"]
WIDTH = "120"


def run_bench_cli(*args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``vmcr2 bench ARGS…`` on a WIDTH-column terminal."""
    with pytest.MonkeyPatch.context() as monkeypatch:  # usable from module-scoped fixtures
        monkeypatch.setenv("COLUMNS", WIDTH)
        return vmcr2("bench", *args)


def only_bench_dir(runs_dir: Path) -> Path:
    folders = list(runs_dir.iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("bench-")
    return folders[0]


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    """The bench with a backbone, printing its tables: (stdout, bench folder)."""
    runs_dir = tmp_path_factory.mktemp("table") / "runs"
    code, out, err = run_bench_cli(*TINY, "--backbone", "mnist-cnn", "--dataset-size", "100", "--micro-batch", "12",
                                   "--runs-dir", str(runs_dir))
    assert code == 0, err
    return out, only_bench_dir(runs_dir)


@pytest.fixture(scope="module")
def json_run(tmp_path_factory):
    """The bench of the objectives alone with --json: (parsed stdout, bench folder)."""
    runs_dir = tmp_path_factory.mktemp("json") / "runs"
    code, out, err = run_bench_cli(*TINY, "--json", "--runs-dir", str(runs_dir))
    assert code == 0, err
    return json.loads(out), only_bench_dir(runs_dir)


def test_json_has_a_row_per_variant_and_class_count_with_its_figures(json_run):
    report, _ = json_run
    assert [(row["variant"], row["classes"]) for row in report["rows"]] == [
        (variant, k) for k in (2, 4) for variant in VARIANTS]
    for row in report["rows"]:
        assert row["q1_s"] <= row["median_s"] <= row["q3_s"]
        assert row["min_s"] <= row["q1_s"] and row["q3_s"] <= row["max_s"]
        assert row["repeats"] == 2 and row["warmup"] == 1
        assert row["speedup_vs_reference"] > 0
        assert row["step_median_s"] is None and row["step_share"] is None  # no backbone asked
    assert [row["dictionary_size"] for row in report["rows"] if row["variant"] == "vmcr2"] == [4, 8]
    assert [entry["classes"] for entry in report["ratios"]] == [2, 4]
    assert all(entry["objective_ratio"] > 0 for entry in report["ratios"])


def test_json_names_the_device_versions_and_settings(json_run):
    report, _ = json_run
    env = report["environment"]
    assert env["device"] == "cpu" and env["device_name"] and env["torch_threads"] >= 1
    assert {"python", "torch", "vmcr2"} <= set(env["versions"])
    assert report["settings"]["batch_size"] == 32 and report["settings"]["eps2"] == 0.5
    assert report["command"].startswith("vmcr2 bench " + " ".join(TINY) + " --json --runs-dir ")
    assert [row["ratio"] for row in report["paper_table_1"]["rows"]] == [1.84, 1.60, 5.06, 11.93]


def test_json_on_stdout_is_the_json_file(json_run):
    report, folder = json_run
    assert json.loads((folder / JSON_FILE).read_text()) == report
    assert report["files"]["json"] == str(folder / JSON_FILE)


def test_csv_has_a_line_per_row_of_the_json(json_run):
    report, folder = json_run
    lines = list(csv.DictReader(io.StringIO((folder / CSV_FILE).read_text())))
    assert len(lines) == len(report["rows"])
    for line, row in zip(lines, report["rows"]):
        assert line["variant"] == row["variant"] and float(line["median_s"]) == pytest.approx(row["median_s"])


def test_plot_is_a_png(json_run):
    _, folder = json_run
    assert (folder / PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_printed_tables_are_drawn_from_the_json_file_alone(table_run):
    stdout, folder = table_run
    report = json.loads((folder / JSON_FILE).read_text())
    console = Console(width=int(WIDTH), record=True, file=io.StringIO(), color_system=None)
    console.print(render(report))
    assert console.export_text() == stdout


def test_backbone_run_reports_the_step_share_and_epoch_of_every_variant(table_run):
    _, folder = table_run
    report = json.loads((folder / JSON_FILE).read_text())
    steps_per_epoch = report["settings"]["steps_per_epoch"]
    assert steps_per_epoch == 100 // 32
    backbone = report["rows"][0]
    assert backbone["variant"] == BACKBONE and backbone["classes"] is None and backbone["median_s"] is None
    for row in report["rows"]:
        assert row["step_q1_s"] <= row["step_median_s"] <= row["step_q3_s"]
        assert row["epoch_s"] == pytest.approx(steps_per_epoch * row["step_median_s"])
        if row["variant"] != BACKBONE:
            assert row["step_share"] == pytest.approx(row["median_s"] / row["step_median_s"])
    assert all(entry["step_ratio"] > 0 for entry in report["ratios"])


def test_micro_batch_times_each_step_again_in_chunks_with_its_cost_and_memory_beside_the_whole(table_run):
    stdout, folder = table_run
    report = json.loads((folder / JSON_FILE).read_text())
    assert report["settings"]["micro_batch"] == 12
    for row in report["rows"]:
        if row["variant"] == BACKBONE:
            assert row["chunked_step_median_s"] is None
            continue
        assert row["chunked_step_q1_s"] <= row["chunked_step_median_s"] <= row["chunked_step_q3_s"]
        assert row["chunked_step_cost"] == pytest.approx(row["chunked_step_median_s"] / row["step_median_s"])
        if row["step_peak_memory_mb"] and row["chunked_step_peak_memory_mb"] is not None:
            assert row["chunked_memory_share"] == pytest.approx(
                row["chunked_step_peak_memory_mb"] / row["step_peak_memory_mb"], rel=0.01)
    assert "in chunks of 12 images" in stdout and "time / whole" in stdout


def test_every_file_of_a_backbone_run_exists(table_run):
    _, folder = table_run
    assert sorted(path.name for path in folder.iterdir()) == sorted([JSON_FILE, CSV_FILE, PLOT_FILE])


@pytest.mark.parametrize("args, words", [
    (["--classes", "0"], "at least 1"),
    (["--classes", "abc"], "'abc' is not a whole number"),
    (["--classes", "10,,20"], "is not a whole number"),
    (["--atoms-per-class", "9"], "exceeds --dim 8"),
    (["--classes", "40"], "smaller than 40 classes"),
    (["--dtype", "float16"], "float32 or float64"),
    (["--variants", "mcr3"], "unknown 'mcr3'"),
    (["--backbone", "vgg"], "unknown 'vgg'"),
    (["--backbone", "resnet18", "--dataset-size", "10"], "smaller than one batch"),
    (["--dataset-size", "imagenet"], "neither a number"),
    (["--repeats", "0"], "--repeats must be at least 1"),
    (["--budget", "0"], "--budget"),
    (["--device", "gpu"], "use auto, cpu, cuda or cuda:N"),
    (["--micro-batch", "8"], "give --backbone"),
    (["--backbone", "mnist-cnn", "--micro-batch", "32"], "not smaller than the batch of 32"),
    (["--micro-batch", "-1"], "--micro-batch must be at least 0"),
])
def test_bad_input_is_refused_before_any_timing(tmp_path, args, words):
    code, out, err = run_bench_cli(*TINY, *args, "--runs-dir", str(tmp_path / "runs"))
    assert code == 2 and out == ""
    assert err.startswith("error: ") and words in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_asking_for_cuda_without_a_gpu_is_bad_input(tmp_path):
    code, _, err = run_bench_cli(*TINY, "--device", "cuda", "--runs-dir", str(tmp_path / "runs"))
    assert code == 2 and "no CUDA device" in err


def test_settings_default_to_the_papers_shape():
    settings = make_settings(classes="200")
    assert (settings.batch_size, settings.dim, settings.dictionary_size(200), settings.eps2) == (2000, 500, 2000, 0.5)
    assert settings.variants == VARIANTS and settings.dtype == "float32"


def test_the_cli_refuses_bad_classes_with_exit_code_2_once_bench_is_registered(capsys):
    from vmcr2_cli.cli import app as vmcr2_app
    from vmcr2_cli.cli import main

    if "bench" not in {command.name for command in vmcr2_app.registered_commands}:
        pytest.skip("vmcr2 bench is not registered in cli.py yet")
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--classes", "0"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.startswith("error: --classes")


def test_a_gpu_report_shows_the_peak_memory_of_each_case(json_run):
    report, _ = json_run
    gpu_report = {**report, "environment": {**report["environment"], "device": "cuda:0",
                                            "device_name": "NVIDIA H100 80GB HBM3"},
                  "rows": [{**row, "peak_memory_mb": 1536.0} for row in report["rows"]]}
    console = Console(width=int(WIDTH), record=True, file=io.StringIO(), color_system=None)
    console.print(render(gpu_report))
    text = console.export_text()
    assert "peak mem" in text and text.count("1.5 GiB") == len(report["rows"])
    assert "cuda:0 (NVIDIA H100 80GB HBM3)" in text
