"""The data layer: datasets by name from real files, and a device-resident loader.

>>> from vmcr2_cli.data import load_dataset, DeviceLoader
>>> ds = load_dataset("cifar10", data_root="~/data", label_noise=0.1, seed=0)
>>> loader = DeviceLoader(ds.train_images, ds.train_labels, 1000, "cuda",
...                       augment=ds.augment, mean=ds.mean, std=ds.std, seed=0)
>>> for step, batch in loader.epoch(epoch, start_step=0):
...     batch.images, batch.labels, batch.labels_cpu

Modules: ``registry`` (names → loaders and their constants), ``discovery`` (where files
are looked for), ``download``, one module per file format (``idx``, ``cifar``,
``tinyimagenet``, ``synthetic``), ``label_noise``, ``augment`` and ``device_loader``.
"""

from vmcr2_cli.data.augment import AUGMENTATIONS
from vmcr2_cli.data.dataset import ImageDataset, LoadContext, Splits
from vmcr2_cli.data.device_loader import Batch, DeviceLoader, iterate_eval
from vmcr2_cli.data.discovery import ENV_DATA, ENV_OFFLINE, ENV_SYSTEM_DATA, default_cache_dir, search_roots
from vmcr2_cli.data.errors import DatasetCorrupt, DatasetNotFound
from vmcr2_cli.data.label_noise import apply_label_noise
from vmcr2_cli.data.registry import DATASETS, DatasetSpec, dataset_names, get_spec, load_dataset
from vmcr2_cli.data.synthetic import make_subspace_mixture

__all__ = [
    "AUGMENTATIONS",
    "DATASETS",
    "ENV_DATA",
    "ENV_OFFLINE",
    "ENV_SYSTEM_DATA",
    "Batch",
    "DatasetCorrupt",
    "DatasetNotFound",
    "DatasetSpec",
    "DeviceLoader",
    "ImageDataset",
    "LoadContext",
    "Splits",
    "apply_label_noise",
    "dataset_names",
    "default_cache_dir",
    "get_spec",
    "iterate_eval",
    "load_dataset",
    "make_subspace_mixture",
    "search_roots",
]
