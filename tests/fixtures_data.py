"""Small dataset files in each real on-disk format, for tests.

Every writer takes a folder, writes a few hundred images at most, and returns where it
put them. The images have learnable structure — each class is a grating of its own
orientation and frequency (and, in colour, its own hue) with a random phase and noise, so
it survives random crops and flips — so a tiny training run beats chance.

Typical use in an end-to-end test::

    from fixtures_data import isolate_data, write_idx_dataset   # tests/ is on sys.path under pytest

    def test_train_on_fashion_mnist(tmp_path, monkeypatch):
        isolate_data(monkeypatch, tmp_path)            # no network, no home, no system copies
        write_idx_dataset(tmp_path / "data", "fashion-mnist", n_train=200, n_test=50)
        ... vmcr2 train --data-root tmp_path/data ...  # or load_dataset(..., data_root=...)

All writers are deterministic in their ``seed``.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


# --------------------------------------------------------------------------- images


def class_patterns(labels: np.ndarray, num_classes: int, channels: int, size: int, seed: int = 0, noise: float = 12.0) -> np.ndarray:
    """uint8 images (N, C, size, size), one per label: class j is a grating with orientation
    j mod 2 (rows or columns), 1 + (j div 2) mod 6 cycles across the image, hue j/k in
    colour; each image a random phase plus Gaussian noise of ``noise`` grey levels."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels, dtype=np.int64)
    n = labels.size
    coordinate = np.arange(size, dtype=np.float64) / size
    cycles = 1 + (labels // 2) % 6
    phase = rng.uniform(0, 2 * np.pi, n)
    wave = np.sin(2 * np.pi * cycles[:, None] * coordinate[None, :] + phase[:, None])  # (N, size)
    rows = np.where((labels % 2 == 0)[:, None, None], wave[:, :, None], wave[:, None, :])  # (N, size, size)
    hue = 2 * np.pi * labels / max(num_classes, 1)
    gains = np.stack([0.6 + 0.4 * np.cos(hue + 2 * np.pi * c / 3) for c in range(channels)], 1) if channels > 1 else np.ones((n, 1))
    images = 128 + 100 * gains[:, :, None, None] * rows[:, None, :, :] + rng.normal(0, noise, (n, channels, size, size))
    return np.clip(np.round(images), 0, 255).astype(np.uint8)


def balanced_labels(n: int, num_classes: int, seed: int = 0) -> np.ndarray:
    """n labels, every class as often as possible (n mod k classes once more), shuffled."""
    return np.random.default_rng(seed).permutation(np.arange(n) % num_classes).astype(np.int64)


# --------------------------------------------------------------------------- MNIST / Fashion-MNIST


def write_idx_file(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write a uint8 array as an IDX file (gzipped if ``path`` ends in .gz)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.tobytes()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload, compresslevel=1) if path.suffix == ".gz" else payload)
    return path


def write_idx_dataset(
    root: str | os.PathLike,
    name: str = "fashion-mnist",
    n_train: int = 200,
    n_test: int = 50,
    *,
    gz: bool = True,
    subfolder: bool = True,
    seed: int = 0,
) -> Path:
    """Write MNIST-format files (28×28 grayscale, 10 classes): the four IDX files
    ``train-images-idx3-ubyte`` … ``t10k-labels-idx1-ubyte`` (``.gz`` if ``gz``) into
    ``root/name/`` (or ``root`` itself if not ``subfolder``). Returns that folder."""
    folder = Path(root) / name if subfolder else Path(root)
    suffix = ".gz" if gz else ""
    for split, count, split_seed in (("train", n_train, seed), ("t10k", n_test, seed + 1)):
        labels = balanced_labels(count, 10, split_seed)
        images = class_patterns(labels, 10, 1, 28, split_seed)[:, 0]
        write_idx_file(folder / f"{split}-images-idx3-ubyte{suffix}", images)
        write_idx_file(folder / f"{split}-labels-idx1-ubyte{suffix}", labels.astype(np.uint8))
    return folder


# --------------------------------------------------------------------------- CIFAR


def _pickle_batch(record: dict) -> bytes:
    # Protocol 2 with bytes keys, as the official Python 2 files are.
    return pickle.dumps({k.encode(): v for k, v in record.items()}, protocol=2)


def _cifar_images(labels: np.ndarray, num_classes: int, seed: int) -> np.ndarray:
    return class_patterns(labels, num_classes, 3, 32, seed).reshape(len(labels), 3072)


