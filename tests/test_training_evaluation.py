"""Evaluation during training (eval_every, val_fraction, keep_best) and what is set at every step: the
learning rate and, in a μ continuation, V-MCR²'s μ."""

from __future__ import annotations

import json
import math

import pytest

from distributed_workers import CPU, NeverStop, tiny_config
from eval_fixtures import assert_one_error_line, train_tiny, vmcr2
from vmcr2_cli.runs import RunDir
from vmcr2_cli.training.interrupts import TrainingInterrupted
from vmcr2_cli.training.optim import lr_factor, mu_at
from vmcr2_cli.training.setup import load_training_data
from vmcr2_cli.training.trainer import Trainer


def eval_lines(run) -> list[dict]:
    return [line for line in RunDir.open(run).read_metrics() if line["type"] == "eval"]


def test_eval_every_logs_a_line_every_n_epochs_and_one_at_the_end(tmp_path):
    run = train_tiny(tmp_path / "runs", "--epochs", "3", "--set", "eval_every=2", "--set", "eval_at_end=true")
    lines = eval_lines(run)
    assert [line["epoch"] for line in lines] == [2, 3]  # after epoch 2, then the end's
    for line in lines:
        assert line["split"] == "test" and 0.0 <= line["nearest_subspace_accuracy"] <= 1.0
        assert 0.0 <= line["knn_accuracy"] <= 1.0 and line["components"] == 1  # ⌊16/10⌋
        assert set(line["nearest_subspace_accuracy_by_components"]) == {"1", "2", "4", "8", "16"}
        assert line["nearest_subspace_accuracy_by_components"]["1"] == line["nearest_subspace_accuracy"]
        assert line["nearest_subspace_energy_accuracy"] == line["nearest_subspace_accuracy"]  # p = 1: one each
        assert math.isfinite(line["exact_delta_r"]) and line["nc1"] >= 0 and line["mean_effective_dim"] >= 1


def test_an_evaluation_at_the_last_epoch_is_the_ends_and_is_not_repeated(tmp_path):
    run = train_tiny(tmp_path / "runs", "--epochs", "2", "--set", "eval_every=1", "--set", "eval_at_end=true")
    assert [line["epoch"] for line in eval_lines(run)] == [1, 2]
    meta = RunDir.open(run).read_meta()
    assert meta["nearest_subspace_accuracy"] == eval_lines(run)[-1]["nearest_subspace_accuracy"]


def test_val_fraction_holds_out_training_images_that_the_evaluations_measure(tmp_path):
    config = tiny_config("mcr2", val_fraction=0.25)
    dataset = load_training_data(config)
    whole = load_training_data(tiny_config("mcr2"))
    assert dataset.num_train == 300 and dataset.val_images.shape[0] == 100
    # every training image is in exactly one of the two splits
    rows = lambda images: {bytes(image.numpy().tobytes()) for image in images}  # noqa: E731
    assert rows(dataset.train_images) | rows(dataset.val_images) == rows(whole.train_images)
    assert not rows(dataset.train_images) & rows(dataset.val_images)
    run = train_tiny(tmp_path / "runs", "--epochs", "1", "--set", "val_fraction=0.2", "--set", "eval_every=1",
                     "--set", "eval_at_end=true", "--batch-size", "100")
    assert [line["split"] for line in eval_lines(run)] == ["val"]


@pytest.mark.parametrize("values, message", [
    (["--set", "keep_best=knn_accuracy"], "selects among the evaluations during training: set eval_every"),
    (["--set", "keep_best=head_accuracy", "--set", "eval_every=1"], "only objective = 'ce' and the constructed ReduNets"),
    (["--set", "val_fraction=0.9"], "'val_fraction' must be <= 0.5"),
    (["--set", "val_fraction=0.5", "--batch-size", "200"], "less the 100 that val_fraction = 0.5 holds out"),
    (["--set", "warmup_epochs=5"], "warmup_epochs = 5.0 exceeds epochs = 2"),
])
def test_evaluation_and_schedule_settings_that_cannot_work_are_refused(tmp_path, values, message):
    code, _, err = vmcr2("train", "--profile", "synthetic", "--epochs", "2", "--set", "synthetic_train_per_class=20",
                         "--runs-dir", str(tmp_path / "runs"), *values)
    assert_one_error_line(code, err, message)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# ----------------------------------------------------------------------------- best checkpoint

