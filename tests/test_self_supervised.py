"""Self-supervised rate reduction: the views and their grouping, the two objectives against plain
transcriptions of their formulas, and the real CLI (bad input, training, exact resume)."""

from __future__ import annotations

import math
import signal

import pytest
import torch
import torch.nn.functional as F

from cli_runner import vmcr2
from fixtures_data import isolate_data
from training_processes import spawn_vmcr2, wait_for_step
from vmcr2_cli.data import DeviceLoader
from vmcr2_cli.data.views import CENTER_X, CENTER_Y, FLIP, HEIGHT, JITTER, PARAMETERS, WIDTH, apply_views, draw_view_params
from vmcr2_cli.objectives import ObjectiveSettings, build_objective, coding_rate, rate_reduction
from vmcr2_cli.objectives.self_supervised import invariance, view_partition
from vmcr2_cli.runs import RunDir

SSL = ["--profile", "synthetic", "--objective", "mcr2-ssl", "--set", "augment='resized-crop'", "--set", "views=4",
       "--set", "synthetic_train_per_class=40", "--set", "synthetic_test_per_class=10", "--batch-size", "25",
       "--set", "log_every=1"]


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    isolate_data(monkeypatch, tmp_path)


def identity_params(count: int, views: int) -> torch.Tensor:
    params = torch.zeros(count, views, PARAMETERS, dtype=torch.float64)
    params[..., WIDTH] = params[..., HEIGHT] = 1.0
    params[..., CENTER_X] = params[..., CENTER_Y] = 0.5
    return params


# ----------------------------------------------------------------------------- the views

def test_a_whole_image_crop_without_flip_or_jitter_is_the_image_itself():
    images = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    views = apply_views(images, identity_params(3, 2))
    assert views.shape == (6, 1, 8, 8)
    torch.testing.assert_close(views, images.float().repeat_interleave(2, dim=0), atol=1e-3, rtol=0)


def test_a_flip_mirrors_the_view_and_the_views_are_image_major():
    images = torch.randint(0, 256, (2, 3, 6, 6), dtype=torch.uint8)
    params = identity_params(2, 2)
    params[:, 1, FLIP] = 1.0
    views = apply_views(images, params)
    torch.testing.assert_close(views[1], images[0].float().flip(-1), atol=1e-3, rtol=0)
    torch.testing.assert_close(views[2], images[1].float(), atol=1e-3, rtol=0)


def test_view_choices_depend_on_the_generator_only_and_stay_in_range():
    first = draw_view_params(50, 4, torch.Generator().manual_seed(3))
    torch.testing.assert_close(first, draw_view_params(50, 4, torch.Generator().manual_seed(3)))
    assert not torch.equal(first, draw_view_params(50, 4, torch.Generator().manual_seed(4)))
    width, height = first[..., WIDTH], first[..., HEIGHT]
    assert (width * height >= 0.2 - 1e-9).all() and (width <= 1).all() and (height <= 1).all()
    assert (first[..., CENTER_X] - width / 2 >= -1e-12).all() and (first[..., CENTER_X] + width / 2 <= 1 + 1e-12).all()
    assert set(first[..., JITTER].unique().tolist()) <= {0.0, 1.0}
    assert (draw_view_params(50, 4, torch.Generator().manual_seed(3), mirror=False)[..., FLIP] == 0).all()


def test_a_views_batch_groups_the_views_of_each_image_and_no_two_images():
    count = 12
    images = torch.arange(count, dtype=torch.uint8).mul(20).view(count, 1, 1, 1).expand(count, 1, 8, 8).contiguous()
    labels = torch.arange(count) % 3
    loader = DeviceLoader(images, labels, 4, augment="resized-crop", views=5, mean=(0.0,), std=(1 / 255,))
    for step, batch in loader.epoch(0):
        assert batch.images.shape == (20, 1, 8, 8) and batch.labels_cpu.shape == (20,)
        chosen = loader.batch_indices(0, step)
        # Crops and flips keep a constant image constant, and the jitter scales it by 0.6–1.4: each
        # view's brightness stays within that range of its own image's.
        partition = view_partition(4, 5)
        for image in range(4):
            rows = partition.labels == image
            assert (batch.labels_cpu[rows] == labels[chosen[image]]).all()
            means = batch.images[rows].mean(dim=(1, 2, 3))
            assert (means <= 1.4 * 20 * int(chosen[image]) + 1e-3).all()
            assert (means >= 0.6 * 20 * int(chosen[image]) - 1e-3).all()
    assert torch.equal(next(iter(loader.epoch(0)))[1].images, next(iter(loader.epoch(0)))[1].images)


def test_without_dropout_the_mnist_cnn_is_deterministic_in_train_mode():
    from vmcr2_cli.models.registry import build_featurizer

    images = torch.randn(4, 1, 32, 32)
    for dropout, same in ((False, True), (True, False)):
        model = build_featurizer("mnist-cnn", in_channels=1, feature_dim=8, dropout=dropout).train()
        assert torch.equal(model(images), model(images)) == same


def test_several_views_need_the_resized_crop():
    with pytest.raises(ValueError, match="resized-crop"):
        DeviceLoader(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), 2,
                     augment="crop-flip", views=2)


# ----------------------------------------------------------------------------- the objectives

def unit_rows(m: int, d: int, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(m, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)), dim=1)


def test_the_view_partition_puts_each_images_views_in_one_class():
    partition = view_partition(3, 4)
    assert partition.labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    assert partition.num_classes == 3 and partition.counts.tolist() == [4, 4, 4]


