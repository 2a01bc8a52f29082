"""fashion-mnist-pairs and -triples: composed from real-format IDX files, balanced, split-pure, cached."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cli_runner import vmcr2
from fixtures_data import isolate_data, write_idx_dataset
from vmcr2_cli.config import resolve_config
from vmcr2_cli.data import compositions, idx, load_dataset
from vmcr2_cli.errors import BadInput

TRAIN, TEST = 1000, 300  # composed images in the tests (60 000 and 10 000 for real)


@pytest.fixture
def data(monkeypatch, tmp_path):
    """A small Fashion-MNIST in its IDX files, hermetic discovery, and small composed splits."""
    isolate_data(monkeypatch, tmp_path)
    monkeypatch.setattr(compositions, "TRAIN_SIZE", TRAIN)
    monkeypatch.setattr(compositions, "TEST_SIZE", TEST)
    return write_idx_dataset(tmp_path / "data", "fashion-mnist", n_train=200, n_test=60)


def load(name, data, **kwargs):
    return load_dataset(name, data_root=data.parent, **kwargs)


def cells(images, count):
    """(N, 1, 32, 32·count) → (count, N, 32, 32): each image's cells, left to right."""
    return torch.stack(images[:, 0].split(32, dim=-1))


def item_classes(folder, split):
    """Each padded 32×32 item of a split → its class, keyed by its bytes."""
    prefix = "train" if split == "train" else "t10k"
    images, labels = idx.read_idx_split(folder / f"{prefix}-images-idx3-ubyte.gz", folder / f"{prefix}-labels-idx1-ubyte.gz", 10)
    return {image[0].numpy().tobytes(): int(label) for image, label in zip(images, labels)}


def test_pairs_have_100_balanced_classes_in_two_32x32_cells(data):
    pairs = load("fashion-mnist-pairs", data)
    assert pairs.num_classes == 100 and pairs.image_shape == (1, 32, 64)
    assert pairs.num_train == TRAIN and pairs.num_test == TEST
    assert pairs.train_labels.bincount(minlength=100).tolist() == [TRAIN // 100] * 100
    assert pairs.test_labels.bincount(minlength=100).tolist() == [TEST // 100] * 100
    assert pairs.class_names[13] == "Trouser|Dress"  # 10·1 + 3


@pytest.mark.parametrize("split", ["train", "test"])
def test_each_cell_is_an_item_of_its_own_split_and_of_the_class_its_digit_names(data, split):
    pairs = load("fashion-mnist-pairs", data)
    images = pairs.train_images if split == "train" else pairs.test_images
    labels = pairs.train_labels if split == "train" else pairs.test_labels
    own = item_classes(data, split)
    other = item_classes(data, "test" if split == "train" else "train")
    for position, digit in ((0, labels // 10), (1, labels % 10)):
        for cell, expected in zip(cells(images, 2)[position], digit.tolist()):
            key = cell.numpy().tobytes()
            assert own[key] == expected
            assert key not in other  # the fixture's splits share no image, so neither do the compositions


def test_items_are_used_evenly(data):
    pairs = load("fashion-mnist-pairs", data)
    own = {key: n for n, key in enumerate(item_classes(data, "train"))}
    uses = np.bincount([own[cell.numpy().tobytes()] for cell in cells(pairs.train_images, 2)[0]], minlength=len(own))
    assert uses.max() - uses.min() <= 1  # 1000 left cells over 200 items: each used 5 times, ±1 per class pool


def test_the_composition_is_deterministic_and_independent_of_the_training_seed(data, tmp_path):
    first = load("fashion-mnist-pairs", data, seed=0)
    second = load("fashion-mnist-pairs", data, seed=7, cache_dir=tmp_path / "another-cache")
    assert torch.equal(first.train_images, second.train_images) and torch.equal(first.test_labels, second.test_labels)


def test_a_second_load_reads_the_cache_instead_of_rebuilding(data, monkeypatch):
    first = load("fashion-mnist-pairs", data)

    def no_rebuild(*args, **kwargs):
        raise AssertionError("rebuilt although cached")

    monkeypatch.setattr(compositions, "compose", no_rebuild)
    second = load("fashion-mnist-pairs", data)
    assert torch.equal(first.train_images, second.train_images)
    assert ".npz" in second.source


def test_a_damaged_cache_is_rebuilt(data):
    first = load("fashion-mnist-pairs", data)
    cached = next((data.parent.parent / "xdg-cache" / "vmcr2" / "fashion-mnist-pairs").glob("*.npz"))
    cached.write_bytes(cached.read_bytes()[:1000])
    again = load("fashion-mnist-pairs", data)
    assert torch.equal(first.train_images, again.train_images)


def test_triples_have_1000_classes_in_three_cells(data, monkeypatch):
    monkeypatch.setattr(compositions, "TRAIN_SIZE", 2000)
    monkeypatch.setattr(compositions, "TEST_SIZE", 1000)
    triples = load("fashion-mnist-triples", data)
    assert triples.num_classes == 1000 and triples.image_shape == (1, 32, 96)
    assert triples.train_labels.bincount(minlength=1000).tolist() == [2] * 1000
    own = item_classes(data, "train")
    label = int(triples.train_labels[0])
    assert [own[c[0].numpy().tobytes()] for c in cells(triples.train_images[:1], 3)] == [
        label // 100, label // 10 % 10, label % 10]


def test_a_flip_is_refused_because_it_changes_the_class(data):
    with pytest.raises(BadInput, match="changes the class"):
        resolve_config("fashion-mnist-pairs", "mcr2", {"augment": "flip", "data_root": str(data.parent)})


def test_every_objective_trains_on_pairs_through_the_cli(data, tmp_path, capsys):
    for objective in ("mcr2", "vmcr2", "ce"):
        code, out, err = vmcr2("train", "--profile", "fashion-mnist-pairs", "--objective", objective,
                               "--data-root", str(data.parent), "--runs-dir", str(tmp_path / "runs"),
                               "--epochs", "1", "--batch-size", "500", "--set", "width=0.25",
                               "--set", "feature_dim=16", "--set", "atoms_per_class=1", "--json", capsys=capsys)
        assert code == 0, err
        assert json.loads(out)["status"] == "finished"


@pytest.mark.parametrize("objective", ["mcr2", "vmcr2", "ce"])
def test_the_triples_profile_trains_and_evaluates_every_objective_at_1000_classes(data, tmp_path, monkeypatch,
                                                                                 objective):
    """A step of 1000 images (the profile's batch is 2000; these splits hold 1000), then the profile's eval."""
    monkeypatch.setattr(compositions, "TEST_SIZE", 1000)  # a multiple of the 1000 classes
    code, out, err = vmcr2("train", "--profile", "fashion-mnist-triples", "--objective", objective, "--epochs", "1",
                           "--batch-size", "1000", "--data-root", str(data.parent), "--runs-dir",
                           str(tmp_path / "runs"), "--json")
    assert code == 0, err
    result = json.loads(out)
    lines = [json.loads(line) for line in open(f"{result['run_dir']}/metrics.jsonl")]
    epoch = [line for line in lines if line["type"] == "epoch"]
    evals = [line for line in lines if line["type"] == "eval"]
    assert len(epoch) == 1 and np.isfinite(epoch[0]["delta_r"])
    assert [line["epoch"] for line in evals] == [1] and evals[0]["components"] == 1  # ⌊128/1000⌋ → 1
    assert 0.0 <= result["knn_accuracy"] <= 1.0
    assert json.load(open(f"{result['run_dir']}/meta.json"))["num_classes"] == 1000
