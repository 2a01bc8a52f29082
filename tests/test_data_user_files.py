"""The user's own data: ImageFolder trees and .npz files, trained and evaluated through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cli_runner import vmcr2
from fixtures_data import USERS_CLASSES as K
from fixtures_data import isolate_data, unlabelled, write_folder, write_npz
from vmcr2_cli.data import load_dataset
from vmcr2_cli.runs import RunDir

@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    isolate_data(monkeypatch, tmp_path)


def test_npz_loads_as_the_arrays_say(tmp_path):
    dataset = load_dataset("npz", data_root=write_npz(tmp_path / "mine.npz"), download=False)
    assert dataset.num_classes == K and dataset.image_shape == (1, 16, 16) and dataset.num_train == 120
    assert dataset.class_names == ["0", "1", "2", "3"] and len(dataset.mean) == 1 and 0 < dataset.std[0] < 1


def test_folder_resizes_to_image_size_keeps_colour_and_names_classes(tmp_path):
    root = write_folder(tmp_path / "images", sizes=((20, 24), (40, 30)))
    dataset = load_dataset("folder", data_root=root, download=False, image_size=16)
    assert dataset.image_shape == (3, 16, 16) and dataset.num_classes == K
    assert dataset.class_names == ["class_a", "class_b", "class_c", "class_d"]
    assert dataset.train_labels.bincount().tolist() == [30] * K and dataset.num_test == 40
    grey = load_dataset("folder", data_root=write_folder(tmp_path / "grey", mode="L"), download=False, image_size=8)
    assert grey.image_shape == (1, 8, 8)


@pytest.mark.parametrize("objective", ["mcr2", "vmcr2", "ce"])
@pytest.mark.parametrize("kind", ["npz", "folder"])
def test_every_objective_trains_and_evaluates_on_the_users_data(tmp_path, capsys, kind, objective):
    data = write_npz(tmp_path / "mine.npz") if kind == "npz" else write_folder(tmp_path / "images")
    runs = tmp_path / "runs"
    extra = ["--set", "image_size=16"] if kind == "folder" else []
    code, out, err = vmcr2("train", "--profile", "synthetic", "--set", f"dataset={kind}", "--data-root", data,
                           "--objective", objective, "--epochs", "1", "--batch-size", "40",
                           "--set", "atoms_per_class=2", *extra, "--runs-dir", runs, "--json", capsys=capsys)
    assert code == 0, err
    assert 0 <= json.loads(out)["nearest_subspace_accuracy"] <= 1
    code, out, err = vmcr2("eval", runs / "latest", "--no-figures", "--json", capsys=capsys)
    assert code == 0, err
    assert json.loads(out)["num_classes"] == K and RunDir.open(runs / "latest").eval_path.is_file()


def test_an_unlabelled_train_folder_is_evaluated_on_halves_of_the_labelled_test_tree(tmp_path):
    dataset = load_dataset("folder", data_root=unlabelled(write_folder(tmp_path / "images")), download=False,
                           image_size=16, seed=3)
    assert not dataset.labelled_train and dataset.num_train == 30 * K and dataset.num_classes == K
    assert dataset.class_names == ["class_a", "class_b", "class_c", "class_d"]  # the test tree's folders
    reference_images, reference_labels = dataset.reference()
    assert reference_labels.bincount().tolist() == [5] * K and dataset.test_labels.bincount().tolist() == [5] * K
    whole = load_dataset("folder", data_root=write_folder(tmp_path / "labelled"), download=False, image_size=16)
    pairs = {(bytes(image.numpy()), int(label)) for image, label in zip(whole.test_images, whole.test_labels)}
    halves = [*zip(reference_images, reference_labels), *zip(dataset.test_images, dataset.test_labels)]
    assert {(bytes(image.numpy()), int(label)) for image, label in halves} == pairs  # each test image once
    again = load_dataset("folder", data_root=tmp_path / "images", download=False, image_size=16, seed=3)
    assert torch.equal(again.reference()[0], reference_images)  # seeded: eval after training sees the same halves
    other = load_dataset("folder", data_root=tmp_path / "images", download=False, image_size=16, seed=4)
    assert not torch.equal(other.reference()[0], reference_images)


@pytest.mark.parametrize("objective", ["mcr2-ssl", "tcr"])
def test_a_self_supervised_objective_trains_on_unlabelled_images_and_evaluates(tmp_path, capsys, objective):
    data = unlabelled(write_folder(tmp_path / "images"))
    runs = tmp_path / "runs"
    code, out, err = vmcr2("train", "--profile", "synthetic", "--set", "dataset=folder", "--data-root", data,
                           "--objective", objective, "--epochs", "2", "--batch-size", "20", "--set", "views=2",
                           "--set", "augment=resized-crop", "--set", "image_size=16", "--set", "eval_every=1",
                           "--runs-dir", runs, "--json", capsys=capsys)
    assert code == 0, err
    assert 0 <= json.loads(out)["knn_accuracy"] <= 1
    evals = [line for line in RunDir.open(runs / "latest").read_metrics() if line["type"] == "eval"]
    assert [line["epoch"] for line in evals] == [1, 2]
    code, out, err = vmcr2("eval", runs / "latest", "--no-figures", "--json", capsys=capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["fitted_on"] == "test-half" and result["num_train"] == 20 and result["num_test"] == 20
    assert result["knn_accuracy"] == evals[-1]["knn_accuracy"]  # the same halves as during training
    code, _, err = vmcr2("embed", runs / "latest", "train", "--out", tmp_path / "train.npz", capsys=capsys)
    assert code == 0, err
    embedded = np.load(tmp_path / "train.npz")
    assert embedded["features"].shape[0] == 30 * K and "labels" not in embedded.files  # none to give


def _bad_npz(tmp_path: Path, **changes) -> Path:
    return write_npz(tmp_path / "bad.npz", **changes)


BAD = {
    "npz-missing-array": (lambda p: _bad_npz(p, y_test=None), "npz", "no y_test"),
    "npz-float-images": (lambda p: _bad_npz(p, x_train=np.zeros((120, 16, 16), np.float32)), "npz", "must be uint8"),
    "npz-label-out-of-range": (lambda p: _bad_npz(p, y_test=np.full(40, 7)), "npz", "a test label is 7"),
    "npz-empty-class": (lambda p: _bad_npz(p, y_train=np.repeat([0, 1, 3], 40)), "npz", "class 2 has no training"),
    "npz-not-a-file": (lambda p: p / "nothing.npz", "npz", "is not a file"),
    "npz-pickled": (lambda p: _pickled(p / "pickled.npz"), "npz", "not a readable .npz file"),
    "folder-missing-split": (lambda p: _without(write_folder(p / "f"), "test"), "folder", "no test/ in"),
    "folder-empty-class": (lambda p: _empty_class(write_folder(p / "f")), "folder", "has no images"),
    "folder-mixed-sizes": (lambda p: write_folder(p / "f", sizes=((20, 24), (40, 30))), "folder",
                           "set image_size (e.g. 32) to resize them"),
    "folder-unlabelled-supervised": (lambda p: unlabelled(write_folder(p / "f")), "folder",
                                     "needs labels — train it on train/<class>/ folders"),
    "folder-unlabelled-without-test-classes": (lambda p: _flat_test(unlabelled(write_folder(p / "f"))), "folder",
                                               "has no class folders to evaluate on"),
}


def _flat_test(root: Path) -> Path:
    for path in sorted((root / "test").glob("*/*.png")):
        path.rename(root / "test" / f"{path.parent.name}_{path.name}")
    for folder in (root / "test").iterdir():
        if folder.is_dir():
            folder.rmdir()
    return root


def _pickled(path: Path) -> Path:
    """A complete file whose x_train is a pickled object array: loading it could run code."""
    return write_npz(path, x_train=np.array([object()] * 120, dtype=object))


def _without(root: Path, split: str) -> Path:
    for path in sorted((root / split).rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (root / split).rmdir()
    return root


def _empty_class(root: Path) -> Path:
    for path in (root / "train" / "class_b").iterdir():
        path.unlink()
    return root


@pytest.mark.parametrize("make, kind, message", list(BAD.values()), ids=list(BAD))
def test_bad_user_data_is_one_line_exit_2_and_no_run(tmp_path, capsys, make, kind, message):
    data = make(tmp_path)
    extra = ["--set", "image_size=0"] if "mixed" in message or kind == "folder" else []
    code, _, err = vmcr2("train", "--profile", "synthetic", "--set", f"dataset={kind}", "--data-root", data,
                         "--epochs", "1", "--batch-size", "40", "--set", "atoms_per_class=2", *extra,
                         "--runs-dir", tmp_path / "runs", capsys=capsys)
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "runs").exists()


def test_the_normalisation_is_the_training_images_own_statistics():
    import torch

    from vmcr2_cli.data.user_files import training_statistics

    images = torch.randint(0, 256, (5000, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mean, std = training_statistics(images)  # summed over chunks of 4096 images
    values = images.double() / 255
    assert mean == pytest.approx(values.mean(dim=(0, 2, 3)).tolist(), rel=1e-9)
    assert std == pytest.approx(values.transpose(0, 1).reshape(3, -1).std(dim=1, unbiased=False).tolist(), rel=1e-6)
