"""The registry's entries, label noise, the synthetic dataset and the mixtures of Gaussians."""

from __future__ import annotations

import pytest
import torch
from fixtures_data import isolate_data, write_idx_dataset

from vmcr2_cli.data import DATASETS, apply_label_noise, dataset_names, get_spec, load_dataset, make_subspace_mixture
from vmcr2_cli.data.augment import AUGMENTATIONS
from vmcr2_cli.data.gaussians import CENTRES, centre
from vmcr2_cli.data.preprocessing import Preprocess
from vmcr2_cli.data.registry import preprocessing_of
from vmcr2_cli.errors import BadInput


@pytest.fixture(autouse=True)
def hermetic(monkeypatch, tmp_path):
    return isolate_data(monkeypatch, tmp_path)


def test_registry_names_the_fifteen_datasets():
    assert dataset_names() == ["mnist", "fashion-mnist", "fashion-mnist-pairs", "fashion-mnist-triples",
                               "cifar10", "cifar100", "tinyimagenet", "imagenet32", "imagenet64", "folder", "npz",
                               "packed", "gaussians-2d", "gaussians-3d", "synthetic"]


# Normalised by their own training images' statistics, computed at load (a pack: at packing).
USERS_DATA = ("folder", "npz", "packed")


@pytest.mark.parametrize("name", [name for name in DATASETS if name not in USERS_DATA])
def test_each_entry_has_constants_per_channel_and_a_known_augmentation(name):
    spec = DATASETS[name]
    assert spec.augment in AUGMENTATIONS
    assert len(spec.mean) == len(spec.std) and len(spec.mean) in (1, 3)
    assert all(0 < m < 1 for m in spec.mean) and all(0 < s < 1 for s in spec.std)


@pytest.mark.parametrize("name", USERS_DATA)
def test_the_users_datasets_have_no_constants_and_no_augmentation_of_their_own(name):
    spec = DATASETS[name]
    assert spec.mean == spec.std == () and spec.augment == "none" and spec.num_classes is None


def test_paper_augmentations_per_dataset():
    assert [DATASETS[n].augment for n in ("mnist", "fashion-mnist", "cifar10", "cifar100", "tinyimagenet")] == [
        "crop-flip", "crop-flip", "crop-flip", "crop-flip", "flip"]


def test_aliases_resolve_to_the_canonical_name():
    assert get_spec("Fashion_MNIST").name == "fashion-mnist" and get_spec("tiny-imagenet-200").name == "tinyimagenet"


def test_dataset_carries_the_registry_constants(tmp_path):
    write_idx_dataset(tmp_path / "d", "mnist", n_train=10, n_test=5)
    ds = load_dataset("mnist", data_root=tmp_path / "d", download=False)
    assert ds.mean == DATASETS["mnist"].mean and ds.std == DATASETS["mnist"].std and ds.augment == "crop-flip"
    assert ds.clean_train_labels is None


def test_synthetic_options_are_refused_for_real_datasets(tmp_path):
    with pytest.raises(BadInput, match="unknown dataset option.*num_classes.*mnist takes none"):
        load_dataset("mnist", num_classes=5)


def test_options_set_to_none_are_ignored(tmp_path):
    write_idx_dataset(tmp_path / "d", "mnist", n_train=10, n_test=5)
    assert load_dataset("mnist", data_root=tmp_path / "d", download=False, num_classes=None).num_classes == 10


# --------------------------------------------------------------------------- label noise


def test_label_noise_redraws_the_given_fraction_uniformly():
    labels = torch.arange(10).repeat(1000)
    noisy = apply_label_noise(labels, 0.3, 10, seed=4)
    changed = (noisy != labels).float().mean().item()
    assert changed == pytest.approx(0.3 * 0.9, abs=0.02)  # a re-drawn label keeps its class 1/k of the time
    assert noisy.bincount(minlength=10).min() > 900 and noisy.dtype == torch.int64


def test_label_noise_is_seeded_and_leaves_its_input_alone():
    labels = torch.arange(10).repeat(100)
    original = labels.clone()
    a, b, c = (apply_label_noise(labels, 0.5, 10, seed=s) for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c) and torch.equal(labels, original)


def test_label_noise_extremes():
    labels = torch.zeros(1000, dtype=torch.int64)
    assert torch.equal(apply_label_noise(labels, 0.0, 10), labels)
    assert (apply_label_noise(labels, 1.0, 10) != 0).float().mean().item() == pytest.approx(0.9, abs=0.04)


