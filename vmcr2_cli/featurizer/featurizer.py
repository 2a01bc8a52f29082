"""A run's f_θ with its preprocessing, on a device: the one forward path of embed, export and the Python API.

Loading reads config.toml, meta.json and a checkpoint (``weights_only``: nothing in a run runs
code) and builds the network without the dataset: the preprocessing and the class names come
from meta.json (runs trained before they were kept there load their dataset once for them).
Features are computed as ``vmcr2 eval`` computes them — eval mode, the run's precision on this
device (bf16 autocast where the CPU or GPU has it; ``precision="fp32"`` for the exported models'
arithmetic) — and are unit rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from vmcr2_cli.config import FIELDS, TrainConfig
from vmcr2_cli.data.packed import PackedImages, read_rows
from vmcr2_cli.data.preprocessing import Preprocess, Preprocessing
from vmcr2_cli.errors import BadInput
from vmcr2_cli.evaluation.loading import OpenedRun, device_named, load_state, open_run
from vmcr2_cli.featurizer.images import as_image_batch
from vmcr2_cli.runs import RunDir
from vmcr2_cli.training.precision import BackbonePrecision

PRECISIONS = FIELDS["precision"].metadata["choices"]  # the config key's: bf16, fp32


class Prediction(NamedTuple):
    """Eq. 8 for each image: ``classes`` (N,) int64, ``residuals`` (N, k) float32 ‖(I − V_jV_jᵀ)z‖²,
    ``names`` the predicted classes' names."""

    classes: np.ndarray
    residuals: np.ndarray
    names: list[str]


@dataclass
class Featurizer:
    """A run's featurizer, ready to embed. ``model``: the torch module (eval mode, on ``device``);
    ``preprocess``: uint8 (N, C, H, W) → the model's input (a module, on ``device``)."""

    run: RunDir
    config: TrainConfig
    checkpoint: str
    global_step: int
    model: torch.nn.Module
    preprocess: Preprocess
    class_names: list[str]
    device: torch.device
    precision: BackbonePrecision  # the arithmetic and memory format of f_θ on ``device``
    bases: torch.Tensor | None = field(default=None, repr=False)  # eq. 8's, once loaded or fitted

    @property
    def preprocessing(self) -> Preprocessing:
        return self.preprocess.preprocessing

    @property
    def feature_dim(self) -> int:
        return self.config.feature_dim

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @torch.no_grad()
    def features(self, images: torch.Tensor | PackedImages, batch_size: int | None = None) -> torch.Tensor:
        """(N, d) float32 unit rows on the CPU of uint8 (N, C, H, W) images at the stored (or network) shape
        (or a packed dataset's, read a batch at a time)."""
        batch_size = batch_size or self.config.batch_size
        chunks = []
        for start in range(0, images.shape[0], batch_size):
            batch = self.preprocess(read_rows(images, start, start + batch_size).to(self.device))
            if self.precision.channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            with self.precision.autocast:
                chunks.append(self.model(batch).float().cpu())
        return torch.cat(chunks) if chunks else torch.zeros((0, self.feature_dim))

    def embed(self, images: Any, batch_size: int | None = None) -> np.ndarray:
        """(N, d) float32 features of uint8 arrays (N, H, W), (N, C, H, W), (N, H, W, C) or PIL images."""
        return self.features(as_image_batch(images, self.preprocessing), batch_size).numpy()

    def predict(self, images: Any, batch_size: int | None = None) -> Prediction:
        """Each image's nearest class subspace (eq. 8) and its residual to every class."""
        return self.predict_features(self.features(as_image_batch(images, self.preprocessing), batch_size))

    def predict_features(self, features: torch.Tensor) -> Prediction:
        from vmcr2_cli.evaluation.nearest_subspace import residuals

        distances = residuals(features, self.class_subspaces())
        classes = distances.argmin(1)
        return Prediction(classes.numpy(), distances.float().numpy(), [self.class_names[j] for j in classes.tolist()])

    def class_subspaces(self, data_root: str | None = None,
                        log: Callable[[str], None] = lambda text: None) -> torch.Tensor:
        """Eq. 8's (k, d, p) bases of this checkpoint: saved in the run, or fitted on the training
        features (p = ⌊d/k⌋; this needs the dataset's files once) and saved there."""
        from vmcr2_cli.evaluation.nearest_subspace import default_components
        from vmcr2_cli.evaluation.statistics import class_statistics
        from vmcr2_cli.evaluation.subspace_file import save_class_subspaces, saved_class_subspaces

        if self.bases is None:
            self.bases = saved_class_subspaces(self.run, self.checkpoint, self.global_step, self.num_classes,
                                               self.feature_dim)
        if self.bases is not None:
            return self.bases
        log(f"fitting the class subspaces on {self.config.dataset}'s training features (once; kept in the run)…")
        reference_images, reference_labels = self.dataset(data_root).reference()
        train_z = self.features(reference_images)
        stats = class_statistics(train_z, reference_labels, self.num_classes,
                                 components=default_components(self.feature_dim, self.num_classes),
                                 eps2=self.config.eps2)
        self.bases = stats.bases.float()
        try:
            save_class_subspaces(self.run, self.checkpoint, self.bases, self.global_step)
        except OSError as error:  # a read-only run still predicts; it fits again next time
            log(f"cannot keep the class subspaces in {self.run.path}: {error.strerror or error}")
        return self.bases

    def dataset(self, data_root: str | None = None):
        """The run's dataset as it trained (label noise, subset, validation split), from ``data_root``
        where given: its files are needed."""
        return _training_data(self.config, data_root)


