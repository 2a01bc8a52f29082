"""`vmcr2 compare`: runs in every state side by side, the Figure-1 PNG, Markdown, and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from eval_fixtures import TINY, assert_one_error_line, vmcr2
from vmcr2_cli.config import TrainConfig, to_toml
from vmcr2_cli.evaluation.comparison import RunRecord, run_labels
from vmcr2_cli.runner.missing_runs import TrainRequest, plan_missing_runs
from vmcr2_cli.runs import RunDir, atomic_write_text, metrics_line

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_run(root: Path, name: str, *, objective: str, status: str = "finished", epochs_done: int = 5,
             epochs_total: int = 5, epoch_time: float = 1.0, dataset: str = "synthetic", feature_dim: int = 32,
             partial_line: bool = False, accuracy: float | None = None, eval_line: dict | None = None,
             eval_lines: tuple[dict, ...] = ()) -> Path:
    """A run directory as `vmcr2 train` leaves it, written by hand (no training)."""
    run = RunDir.create(root, name)
    config = TrainConfig(objective=objective, dataset=dataset, epochs=epochs_total, feature_dim=feature_dim)
    atomic_write_text(run.config_path, to_toml(config))
    run.write_meta({"status": status, "run_id": run.name, "profile": "synthetic", "objective": objective,
                    "dataset": dataset, "num_classes": 10, "epochs": epochs_total, "device": "cpu", "seed": 0})
    lines = []
    for epoch in range(epochs_done):
        r, r_c = 10 + epoch, 9 - 0.5 * epoch * (2 if objective == "mcr2" else 1)
        lines.append(metrics_line("epoch", epoch=epoch, step=4 * (epoch + 1), delta_r=r - r_c, r=r, r_c=r_c,
                                  loss=0.1, lr=1e-3, epoch_time_s=epoch_time * (3 if epoch == 0 else 1),
                                  images_per_s=100.0, gpu_util=None, gpu_mem_mb=None))
    for values in (*eval_lines, *([eval_line] if eval_line is not None else [])):
        lines.append(metrics_line("eval", **values))
    if status == "failed":
        lines.append(metrics_line("status", status="failed", step=4 * epochs_done, error="non-finite loss"))
    text = "".join(lines)
    if partial_line:
        text += '{"type": "epoch", "epoch": 99, "delta_r": 1'  # still being written
    run.metrics_path.write_text(text)
    if accuracy is not None:
        run.write_eval({"nearest_subspace_accuracy": accuracy, "head_accuracy": None})
    return run.path


@pytest.fixture
def three_runs(tmp_path) -> list[Path]:
    """MCR² finished (6 epochs, evaluated), V-MCR² still running (4 epochs and a partial line), CE failed (2)."""
    return [
        make_run(tmp_path / "runs", "a-mcr2", objective="mcr2", epochs_done=6, epochs_total=6, epoch_time=2.0,
                 accuracy=0.91),
        make_run(tmp_path / "runs", "b-vmcr2", objective="vmcr2", status="running", epochs_done=4, epochs_total=6,
                 epoch_time=1.0, partial_line=True),
        make_run(tmp_path / "runs", "c-ce", objective="ce", status="failed", epochs_done=2, epochs_total=6,
                 epoch_time=0.5),
    ]


def test_compare_lines_up_runs_of_different_lengths_running_and_failed(three_runs, capsys):
    code, out, err = vmcr2("compare", *three_runs, "--json", capsys=capsys)
    assert code == 0, err
    document = json.loads(out)
    rows = document["runs"]
    assert [row["objective"] for row in rows] == ["mcr2", "vmcr2", "ce"]
    assert [row["status"] for row in rows] == ["finished", "running", "failed"]
    assert [(row["epochs_done"], row["epochs_total"]) for row in rows] == [(6, 6), (4, 6), (2, 6)]
    mcr2 = rows[0]
    assert mcr2["delta_r_final"] == pytest.approx(15 - 4) and mcr2["r_final"] == 15 and mcr2["r_c_final"] == 4
    assert mcr2["delta_r_best"] == pytest.approx(11) and mcr2["delta_r_best_epoch"] == 6
    assert rows[1]["delta_r_final"] == pytest.approx(13 - 7.5)  # the partial line is ignored
    # Epoch times: the first epoch is 3× slower (warm-up); the mean sees it, the median does not.
    assert mcr2["epoch_time_mean_s"] == pytest.approx((6 + 5 * 2) / 6) and mcr2["epoch_time_median_s"] == 2.0
    assert [row["speedup"] for row in rows] == pytest.approx([1.0, 2.0, 2.0 / 1.0])
    assert [row["test_accuracy"] for row in rows] == [0.91, None, None]
    assert rows[0]["test_accuracy_source"] == "eval.json"
    figure = Path(document["figure"])
    assert figure == three_runs[0].resolve() / "figures" / "compare.png"
    assert figure.read_bytes()[:8] == PNG_MAGIC


def test_compare_prints_one_table_with_what_is_missing_said_plainly(three_runs, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    code, out, _ = vmcr2("compare", *three_runs, capsys=capsys)
    assert code == 0
    for text in ("a-mcr2", "MCR²", "V-MCR²", "CE", "running", "failed", "6/6", "4/6", "2/6", "0.9100",
                 "not evaluated", "1.00×", "2.00×", "figure: "):
        assert text in out, text


def test_an_80_column_terminal_gets_one_column_per_run(three_runs, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = vmcr2("compare", *three_runs, capsys=capsys)
    assert code == 0
    table = [line for line in out.splitlines() if line[:1] in "┏┃┡│└"]
    assert table and max(len(line) for line in table) <= 80
    rows = {line.split("│")[1].strip(): line for line in table if line.count("│") > 2}
    assert {"objective", "final ΔR", "test acc.", "speedup"} <= set(rows)
    assert "MCR²" in rows["objective"] and "not evaluated" in rows["test acc."]


def test_compare_falls_back_to_the_accuracy_measured_at_the_end_of_training(tmp_path, capsys):
    run = make_run(tmp_path / "runs", "trained", objective="ce",
                   eval_line={"epoch": 5, "nearest_subspace_accuracy": 0.8, "head_accuracy": 0.85})
    code, out, _ = vmcr2("compare", run, "--json", capsys=capsys)
    row = json.loads(out)["runs"][0]
    assert code == 0 and (row["test_accuracy"], row["head_accuracy"]) == (0.8, 0.85)
    assert row["test_accuracy_source"] == "training end"


def test_accuracy_measured_along_the_runs_is_a_figure_and_a_peak_in_the_table(tmp_path, capsys):
    """eval_every's lines: one per epoch (a resumed run's repeated evaluation counts once), drawn
    against epoch in compare-accuracy.png, the highest nearest-subspace accuracy in the table."""
    ns = {2: 0.70, 4: 0.86, 6: 0.80}
    evals = tuple({"epoch": e, "step": 4 * e, "nearest_subspace_accuracy": a, "knn_accuracy": a + 0.05}
                  for e, a in ns.items())
    repeated = ({"epoch": 4, "step": 16, "nearest_subspace_accuracy": 0.5},)  # replaced by the resumed run's 0.86
    runs = [make_run(tmp_path / "runs", "a-vmcr2", objective="vmcr2", epochs_done=6, epochs_total=6,
                     eval_lines=evals[:2] + repeated + evals[1:]),
            make_run(tmp_path / "runs", "b-ce", objective="ce", epochs_done=6, epochs_total=6)]
    code, out, err = vmcr2("compare", *runs, "--json", capsys=capsys)
    assert code == 0, err
    document = json.loads(out)
    first, second = document["runs"]
    assert (first["nearest_subspace_peak"], first["nearest_subspace_peak_epoch"], first["evaluations"]) == (0.86, 4, 3)
    assert second["nearest_subspace_peak"] is None and second["evaluations"] == 0
    assert first["test_accuracy"] == 0.80 and first["test_accuracy_source"] == "training end"  # the last one
    figure = Path(document["accuracy_figure"])
    assert figure.name == "compare-accuracy.png" and figure.stat().st_size > 1000
    code, out, _ = vmcr2("compare", runs[1], "--json", capsys=capsys)
    assert code == 0 and json.loads(out)["accuracy_figure"] is None  # nothing measured along the way


def test_a_run_without_any_epoch_yet_compares_with_empty_values(tmp_path, capsys):
    started = make_run(tmp_path / "runs", "started", objective="vmcr2", status="running", epochs_done=0)
    finished = make_run(tmp_path / "runs", "done", objective="mcr2", epochs_done=3)
    code, out, _ = vmcr2("compare", finished, started, "--json", capsys=capsys)
    rows = json.loads(out)["runs"]
    assert code == 0 and rows[1]["epochs_done"] == 0
    assert rows[1]["delta_r_final"] is None and rows[1]["speedup"] is None


def test_compare_writes_markdown_and_the_figure_where_asked(three_runs, tmp_path, capsys):
    out_dir, markdown = tmp_path / "report", tmp_path / "report" / "compare.md"
    code, out, _ = vmcr2("compare", *three_runs, "--out", out_dir, "--markdown", markdown, "--json", capsys=capsys)
    assert code == 0
    document = json.loads(out)
    assert Path(document["figure"]) == out_dir / "compare.png" and (out_dir / "compare.png").is_file()
    text = markdown.read_text()
    assert text.startswith("# Comparison of 3 runs")
    assert "| run | objective | profile | dataset | classes | status | epochs | final ΔR |" in text
    assert "| a-mcr2 | MCR² | synthetic | synthetic | 10 | finished | 6/6 |" in text
    assert "![ΔR, R and R_c over epochs](compare.png)" in text  # relative to the Markdown file


def test_a_folder_of_runs_compares_every_run_in_it(three_runs, capsys):
    code, out, _ = vmcr2("compare", three_runs[0].parent, "--json", capsys=capsys)
    assert code == 0 and [row["run_id"] for row in json.loads(out)["runs"]] == ["a-mcr2", "b-vmcr2", "c-ce"]


def test_runs_of_different_tasks_are_refused_unless_mixed(tmp_path, capsys):
    a = make_run(tmp_path / "runs", "a", objective="mcr2")
    b = make_run(tmp_path / "runs", "b", objective="vmcr2", feature_dim=128)
    code, _, err = vmcr2("compare", a, b, capsys=capsys)
    assert_one_error_line(code, err, "incompatible runs: a has feature_dim = 32, b has feature_dim = 128")
    code, out, _ = vmcr2("compare", a, b, "--mixed", "--json", capsys=capsys)
    assert code == 0 and "not comparable" in json.loads(out)["notes"][0]


@pytest.mark.parametrize("args, message", [
    (["nowhere"], "not a run directory: "),
    ([], "give at least one run directory"),
    (["--epochs", "3", "RUN"], "--profile, --epochs, --seed, --set, --sweep, --device and --data-root go with --train"),
    (["--train", "RUN"], "name the profile to train with --profile"),
    (["--train", "--profile", "synthetic", "--objectives", "mcr2,mcr3", "RUN"], "--objectives 'mcr2,mcr3'"),
    (["--train", "--profile", "synthetic", "--set", "epochs=many", "RUN"], "'epochs' must be an integer"),
    (["--train", "--profile", "synthetic", "--set", "feature_dim=64", "RUN"],
     "the vmcr2 run would have feature_dim = 64, only has feature_dim = 32"),
    (["RUN", "RUN"], "is given twice"),
])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, args, message):
    run = make_run(tmp_path / "runs", "only", objective="mcr2")
    args = [str(run) if arg == "RUN" else str(tmp_path / arg) if arg == "nowhere" else arg for arg in args]
    code, _, err = vmcr2("compare", "--runs-dir", tmp_path / "new-runs", *args, capsys=capsys)
    assert_one_error_line(code, err, message)
    assert not (tmp_path / "new-runs").exists()  # nothing trained


def test_new_runs_take_the_first_runs_seed_and_epochs_unless_told_otherwise(tmp_path):
    given = RunDir.open(make_run(tmp_path / "runs", "m", objective="mcr2", epochs_total=7))
    plans = plan_missing_runs([given], TrainRequest("synthetic", "mcr2,vmcr2,ce", seed=3, overrides=["lr=0.01"]))
    assert [plan.objective for plan in plans] == ["vmcr2", "ce"]  # mcr2 is there already
    assert plans[0].arguments == ["--profile", "synthetic", "--objective", "vmcr2", "--set", "lr=0.01",
                                  "--set", "seed=3", "--set", "epochs=7"]
    told = plan_missing_runs([given], TrainRequest("synthetic", "ce", epochs=2, overrides=["seed=5"]))
    assert told[0].arguments[-4:] == ["--set", "seed=5", "--set", "epochs=2"]


def test_train_trains_nothing_when_the_given_runs_cover_every_objective(tmp_path, capsys):
    run = make_run(tmp_path / "runs", "v", objective="vmcr2")
    code, out, _ = vmcr2("compare", run, "--train", "--profile", "synthetic", "--objectives", "vmcr2",
                         "--runs-dir", tmp_path / "new-runs", "--json", capsys=capsys)
    assert code == 0 and len(json.loads(out)["runs"]) == 1 and not (tmp_path / "new-runs").exists()


@pytest.mark.slow
def test_train_runs_the_papers_experiment_in_one_command(tmp_path, capsys, monkeypatch):
    from fixtures_data import isolate_data

    isolate_data(monkeypatch, tmp_path)
    sets = [arg for pair in zip(TINY[2::2], TINY[3::2]) for arg in pair if pair[0] == "--set"]
    code, out, err = vmcr2("compare", "--train", "--profile", "synthetic", "--objectives", "mcr2,vmcr2",
                           "--epochs", "1", *sets, "--set", "batch_size=100", "--runs-dir", tmp_path / "runs",
                           "--json", capsys=capsys)
    assert code == 0, err
    rows = json.loads(out)["runs"]
    assert [row["objective"] for row in rows] == ["mcr2", "vmcr2"]
    assert all(row["status"] == "finished" and row["epochs_done"] == 1 for row in rows)
    assert {row["seed"] for row in rows} == {0} and all(math.isfinite(row["delta_r_final"]) for row in rows)
    assert "epoch 1/1" in err  # the training runs' progress went to the terminal


def test_labels_name_the_v_mcr2_method_and_add_the_run_only_where_labels_clash(tmp_path):
    def record(name, objective, method):
        return RunRecord(RunDir(tmp_path / name), {}, {"objective": objective, "vmcr2_method": method})

    labels = run_labels([record("a", "vmcr2", "paper"), record("b", "vmcr2", "block"),
                         record("c", "vmcr2", "block"), record("d", "mcr2", "paper")])
    assert labels == ["V-MCR²", "V-MCR² (block) (b)", "V-MCR² (block) (c)", "MCR²"]


def test_labels_of_runs_of_one_objective_name_the_keys_that_differ(tmp_path):
    def record(name, mu, lr):
        return RunRecord(RunDir(tmp_path / name), {}, {"objective": "vmcr2", "mu": mu, "lr": lr, "device": name})

    assert run_labels([record("a", 0.1, 0.01), record("b", 1.0, 0.01)]) == ["V-MCR² mu=0.1", "V-MCR² mu=1.0"]


def test_a_key_an_older_run_did_not_write_counts_as_its_default_then(tmp_path):
    old = RunRecord(RunDir(tmp_path / "old"), {}, {"objective": "vmcr2", "mu": 0.03})  # before mu_final, micro_batch
    new = RunRecord(RunDir(tmp_path / "new"), {}, {"objective": "vmcr2", "mu": 0.03, "mu_final": 1.0,
                                                   "micro_batch": 0})
    assert run_labels([old, new]) == ["V-MCR² mu_final=0.0", "V-MCR² mu_final=1.0"]


def test_a_key_without_effect_in_the_runs_does_not_tell_them_apart(tmp_path):
    def record(name, seed, latch_source):  # latch_source changes only V-MCR² runs
        return RunRecord(RunDir(tmp_path / name), {}, {"objective": "ce", "seed": seed, "latch_source": latch_source})

    assert run_labels([record("a", 0, "epoch"), record("b", 1, "pass")]) == ["CE seed=0", "CE seed=1"]


def test_a_constructed_run_is_named_by_its_network(tmp_path):
    def record(name, model, shifts="2d"):
        return RunRecord(RunDir(tmp_path / name), {}, {"objective": "mcr2", "model": model, "redunet_shifts": shifts})

    assert run_labels([record("a", "redunet"), record("b", "redunet-shift", "polar"), record("c", "mnist-cnn")]) == [
        "ReduNet", "ReduNet (polar shifts)", "MCR²"]


def test_a_2x2_sweep_trains_four_named_runs_and_compares_them(tmp_path, capsys):
    runs = tmp_path / "runs"
    code, out, err = vmcr2("compare", "--train", "--profile", "synthetic", "--objectives", "vmcr2", "--epochs", "1",
                           "--set", "synthetic_train_per_class=20", "--set", "synthetic_test_per_class=5",
                           "--set", "batch_size=100", "--sweep", "mu=0.01,0.1", "--sweep", "lr=0.001,0.01",
                           "--runs-dir", runs, "--json", capsys=capsys)
    assert code == 0, err
    rows = json.loads(out)["runs"]
    assert sorted(row["label"] for row in rows) == ["V-MCR² mu=0.01 lr=0.001", "V-MCR² mu=0.01 lr=0.01",
                                                    "V-MCR² mu=0.1 lr=0.001", "V-MCR² mu=0.1 lr=0.01"]
    assert sorted(row["run_id"].split("-", 2)[2] for row in rows) == [
        "synthetic-vmcr2-mu0.01-lr0.001", "synthetic-vmcr2-mu0.01-lr0.01", "synthetic-vmcr2-mu0.1-lr0.001",
        "synthetic-vmcr2-mu0.1-lr0.01"]
    assert {row["seed"] for row in rows} == {0} and all(row["status"] == "finished" for row in rows)


@pytest.mark.parametrize("sweep, message", [
    (["--sweep", "mu"], "expected key=value,value"),
    (["--sweep", "mu=0.1", "--sweep", "mu=1"], "swept twice"),
    (["--sweep", "mu=0.1", "--set", "mu=1"], "sweep it or set it, not both"),
    (["--sweep", "mu=0.1,-1"], "'mu' must be > 0.0"),  # checked for every combination before the first trains
    (["--sweep", "track_rate=0.5"], "track_rate = 0.5 has no effect with vmcr2_method = 'paper'"),
])
def test_a_bad_sweep_is_refused_before_anything_trains(tmp_path, capsys, sweep, message):
    code, _, err = vmcr2("compare", "--train", "--profile", "synthetic", "--objectives", "vmcr2", *sweep,
                         "--runs-dir", tmp_path / "runs", capsys=capsys)
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()