def test_label_noise_touches_train_labels_only_and_keeps_the_clean_ones(tmp_path):
    write_idx_dataset(tmp_path / "d", "mnist", n_train=400, n_test=100)
    clean = load_dataset("mnist", data_root=tmp_path / "d", download=False)
    noisy = load_dataset("mnist", data_root=tmp_path / "d", download=False, label_noise=0.5, seed=3)
    assert torch.equal(noisy.clean_train_labels, clean.train_labels)
    assert torch.equal(noisy.test_labels, clean.test_labels)
    assert 0.35 < (noisy.train_labels != clean.train_labels).float().mean().item() < 0.55
    again = load_dataset("mnist", data_root=tmp_path / "d", download=False, label_noise=0.5, seed=3)
    assert torch.equal(again.train_labels, noisy.train_labels)


def test_label_noise_out_of_range_is_bad_input():
    with pytest.raises(BadInput, match=r"label_noise must be a fraction in \[0, 1\], got 1.5"):
        load_dataset("synthetic", label_noise=1.5)


# --------------------------------------------------------------------------- synthetic


def test_synthetic_has_the_requested_shape_and_classes():
    ds = load_dataset("synthetic", num_classes=7, image_shape=(1, 16, 12), train_per_class=5, test_per_class=3, seed=1)
    assert ds.train_images.shape == (35, 1, 16, 12) and ds.test_images.shape == (21, 1, 16, 12)
    assert ds.train_images.dtype == torch.uint8 and ds.train_labels.dtype == torch.int64
    assert ds.train_labels.bincount().tolist() == [5] * 7 and ds.test_labels.bincount().tolist() == [3] * 7
    assert ds.num_classes == 7 and len(ds.class_names) == 7 and ds.mean == (0.5,) and ds.augment == "none"


def test_synthetic_is_deterministic_in_its_seed():
    a, b, c = (make_subspace_mixture(5, (3, 8, 8), 2, 10, 4, seed=s) for s in (0, 0, 1))
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.test_labels, b.test_labels)
    assert not torch.equal(a.train_images, c.train_images)


def test_synthetic_classes_are_low_dimensional_subspaces():
    s = make_subspace_mixture(4, (1, 16, 16), subspace_dim=3, train_per_class=200, test_per_class=1, noise=0.0)
    x = s.train_images.float().flatten(1) / 255 - 0.5
    for j in range(4):
        energy = torch.linalg.svdvals(x[s.train_labels == j]) ** 2
        assert energy[3:].sum() < 0.02 * energy.sum()  # rank 3 up to quantisation and clipping (~1 %)


def test_synthetic_class_data_do_not_depend_on_the_number_of_classes():
    small = make_subspace_mixture(3, (1, 8, 8), 2, 6, 2, seed=5)
    large = make_subspace_mixture(8, (1, 8, 8), 2, 6, 2, seed=5)
    for j in range(3):
        a = small.train_images[small.train_labels == j].flatten(1).sort(0).values
        b = large.train_images[large.train_labels == j].flatten(1).sort(0).values
        assert torch.equal(a, b)


def test_synthetic_bad_options_are_bad_input():
    with pytest.raises(BadInput, match="subspace_dim must be in"):
        load_dataset("synthetic", image_shape=(1, 2, 2), subspace_dim=5)
    with pytest.raises(BadInput, match="unknown dataset option.*colour"):
        load_dataset("synthetic", colour=True)


# --------------------------------------------------------------------------- mixtures of Gaussians


@pytest.mark.parametrize("dim", [2, 3])
def test_a_gaussian_mixture_is_500_points_a_class_in_both_splits_as_the_registry_says(dim):
    ds = load_dataset(f"gaussians-{dim}d", seed=0)
    spec = get_spec(f"gaussians-{dim}d")
    assert ds.train_images.shape == ds.test_images.shape == (500 * dim, 1, 1, dim)
    assert ds.train_labels.bincount().tolist() == ds.test_labels.bincount().tolist() == [500] * dim
    assert ds.num_classes == spec.num_classes == dim and ds.num_train == spec.num_train
    assert not ds.mirror_safe  # a flip swaps the coordinates: another line


@pytest.mark.parametrize("dim", [2, 3])
def test_the_pipeline_gives_back_unit_points_near_each_class_line(dim):
    ds = load_dataset(f"gaussians-{dim}d", seed=3)
    points = Preprocess(preprocessing_of(ds))(ds.train_images).flatten(1).double()
    assert (points.norm(dim=1) - 1).abs().max() < 2 / 255 * dim ** 0.5  # unit points, to the quantisation
    for j, angles in enumerate(CENTRES[dim]):
        top = torch.linalg.svd(points[ds.train_labels == j], full_matrices=False)[2][0]
        assert abs(float(top @ centre(angles))) > 0.97  # the class's line is ±its centre


def test_a_gaussian_mixture_is_drawn_from_the_seed_and_its_test_draw_is_another():
    a, b, c = (load_dataset("gaussians-2d", seed=s) for s in (0, 0, 1))
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.test_labels, b.test_labels)
    assert not torch.equal(a.train_images, c.train_images) and not torch.equal(a.train_images, a.test_images)