def load_featurizer(run: str | Path = "runs/latest", checkpoint: str = "last", device: str | None = None,
                    precision: str | None = None, data_root: str | None = None,
                    log: Callable[[str], None] = lambda text: None) -> Featurizer:
    """The featurizer of ``run`` (a run directory; ``runs/latest`` follows the link) at ``checkpoint``
    (``last`` or ``best``), on ``device`` (None: the run's setting, e.g. auto), in ``precision``
    (None: the run's; ``fp32``: full precision). ``data_root``: the dataset's files, needed only by runs
    trained before meta.json kept the preprocessing. Raises BadInput (one line) for what does not fit."""
    opened = open_run(run)
    config = opened.config
    if precision is not None and precision not in PRECISIONS:
        raise BadInput(f"precision {precision!r}: expected {' or '.join(PRECISIONS)} (or None, the run's)")
    torch_device = device_named(device or config.device)
    state = load_state(opened, checkpoint, "embed")
    preprocessing, class_names = _stored_preprocessing(opened, data_root, log)
    return _build(opened, state, checkpoint, preprocessing, class_names, torch_device, precision)


def _build(opened: OpenedRun, state: dict, checkpoint: str, preprocessing: Preprocessing, class_names: list[str],
           device: torch.device, precision: str | None) -> Featurizer:
    from vmcr2_cli.training.networks import Networks

    config = opened.config
    built = dataclasses.replace(config, precision=precision) if precision else config
    networks = Networks.of_shape(built, preprocessing.network_shape, len(class_names), device)
    networks.load(state, f"embed {opened.run.path}")
    networks.model.eval()
    return Featurizer(opened.run, config, checkpoint, int(state.get("global_step", 0)), networks.model,
                      preprocessing.module().to(device), class_names, device, networks.precision)


def _stored_preprocessing(opened: OpenedRun, data_root: str | None,
                          log: Callable[[str], None]) -> tuple[Preprocessing, list[str]]:
    """meta.json's preprocessing and class names, or, for a run trained before they were kept, its dataset's."""
    meta, where = opened.meta, f"embed {opened.run.path}"
    if "preprocessing" in meta and "class_names" in meta:
        return Preprocessing.from_dict(meta["preprocessing"], where), [str(name) for name in meta["class_names"]]
    from vmcr2_cli.data.registry import preprocessing_of

    log(f"{opened.run.name} predates the preprocessing in meta.json: reading it from {opened.config.dataset}…")
    dataset = _training_data(opened.config, data_root)
    return preprocessing_of(dataset), list(dataset.class_names)


def _training_data(config: TrainConfig, data_root: str | None):
    """The run's dataset as it trained (label noise, subset), from ``data_root`` where given."""
    from vmcr2_cli.training.setup import load_training_data

    return load_training_data(dataclasses.replace(config, data_root=data_root) if data_root else config)
