"""What turns an image as a dataset's files hold it into the network's input, kept in the run.

A run's featurizer reads normalised float images at its training resolution. The files
hold uint8 images that may be smaller (MNIST and Fashion-MNIST: 28×28, zero-padded to 32×32
at load). :class:`Preprocessing` says how: the stored image's shape, the zeros around it,
and the per-channel normalisation. Training writes it into meta.json, so that embedding
new images and exporting the network need neither the dataset's files nor its cache.
:class:`Preprocess` is the same as a module (uint8 in, normalised float out), which the
exported ONNX and TorchScript models hold inside their graph.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vmcr2_cli.errors import BadInput


@dataclass(frozen=True)
class Preprocessing:
    """``shape``: (C, H, W) of an image as the dataset stores it; ``padding``: (left, right, top,
    bottom) zeros around it (``F.pad``'s order) up to the network's input; ``mean``, ``std``: per
    channel on the [0, 1] scale, (x/255 − mean)/std as the training batches."""

    shape: tuple[int, int, int]
    padding: tuple[int, int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def network_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the network's input."""
        left, right, top, bottom = self.padding
        channels, height, width = self.shape
        return channels, height + top + bottom, width + left + right

    def to_dict(self) -> dict[str, Any]:
        return {key: list(value) for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Any, where: str) -> "Preprocessing":
        """The preprocessing meta.json holds; BadInput (one line) when it is not one."""
        try:
            shape = tuple(int(v) for v in values["shape"])
            padding = tuple(int(v) for v in values["padding"])
            mean = tuple(float(v) for v in values["mean"])
            std = tuple(float(v) for v in values["std"])
        except (TypeError, KeyError, ValueError):
            raise BadInput(f"{where}: meta.json's preprocessing is not shape, padding, mean, std") from None
        if (len(shape) != 3 or len(padding) != 4 or min(shape) < 1 or min(padding) < 0
                or len(mean) != shape[0] or len(std) != shape[0] or min(std) <= 0):
            raise BadInput(f"{where}: meta.json's preprocessing is inconsistent: {values}")
        return cls(shape, padding, mean, std)  # type: ignore[arg-type]

    def module(self) -> "Preprocess":
        return Preprocess(self)


def centred_padding(height: int, width: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zeros that centre a height×width image in ``size`` (left/top get
    the smaller half), the padding of MNIST-like files at load."""
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    return left, size[1] - width - left, top, size[0] - height - top


class Preprocess(nn.Module):
    """uint8 (N, C, H, W) at the stored shape → the network's float input: zero padding, then
    (x/255 − mean)/std, computed as the training batches compute it (one multiply, one subtract)."""

    def __init__(self, preprocessing: Preprocessing) -> None:
        super().__init__()
        self.preprocessing = preprocessing
        self.padding = preprocessing.padding
        self.network_size = preprocessing.network_shape[1:]
        scale, shift = normalisation_constants(preprocessing.mean, preprocessing.std, preprocessing.shape[0])
        self.register_buffer("scale", scale.float())
        self.register_buffer("shift", shift.float())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, C, H, W) as stored, or already padded to the network's size (a dataset's tensors)."""
        images = images.float()
        if tuple(images.shape[-2:]) != self.network_size:
            images = F.pad(images, self.padding)
        return images * self.scale - self.shift


def normalisation_constants(mean: Sequence[float], std: Sequence[float], channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift), float64 (1, C, 1, 1), such that (x/255 − mean)/std = x·scale − shift; one value of
    mean or std serves every channel. ValueError for a count that fits neither or a std ≤ 0."""
    mean_t = torch.as_tensor(mean, dtype=torch.float64).flatten()
    std_t = torch.as_tensor(std, dtype=torch.float64).flatten()
    if mean_t.numel() == 1:
        mean_t = mean_t.expand(channels)
    if std_t.numel() == 1:
        std_t = std_t.expand(channels)
    if mean_t.numel() != channels or std_t.numel() != channels:
        raise ValueError(f"mean and std need 1 or {channels} values, got {mean_t.numel()} and {std_t.numel()}")
    if (std_t <= 0).any():
        raise ValueError(f"std must be positive, got {std_t.tolist()}")
    return (1.0 / (255.0 * std_t)).view(1, -1, 1, 1), (mean_t / std_t).view(1, -1, 1, 1)


# The most pixels a file may decode to: larger images are refused before they are decoded, since a
# small file can claim a huge canvas (a decompression bomb). 50 megapixels is a 7071² photograph;
# PIL's own warning starts at 89.
MAX_PIXELS = 50_000_000

# PIL modes without colour: a folder of only these is a grey dataset, and embed converts them
# to RGB for a colour run (and colour modes to grey for a grey one).
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def fit_image(image: Any, channels: int, size: tuple[int, int] | None) -> Any:
    """A PIL image in the mode of ``channels`` (1: "L", 3: "RGB"), scaled so that it covers ``size`` (H, W)
    and centre-cropped to it (``size`` None: as is) — how a folder dataset's files are read, and how
    embed fits an image to what the run stores. Returns the new PIL image."""
    from PIL import Image

    image = image.convert("RGB" if channels == 3 else "L")
    if size is None or (image.height, image.width) == tuple(size):
        return image
    height, width = size
    scale = max(height / image.height, width / image.width)
    scaled = max(width, round(image.width * scale)), max(height, round(image.height * scale))
    image = image.resize(scaled, Image.BILINEAR)
    left, top = (scaled[0] - width) // 2, (scaled[1] - height) // 2
    return image.crop((left, top, left + width, top + height))


class UnreadableImage(Exception):
    """A file that gives no image; the message says why in one line ("not a readable image (…)")."""


def read_fitted(path: Path, channels: int, size: tuple[int, int] | None) -> tuple[torch.Tensor, str, tuple[int, int]]:
    """``path`` as uint8 (C, H, W) in the mode of ``channels``, fitted to ``size`` as :func:`fit_image` fits it,
    with the file's PIL mode and its (H, W). A file above :data:`MAX_PIXELS` is refused before it is decoded;
    an empty, truncated or damaged one, or one that is not an image, raises :class:`UnreadableImage` too."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the cap below decides
            with Image.open(path) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise UnreadableImage(f"{image.width}×{image.height} pixels, above the cap of {MAX_PIXELS:,} "
                                          f"(a decompression bomb?)")
                image.load()
                return image_array(fit_image(image, channels, size)), image.mode, (image.height, image.width)
    except Image.DecompressionBombError as error:
        raise UnreadableImage(f"larger than PIL allows ({error})".splitlines()[0]) from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:  # empty, truncated, not an image, damaged
        detail = str(error).splitlines()[0] if str(error).strip() else type(error).__name__
        raise UnreadableImage(f"not a readable image ({detail})") from None


def image_array(image: Any) -> torch.Tensor:
    """A PIL image ("L" or "RGB") as uint8 (C, H, W)."""
    import numpy as np

    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.reshape(array.shape[0], array.shape[1], -1).transpose(2, 0, 1).copy())
