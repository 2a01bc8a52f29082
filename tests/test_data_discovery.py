"""Where datasets are looked for, in which order, and what a missing one says."""

from __future__ import annotations

import hashlib
import io
import os
import re
import time
from pathlib import Path

import pytest
from fixtures_data import isolate_data, write_cifar10, write_idx_dataset, write_tinyimagenet

from vmcr2_cli.data import DatasetNotFound, dataset_names, discovery, download, idx, load_dataset, search_roots
from vmcr2_cli.errors import BadInput

IDX_NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


@pytest.fixture(autouse=True)
def cache(monkeypatch, tmp_path):
    return isolate_data(monkeypatch, tmp_path)


def four_copies(tmp_path, cache, monkeypatch):
    """Fashion-MNIST in data_root (10 train images), VMCR2_DATA (20), the cache (30), the system (40)."""
    roots = {"arg": tmp_path / "arg", "env": tmp_path / "env", "cache": cache, "system": tmp_path / "system"}
    for n, root in zip((10, 20, 30, 40), roots.values()):
        write_idx_dataset(root, "fashion-mnist", n_train=n, n_test=5)
    monkeypatch.setenv("VMCR2_DATA", str(roots["env"]))
    monkeypatch.setenv("VMCR2_SYSTEM_DATA", str(roots["system"]))
    return roots


def test_data_root_beats_env_beats_cache_beats_system(tmp_path, cache, monkeypatch):
    import shutil

    roots = four_copies(tmp_path, cache, monkeypatch)
    load = lambda: load_dataset("fashion-mnist", data_root=roots["arg"], download=False).num_train  # noqa: E731
    assert load() == 10
    shutil.rmtree(roots["arg"] / "fashion-mnist")
    assert load() == 20
    shutil.rmtree(roots["env"] / "fashion-mnist")
    assert load() == 30
    shutil.rmtree(cache / "fashion-mnist")
    assert load() == 40


def test_cache_dir_argument_replaces_the_xdg_cache(tmp_path):
    write_idx_dataset(tmp_path / "elsewhere", "mnist", n_train=7, n_test=3)
    assert load_dataset("mnist", cache_dir=tmp_path / "elsewhere", download=False).num_train == 7


def test_xdg_cache_home_locates_the_cache(tmp_path, cache):
    assert cache == tmp_path / "xdg-cache" / "vmcr2"
    write_idx_dataset(cache, "mnist", n_train=9, n_test=3)
    assert load_dataset("mnist", download=False).num_train == 9


def test_vmcr2_data_may_list_several_folders(tmp_path, monkeypatch):
    write_idx_dataset(tmp_path / "second", "mnist", n_train=12, n_test=3)
    monkeypatch.setenv("VMCR2_DATA", os.pathsep.join([str(tmp_path / "first"), str(tmp_path / "second")]))
    assert load_dataset("mnist", download=False).num_train == 12


def test_system_roots_are_the_module_constant_when_the_variable_is_unset(tmp_path, monkeypatch):
    monkeypatch.delenv("VMCR2_SYSTEM_DATA")
    monkeypatch.setattr(discovery, "SYSTEM_DATA_ROOTS", (tmp_path / "usr-share",))
    write_idx_dataset(tmp_path / "usr-share", "fashion-mnist", n_train=11, n_test=3)
    assert load_dataset("fashion-mnist", download=False).num_train == 11
    assert [r.origin for r in search_roots()] == ["cache", "system"]


def test_search_roots_are_ordered_and_deduplicated(tmp_path, monkeypatch, cache):
    monkeypatch.setenv("VMCR2_DATA", str(tmp_path / "a"))
    roots = search_roots(tmp_path / "a", cache)
    assert [(r.path, r.origin) for r in roots] == [(tmp_path / "a", "--data-root"), (cache, "cache")]


