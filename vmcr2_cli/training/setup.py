"""What a run needs before its first step, shared by train, eval, latch and compare."""

from __future__ import annotations

import dataclasses

import torch

from vmcr2_cli.config import TrainConfig, check_data_fit, check_flips, validation_size
from vmcr2_cli.data import DeviceLoader, ImageDataset, load_dataset
from vmcr2_cli.distributed import SINGLE_PROCESS, Distributed
from vmcr2_cli.errors import BadInput
from vmcr2_cli.objective_registry import SELF_SUPERVISED


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """``auto`` is the first CUDA device when there is one, else the CPU.

    ``local_rank``: this process's rank on its node under torchrun, where each process
    takes GPU ``local_rank`` (``auto`` and ``cuda``); ``cuda:N`` names one GPU for one
    process and is refused.
    """
    if local_rank is not None and name != "cpu":
        if name.startswith("cuda:"):
            raise BadInput(f"device {name}: under torchrun each process takes the GPU of its local rank; "
                           f"use --device cuda (and CUDA_VISIBLE_DEVICES to choose the GPUs)")
        if name == "cuda" or torch.cuda.is_available():
            name = f"cuda:{local_rank}"
            if torch.cuda.is_available() and local_rank >= torch.cuda.device_count():
                raise BadInput(f"process {local_rank} of this node has no GPU: only "
                               f"{torch.cuda.device_count()} CUDA device(s) for more processes")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BadInput(f"device {name}: no CUDA device on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise BadInput(f"device {name}: only {torch.cuda.device_count()} CUDA device(s)")
    return device


def load_training_data(config: TrainConfig) -> ImageDataset:
    """The dataset of ``config``: label noise applied, cut to ``train_subset``, its validation split held out
    (``val_fraction``), checked against the batch."""
    options = {}
    if config.dataset == "synthetic":
        options = dict(num_classes=config.num_classes, subspace_dim=config.synthetic_subspace_dim,
                       train_per_class=config.synthetic_train_per_class,
                       test_per_class=config.synthetic_test_per_class,
                       image_shape=(config.synthetic_channels, 32, 32))
    elif config.dataset == "folder":
        options = dict(image_size=config.image_size)
    dataset = load_dataset(config.dataset, data_root=config.data_root or None,
                           label_noise=config.label_noise, seed=config.seed, **options)
    # The files may hold fewer images than the published dataset that the config was checked against.
    check_data_fit(config, dataset.num_classes, dataset.num_train, f"data {dataset.source}")
    check_flips(config, dataset.mirror_safe, dataset.source, f"data {dataset.source}")  # a pack's manifest says
    if not dataset.labelled_train:
        _check_unlabelled(config, dataset.source)
    if config.train_subset and config.train_subset < dataset.num_train:
        keep = torch.randperm(dataset.num_train, generator=torch.Generator().manual_seed(config.seed))
        keep = keep[:config.train_subset]
        dataset = dataclasses.replace(dataset, train_images=dataset.train_images[keep],
                                      train_labels=dataset.train_labels[keep], clean_train_labels=None)
    if config.val_fraction:
        dataset = hold_out_validation(dataset, config.val_fraction, config.seed)
    return dataset


def _check_unlabelled(config: TrainConfig, source: str) -> None:
    """What training on images without labels cannot do, refused before anything trains."""
    if config.objective not in SELF_SUPERVISED:
        raise BadInput(f"data {source}: train/ holds images without class folders; {config.objective} needs "
                       f"labels — train it on train/<class>/ folders, or choose a self-supervised objective "
                       f"({', '.join(SELF_SUPERVISED)})")
    if config.val_fraction:
        raise BadInput(f"data {source}: val_fraction holds out labelled training images, and train/ has none; "
                       f"evaluation already scores half of the test tree (fitting on the other half)")


def hold_out_validation(dataset: ImageDataset, fraction: float, seed: int) -> ImageDataset:
    """``dataset`` with ``validation_size`` of its training images (a seeded draw) moved to its
    validation split. Their labels are the training labels, noisy where the training set's are:
    a validation split chooses a checkpoint from the data a user has."""
    held = validation_size(dataset.num_train, fraction)
    # A stream of its own (seed + 1): the same images are held out whatever train_subset drew.
    order = torch.randperm(dataset.num_train, generator=torch.Generator().manual_seed(seed + 1))
    val, train = order[:held].sort().values, order[held:].sort().values
    return dataclasses.replace(dataset, train_images=dataset.train_images[train],
                               train_labels=dataset.train_labels[train], clean_train_labels=None,
                               val_images=dataset.train_images[val], val_labels=dataset.train_labels[val])


def training_loader(config: TrainConfig, dataset: ImageDataset, device: torch.device, channels_last: bool,
                    dist: Distributed = SINGLE_PROCESS) -> DeviceLoader:
    """The training batches of ``config``: this process's share of each, in the seeded order."""
    return DeviceLoader(dataset.train_images, dataset.train_labels, config.batch_size, device,
                        augment=config.augment, mean=dataset.mean, std=dataset.std,
                        seed=config.seed, drop_last=True, channels_last=channels_last,
                        views=config.views if config.objective in SELF_SUPERVISED else 1,
                        rank=dist.rank, world_size=dist.world_size)