def test_mcr2_ssl_is_minus_delta_r_of_the_views_grouping():
    Z = unit_rows(24, 10).requires_grad_()
    objective = build_objective("mcr2-ssl", 10, 10, ObjectiveSettings(views=4, dtype=torch.float64))
    result = objective.step(Z, torch.zeros(24, dtype=torch.long))
    expected = rate_reduction(Z, torch.arange(6).repeat_interleave(4), 6, eps2=0.5, dtype=torch.float64)
    torch.testing.assert_close(result.loss, -expected.delta_r)
    torch.testing.assert_close(result.metrics["r_c"], expected.r_c.detach())
    (gradient,) = torch.autograd.grad(result.loss, Z)
    (reference,) = torch.autograd.grad(-expected.delta_r, Z)
    torch.testing.assert_close(gradient, reference)


def test_tcr_is_the_mean_coding_rate_of_the_views_plus_the_weighted_invariance():
    views, images, d, weight = 3, 7, 5, 2.5
    Z = unit_rows(views * images, d, seed=1).requires_grad_()
    objective = build_objective("tcr", d, 10, ObjectiveSettings(views=views, eps2=0.2, invariance_weight=weight,
                                                                 dtype=torch.float64))
    result = objective.step(Z, torch.zeros(views * images, dtype=torch.long))
    by_image = Z.reshape(images, views, d)
    per_view = [coding_rate(by_image[:, v], eps2=0.2) for v in range(views)]  # R(Z_v): B rows of view v
    mean_view = by_image.mean(dim=1)
    cosines = [F.cosine_similarity(by_image[:, v], mean_view, dim=1).mean() for v in range(views)]
    expected = -sum(per_view) / views - weight * sum(cosines) / views
    torch.testing.assert_close(result.loss, expected)
    torch.testing.assert_close(result.metrics["r_views"], (sum(per_view) / views).detach())
    (gradient,) = torch.autograd.grad(result.loss, Z)
    (reference,) = torch.autograd.grad(expected, Z)
    torch.testing.assert_close(gradient, reference)


def test_invariance_is_one_for_identical_views_and_lower_otherwise():
    z = unit_rows(5, 6)
    assert invariance(z.repeat_interleave(3, dim=0), 3).item() == pytest.approx(1.0)
    assert invariance(unit_rows(15, 6, seed=2), 3).item() < 0.9


def test_a_batch_that_is_not_whole_images_is_refused():
    objective = build_objective("mcr2-ssl", 4, 10, ObjectiveSettings(views=4))
    with pytest.raises(ValueError, match="not whole images of 4 views"):
        objective.step(unit_rows(10, 4).float(), torch.zeros(10, dtype=torch.long))


# ----------------------------------------------------------------------------- the CLI

@pytest.mark.parametrize("settings, message", [
    (["--objective", "mcr2-ssl", "--set", "augment=none"], "needs augment = 'resized-crop'"),
    (["--objective", "vmcr2", "--set", "views=4"], "views = 4 has no effect with objective = 'vmcr2'"),
    (["--objective", "mcr2-ssl", "--set", "augment='resized-crop'", "--set", "invariance_weight=3.0"],
     "invariance_weight = 3.0 has no effect with objective = 'mcr2-ssl'"),
    (["--objective", "tcr", "--set", "augment='resized-crop'", "--set", "views=1"], "'views' must be >= 2"),
])
def test_bad_self_supervised_settings_fail_in_one_line_before_anything_is_made(tmp_path, capsys, settings, message):
    code, _, err = vmcr2("train", "--profile", "synthetic", *settings, "--runs-dir", tmp_path / "runs", capsys=capsys)
    assert code == 2 and message in err and "Traceback" not in err
    assert err.strip().count("\n") == 0
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("objective", ["mcr2-ssl", "tcr"])
def test_a_self_supervised_run_logs_its_rates_and_ends_with_knn(tmp_path, capsys, objective):
    code, out, err = vmcr2("train", *SSL, "--objective", objective, "--epochs", "1", "--runs-dir", tmp_path / "runs",
                           capsys=capsys)
    assert code == 0, err
    assert "kNN test accuracy" in out
    lines = RunDir.open(tmp_path / "runs" / "latest").read_metrics()
    steps = [line for line in lines if line["type"] == "step"]
    assert len(steps) == 400 // 25  # 400 images, 25 a step, each with its 4 views
    for key in ("r", "r_c", "delta_r", "invariance"):
        assert all(math.isfinite(line[key]) for line in steps), key
    evaluation = [line for line in lines if line["type"] == "eval"][-1]
    assert 0 <= evaluation["knn_accuracy"] <= 1


def test_a_resumed_self_supervised_run_equals_an_uninterrupted_one(tmp_path, capsys):
    epochs = ["--epochs", "2"]
    assert vmcr2("train", *SSL, "--runs-dir", tmp_path / "whole", *epochs, capsys=capsys)[0] == 0
    whole = RunDir.open(tmp_path / "whole" / "latest").load_checkpoint()["model"]

    process = spawn_vmcr2("train", *SSL, "--runs-dir", tmp_path / "runs", *epochs)
    wait_for_step(tmp_path / "runs" / "latest" / "metrics.jsonl", 5, process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err.decode()
    run = RunDir.open(tmp_path / "runs" / "latest")
    assert 5 <= run.load_checkpoint()["global_step"] < 32
    assert vmcr2("train", "--resume", str(run.path), capsys=capsys)[0] == 0
    resumed = run.load_checkpoint()["model"]
    for key in whole:
        torch.testing.assert_close(resumed[key], whole[key], rtol=1e-5, atol=1e-6, msg=key)