def test_each_dataset_is_found_in_a_subfolder_named_after_it(tmp_path):
    write_idx_dataset(tmp_path / "d" / "MNIST", "raw", n_train=6, n_test=3)  # torchvision's layout
    write_cifar10(tmp_path / "d" / "cifar10", n_train=5, n_test=5)
    write_tinyimagenet(tmp_path / "d" / "tinyimagenet", n_classes=2, per_class=1, val_per_class=1)
    for name, count in (("mnist", 6), ("cifar10", 5), ("tinyimagenet", 2)):
        assert load_dataset(name, data_root=tmp_path / "d", download=False).num_train == count


def test_a_folder_is_preferred_to_an_archive_in_the_same_root(tmp_path):
    write_cifar10(tmp_path / "d", n_train=10, n_test=5, archive=True)
    write_cifar10(tmp_path / "d", n_train=15, n_test=5)
    assert load_dataset("cifar10", data_root=tmp_path / "d", download=False).num_train == 15


# --------------------------------------------------------------------------- missing datasets


def test_missing_dataset_without_download_is_one_line_naming_files_and_folders(tmp_path, cache):
    started = time.monotonic()
    with pytest.raises(DatasetNotFound) as caught:
        load_dataset("mnist", data_root=tmp_path / "mine", download=False)
    assert time.monotonic() - started < 1.0
    message = str(caught.value)
    assert "\n" not in message and message.startswith("mnist not found: put ")
    assert all(name in message for name in IDX_NAMES)
    assert str(tmp_path / "mine") in message and str(cache) in message
    assert "VMCR2_DATA" in message and "downloads are off" in message
    assert isinstance(caught.value, BadInput)


def test_missing_dataset_with_download_but_no_network_says_why(tmp_path, cache, monkeypatch):
    monkeypatch.delenv("VMCR2_OFFLINE")
    calls = []

    def unreachable(url, timeout=None):
        calls.append((url, timeout))
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(download, "urlopen", unreachable)
    started = time.monotonic()
    with pytest.raises(DatasetNotFound) as caught:
        load_dataset("cifar10", data_root=tmp_path / "mine", download=True)
    assert time.monotonic() - started < 1.0
    message = str(caught.value)
    assert "\n" not in message and "cifar-10-python.tar.gz" in message and "data_batch_1" in message
    assert "download failed: https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz: [Errno -3]" in message
    assert calls and all(timeout is not None and timeout <= 30 for _, timeout in calls)
    assert not cache.exists()  # nothing is created when no server answered


def test_vmcr2_offline_turns_downloads_off(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "urlopen", lambda *a, **k: pytest.fail("tried to download"))
    with pytest.raises(DatasetNotFound, match="downloads are off"):
        load_dataset("tinyimagenet", download=True)


def test_incomplete_copy_is_reported(tmp_path):
    folder = write_idx_dataset(tmp_path / "d", "mnist", n_train=5, n_test=5)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFound, match=r"mnist is incomplete \(missing t10k-labels-idx1-ubyte\)"):
        load_dataset("mnist", data_root=tmp_path / "d", download=False)


def test_fashion_mnist_files_are_not_taken_for_mnist(tmp_path, monkeypatch):
    folder = write_idx_dataset(tmp_path / "d", "fashion-mnist", n_train=5, n_test=5, subfolder=False)
    labels_md5 = hashlib.md5((folder / "train-labels-idx1-ubyte.gz").read_bytes()).hexdigest()
    monkeypatch.setitem(idx.FASHION_MNIST_MD5, "train-labels-idx1-ubyte.gz", labels_md5)  # pretend they are official
    with pytest.raises(DatasetNotFound, match="holds fashion-mnist, not mnist"):
        load_dataset("mnist", data_root=tmp_path / "d", download=False)
    assert load_dataset("fashion-mnist", data_root=tmp_path / "d", download=False).num_train == 5


def test_unknown_dataset_names_the_known_ones():
    # the registry's names, in its order (test_data_registry.py lists them)
    with pytest.raises(BadInput, match=re.escape(f"unknown dataset 'imagenet'; known: {', '.join(dataset_names())}")):
        load_dataset("imagenet")


