"""The training set on the device, batched, augmented and normalised there (DESIGN §6).

The whole set lives on the device as uint8 — or, for a packed dataset (read from disk) and a set too
large for the GPU's free memory, on the host: each batch's images are then gathered on the host in a
background thread, a few batches ahead, and copied to the device without blocking it (streamed).
Each epoch is a permutation, each batch is indexed on the device (or gathered), augmented there in a
few batched tensor ops and converted to normalised floats. A CPU copy of the labels goes with each
batch, so the objectives can group samples by class without a device→host synchronisation.

Reproducibility contract (the trainer's exact resume relies on it): the permutation of
epoch e depends only on (seed, e), and the augmentation of batch (e, t) only on
(seed, e, t), each drawn from its own explicitly seeded CPU ``torch.Generator`` — never
the global RNG. A run resumed at any (epoch, step) therefore sees exactly the batches
the uninterrupted run would have, on any device. Drawing on the CPU costs a randperm per
epoch and a (B, 3) integer tensor per batch; both go to the device without a sync.

With ``world_size`` > 1 (DDP), every rank draws the same global batch and keeps its
contiguous share: the union over ranks is the single-process batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch

from vmcr2_cli.data import augment as augmentations
from vmcr2_cli.data import views as view_augmentations
from vmcr2_cli.data.packed import PackedImages, read_rows
from vmcr2_cli.data.preprocessing import normalisation_constants
from vmcr2_cli.data.read_ahead import ReadAhead
from vmcr2_cli.data.seeding import cpu_generator
from vmcr2_cli.errors import BadInput


class Batch(NamedTuple):
    """One batch: normalised float images (B, C, H, W) and int64 labels (B,) on the
    device, and the same labels on the CPU. Unpacks as ``images, labels, labels_cpu``."""

    images: torch.Tensor
    labels: torch.Tensor
    labels_cpu: torch.Tensor


class Normalizer:
    """uint8 (B, C, H, W) → float (x/255 − mean)/std, optionally channels_last."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], channels: int, device, dtype=torch.float32, channels_last=False):
        scale, shift = normalisation_constants(mean, std, channels)
        self.scale = scale.to(device=device, dtype=dtype)
        self.shift = shift.to(device=device, dtype=dtype)
        self.dtype = dtype
        self.channels_last = channels_last

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images.to(self.dtype).mul_(self.scale).sub_(self.shift)


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host→device copy that does not make the host wait (pinned staging on CUDA)."""
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


READ_AHEAD = 3  # batches a streamed loader reads ahead of the step
DEVICE_SHARE = 0.5  # the most of a GPU's free memory a dataset held on it may take


def _held_on_device(images: torch.Tensor | PackedImages, device: torch.device) -> bool:
    """Whether the images go whole onto ``device``: not a packed set, and on a GPU only where they fit."""
    if isinstance(images, PackedImages):
        return False
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return images.numel() <= DEVICE_SHARE * free


def _gather(images: torch.Tensor | PackedImages, indices: torch.Tensor) -> torch.Tensor:
    """The rows ``indices`` of host images, as one uint8 tensor."""
    return images.read(indices.numpy()) if isinstance(images, PackedImages) else images.index_select(0, indices)


def _check_split(images: torch.Tensor | PackedImages, labels: torch.Tensor) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")


class DeviceLoader:
    """Batches of the whole training set, held on ``device`` as uint8.

    ``images``: uint8 (N, C, H, W); ``labels``: int64 (N,); ``batch_size``: the global
    batch; ``augment``: one of ``augment.AUGMENTATIONS``; ``mean``/``std``: per channel on the
    [0, 1] scale (or one value); ``drop_last``: skip the last partial batch (the paper's
    objectives want full batches); ``channels_last``: the memory format of the output;
    ``padding``: the crop padding of "crop-flip"; ``views``: with "resized-crop", how many
    random views of each image a batch holds (image-major: ``batch_size·views`` rows, each
    image's label repeated; see :mod:`views`); ``rank``/``world_size``: this process's
    share of each batch under DDP (whole images, with all their views).

    >>> loader = DeviceLoader(ds.train_images, ds.train_labels, 1000, "cuda", mean=ds.mean, std=ds.std)
    >>> for step, (images, labels, labels_cpu) in loader.epoch(epoch, start_step=step0): ...
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        device: str | torch.device = "cpu",
        *,
        augment: str = "crop-flip",
        mean: Sequence[float] = (0.5,),
        std: Sequence[float] = (0.5,),
        seed: int = 0,
        drop_last: bool = True,
        channels_last: bool = False,
        padding: int = augmentations.CROP_PADDING,
        views: int = 1,
        rank: int = 0,
        world_size: int = 1,
        dtype: torch.dtype = torch.float32,
    ):
        _check_split(images, labels)
        self.augment = augmentations.check_augment(augment)
        if views < 1 or (views > 1 and augment != augmentations.RESIZED_CROP):
            raise ValueError(f"views = {views}: several views of an image need the {augmentations.RESIZED_CROP!r} "
                             f"augmentation, and at least one")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size or batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} must split evenly over world_size {world_size} (rank {rank})")
        if drop_last and images.shape[0] < batch_size:
            raise BadInput(
                f"batch size {batch_size} is larger than the training set ({images.shape[0]} images): "
                "lower the batch size or keep the last partial batch"
            )
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.padding = padding
        self.views = views
        self.rank = rank
        self.world_size = world_size
        self.num_samples = images.shape[0]
        self.streamed = not _held_on_device(images, self.device)
        self.images = images if self.streamed else images.to(self.device)
        self.labels = labels.to(device=self.device, dtype=torch.int64)
        self.labels_cpu = labels.to(device="cpu", dtype=torch.int64)
        self.normalize = Normalizer(mean, std, images.shape[1], self.device, dtype, channels_last)
        divide = math.floor if drop_last else math.ceil
        self.steps_per_epoch = divide(self.num_samples / batch_size)

    def __len__(self) -> int:
        return self.steps_per_epoch

    def permutation(self, epoch: int) -> torch.Tensor:
        """The order of epoch ``epoch``: int64 (N,) on the CPU, from (seed, epoch) only."""
        return torch.randperm(self.num_samples, generator=cpu_generator(self.seed, "epoch-permutation", epoch))

    def augment_params(self, epoch: int, step: int, count: int) -> torch.Tensor:
        """The augmentation choices of the global batch (epoch, step), from (seed, epoch, step) only:
        one row per image (``views.draw_view_params``' (count, views, 10) with "resized-crop")."""
        generator = cpu_generator(self.seed, "augment", epoch, step)
        if self.augment == augmentations.RESIZED_CROP:
            return view_augmentations.draw_view_params(count, self.views, generator)
        return augmentations.draw_params(self.augment, count, generator, self.padding)

    def batch_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """The labels of a batch's rows from its images' labels: each repeated once per view."""
        return labels if self.views == 1 else labels.repeat_interleave(self.views)

    def batch_indices(self, epoch: int, step: int) -> torch.Tensor:
        """The dataset indices of the global batch (epoch, step), on the CPU (all ranks)."""
        return self.permutation(epoch)[step * self.batch_size : (step + 1) * self.batch_size]

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[tuple[int, Batch]]:
        """Yield ``(step, batch)`` for steps ``start_step`` … ``steps_per_epoch − 1`` of ``epoch``."""
        if not 0 <= start_step <= self.steps_per_epoch:
            raise ValueError(f"start_step must be in [0, {self.steps_per_epoch}], got {start_step}")
        order_cpu = self.permutation(epoch)
        steps = range(start_step, self.steps_per_epoch)
        rows = [order_cpu[self._share(step)] for step in steps]  # this rank's images of each step
        if self.streamed:  # gathered on the host, read ahead; the labels follow from the CPU copy
            images = ReadAhead(lambda these: _gather(self.images, these), rows, READ_AHEAD,
                               pin=self.device.type == "cuda")
            labels = (_to_device(self.labels_cpu[these], self.device) for these in rows)
        else:  # indexed on the device: one copy of the order per epoch
            order = _to_device(order_cpu, self.device)
            indices = [order[self._share(step)] for step in steps]
            images = (self.images.index_select(0, these) for these in indices)
            labels = (self.labels.index_select(0, these) for these in indices)
        try:
            for step, these, batch_images, batch_labels in zip(steps, rows, images, labels):
                yield step, self._batch(epoch, step, _to_device(batch_images, self.device), batch_labels,
                                        self.labels_cpu[these])
        finally:
            if self.streamed:
                images.close()

    def _share(self, step: int) -> slice:
        """This rank's contiguous share of the global batch ``step`` (all of it without DDP), as positions in
        the epoch's order."""
        start, stop = step * self.batch_size, min((step + 1) * self.batch_size, self.num_samples)
        return slice(start + (stop - start) * self.rank // self.world_size,
                     start + (stop - start) * (self.rank + 1) // self.world_size)

    def _batch(self, epoch: int, step: int, images: torch.Tensor, labels: torch.Tensor,
               labels_cpu: torch.Tensor) -> Batch:
        """Batch ``step`` from this rank's share of its images and labels on the device: augmented, normalised."""
        start, stop = step * self.batch_size, min((step + 1) * self.batch_size, self.num_samples)
        shard = self._share(step)
        params = self.augment_params(epoch, step, stop - start)[shard.start - start : shard.stop - start]
        if self.augment == augmentations.RESIZED_CROP:
            images = view_augmentations.apply_views(images, params)
        elif self.augment != "none":
            images = augmentations.apply(self.augment, images, _to_device(params, self.device), self.padding)
        return Batch(self.normalize(images), self.batch_labels(labels), self.batch_labels(labels_cpu))

    def eval_batches(self, batch_size: int | None = None) -> Iterator[Batch]:
        """The whole set in dataset order, unaugmented, the last partial batch kept (all ranks)."""
        yield from _eval_batches(self.images, self.labels, self.labels_cpu, batch_size or self.batch_size, self.device, self.normalize)


def iterate_eval(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    device: str | torch.device = "cpu",
    *,
    mean: Sequence[float] = (0.5,),
    std: Sequence[float] = (0.5,),
    channels_last: bool = False,
    dtype: torch.dtype = torch.float32,
) -> Iterator[Batch]:
    """Evaluation batches of any split (on the CPU or the device): dataset order, no
    augmentation, the last partial batch kept. Each batch is moved to ``device`` as needed."""
    _check_split(images, labels)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    device = torch.device(device)
    normalize = Normalizer(mean, std, images.shape[1], device, dtype, channels_last)
    labels_cpu = labels.to(device="cpu", dtype=torch.int64)
    yield from _eval_batches(images, labels.to(torch.int64), labels_cpu, batch_size, device, normalize)


def _eval_batches(images, labels, labels_cpu, batch_size, device, normalize) -> Iterator[Batch]:
    for start in range(0, images.shape[0], batch_size):
        stop = start + batch_size
        yield Batch(
            normalize(_to_device(read_rows(images, start, stop), device)),
            _to_device(labels[start:stop], device),
            labels_cpu[start:stop],
        )