def _write_cifar_files(root: Path, folder: str, files: dict[str, bytes], archive: str | None) -> Path:
    if archive is None:
        directory = root / folder
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (directory / name).write_bytes(data)
        return directory
    root.mkdir(parents=True, exist_ok=True)
    path = root / archive
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_cifar10(root: str | os.PathLike, n_train: int = 100, n_test: int = 20, *, archive: bool = False, seed: int = 0) -> Path:
    """Write CIFAR-10's python version: ``root/cifar-10-batches-py/`` with ``data_batch_1..5``
    (``n_train`` images split over the five), ``test_batch`` and ``batches.meta``; with
    ``archive``, the official ``root/cifar-10-python.tar.gz`` instead. Returns the folder or archive."""
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    labels = balanced_labels(n_train, 10, seed)
    images = _cifar_images(labels, 10, seed)
    files = {}
    for i, part in enumerate(np.array_split(np.arange(n_train), 5), 1):
        files[f"data_batch_{i}"] = _pickle_batch(
            {"batch_label": f"training batch {i} of 5".encode(), "labels": labels[part].tolist(), "data": images[part],
             "filenames": [f"train_{j}.png".encode() for j in part]}
        )
    test_labels = balanced_labels(n_test, 10, seed + 1)
    files["test_batch"] = _pickle_batch(
        {"batch_label": b"testing batch 1 of 1", "labels": test_labels.tolist(), "data": _cifar_images(test_labels, 10, seed + 1),
         "filenames": [f"test_{j}.png".encode() for j in range(n_test)]}
    )
    files["batches.meta"] = _pickle_batch({"label_names": [n.encode() for n in names], "num_cases_per_batch": 10000, "num_vis": 3072})
    return _write_cifar_files(Path(root), "cifar-10-batches-py", files, "cifar-10-python.tar.gz" if archive else None)


