"""Images from where users keep them — files, folders, ImageFolder trees, arrays, PIL images — as the
uint8 (N, C, H, W) batches a run's :class:`~vmcr2_cli.data.preprocessing.Preprocess` takes.

Every image is brought to what the run's dataset stores (grey or RGB, H × W): a colour image for
a grey network is converted to grey (and the other way), an image of another size is scaled to
cover H × W and centre-cropped, as a folder dataset's files are at load. A file that cannot be
read — empty, truncated, not an image, larger than :data:`~vmcr2_cli.data.preprocessing.MAX_PIXELS` — is skipped with its reason.
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vmcr2_cli.data.preprocessing import (GREY_MODES, Preprocessing, UnreadableImage, fit_image, image_array,
                                          read_fitted)
from vmcr2_cli.data.user_files import IMAGE_SUFFIXES
from vmcr2_cli.errors import BadInput

DECODE_THREADS = 8  # PIL decodes without the GIL


@dataclass
class Skipped:
    """A file (or folder) that gave no image, and why."""

    path: str
    reason: str


@dataclass
class ImageFiles:
    """The image files named by the user's paths, in a stable order.

    ``labels``/``label_names``: where every path is an ImageFolder tree (class folders, no images
    beside them), each file's class folder as an index into the sorted folder names (torchvision's
    convention); None otherwise. ``ignored``: files in the folders whose suffix is not an image's.
    ``skipped``: subfolders that could not be listed.
    """

    files: list[Path]
    labels: list[int] | None = None
    label_names: list[str] | None = None
    ignored: int = 0
    skipped: list[Skipped] = field(default_factory=list)


def find_images(paths: list[Path]) -> ImageFiles:
    """The image files of ``paths`` (files as given, folders recursively); BadInput for a path that does
    not exist or a folder that cannot be read."""
    found = ImageFiles(files=[])
    classes: list[str | None] = []
    for path in paths:
        if path.is_file():
            found.files.append(path)
            classes.append(None)
        elif path.is_dir():
            for file, class_name in _folder_images(path, found):
                found.files.append(file)
                classes.append(class_name)
        elif path.exists():
            raise BadInput(f"{path}: neither a file nor a folder")
        else:
            raise BadInput(f"{path}: no such file or folder")
    if classes and all(name is not None for name in classes):
        found.label_names = sorted(set(classes))  # type: ignore[arg-type]
        index = {name: j for j, name in enumerate(found.label_names)}
        found.labels = [index[name] for name in classes]  # type: ignore[index]
    return found


def _folder_images(folder: Path, found: ImageFiles) -> list[tuple[Path, str | None]]:
    """(file, class folder name or None) of a folder's images, recursively, in sorted order."""
    try:
        entries = sorted(folder.iterdir())
    except OSError as error:
        raise BadInput(f"{folder}: cannot read the folder ({error.strerror or error})") from None
    tree = not any(_is_image_name(entry) and entry.is_file() for entry in entries) and any(
        entry.is_dir() for entry in entries)
    images = []
    for top in entries:
        if top.is_dir():
            images += [(file, top.name if tree else None) for file in _walk(top, found)]
        elif _is_image_name(top):
            images.append((top, None))
        elif top.is_file():
            found.ignored += 1
    return images


def _walk(folder: Path, found: ImageFiles) -> list[Path]:
    files = []

    def unreadable(error: OSError) -> None:
        found.skipped.append(Skipped(str(error.filename or folder), f"cannot read the folder ({error.strerror})"))

    for root, folders, names in os.walk(folder, onerror=unreadable):
        folders.sort()
        for name in sorted(names):
            path = Path(root) / name
            if _is_image_name(path):
                files.append(path)
            else:
                found.ignored += 1
    return files


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


@dataclass
class Decoded:
    """A file's image as uint8 (C, H, W) at the run's stored shape, or why there is none; ``converted``:
    the conversion it needed ("colour → grey", "grey → RGB"), ``resized``: whether it was scaled."""

    image: torch.Tensor | None
    reason: str | None = None
    converted: str | None = None
    resized: bool = False