def scripted_measure(scores: dict[int, float]):
    """A ``measure`` returning ``scores[epoch]`` as the kNN accuracy of the trainer's current epoch."""
    def measure(trainer):
        return {"split": "test", "nearest_subspace_accuracy": 0.5, "knn_accuracy": scores[trainer.epoch]}
    return measure


def real_trainer(run: RunDir, measure, **changes) -> Trainer:
    config = tiny_config("mcr2", eval_every=1, keep_best="knn_accuracy", **changes)
    return Trainer(config, load_training_data(config), run, CPU, measure=measure)


def test_keep_best_keeps_the_best_evaluation_and_a_resumed_run_keeps_the_best_so_far(tmp_path):
    measure = scripted_measure({1: 0.5, 2: 0.9, 3: 0.7, 4: 0.95})
    run = RunDir.create(tmp_path / "runs", "best")
    first = real_trainer(run, measure, epochs=3)
    first.fit(NeverStop())
    best = run.load_checkpoint(which="best")
    assert best["best"] == {"metric": "knn_accuracy", "value": 0.9, "epoch": 2, "step": 8} and best["epoch"] == 2
    assert run.load_checkpoint()["epoch"] == 3
    # Resumed for one more epoch: its 0.95 beats the 0.9 that best.pt holds from before the resume.
    resumed = real_trainer(run, measure, epochs=4)
    resumed.restore(run.load_checkpoint(), "resume")
    assert resumed.best == best["best"]
    resumed.fit(NeverStop())
    assert run.load_checkpoint(which="best")["best"]["epoch"] == 4


def test_a_resumed_run_does_not_replace_the_best_by_a_worse_evaluation(tmp_path):
    measure = scripted_measure({1: 0.9, 2: 0.6, 3: 0.7})
    run = RunDir.create(tmp_path / "runs", "best")
    real_trainer(run, measure, epochs=2).fit(NeverStop())
    resumed = real_trainer(run, measure, epochs=3)
    resumed.restore(run.load_checkpoint(), "resume")
    resumed.fit(NeverStop())
    # 0.7 beats epoch 2's 0.6 (the last checkpoint's) but not epoch 1's 0.9, which best.pt still holds
    assert run.load_checkpoint(which="best")["best"]["epoch"] == 1


def test_eval_checkpoint_best_evaluates_best_pt(tmp_path):
    run = train_tiny(tmp_path / "runs", "--epochs", "2", "--set", "eval_every=1", "--set",
                     "keep_best=nearest_subspace_accuracy")
    best = RunDir.open(run).load_checkpoint(which="best")["best"]
    code, out, err = vmcr2("eval", str(run), "--checkpoint", "best", "--no-figures", "--json")
    assert code == 0, err
    results = json.loads(out)
    assert results["checkpoint"] == "best" and results["epoch"] == best["epoch"]
    assert results["nearest_subspace_accuracy"] == pytest.approx(best["value"], abs=1e-9)
    assert (run / "eval-best.json").is_file() and not (run / "eval.json").exists()


def test_eval_checkpoint_best_of_a_run_without_one_is_one_line(tmp_path):
    run = train_tiny(tmp_path / "runs", "--epochs", "1")
    code, _, err = vmcr2("eval", str(run), "--checkpoint", "best")
    assert_one_error_line(code, err, "the run keeps no best checkpoint")


# ----------------------------------------------------------------------------- learning rate

def test_warmup_rises_linearly_per_step_then_cosine_falls_to_zero_at_the_last_step():
    steps, epochs = 10, 4
    factors = [lr_factor(step, steps, epochs, "cosine", warmup_epochs=1.0) for step in range(steps * epochs)]
    assert factors[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert factors[10] == 1.0 and factors[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 29 / 30)))
    assert all(a > b for a, b in zip(factors[10:], factors[11:]))  # strictly falling after the warmup
    assert lr_factor(40, steps, epochs, "cosine") == 0.0  # past the last step (a resume that ran on)


def test_the_papers_step_schedule_divides_by_ten_at_half_and_three_quarters_of_the_epochs():
    factors = [lr_factor(step, 10, 8, "step") for step in range(80)]
    assert factors[39] == 1.0 and factors[40] == pytest.approx(0.1)  # epoch 4 of 8 starts
    assert factors[59] == pytest.approx(0.1) and factors[60] == pytest.approx(0.01)
    assert lr_factor(3, 10, 8, "constant", warmup_epochs=0.5) == pytest.approx(0.8)


