"""Each on-disk format round-trips through its loader: shapes, dtypes, labels, resolution."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
import torch
from fixtures_data import (
    balanced_labels,
    class_patterns,
    isolate_data,
    tinyimagenet_wnids,
    write_cifar10,
    write_cifar100,
    write_idx_dataset,
    write_idx_file,
    write_tinyimagenet,
)

from vmcr2_cli.data import DatasetCorrupt, load_dataset
from vmcr2_cli.data import tinyimagenet as tiny
from vmcr2_cli.errors import BadInput


@pytest.fixture(autouse=True)
def hermetic(monkeypatch, tmp_path):
    return isolate_data(monkeypatch, tmp_path)


def data(tmp_path):
    return tmp_path / "data"


# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_files_load_padded_to_32_with_their_labels(tmp_path, name, gz):
    write_idx_dataset(data(tmp_path), name, n_train=30, n_test=12, gz=gz, seed=3)
    ds = load_dataset(name, data_root=data(tmp_path), download=False)
    assert ds.name == name and ds.num_classes == 10 and len(ds.class_names) == 10
    assert ds.train_images.shape == (30, 1, 32, 32) and ds.test_images.shape == (12, 1, 32, 32)
    assert ds.train_images.dtype == torch.uint8 and ds.train_labels.dtype == torch.int64
    expected_labels = balanced_labels(30, 10, 3)
    assert ds.train_labels.tolist() == expected_labels.tolist()
    assert ds.test_labels.tolist() == balanced_labels(12, 10, 4).tolist()
    original = class_patterns(expected_labels, 10, 1, 28, 3)
    assert torch.equal(ds.train_images[:, :, 2:30, 2:30], torch.from_numpy(original))
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert (ds.train_images[:, :, border] == 0).all() and (ds.test_images[:, :, border] == 0).all()


def test_idx_files_directly_in_the_root_are_found(tmp_path):
    write_idx_dataset(data(tmp_path), "mnist", n_train=10, n_test=10, subfolder=False)
    assert load_dataset("mnist", data_root=data(tmp_path), download=False).num_train == 10


def test_truncated_idx_file_is_a_clear_error(tmp_path):
    folder = write_idx_dataset(data(tmp_path), "mnist", n_train=20, n_test=10, gz=False)
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetCorrupt, match=r"train-images-idx3-ubyte has \d+ bytes but its IDX header .* says \d+"):
        load_dataset("mnist", data_root=data(tmp_path), download=False)


def test_idx_file_with_a_wrong_magic_number_is_a_clear_error(tmp_path):
    folder = write_idx_dataset(data(tmp_path), "mnist", n_train=20, n_test=10)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03" + bytes(100)))
    with pytest.raises(DatasetCorrupt, match=r"t10k-labels-idx1-ubyte.gz is not an IDX file .*magic number 00000803"):
        load_dataset("mnist", data_root=data(tmp_path), download=False)


def test_corrupt_gzip_is_a_clear_error(tmp_path):
    folder = write_idx_dataset(data(tmp_path), "fashion-mnist", n_train=20, n_test=10)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DatasetCorrupt, match="train-labels-idx1-ubyte.gz cannot be read"):
        load_dataset("fashion-mnist", data_root=data(tmp_path), download=False)


def test_idx_images_and_labels_of_different_lengths_are_a_clear_error(tmp_path):
    folder = write_idx_dataset(data(tmp_path), "mnist", n_train=20, n_test=10)
    write_idx_file(folder / "train-labels-idx1-ubyte.gz", np.zeros(19, np.uint8))
    with pytest.raises(DatasetCorrupt, match="20 images but .* 19 labels"):
        load_dataset("mnist", data_root=data(tmp_path), download=False)


def test_corruption_errors_are_bad_input_on_one_line(tmp_path):
    folder = write_idx_dataset(data(tmp_path), "mnist", n_train=20, n_test=10)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00"))
    with pytest.raises(BadInput) as caught:
        load_dataset("mnist", data_root=data(tmp_path), download=False)
    assert "\n" not in str(caught.value)


# --------------------------------------------------------------------------- CIFAR


@pytest.mark.parametrize("archive", [False, True])
def test_cifar10_batches_load_as_3x32x32(tmp_path, archive):
    written = write_cifar10(data(tmp_path), n_train=23, n_test=7, archive=archive, seed=5)
    assert written.name == ("cifar-10-python.tar.gz" if archive else "cifar-10-batches-py")
    ds = load_dataset("cifar10", data_root=data(tmp_path), download=False)
    assert ds.train_images.shape == (23, 3, 32, 32) and ds.test_images.shape == (7, 3, 32, 32)
    assert ds.train_images.dtype == torch.uint8 and ds.test_labels.dtype == torch.int64
    labels = balanced_labels(23, 10, 5)
    assert ds.train_labels.tolist() == labels.tolist()
    assert torch.equal(ds.train_images, torch.from_numpy(class_patterns(labels, 10, 3, 32, 5)))
    assert ds.class_names[:3] == ["airplane", "automobile", "bird"] and ds.num_classes == 10
    assert ds.source == str(written)


@pytest.mark.parametrize("archive", [False, True])
def test_cifar100_uses_the_fine_labels(tmp_path, archive):
    write_cifar100(data(tmp_path), n_train=150, n_test=40, archive=archive, seed=2)
    ds = load_dataset("cifar100", data_root=data(tmp_path), download=False)
    assert ds.num_classes == 100 and ds.class_names[7] == "fine_7"
    assert ds.train_images.shape == (150, 3, 32, 32) and ds.test_images.shape == (40, 3, 32, 32)
    assert ds.train_labels.tolist() == balanced_labels(150, 100, 2).tolist()
    assert ds.test_labels.tolist() == balanced_labels(40, 100, 3).tolist()


def test_cifar_pickle_that_would_run_code_is_refused(tmp_path):
    folder = write_cifar10(data(tmp_path), n_train=10, n_test=5)

    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Exploit()}, protocol=2))
    with pytest.raises(DatasetCorrupt, match="test_batch is not a CIFAR python batch: refusing to load .*print"):
        load_dataset("cifar10", data_root=data(tmp_path), download=False)


def test_cifar_batch_with_wrong_image_size_is_a_clear_error(tmp_path):
    folder = write_cifar10(data(tmp_path), n_train=10, n_test=5)
    record = {b"data": np.zeros((5, 100), np.uint8), b"labels": [0] * 5}
    (folder / "test_batch").write_bytes(pickle.dumps(record, protocol=2))
    with pytest.raises(DatasetCorrupt, match=r"test_batch: data is uint8 \(5, 100\), expected uint8 \(N, 3072\)"):
        load_dataset("cifar10", data_root=data(tmp_path), download=False)


# --------------------------------------------------------------------------- Tiny ImageNet


@pytest.mark.parametrize("archive", [False, True])
def test_tinyimagenet_jpegs_load_resized_to_32(tmp_path, archive, hermetic):
    write_tinyimagenet(data(tmp_path), n_classes=4, per_class=6, val_per_class=3, archive=archive, seed=1)
    ds = load_dataset("tinyimagenet", data_root=data(tmp_path), download=False)
    assert ds.train_images.shape == (24, 3, 32, 32) and ds.test_images.shape == (12, 3, 32, 32)
    assert ds.train_images.dtype == torch.uint8 and ds.train_labels.dtype == torch.int64
    wnids = tinyimagenet_wnids(4)
    rank = {w: i for i, w in enumerate(sorted(wnids))}  # labels follow the sorted wnids
    assert ds.train_labels.tolist() == [rank[w] for w in sorted(wnids) for _ in range(6)]
    assert ds.test_labels.tolist() == [rank[wnids[j]] for j in balanced_labels(12, 4, 2)]
    assert ds.class_names == [f"thing {wnids.index(w)}" for w in sorted(wnids)]
    # The grayscale JPEG (the first image of wnids.txt's first class) became three equal channels.
    gray = ds.train_images[ds.train_labels == rank[wnids[0]]][0]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])


def test_tinyimagenet_resize_is_antialiased_downsampling_of_the_decoded_jpeg(tmp_path):
    from PIL import Image
    from torchvision.transforms.v2 import functional as TF

    folder = write_tinyimagenet(data(tmp_path), n_classes=2, per_class=2, val_per_class=1)
    ds = load_dataset("tinyimagenet", data_root=data(tmp_path), download=False)
    wnid = tinyimagenet_wnids(2)[1]
    decoded = np.asarray(Image.open(folder / f"train/{wnid}/images/{wnid}_1.JPEG").convert("RGB"))
    reference = TF.resize(torch.from_numpy(decoded.copy()).permute(2, 0, 1), [32, 32], antialias=True)
    label = sorted(tinyimagenet_wnids(2)).index(wnid)
    assert torch.equal(ds.train_images[ds.train_labels == label][1], reference)


def test_tinyimagenet_is_decoded_once_then_read_from_the_cache(tmp_path, hermetic, monkeypatch):
    write_tinyimagenet(data(tmp_path), n_classes=3, per_class=4, val_per_class=2)
    first = load_dataset("tinyimagenet", data_root=data(tmp_path), download=False)
    cached = list((hermetic / "tinyimagenet").glob("decoded-32px-*.npz"))
    assert len(cached) == 1 and not list((hermetic / "tinyimagenet").glob("*.part"))

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(tiny, "_decode_all", no_decoding)
    second = load_dataset("tinyimagenet", data_root=data(tmp_path), download=False)
    assert torch.equal(first.train_images, second.train_images) and torch.equal(first.test_labels, second.test_labels)


def test_tinyimagenet_cache_is_rebuilt_when_the_images_change(tmp_path, hermetic):
    folder = write_tinyimagenet(data(tmp_path), n_classes=2, per_class=3, val_per_class=1)
    load_dataset("tinyimagenet", data_root=data(tmp_path), download=False)
    wnid = tinyimagenet_wnids(2)[0]
    (folder / f"train/{wnid}/images/{wnid}_2.JPEG").unlink()
    assert load_dataset("tinyimagenet", data_root=data(tmp_path), download=False).num_train == 5
    assert len(list((hermetic / "tinyimagenet").glob("decoded-32px-*.npz"))) == 2


def test_tinyimagenet_val_annotation_with_unknown_wnid_is_a_clear_error(tmp_path):
    folder = write_tinyimagenet(data(tmp_path), n_classes=2, per_class=2, val_per_class=1)
    (folder / "val/val_annotations.txt").write_text("val_0.JPEG\tn99999999\t0\t0\t1\t1\n")
    with pytest.raises(DatasetCorrupt, match="val_annotations.txt line 1"):
        load_dataset("tinyimagenet", data_root=data(tmp_path), download=False)