def read_image(path: Path, preprocessing: Preprocessing) -> Decoded:
    """``path`` decoded and fitted to what ``preprocessing`` takes; never raises for a bad file."""
    channels, height, width = preprocessing.shape
    try:
        image, mode, file_size = read_fitted(path, channels, (height, width))
    except UnreadableImage as why:
        return Decoded(None, str(why))
    return Decoded(image, None, _conversion(mode, channels), file_size != (height, width))


def _conversion(mode: str, channels: int) -> str | None:
    grey = mode in GREY_MODES
    if channels == 1 and not grey:
        return "colour → grey"
    if channels == 3 and grey:
        return "grey → RGB"
    return None


def read_images(paths: list[Path], preprocessing: Preprocessing) -> list[Decoded]:
    """:func:`read_image` of each path, in their order, decoded on a few threads."""
    if len(paths) < 2:
        return [read_image(path, preprocessing) for path in paths]
    with ThreadPoolExecutor(min(DECODE_THREADS, len(paths))) as pool:
        return list(pool.map(lambda path: read_image(path, preprocessing), paths))


def conversion_notes(decoded: list[Decoded], preprocessing: Preprocessing) -> list[str]:
    """One line for each kind of change made to the images (said once, not per image)."""
    channels, height, width = preprocessing.shape
    takes = "grey" if channels == 1 else "RGB"
    notes = [f"{count} image(s) converted {what} (the run's network takes {takes} images)"
             for what, count in sorted(Counter(d.converted for d in decoded if d.converted).items())]
    resized = sum(d.resized for d in decoded if d.image is not None)
    if resized:
        notes.append(f"{resized} image(s) scaled to cover {height}×{width} and centre-cropped, the size the run's "
                     f"dataset stores")
    return notes


def as_image_batch(images: Any, preprocessing: Preprocessing) -> torch.Tensor:
    """uint8 (N, C, H, W) at the stored shape (or the network's, e.g. a dataset's padded tensors) from
    uint8 arrays or tensors (N, H, W), (N, C, H, W) or (N, H, W, C), or a PIL image or a list of them.
    Images of another shape or number of channels are converted and fitted one by one with PIL."""
    from PIL import Image

    if isinstance(images, Image.Image):
        images = [images]
    if isinstance(images, (list, tuple)):
        if not all(isinstance(image, Image.Image) for image in images):
            raise BadInput("images: a list must hold PIL images; pass arrays as one (N, H, W) or (N, C, H, W) array")
        return _stack([image_array(fit_image(image, preprocessing.shape[0], preprocessing.shape[1:]))
                       for image in images], preprocessing)
    array = images.detach().cpu() if isinstance(images, torch.Tensor) else torch.from_numpy(_writable(images))
    if array.dtype != torch.uint8:
        raise BadInput(f"images must be uint8 (0–255), not {str(array.dtype).replace('torch.', '')}")
    if array.dim() == 2:
        array = array[None]
    if array.dim() == 3:
        array = array[:, None]
    elif array.dim() == 4 and array.shape[1] not in (1, 3) and array.shape[3] in (1, 3):
        array = array.permute(0, 3, 1, 2)  # (N, H, W, C), PIL's and NumPy's order
    if array.dim() != 4 or array.shape[1] not in (1, 3):
        raise BadInput(f"images must be (N, H, W), (N, C, H, W) or (N, H, W, C) with C = 1 or 3, "
                       f"not {tuple(array.shape)}")
    if tuple(array.shape[1:]) in (preprocessing.shape, preprocessing.network_shape):
        return array.contiguous()
    channels, size = preprocessing.shape[0], preprocessing.shape[1:]
    return _stack([image_array(fit_image(Image.fromarray(image.permute(1, 2, 0).squeeze(-1).numpy()), channels, size))
                   for image in array], preprocessing)


def _writable(images: Any) -> np.ndarray:
    """The array of ``images``, copied only where NumPy forbids writes (torch warns of those)."""
    array = np.asarray(images)
    return array if array.flags.writeable else array.copy()


def _stack(images: list[torch.Tensor], preprocessing: Preprocessing) -> torch.Tensor:
    return torch.stack(images) if images else torch.zeros((0, *preprocessing.shape), dtype=torch.uint8)