# --------------------------------------------------------------------------- downloads (faked)


class FakeResponse(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


def serve(monkeypatch, files: dict[str, bytes]):
    """Replace the URL opener with one serving ``files`` by base name; returns the URLs asked."""
    asked = []

    def fake_urlopen(url, timeout=None):
        asked.append(url)
        name = url.rsplit("/", 1)[-1]
        if name not in files:
            raise OSError(f"HTTP Error 404: {name}")
        return FakeResponse(files[name])

    monkeypatch.delenv("VMCR2_OFFLINE")
    monkeypatch.setattr(download, "urlopen", fake_urlopen)
    return asked


def test_download_lands_in_the_cache_checked_and_is_reused(tmp_path, cache, monkeypatch):
    source = write_idx_dataset(tmp_path / "upstream", "mnist", n_train=8, n_test=4)
    files = {p.name: p.read_bytes() for p in source.iterdir()}
    for name, data in files.items():
        monkeypatch.setitem(idx.MNIST_MD5, name, hashlib.md5(data).hexdigest())
    asked = serve(monkeypatch, files)
    assert load_dataset("mnist").num_train == 8
    assert asked[0].startswith("https://ossci-datasets.s3.amazonaws.com/mnist/") and len(asked) == 4
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == sorted(files)
    assert load_dataset("mnist").num_train == 8 and len(asked) == 4  # found in the cache, not fetched again


def test_download_with_a_wrong_checksum_leaves_nothing(tmp_path, cache, monkeypatch):
    source = write_idx_dataset(tmp_path / "upstream", "fashion-mnist", n_train=8, n_test=4)
    serve(monkeypatch, {p.name: p.read_bytes() for p in source.iterdir()})
    with pytest.raises(DatasetNotFound, match="checksum mismatch"):
        load_dataset("fashion-mnist")
    assert not any(p.is_file() for p in cache.rglob("*"))


def test_download_falls_back_to_the_next_mirror(tmp_path, cache, monkeypatch):
    source = write_idx_dataset(tmp_path / "upstream", "mnist", n_train=8, n_test=4)
    files = {p.name: p.read_bytes() for p in source.iterdir()}
    for name, data in files.items():
        monkeypatch.setitem(idx.MNIST_MD5, name, hashlib.md5(data).hexdigest())
    serve(monkeypatch, files)
    monkeypatch.setattr(idx, "MNIST_MIRRORS", ("https://dead.example/", "https://alive.example/"))

    def first_mirror_down(url, timeout=None, _serve=download.urlopen):
        if url.startswith("https://dead.example/"):
            raise OSError("timed out")
        return _serve(url, timeout)

    monkeypatch.setattr(download, "urlopen", first_mirror_down)
    assert load_dataset("mnist").num_train == 8


# --------------------------------------------------------------------------- the real system copy


SYSTEM_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not (SYSTEM_FASHION / "train-images-idx3-ubyte.gz").exists(), reason="Debian's dataset-fashion-mnist not installed")
def test_debian_fashion_mnist_loads_at_32x32(monkeypatch):
    monkeypatch.setenv("VMCR2_SYSTEM_DATA", str(SYSTEM_FASHION.parent))
    ds = load_dataset("fashion-mnist", download=False)
    assert ds.source == str(SYSTEM_FASHION)
    assert ds.train_images.shape == (60000, 1, 32, 32) and ds.test_images.shape == (10000, 1, 32, 32)
    assert ds.train_labels.bincount().tolist() == [6000] * 10 and ds.test_labels.bincount().tolist() == [1000] * 10
    assert ds.train_images[:, :, :2].max() == 0 and ds.train_images[:, :, :, 30:].max() == 0
    mean = ds.train_images.float().div(255).mean().item()
    assert mean == pytest.approx(ds.mean[0], abs=1e-3)  # the registry's constant is this set's
