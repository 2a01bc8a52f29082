"""Several random views of each image, batched on the device: the augmentations of self-supervised training.

Each view is a random resized crop (a random share of the image's area, of random aspect
ratio, resized back to H×W bilinearly), a horizontal flip with probability ½ where the
dataset allows it, and with probability 0.8 a photometric jitter: brightness and contrast
on every image, saturation too on colour images, and on colour images a grey copy with
probability 0.2 (SimCLR's recipe, without hue; on 1-channel images the jitter is what is left
of it). As in :mod:`augment`, the random choices are drawn on the CPU from an explicit
generator (:func:`draw_view_params`) and applied by pure tensor ops on any device
(:func:`apply_views`), so a batch's views depend on (seed, epoch, step) only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CROP_AREA = (0.2, 1.0)  # the share of the image a crop keeps (SimCLR: 0.08; small images need more)
CROP_RATIO = (3 / 4, 4 / 3)
FLIP_PROBABILITY = 0.5
JITTER_PROBABILITY = 0.8
JITTER_STRENGTH = 0.4  # brightness, contrast and saturation factors in [1 − s, 1 + s]
GRAY_PROBABILITY = 0.2  # colour images only

# The columns of a view's parameters.
WIDTH, HEIGHT, CENTER_X, CENTER_Y, FLIP, JITTER, BRIGHTNESS, CONTRAST, SATURATION, GRAY = range(10)
PARAMETERS = 10


def draw_view_params(count: int, views: int, generator: torch.Generator, *, mirror: bool = True) -> torch.Tensor:
    """The random choices of ``views`` views of each of ``count`` images: float64 (count, views, 10), CPU.

    Per view: the crop's width and height as fractions of the image's, its centre in [0, 1]²,
    1 to flip, 1 to jitter, and the brightness, contrast, saturation factors and 1 to grey.
    ``mirror=False`` never flips (datasets whose class is read left to right).
    """
    shape = (count, views)

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)

    area = uniform(*CROP_AREA)
    ratio = torch.exp(uniform(math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])))
    width = torch.sqrt(area * ratio).clamp(max=1.0)
    height = torch.sqrt(area / ratio).clamp(max=1.0)
    center_x = width / 2 + (1 - width) * uniform(0, 1)
    center_y = height / 2 + (1 - height) * uniform(0, 1)
    flip = (uniform(0, 1) < FLIP_PROBABILITY).double() * float(mirror)
    jitter = (uniform(0, 1) < JITTER_PROBABILITY).double()
    factors = [uniform(1 - JITTER_STRENGTH, 1 + JITTER_STRENGTH) for _ in range(3)]
    gray = (uniform(0, 1) < GRAY_PROBABILITY).double()
    return torch.stack([width, height, center_x, center_y, flip, jitter, *factors, gray], dim=-1)


def apply_views(images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """The views of a uint8 batch (B, C, H, W) under ``params`` (B, n, 10) from :func:`draw_view_params`.

    Returns float32 (B·n, C, H, W) on the images' device, on the 0–255 scale of the input (the
    loader's normalizer takes it from there), image-major: image i's views are rows i·n … i·n + n − 1.
    """
    batch, channels, height, width = images.shape
    views = params.shape[1]
    p = params.reshape(batch * views, PARAMETERS).to(device=images.device, dtype=torch.float32)
    pixels = images.float().div_(255).repeat_interleave(views, dim=0)
    # The affine map from output to input coordinates (normalised to [−1, 1]): scale by the crop's
    # size (negative x to mirror), shift to its centre.
    theta = torch.zeros(batch * views, 2, 3, device=images.device)
    theta[:, 0, 0] = p[:, WIDTH] * (1 - 2 * p[:, FLIP])
    theta[:, 1, 1] = p[:, HEIGHT]
    theta[:, 0, 2] = 2 * p[:, CENTER_X] - 1
    theta[:, 1, 2] = 2 * p[:, CENTER_Y] - 1
    grid = F.affine_grid(theta, [batch * views, channels, height, width], align_corners=False)
    pixels = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="border", align_corners=False)
    pixels = _jitter(pixels, p)
    return pixels.clamp_(0, 1).mul_(255)


def _jitter(pixels: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Brightness, contrast (and on colour images saturation, then grey) where the view's JITTER is 1."""
    on = p[:, JITTER].view(-1, 1, 1, 1)

    def blend(factor: torch.Tensor, towards: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        factor = 1 + on * (factor.view(-1, 1, 1, 1) - 1)  # 1 (unchanged) where the jitter is off
        return (towards + factor * (image - towards)).clamp(0, 1)

    pixels = blend(p[:, BRIGHTNESS], torch.zeros_like(pixels[:, :1]), pixels)
    pixels = blend(p[:, CONTRAST], _luminance(pixels).mean(dim=(1, 2, 3), keepdim=True), pixels)
    if pixels.shape[1] == 3:
        pixels = blend(p[:, SATURATION], _luminance(pixels), pixels)
        gray = p[:, GRAY].view(-1, 1, 1, 1)
        pixels = gray * _luminance(pixels).expand_as(pixels) + (1 - gray) * pixels
    return pixels


def _luminance(pixels: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W): the ITU-R 601 grey of colour images, the image itself on one channel."""
    if pixels.shape[1] != 3:
        return pixels.mean(dim=1, keepdim=True)
    weights = torch.tensor([0.299, 0.587, 0.114], device=pixels.device, dtype=pixels.dtype).view(1, 3, 1, 1)
    return (pixels * weights).sum(dim=1, keepdim=True)