class StopAfter:
    """Asks to stop once ``steps`` steps have run (checked after each step)."""

    signal_name = "SIGTERM"

    def __init__(self, trainer: Trainer, steps: int) -> None:
        self.trainer, self.steps = trainer, steps

    @property
    def requested(self) -> bool:
        return self.trainer.global_step >= self.steps


def test_the_learning_rate_of_every_step_is_the_same_across_a_resume(tmp_path):
    changes = dict(epochs=3, lr_schedule="cosine", warmup_epochs=1.5, log_every=1, optimizer="sgd", lr=0.1)
    config = tiny_config("mcr2", **changes)
    dataset = load_training_data(config)

    def trainer_for(run: RunDir, seen: list) -> Trainer:
        trainer = Trainer(config, dataset, run, CPU)
        trainer.on_step = lambda record: seen.append((record["step"], record["lr"]))
        return trainer

    whole: list = []
    trainer_for(RunDir.create(tmp_path / "runs", "whole"), whole).fit(NeverStop())
    steps = config.epochs * 4
    assert whole == pytest.approx([(step + 1, 0.1 * lr_factor(step, 4, 3, "cosine", 1.5)) for step in range(steps)])

    run = RunDir.create(tmp_path / "runs", "cut")
    parts: list = []
    first = trainer_for(run, parts)
    with pytest.raises(TrainingInterrupted):
        first.fit(StopAfter(first, 5))  # mid-epoch, mid-warmup
    second = trainer_for(run, parts)
    second.restore(run.load_checkpoint(), "resume")
    second.fit(NeverStop())
    assert parts == whole


# ----------------------------------------------------------------------------- μ continuation

def test_a_mu_continuation_grows_geometrically_from_mu_at_the_first_step_to_mu_final_at_the_last():
    mus = [mu_at(step, 41, 0.03, 3.0) for step in range(41)]
    assert mus[0] == pytest.approx(0.03) and mus[20] == pytest.approx(0.3) and mus[-1] == pytest.approx(3.0)
    assert all(b / a == pytest.approx(10 ** (1 / 20)) for a, b in zip(mus, mus[1:]))  # one ratio a step
    assert mu_at(50, 41, 0.03, 3.0) == pytest.approx(3.0)  # past the last step (a resume that ran on)
    assert mu_at(7, 41, 0.03, 0.0) == 0.03  # mu_final 0: Algorithm 1 as written


def test_the_mu_of_every_step_is_the_one_its_loss_used_and_the_same_across_a_resume(tmp_path):
    config = tiny_config("vmcr2", epochs=2, mu=0.03, mu_final=3.0, log_every=1)
    dataset = load_training_data(config)

    def trainer_for(run: RunDir, seen: list) -> Trainer:
        trainer = Trainer(config, dataset, run, CPU)
        variational = trainer.objective.variational
        trainer.on_step = lambda record: seen.append((record["step"], record["mu"], variational.mu))
        return trainer

    whole: list = []
    trainer_for(RunDir.create(tmp_path / "runs", "whole"), whole).fit(NeverStop())
    expected = [mu_at(step, 8, 0.03, 3.0) for step in range(8)]
    assert whole == pytest.approx([(step + 1, mu, mu) for step, mu in enumerate(expected)])
    epochs = [line for line in RunDir(tmp_path / "runs" / "whole").read_metrics() if line["type"] == "epoch"]
    assert [line["mu"] for line in epochs] == pytest.approx([expected[3], expected[7]])

    run = RunDir.create(tmp_path / "runs", "cut")
    parts: list = []
    first = trainer_for(run, parts)
    with pytest.raises(TrainingInterrupted):
        first.fit(StopAfter(first, 3))  # mid-epoch
    second = trainer_for(run, parts)
    second.restore(run.load_checkpoint(), "resume")
    second.fit(NeverStop())
    assert parts == whole


def test_without_a_continuation_mu_stays_and_no_line_records_it(tmp_path):
    config = tiny_config("vmcr2", epochs=1, mu=0.03)
    trainer = Trainer(config, load_training_data(config), RunDir.create(tmp_path / "runs", "plain"), CPU)
    trainer.fit(NeverStop())
    assert trainer.objective.variational.mu == 0.03
    assert all("mu" not in line for line in RunDir(tmp_path / "runs" / "plain").read_metrics())
