"""MNIST and Fashion-MNIST: IDX files (optionally gzipped), padded from 28×28 to 32×32.

IDX format: a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), then each dimension as a big-endian uint32, then the data.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vmcr2_cli.data.dataset import LoadContext, Splits
from vmcr2_cli.data.discovery import Layout, Located, find_dataset
from vmcr2_cli.data.download import RemoteFile, md5_of
from vmcr2_cli.data.errors import DatasetCorrupt
from vmcr2_cli.data.preprocessing import centred_padding
from vmcr2_cli.errors import one_line

IDX_UBYTE = 0x08
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = FILES
# Architecture 1 ends in Linear(64·14·14, d): its input must be 32×32.
TRAINING_SIZE = 32

# MD5s of the official .gz files, as torchvision's dataset classes carry them.
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
# S3 website endpoints speak plain HTTP only; the MD5 guards the content.
FASHION_MNIST_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)

MNIST_CLASSES = [str(digit) for digit in range(10)]
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

MNIST_LAYOUT = Layout("mnist", FILES, ("", "mnist", "MNIST", "MNIST/raw"), gz_variants=True)
FASHION_MNIST_LAYOUT = Layout(
    "fashion-mnist", FILES, ("", "fashion-mnist", "fashion_mnist", "FashionMNIST/raw"), gz_variants=True
)


def read_idx(path: Path, expected_ndim: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzipped if its name ends in .gz).

    Raises DatasetCorrupt if the magic number, the number of dimensions or the size is wrong.
    """
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise DatasetCorrupt(f"{path} cannot be read: {one_line(error)} (re-download it)") from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != IDX_UBYTE or raw[3] != expected_ndim:
        raise DatasetCorrupt(
            f"{path} is not an IDX file of {expected_ndim}-dimensional unsigned bytes "
            f"(magic number {raw[:4].hex() or 'missing'}, expected 000008{expected_ndim:02x})"
        )
    header = 4 + 4 * expected_ndim
    if len(raw) < header:
        raise DatasetCorrupt(f"{path} is truncated inside its IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=expected_ndim, offset=4))
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise DatasetCorrupt(
            f"{path} has {len(raw)} bytes but its IDX header {dims} says {expected} (truncated or corrupt; re-download it)"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_idx_split(images_path: Path, labels_path: Path, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as uint8 (N, 1, 32, 32), zero-padded from 28×28, and labels as int64 (N,)."""
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if images.shape[0] != labels.shape[0]:
        raise DatasetCorrupt(f"{images_path} has {images.shape[0]} images but {labels_path} has {labels.shape[0]} labels")
    if labels.size and labels.max() >= num_classes:
        raise DatasetCorrupt(f"{labels_path} has label {labels.max()}, expected values below {num_classes}")
    return pad_to(torch.from_numpy(images.copy()).unsqueeze(1), TRAINING_SIZE), torch.from_numpy(labels.astype(np.int64))


def pad_to(images: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad (N, C, H, W) images symmetrically to size×size (left/top get the smaller half)."""
    height, width = images.shape[-2:]
    if height > size or width > size:
        raise DatasetCorrupt(f"images are {height}×{width}, larger than the training size {size}×{size}")
    return F.pad(images, centred_padding(height, width, (size, size)))


def _locate(ctx: LoadContext, layout: Layout, md5s: dict[str, str], mirrors: tuple[str, ...],
            other: tuple[str, dict[str, str]]) -> Located:
    remote = [RemoteFile(name, tuple(m + name for m in mirrors), md5) for name, md5 in md5s.items()]
    return find_dataset(
        layout,
        ctx.roots,
        download=ctx.download,
        remote_files=remote,
        download_folder=layout.dataset,
        check=_not_the_other_dataset(layout.dataset, *other),
    )


def _read(located: Located, class_names: list[str]) -> Splits:
    files = located.files
    train_images, train_labels = read_idx_split(files[TRAIN_IMAGES], files[TRAIN_LABELS], len(class_names))
    test_images, test_labels = read_idx_split(files[TEST_IMAGES], files[TEST_LABELS], len(class_names))
    return Splits(train_images, train_labels, test_images, test_labels, list(class_names), source=str(located.path))


def _not_the_other_dataset(wanted: str, other_name: str, other_md5: dict[str, str]):
    """MNIST and Fashion-MNIST share file names: reject a folder that holds the other one's
    official files (checked on the small training-label file only)."""

    def check(directory: Path, files: dict[str, Path]) -> str | None:
        labels = files[TRAIN_LABELS]
        if labels.name.endswith(".gz") and md5_of(labels) == other_md5[TRAIN_LABELS + ".gz"]:
            return f"{directory} holds {other_name}, not {wanted}"
        return None

    return check


def load_mnist(ctx: LoadContext) -> Splits:
    """MNIST, 60000 train / 10000 test, padded to 1×32×32."""
    located = _locate(ctx, MNIST_LAYOUT, MNIST_MD5, MNIST_MIRRORS, ("fashion-mnist", FASHION_MNIST_MD5))
    return _read(located, MNIST_CLASSES)


def locate_fashion_mnist(ctx: LoadContext) -> Located:
    """Where the Fashion-MNIST IDX files are (found or downloaded as for ``fashion-mnist``)."""
    return _locate(ctx, FASHION_MNIST_LAYOUT, FASHION_MNIST_MD5, FASHION_MNIST_MIRRORS, ("mnist", MNIST_MD5))


def read_fashion_mnist(located: Located) -> Splits:
    """The Fashion-MNIST files at ``located``, padded to 1×32×32."""
    return _read(located, FASHION_MNIST_CLASSES)


def load_fashion_mnist(ctx: LoadContext) -> Splits:
    """Fashion-MNIST, 60000 train / 10000 test, padded to 1×32×32."""
    return read_fashion_mnist(locate_fashion_mnist(ctx))
