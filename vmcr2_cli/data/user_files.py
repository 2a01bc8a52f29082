"""The user's own data: an ImageFolder tree (``dataset = "folder"``) or a NumPy file (``dataset = "npz"``).

``folder``: ``data_root/train/<class>/*.png|jpg|…`` and ``data_root/test/<class>/…``
(torchvision's ImageFolder layout), classes in sorted order of the training folders'
names — or, for the self-supervised objectives, ``data_root/train/*.png|…`` without labels
beside a labelled ``test/<class>/`` tree, whose folders are then the classes. Each image is
resized so its shorter side is ``image_size`` and centre-cropped to a square (``image_size
= 0`` keeps the files' size, which must then be one size). Grey images stay one channel;
any colour image makes the set RGB.

``npz``: ``data_root`` is a ``.npz`` file holding ``x_train``, ``y_train``, ``x_test``,
``y_test`` (uint8 images N×H×W or N×H×W×C, C = 1 or 3; integer labels 0 … k−1) and
optionally ``class_names``; read with ``allow_pickle=False``, so the file cannot run code.

Both are kept as uint8 like the built-in datasets; the normalisation is the training
images' own per-channel mean and standard deviation.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vmcr2_cli.data.dataset import LoadContext, Splits
from vmcr2_cli.data.errors import DatasetCorrupt, DatasetNotFound
from vmcr2_cli.data.memory import check_fits_in_memory
from vmcr2_cli.data.preprocessing import GREY_MODES, UnreadableImage, read_fitted
from vmcr2_cli.errors import BadInput

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def given_path(ctx: LoadContext) -> Path:
    """The --data-root (or config ``data_root``) path: these datasets are nowhere else."""
    for root in ctx.roots:
        if root.origin == "--data-root":
            return root.path
    what = {"npz": "the .npz file", "packed": "the folder vmcr2 pack wrote"}.get(ctx.name, "the folder with train/ and test/")
    raise BadInput(f"dataset {ctx.name}: set data_root (or --data-root) to {what}")


# ----------------------------------------------------------------------------- npz

def load_npz(ctx: LoadContext) -> Splits:
    path = given_path(ctx)
    if not path.is_file():
        raise DatasetNotFound(f"dataset npz: {path} is not a file (data_root names the .npz file)")
    _check_npz_fits(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in NPZ_KEYS if key not in archive.files]
            if missing:
                raise DatasetCorrupt(f"{path}: no {', '.join(missing)} (an npz dataset holds {', '.join(NPZ_KEYS)})")
            arrays = {key: archive[key] for key in NPZ_KEYS}
            names = [str(name) for name in archive["class_names"]] if "class_names" in archive.files else None
    except (OSError, ValueError) as error:  # not a zip, a pickled array, a damaged member
        raise DatasetCorrupt(f"{path}: not a readable .npz file ({str(error).splitlines()[0]})") from None
    train_images = _images(arrays["x_train"], f"{path}: x_train")
    test_images = _images(arrays["x_test"], f"{path}: x_test")
    if test_images.shape[1:] != train_images.shape[1:]:
        raise DatasetCorrupt(f"{path}: x_test images are {tuple(test_images.shape[1:])}, x_train's "
                             f"{tuple(train_images.shape[1:])}")
    train_labels = _labels(arrays["y_train"], len(train_images), f"{path}: y_train")
    test_labels = _labels(arrays["y_test"], len(test_images), f"{path}: y_test")
    num_classes = int(train_labels.max()) + 1
    _check_classes(train_labels, test_labels, num_classes, str(path))
    if names is not None and len(names) != num_classes:
        raise DatasetCorrupt(f"{path}: class_names has {len(names)} names for {num_classes} classes")
    return Splits(train_images, train_labels, test_images, test_labels,
                  names or [str(j) for j in range(num_classes)], source=str(path))


def _check_npz_fits(path: Path) -> None:
    """The arrays' decompressed size (the zip's own record of each member) against the free memory."""
    try:
        with zipfile.ZipFile(path) as archive:
            size = sum(member.file_size for member in archive.infolist())
    except (OSError, zipfile.BadZipFile):
        return  # np.load says what is wrong with it
    check_fits_in_memory(size, f"dataset npz {path}")


def _images(array: np.ndarray, what: str) -> torch.Tensor:
    """uint8 N×H×W or N×H×W×C → (N, C, H, W)."""
    if array.dtype != np.uint8:
        raise DatasetCorrupt(f"{what} must be uint8 images (0–255), not {array.dtype}")
    if array.ndim == 3:
        array = array[:, :, :, None]
    if array.ndim != 4 or array.shape[3] not in (1, 3) or array.shape[0] == 0:
        raise DatasetCorrupt(f"{what} must be N×H×W or N×H×W×C with C = 1 or 3 and N ≥ 1, not {array.shape}")
    return torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))


def _labels(array: np.ndarray, count: int, what: str) -> torch.Tensor:
    if not np.issubdtype(array.dtype, np.integer) or array.ndim != 1 or len(array) != count:
        raise DatasetCorrupt(f"{what} must be {count} integer labels, not {array.dtype} of shape {array.shape}")
    if len(array) and array.min() < 0:
        raise DatasetCorrupt(f"{what} has label {array.min()}: labels are 0 … k−1")
    return torch.from_numpy(array.astype(np.int64))


def _check_classes(train_labels: torch.Tensor, test_labels: torch.Tensor, num_classes: int, where: str) -> None:
    counts = torch.bincount(train_labels, minlength=num_classes)
    empty = (counts == 0).nonzero().flatten().tolist()
    if empty:
        raise DatasetCorrupt(f"{where}: class {empty[0]} has no training image (labels must be 0 … k−1, each used)")
    if len(test_labels) and int(test_labels.max()) >= num_classes:
        raise DatasetCorrupt(f"{where}: a test label is {int(test_labels.max())}, but the training labels are "
                             f"0 … {num_classes - 1}")


# ----------------------------------------------------------------------------- folder

@dataclass(frozen=True)
class FolderListing:
    """An ImageFolder tree before decoding: its classes, each split's (label, file) pairs in order,
    whether train/ has labels, and whether any image is in colour (then every image is read as RGB)."""

    root: Path
    classes: list[str]
    files: dict[str, list[tuple[int, Path]]]
    labelled_train: bool
    colour: bool


def list_folder(root: Path) -> FolderListing:
    """The tree at ``root``, checked; one-line errors for a tree that is not a dataset."""
    splits = {}
    for split in ("train", "test"):
        folder = root / split
        if not folder.is_dir():
            raise DatasetNotFound(f"dataset folder: no {split}/ in {root} (expected {root}/{split}/<class>/<image>)")
        splits[split] = sorted(path for path in folder.iterdir() if path.is_dir() and not path.name.startswith("."))
    # train/ with images and no class folders: unlabelled, for the self-supervised objectives; the
    # classes are then the test tree's, the only labels there are.
    labelled_train = bool(splits["train"]) or not _image_files(root / "train", required=False)
    classes = [path.name for path in splits["train" if labelled_train else "test"]]
    if not classes:
        raise DatasetCorrupt(f"dataset folder: {root}/train has no class folders" if labelled_train else
                             f"dataset folder: {root}/train holds images without labels, and {root}/test has no "
                             f"class folders to evaluate on (expected {root}/test/<class>/<image>)")
    unknown = sorted({path.name for path in splits["test"]} - set(classes))
    if unknown:
        raise DatasetCorrupt(f"dataset folder: {root}/test/{unknown[0]} is not a class of {root}/train")
    files = {split: [(index, path) for index, name in enumerate(classes)
                     for path in _image_files(root / split / name, split == "train")]
             for split in splits if labelled_train or split == "test"}
    if not labelled_train:
        files["train"] = [(0, path) for path in _image_files(root / "train", required=True)]
    colour = any(_mode(path) not in GREY_MODES for _, path in files["train"] + files["test"])
    return FolderListing(root, classes, {"train": files["train"], "test": files["test"]}, labelled_train, colour)


def load_folder(ctx: LoadContext) -> Splits:
    listing = list_folder(given_path(ctx))
    size = int(ctx.options.get("image_size", 32))
    if size:
        count = len(listing.files["train"]) + len(listing.files["test"])
        check_fits_in_memory(count * (3 if listing.colour else 1) * size * size, f"dataset folder {listing.root}")
    decoded = {split: [decode_file(path, size, listing.colour) for _, path in listing.files[split]]
               for split in listing.files}
    shapes = {tuple(image.shape) for split in decoded for image in decoded[split]}
    if len(shapes) > 1:
        raise DatasetCorrupt(f"dataset folder: images of sizes {', '.join(map(str, sorted(shapes)[:3]))} in "
                             f"{listing.root}; set image_size (e.g. 32) to resize them")
    tensors = []
    for split in ("train", "test"):
        labels = torch.tensor([index for index, _ in listing.files[split]], dtype=torch.int64)
        images = (torch.from_numpy(np.stack(decoded[split])) if decoded[split]
                  else torch.zeros((0, *next(iter(shapes))), dtype=torch.uint8))
        tensors += [images, labels]
    return Splits(*tensors, class_names=listing.classes, source=str(listing.root),
                  labelled_train=listing.labelled_train)


def _image_files(folder: Path, required: bool) -> list[Path]:
    found = sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())
    if required and not found:
        raise DatasetCorrupt(f"dataset folder: {folder} has no images ({', '.join(IMAGE_SUFFIXES[:3])}, …)")
    return found


def _mode(path: Path) -> str:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.mode
    except OSError as error:
        raise DatasetCorrupt(f"dataset folder: {path} is not a readable image ({error})") from None


def decode_file(path: Path, size: int, colour: bool) -> np.ndarray:
    """A file's image as uint8 (C, H, W): shorter side resized to ``size`` and centre-cropped (size 0: as
    is), RGB when ``colour``. An unreadable file, or one above the pixel cap, is a one-line error."""
    try:
        image, _, _ = read_fitted(path, 3 if colour else 1, (size, size) if size else None)
    except UnreadableImage as why:
        raise DatasetCorrupt(f"dataset folder: {path} is {why}") from None
    return image.numpy()


def training_statistics(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 (N, C, H, W) images, on the [0, 1] scale."""
    return statistics_of_chunks(images.split(4096), images.shape[1])


def statistics_of_chunks(chunks: Iterable[torch.Tensor], channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """:func:`training_statistics` of the images that ``chunks`` (uint8 (n, C, H, W) each) hold together."""
    sums = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros_like(sums)
    count = 0
    for chunk in chunks:
        values = chunk.double() / 255
        sums += values.sum(dim=(0, 2, 3))
        squares += values.square().sum(dim=(0, 2, 3))
        count += chunk.shape[0] * chunk.shape[2] * chunk.shape[3]
    mean = sums / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt().clamp_min(1e-3)  # a constant channel: no 0
    return tuple(mean.tolist()), tuple(std.tolist())
