"""Packed datasets: ``vmcr2 pack``, ``dataset = "packed"`` read from disk a batch at a time, the downsampled
ImageNets, and the in-memory path's refusal of a dataset larger than memory."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cli_runner import vmcr2
from fixtures_data import balanced_labels, class_patterns, isolate_data, unlabelled, write_folder, write_npz
from vmcr2_cli.data import DeviceLoader, load_dataset
from vmcr2_cli.data import memory as memory_module
from vmcr2_cli.data import packing
from vmcr2_cli.data.errors import DatasetNotFound
from vmcr2_cli.data.packed import MANIFEST, PackedImages, images_file
from vmcr2_cli.errors import BadInput
from vmcr2_cli.runs import RunDir

TIMING_KEYS = ("time", "epoch_time_s", "images_per_s", "eval_seconds")


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    isolate_data(monkeypatch, tmp_path)


def pack_folder(tmp_path: Path, capsys, *extra) -> Path:
    images = write_folder(tmp_path / "images")
    code, _, err = vmcr2("pack", images, tmp_path / "packed", "--image-size", "16", "--workers", "1", *extra,
                         capsys=capsys)
    assert code == 0, err
    return tmp_path / "packed"


def run_lines(run: Path) -> list[dict]:
    return [{key: value for key, value in line.items() if key not in TIMING_KEYS}
            for line in RunDir.open(run).read_metrics() if line["type"] in ("epoch", "eval")]


# ----------------------------------------------------------------------------- the round trip

def test_a_packed_folder_trains_and_evaluates_exactly_as_the_folder_itself(tmp_path, capsys):
    packed = pack_folder(tmp_path, capsys)
    runs = tmp_path / "runs"
    common = ("--profile", "synthetic", "--epochs", "2", "--batch-size", "40", "--set", "atoms_per_class=2",
              "--set", "augment=crop-flip", "--set", "eval_every=1", "--runs-dir", runs)
    assert vmcr2("train", *common, "--set", "dataset=folder", "--data-root", tmp_path / "images",
                 "--set", "image_size=16", "--name", "folder", capsys=capsys)[0] == 0
    code, _, err = vmcr2("train", *common, "--set", "dataset=packed", "--data-root", packed, "--name", "packed",
                         capsys=capsys)
    assert code == 0, err
    folder_run, packed_run = (next(runs.glob(f"*-{name}")) for name in ("folder", "packed"))
    assert run_lines(packed_run) == run_lines(folder_run)  # every loss, rate and accuracy, to the bit
    for split in ("train", "test"):
        for run in (folder_run, packed_run):
            assert vmcr2("embed", run, split, "--out", tmp_path / f"{run.name}-{split}.npz", capsys=capsys)[0] == 0
        folder_z, packed_z = (np.load(tmp_path / f"{run.name}-{split}.npz") for run in (folder_run, packed_run))
        np.testing.assert_allclose(packed_z["features"], folder_z["features"], atol=1e-6)
        assert (packed_z["labels"] == folder_z["labels"]).all()
    code, out, err = vmcr2("eval", packed_run, "--no-figures", "--json", capsys=capsys)
    assert code == 0, err
    assert json.loads(out)["knn_accuracy"] == RunDir.open(packed_run).read_metrics()[-1]["knn_accuracy"]


def test_the_pack_holds_the_folders_images_labels_and_statistics(tmp_path, capsys):
    packed = pack_folder(tmp_path, capsys)
    folder = load_dataset("folder", data_root=tmp_path / "images", download=False, image_size=16)
    dataset = load_dataset("packed", data_root=packed, download=False)
    assert isinstance(dataset.train_images, PackedImages) and dataset.image_shape == (3, 16, 16)
    assert torch.equal(dataset.train_images.read(), folder.train_images)
    assert torch.equal(dataset.test_images.read(), folder.test_images)
    assert torch.equal(dataset.train_labels, folder.train_labels) and dataset.class_names == folder.class_names
    assert dataset.mean == folder.mean and dataset.std == folder.std
    assert json.loads((packed / MANIFEST).read_text())["source"] == str((tmp_path / "images").resolve())


def test_packing_in_parallel_processes_writes_the_same_bytes(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(packing, "CHUNK", 16)  # several tasks for the two processes
    serial = pack_folder(tmp_path, capsys)
    code, _, err = vmcr2("pack", tmp_path / "images", tmp_path / "parallel", "--image-size", "16", "--workers", "2",
                         capsys=capsys)
    assert code == 0, err
    for name in ("train-images.u8", "test-images.u8", "train-labels.i64", MANIFEST):
        assert (tmp_path / "parallel" / name).read_bytes() == (serial / name).read_bytes()


def test_an_unlabelled_folder_packs_and_keeps_its_test_tree_as_the_classes(tmp_path, capsys):
    images = unlabelled(write_folder(tmp_path / "images"))
    assert vmcr2("pack", images, tmp_path / "packed", "--image-size", "16", "--workers", "1", capsys=capsys)[0] == 0
    dataset = load_dataset("packed", data_root=tmp_path / "packed", download=False, seed=3)
    folder = load_dataset("folder", data_root=images, download=False, image_size=16, seed=3)
    assert not dataset.labelled_train and dataset.class_names == folder.class_names
    assert torch.equal(dataset.reference()[0].read(), folder.reference()[0])  # the same seeded halves


def test_an_npz_packs_to_its_arrays(tmp_path, capsys):
    source = write_npz(tmp_path / "mine.npz")
    assert vmcr2("pack", source, tmp_path / "packed", capsys=capsys)[0] == 0
    dataset, arrays = (load_dataset(kind, data_root=root, download=False)
                       for kind, root in (("packed", tmp_path / "packed"), ("npz", source)))
    assert torch.equal(dataset.train_images.read(), arrays.train_images) and dataset.std == arrays.std


def test_a_pack_of_composed_images_refuses_a_flip_as_the_dataset_itself_does(tmp_path, capsys):
    arrays = load_dataset("npz", data_root=write_npz(tmp_path / "mine.npz"), download=False)
    composed = packing.arrays_source(arrays, "composed", mirror_safe=False)  # as a packed pairs is
    packing.pack(composed, tmp_path / "packed")
    assert load_dataset("packed", data_root=tmp_path / "packed", download=False).mirror_safe is False
    code, _, err = vmcr2("train", "--profile", "synthetic", "--set", "dataset=packed", "--data-root", tmp_path / "packed",
                         "--set", "augment=crop-flip", "--epochs", "1", "--batch-size", "40", "--runs-dir",
                         tmp_path / "runs", capsys=capsys)
    assert code == 2 and "augment = 'crop-flip' flips images, which changes the class of" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# ----------------------------------------------------------------------------- reading

def test_packed_rows_read_as_the_tensor_indexes_them(tmp_path, capsys):
    dataset = load_dataset("packed", data_root=pack_folder(tmp_path, capsys), download=False)
    whole = dataset.train_images.read()
    picks = torch.tensor([5, 3, 4, 119, 0, 3])  # out of order, a run, a repeat
    assert torch.equal(dataset.train_images.read(picks), whole[picks])
    chosen = dataset.train_images[torch.arange(10, 60, 2)]  # a lazy selection, then rows of it
    assert isinstance(chosen, PackedImages) and len(chosen) == 25
    assert torch.equal(chosen.read(torch.tensor([24, 0])), whole[torch.tensor([58, 10])])
    assert torch.equal(chosen[3:6].read(), whole[16:22:2])
    mask = torch.zeros(120, dtype=torch.bool)
    mask[[7, 9]] = True
    assert torch.equal(dataset.train_images[mask].read(), whole[mask])


@pytest.mark.parametrize("augment", ["none", "crop-flip"])
def test_streamed_batches_equal_the_in_memory_ones_and_each_rank_reads_its_share(tmp_path, capsys, augment):
    dataset = load_dataset("packed", data_root=pack_folder(tmp_path, capsys), download=False)
    whole = dataset.train_images.read()

    def batches(images, rank=0, world_size=1):
        loader = DeviceLoader(images, dataset.train_labels, 40, augment=augment, mean=dataset.mean, std=dataset.std,
                              seed=3, rank=rank, world_size=world_size)
        return loader, [batch for _, batch in loader.epoch(2, start_step=1)]

    streamed, in_memory = batches(dataset.train_images), batches(whole)
    assert streamed[0].streamed and not in_memory[0].streamed
    for mine, theirs in zip(streamed[1], in_memory[1], strict=True):
        assert torch.equal(mine.images, theirs.images) and torch.equal(mine.labels_cpu, theirs.labels_cpu)
    reads = []
    original = PackedImages.read
    PackedImages.read = lambda self, indices=None: reads.append(len(indices)) or original(self, indices)
    try:
        shares = [batches(dataset.train_images, rank, 2)[1] for rank in range(2)]
    finally:
        PackedImages.read = original
    assert reads == [20] * 4  # two steps, two ranks, each reading its 20 of the 40
    for rank_0, rank_1, whole_batch in zip(*shares, in_memory[1]):
        assert torch.equal(torch.cat([rank_0.images, rank_1.images]), whole_batch.images)


def test_two_processes_train_from_a_pack_as_from_the_folder_itself(tmp_path, capsys):
    import subprocess
    import sys

    packed = pack_folder(tmp_path, capsys)
    common = ["--nproc", "2", "--profile", "synthetic", "--epochs", "1", "--batch-size", "40", "--set",
              "atoms_per_class=2", "--set", "augment=crop-flip", "--set", "precision=fp32", "--set", "eval_every=1",
              "--runs-dir", str(tmp_path / "runs")]
    for name, data in (("folder", ["--set", "dataset=folder", "--data-root", str(tmp_path / "images"), "--set",
                                   "image_size=16"]), ("packed", ["--set", "dataset=packed", "--data-root", str(packed)])):
        done = subprocess.run([sys.executable, "-m", "vmcr2_cli", "train", *common, *data, "--name", name],
                              capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr
    folder_run, packed_run = (next((tmp_path / "runs").glob(f"*-{name}")) for name in ("folder", "packed"))
    assert RunDir.open(packed_run).read_meta()["world_size"] == 2
    assert run_lines(packed_run) == run_lines(folder_run)


def test_a_set_too_large_for_the_device_streams_from_host_memory_as_it_would_on_it(tmp_path, capsys, monkeypatch):
    from vmcr2_cli.data import device_loader

    dataset = load_dataset("packed", data_root=pack_folder(tmp_path, capsys), download=False)
    whole = dataset.train_images.read()
    held = DeviceLoader(whole, dataset.train_labels, 40, augment="crop-flip", seed=1)
    monkeypatch.setattr(device_loader, "_held_on_device", lambda images, device: False)  # as a full GPU says
    streamed = DeviceLoader(whole, dataset.train_labels, 40, augment="crop-flip", seed=1)
    assert streamed.streamed and streamed.images is whole
    for (_, mine), (_, theirs) in zip(streamed.epoch(1), held.epoch(1), strict=True):
        assert torch.equal(mine.images, theirs.images) and torch.equal(mine.labels, theirs.labels)


def test_a_loader_stopped_early_stops_its_reading_thread(tmp_path, capsys):
    import threading

    dataset = load_dataset("packed", data_root=pack_folder(tmp_path, capsys), download=False)
    loader = DeviceLoader(dataset.train_images, dataset.train_labels, 10, augment="none")
    epoch = loader.epoch(0)
    next(epoch)
    epoch.close()
    assert not [thread for thread in threading.enumerate() if thread.name == "vmcr2-read-ahead"]


# ----------------------------------------------------------------------------- an interrupted pack

class Interrupted(Exception):
    pass


def test_an_interrupted_pack_is_not_a_pack_and_resumes_to_the_same_bytes(tmp_path, capsys, monkeypatch):
    whole = pack_folder(tmp_path, capsys)
    monkeypatch.setattr(packing, "CHUNK", 16)
    source = packing.source_named(str(tmp_path / "images"), image_size=16, data_root=None, workers=1)
    written = []

    def stop_after_three_chunks(split, start):
        for chunk in source.chunks(split, start):
            if len(written) == 3:
                raise Interrupted
            written.append(start)
            yield chunk

    cut = tmp_path / "cut"
    with pytest.raises(Interrupted):
        packing.pack(packing.PackSource(**{**source.__dict__, "chunks": stop_after_three_chunks}), cut)
    assert not (cut / MANIFEST).exists()
    with pytest.raises(DatasetNotFound, match="did not finish; run the same vmcr2 pack command again"):
        load_dataset("packed", data_root=cut, download=False)
    monkeypatch.setattr(packing, "CHUNK", 256)
    code, _, err = vmcr2("pack", tmp_path / "images", cut, "--image-size", "16", "--workers", "1", capsys=capsys)
    assert code == 0 and "resuming: 48 images packed before" in err
    for name in ("train-images.u8", "test-images.u8", "train-labels.i64", "test-labels.i64", MANIFEST):
        assert (cut / name).read_bytes() == (whole / name).read_bytes()
    assert not (cut / packing.PROGRESS).exists()


def test_ctrl_c_while_packing_says_how_to_go_on_and_exits_130(tmp_path, capsys, monkeypatch):
    write_folder(tmp_path / "images")

    def interrupted(source, out, on_images, on_start):
        raise KeyboardInterrupt

    monkeypatch.setattr(packing, "pack", interrupted)
    code, _, err = vmcr2("pack", tmp_path / "images", tmp_path / "packed", "--image-size", "16", capsys=capsys)
    assert code == 130 and "interrupted: what was packed is kept in" in err and "run the same command again" in err


def test_a_finished_pack_is_not_written_again_and_another_source_is_refused(tmp_path, capsys):
    packed = pack_folder(tmp_path, capsys)
    code, _, err = vmcr2("pack", tmp_path / "images", packed, "--image-size", "16", capsys=capsys)
    assert code == 0 and "already holds this pack" in err
    code, _, err = vmcr2("pack", tmp_path / "images", packed, "--image-size", "8", capsys=capsys)
    assert code == 2 and "a pack of another source" in err


# ----------------------------------------------------------------------------- the downsampled ImageNets

def write_downsampled_imagenet(root: Path, size: int = 32, per_batch: int = 6, val: int = 5) -> Path:
    """The published layout: Imagenet{S}_train/train_data_batch_1 … 10 and Imagenet{S}_val/val_data, each a
    pickled dict of 'data' (n, 3·S·S) uint8, 'labels' 1 … 1000 and the 'mean' image."""
    for folder, names in ((f"Imagenet{size}_train", [f"train_data_batch_{i}" for i in range(1, 11)]),
                          (f"Imagenet{size}_val", ["val_data"])):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for index, name in enumerate(names):
            count = val if name == "val_data" else per_batch
            labels = balanced_labels(count, 1000, seed=index) + 1
            data = class_patterns(labels - 1, 1000, 3, size, seed=index).reshape(count, -1)
            record = {"data": data, "labels": labels.tolist(), "mean": data.mean(0)}
            (root / folder / name).write_bytes(pickle.dumps(record, protocol=2))
    return root


@pytest.mark.parametrize("size", [32, 64])
def test_downsampled_imagenet_reads_its_published_batches(tmp_path, size):
    root = write_downsampled_imagenet(tmp_path / "downsampled", size)
    dataset = load_dataset(f"imagenet{size}", data_root=root, download=False)
    assert dataset.num_train == 60 and dataset.num_test == 5 and dataset.num_classes == 1000
    assert dataset.image_shape == (3, size, size) and dataset.augment == "crop-flip"
    first = pickle.loads((root / f"Imagenet{size}_train" / "train_data_batch_1").read_bytes())
    assert torch.equal(dataset.train_images[:6].flatten(1), torch.from_numpy(first["data"]))
    assert dataset.train_labels[:6].tolist() == [label - 1 for label in first["labels"]]


def test_downsampled_imagenet_packs_a_batch_file_at_a_time(tmp_path, capsys, monkeypatch):
    root = write_downsampled_imagenet(tmp_path / "downsampled")
    monkeypatch.setattr(packing, "STREAMED_CHUNK", 4)
    code, _, err = vmcr2("pack", "imagenet32", tmp_path / "packed", "--data-root", root, capsys=capsys)
    assert code == 0, err
    packed, in_memory = (load_dataset(name, data_root=where, download=False)
                         for name, where in (("packed", tmp_path / "packed"), ("imagenet32", root)))
    assert torch.equal(packed.train_images.read(), in_memory.train_images)
    assert torch.equal(packed.test_labels, in_memory.test_labels) and packed.mean == in_memory.mean


def test_the_imagenet32_profile_trains_on_the_published_format(tmp_path, capsys):
    root = write_downsampled_imagenet(tmp_path / "downsampled")
    small = ("--objective", "ce", "--set", "model=mnist-cnn", "--set", "width=0.25", "--set", "feature_dim=16",
             "--batch-size", "20", "--epochs", "1", "--set", "eval_every=0", "--set", "latch_every=0")
    code, out, err = vmcr2("train", "--profile", "imagenet32", "--data-root", root, *small, "--runs-dir",
                           tmp_path / "runs", "--json", capsys=capsys)
    assert code == 0, err
    assert json.loads(out)["status"] == "finished"


def test_a_downsampled_imagenet_file_that_would_run_code_is_refused(tmp_path, capsys):
    root = write_downsampled_imagenet(tmp_path / "downsampled")

    class RunsCode:
        def __reduce__(self):
            return (print, ("ran",))

    (root / "Imagenet32_val" / "val_data").write_bytes(pickle.dumps({"data": RunsCode()}, protocol=2))
    code, out, err = vmcr2("pack", "imagenet32", tmp_path / "packed", "--data-root", root, capsys=capsys)
    assert code == 2 and "val_data is not a downsampled ImageNet batch: refusing to load" in err and "ran" not in out
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "packed").exists()


# ----------------------------------------------------------------------------- bad input

def corrupt_image(tmp_path: Path, capsys) -> str:
    write_folder(tmp_path / "images")
    next((tmp_path / "images" / "train" / "class_b").glob("*.png")).write_bytes(b"\x89PNG not really")
    return "is not a readable image"


def too_many_pixels(tmp_path: Path, capsys) -> str:
    write_folder(tmp_path / "images")
    Image.new("L", (9000, 6000)).save(tmp_path / "images" / "train" / "class_a" / "huge.png")
    return "above the cap of 50,000,000 (a decompression bomb?)"


def folder_out_not_empty(tmp_path: Path, capsys) -> str:
    write_folder(tmp_path / "images")
    (tmp_path / "packed").mkdir()
    (tmp_path / "packed" / "notes.txt").write_text("mine")
    return "exists and is not a pack"


@pytest.mark.parametrize("make", [corrupt_image, too_many_pixels, folder_out_not_empty])
def test_a_bad_source_is_one_line_exit_2_and_leaves_no_pack(tmp_path, capsys, make):
    message = make(tmp_path, capsys)
    before = sorted(path.name for path in (tmp_path / "packed").iterdir()) if (tmp_path / "packed").exists() else None
    code, _, err = vmcr2("pack", tmp_path / "images", tmp_path / "packed", "--image-size", "16", "--workers", "1",
                         capsys=capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    after = sorted(path.name for path in (tmp_path / "packed").iterdir()) if (tmp_path / "packed").exists() else None
    assert after == before  # nothing made, nothing touched


def truncated(packed: Path) -> str:
    path = packed / images_file("train")
    path.write_bytes(path.read_bytes()[:-100])
    return "a truncated or altered pack; pack it again"


def counts_altered(packed: Path) -> str:
    manifest = json.loads((packed / MANIFEST).read_text())
    manifest["counts"]["train"] += 1
    (packed / MANIFEST).write_text(json.dumps(manifest))
    return "a truncated or altered pack; pack it again"


def another_version(packed: Path) -> str:
    manifest = json.loads((packed / MANIFEST).read_text())
    manifest["version"] = 2
    (packed / MANIFEST).write_text(json.dumps(manifest))
    return "a pack of format version 2, and this vmcr2 reads version 1"


def label_out_of_range(packed: Path) -> str:
    labels = np.fromfile(packed / "test-labels.i64", dtype="<i8")
    labels[0] = 4
    labels.tofile(packed / "test-labels.i64")
    return "outside the manifest's 4 classes"


def manifest_not_json(packed: Path) -> str:
    (packed / MANIFEST).write_text("{")
    return "is not readable JSON"


@pytest.mark.parametrize("damage", [truncated, counts_altered, another_version, label_out_of_range, manifest_not_json])
def test_a_damaged_pack_is_one_line_exit_2_and_no_run(tmp_path, capsys, damage):
    packed = pack_folder(tmp_path, capsys)
    message = damage(packed)
    code, _, err = vmcr2("train", "--profile", "synthetic", "--set", "dataset=packed", "--data-root", packed,
                         "--epochs", "1", "--batch-size", "40", "--runs-dir", tmp_path / "runs", capsys=capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# ----------------------------------------------------------------------------- too large for memory

def test_a_folder_larger_than_the_free_memory_is_refused_before_decoding_with_the_way_out(tmp_path, capsys,
                                                                                           monkeypatch):
    write_folder(tmp_path / "images")
    monkeypatch.setattr(memory_module, "available_memory", lambda: (50_000, "available memory"))
    code, _, err = vmcr2("train", "--profile", "synthetic", "--set", "dataset=folder", "--data-root",
                         tmp_path / "images", "--set", "image_size=16", "--runs-dir", tmp_path / "runs", capsys=capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "decodes to 0.0 GiB of images, more than the 0.0 GiB available memory leaves" in err
    assert "vmcr2 pack SOURCE DIR, then dataset = \"packed\"" in err
    monkeypatch.setattr(memory_module, "available_memory", lambda: (10**12, "available memory"))
    assert load_dataset("folder", data_root=tmp_path / "images", download=False, image_size=16).num_train == 120


def test_an_npz_larger_than_the_free_memory_is_refused_before_reading(tmp_path, monkeypatch):
    source = write_npz(tmp_path / "mine.npz")
    monkeypatch.setattr(memory_module, "available_memory", lambda: (1000, "the cgroup's memory limit"))
    with pytest.raises(BadInput, match="dataset npz .*mine.npz decodes to 0.0 GiB of images, more than the 0.0 GiB "
                                       "the cgroup's memory limit leaves"):
        load_dataset("npz", data_root=source, download=False)


def test_the_available_memory_counts_the_address_space_limit(monkeypatch):
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda which: (2**40, 2**40))
    available, why = memory_module.available_memory()
    assert why == "the address-space limit (ulimit -v)" or available < 2**40  # the machine may have less
    with pytest.raises(BadInput, match="pack it on disk once"):
        memory_module.check_fits_in_memory(2**41, "a big set")