def write_cifar100(
    root: str | os.PathLike, n_train: int = 200, n_test: int = 50, *, num_classes: int = 100, archive: bool = False, seed: int = 0
) -> Path:
    """Write CIFAR-100's python version: ``root/cifar-100-python/`` with ``train``, ``test``
    (``fine_labels`` and ``coarse_labels``) and ``meta`` (``num_classes`` fine label names);
    with ``archive``, ``root/cifar-100-python.tar.gz`` instead. Returns the folder or archive."""
    files = {}
    for split, count, split_seed in (("train", n_train, seed), ("test", n_test, seed + 1)):
        labels = balanced_labels(count, num_classes, split_seed)
        files[split] = _pickle_batch(
            {"batch_label": f"{split}ing batch 1 of 1".encode(), "fine_labels": labels.tolist(),
             "coarse_labels": (labels // 5).tolist(), "data": _cifar_images(labels, num_classes, split_seed),
             "filenames": [f"{split}_{j}.png".encode() for j in range(count)]}
        )
    files["meta"] = _pickle_batch(
        {"fine_label_names": [f"fine_{j}".encode() for j in range(num_classes)],
         "coarse_label_names": [f"coarse_{j}".encode() for j in range((num_classes + 4) // 5)]}
    )
    return _write_cifar_files(Path(root), "cifar-100-python", files, "cifar-100-python.tar.gz" if archive else None)


# --------------------------------------------------------------------------- Tiny ImageNet


def tinyimagenet_wnids(n_classes: int) -> list[str]:
    """The fake WordNet ids :func:`write_tinyimagenet` uses, in wnids.txt order (not sorted)."""
    return [f"n{9000000 - 7 * j:08d}" for j in range(n_classes)]


def write_tinyimagenet(
    root: str | os.PathLike,
    n_classes: int = 5,
    per_class: int = 10,
    *,
    val_per_class: int = 4,
    archive: bool = False,
    seed: int = 0,
) -> Path:
    """Write Tiny ImageNet's layout with real 64×64 JPEGs: ``root/tiny-imagenet-200/`` with
    ``wnids.txt``, ``words.txt`` (more ids than wnids.txt, as the real one), ``train/<wnid>/
    images/<wnid>_<i>.JPEG`` and ``<wnid>_boxes.txt``, ``val/images/val_<i>.JPEG`` and
    ``val/val_annotations.txt``. One training image is grayscale, as some real ones are.
    With ``archive``, ``root/tiny-imagenet-200.zip`` instead. Returns the folder or archive.

    Class j is the j-th id of :func:`tinyimagenet_wnids`; the loader sorts the ids, so its
    label of class j is the rank of that id."""
    wnids = tinyimagenet_wnids(n_classes)
    files: dict[str, bytes] = {"wnids.txt": "".join(f"{w}\n" for w in wnids).encode()}
    words = [f"{w}\tthing {j}, object number {j}" for j, w in enumerate(wnids)] + ["n00000001\tentity"]
    files["words.txt"] = ("\n".join(words) + "\n").encode()

    def jpeg(image: np.ndarray, gray: bool = False) -> bytes:
        buffer = io.BytesIO()
        picture = Image.fromarray(image.transpose(1, 2, 0))
        (picture.convert("L") if gray else picture).save(buffer, "JPEG", quality=90)
        return buffer.getvalue()

    train_labels = np.repeat(np.arange(n_classes), per_class)
    train = class_patterns(train_labels, n_classes, 3, 64, seed)
    for j, wnid in enumerate(wnids):
        boxes = []
        for i in range(per_class):
            name = f"{wnid}_{i}.JPEG"
            files[f"train/{wnid}/images/{name}"] = jpeg(train[j * per_class + i], gray=(j == 0 and i == 0))
            boxes.append(f"{name}\t0\t0\t63\t63")
        files[f"train/{wnid}/{wnid}_boxes.txt"] = ("\n".join(boxes) + "\n").encode()
    val_labels = balanced_labels(n_classes * val_per_class, n_classes, seed + 1)
    val = class_patterns(val_labels, n_classes, 3, 64, seed + 1)
    annotations = []
    for i, label in enumerate(val_labels):
        files[f"val/images/val_{i}.JPEG"] = jpeg(val[i])
        annotations.append(f"val_{i}.JPEG\t{wnids[label]}\t0\t0\t63\t63")
    files["val/val_annotations.txt"] = ("\n".join(annotations) + "\n").encode()

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if archive:
        path = root / "tiny-imagenet-200.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
            for name, data in files.items():
                zf.writestr(f"tiny-imagenet-200/{name}", data)
        return path
    folder = root / "tiny-imagenet-200"
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


# --------------------------------------------------------------------------- isolation


def isolate_data(monkeypatch, tmp_path: str | os.PathLike) -> Path:
    """Make dataset discovery hermetic for one test; returns the cache folder it uses.

    Unsets ``VMCR2_DATA``; points ``XDG_CACHE_HOME`` into ``tmp_path`` (so the cache is
    ``tmp_path/xdg-cache/vmcr2``, never the real home); searches no system copies
    (``VMCR2_SYSTEM_DATA=""``); turns downloads off (``VMCR2_OFFLINE=1``) and makes the URL
    opener raise, so nothing can reach the network. Environment changes carry over to
    subprocesses (CLI tests); ``monkeypatch`` undoes everything after the test.
    """
    from vmcr2_cli.data import download

    cache_home = Path(tmp_path) / "xdg-cache"
    monkeypatch.delenv("VMCR2_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    monkeypatch.setenv("VMCR2_SYSTEM_DATA", "")
    monkeypatch.setenv("VMCR2_OFFLINE", "1")

    def no_network(url, *args, **kwargs):
        raise OSError(f"network disabled in tests ({url})")

    monkeypatch.setattr(download, "urlopen", no_network)
    return cache_home / "vmcr2"


# --------------------------------------------------------------------------- the user's own files

USERS_CLASSES = 4  # classes of the small npz and folder sets


def write_npz(path: Path, n_train: int = 120, n_test: int = 40, channels: int = 1, size: int = 16, **changes) -> Path:
    train_y, test_y = balanced_labels(n_train, USERS_CLASSES, seed=1), balanced_labels(n_test, USERS_CLASSES, seed=2)
    x_train = class_patterns(train_y, USERS_CLASSES, channels, size, seed=1)  # (N, C, H, W) uint8
    x_test = class_patterns(test_y, USERS_CLASSES, channels, size, seed=2)
    arrays = {"x_train": x_train.transpose(0, 2, 3, 1).squeeze(-1) if channels == 1 else x_train.transpose(0, 2, 3, 1),
              "y_train": train_y, "x_test": x_test.transpose(0, 2, 3, 1).squeeze(-1) if channels == 1
              else x_test.transpose(0, 2, 3, 1), "y_test": test_y}
    arrays.update(changes)
    np.savez(path, **{key: value for key, value in arrays.items() if value is not None})
    return path


def write_folder(root: Path, per_class: int = 30, test_per_class: int = 10, sizes=((20, 24),), mode="RGB") -> Path:
    for split, count, seed in (("train", per_class, 1), ("test", test_per_class, 2)):
        labels = np.repeat(np.arange(USERS_CLASSES), count)
        patterns = class_patterns(labels, USERS_CLASSES, 3, 28, seed=seed)
        for index, (label, pattern) in enumerate(zip(labels, patterns)):
            folder = root / split / f"class_{'abcd'[label]}"
            folder.mkdir(parents=True, exist_ok=True)
            image = Image.fromarray(pattern.transpose(1, 2, 0)).convert(mode)
            image.resize(sizes[index % len(sizes)]).save(folder / f"{index:04d}.png")
    return root


def unlabelled(root: Path) -> Path:
    """``root``'s training images moved out of their class folders into train/ itself (new names)."""
    for index, path in enumerate(sorted((root / "train").glob("*/*.png"))):
        path.rename(root / "train" / f"image_{index:04d}.png")
    for folder in (root / "train").iterdir():
        if folder.is_dir():
            folder.rmdir()
    return root
