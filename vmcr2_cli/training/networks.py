"""The featurizer f_θ and the objective of a configuration, on a device: one factory for the
trainer, eval, latch and bench.

Building is seeded by ``config.seed`` alone (initial weights, then Γ), so every process
of a data-parallel run and every command that rebuilds a run gets the same networks;
a checkpoint's weights are then loaded with :meth:`Networks.load`.
"""

from __future__ import annotations

import math

from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from vmcr2_cli.config import TrainConfig
from vmcr2_cli.data import DeviceLoader, ImageDataset
from vmcr2_cli.errors import BadInput
from vmcr2_cli.models import build_featurizer
from vmcr2_cli.models.constructed import Construction
from vmcr2_cli.models.redunet import ConstructedNetwork, ReduNetSettings
from vmcr2_cli.models.registry import CONSTRUCTED_MODELS
from vmcr2_cli.objectives import ObjectiveSettings, TrainingObjective, build_objective
from vmcr2_cli.training.checkpoints import state_difference
from vmcr2_cli.training.features import extract_features, training_mode_features
from vmcr2_cli.training.precision import BackbonePrecision, backbone_precision


@dataclass
class Networks:
    """f_θ and the objective on ``device``, and how f_θ runs there.

    ``precision``: the backbone's autocast dtype and memory format on this device
    (see :mod:`vmcr2_cli.training.precision`; the objectives compute in float32 or float64
    whatever it is).
    """

    model: nn.Module
    objective: TrainingObjective
    device: torch.device
    precision: BackbonePrecision

    @property
    def channels_last(self) -> bool:
        return self.precision.channels_last

    @property
    def autocast(self) -> AbstractContextManager:
        return self.precision.autocast

    @classmethod
    def build(cls, config: TrainConfig, dataset: ImageDataset, device: torch.device,
              layers_of: dict | None = None) -> "Networks":
        return cls.of_shape(config, dataset.image_shape, dataset.num_classes, device, layers_of)

    @classmethod
    def of_shape(cls, config: TrainConfig, image_shape: tuple[int, int, int], num_classes: int,
                 device: torch.device, layers_of: dict | None = None) -> "Networks":
        """The networks of ``config`` for (C, H, W) inputs and ``num_classes`` classes, without the data.

        ``layers_of``: a ReduNet's saved state (its ``model`` part), whose layers it takes, empty, before an
        optimizer sees its parameters (with ``init_from``: its operators are parameters, trained)."""
        torch.manual_seed(config.seed)  # initial weights and Γ: the same on every process
        constructed = config.model in CONSTRUCTED_MODELS
        model = build_featurizer(config.model, in_channels=image_shape[0], feature_dim=config.feature_dim,
                                 stem=config.stem, width=config.width, image_size=tuple(image_shape[1:]),
                                 dropout=config.dropout, construction=construction_of(config) if constructed else None)
        if isinstance(model, ConstructedNetwork):
            if layers_of is not None:
                model.fit_layers_to(layers_of)
            if config.init_from:
                model.train_operators()
        # A ReduNet computes in its own precision (objective_dtype): no autocast.
        precision = backbone_precision(device, "fp32" if constructed else config.precision)
        model = on_device(model, device, precision)
        objective = build_objective(config.objective, config.feature_dim, num_classes,
                                    ObjectiveSettings.of(config)).to(device)
        return cls(model, objective, device, precision)

    def check_fits(self, state: dict, where: str) -> None:
        """BadInput (one line) unless the checkpoint's weights have the shapes of these networks (a
        constructed network without layers first takes as many as the checkpoint holds)."""
        if (isinstance(self.model, ConstructedNetwork) and not self.model.layers
                and isinstance(state.get("model"), dict)):
            self.model.fit_layers_to(state["model"])
        for part, module in (("model", self.model), ("objective", self.objective)):
            difference = state_difference(state[part], module.state_dict())
            if difference:
                raise BadInput(f"{where}: the checkpoint does not fit the run's config.toml: its {part} {difference}")

    def load(self, state: dict, where: str) -> None:
        """The checkpoint's f_θ and objective (Γ, A or the CE head); BadInput when they do not fit."""
        self.check_fits(state, where)
        with not_fitting(where):
            self.model.load_state_dict(state["model"])
            self.objective.load_state_dict(state["objective"])

    def evaluation_features(self, images: torch.Tensor, labels: torch.Tensor, dataset: ImageDataset,
                            batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Features of an image set in eval mode, without augmentation (for classification), in batches of
        the training batch on a CPU and four of them on a GPU (no graph is kept, so they fit).

        Measured on a 2-core CPU (default profile, bf16): 31 600 images/s at the training batch of 250,
        12 100 at 500 and 13 700 at 1000 — larger batches leave the caches — so the CPU keeps it."""
        batch_size = batch_size * 4 if self.device.type == "cuda" else batch_size
        with self.autocast:
            return extract_features(self.model, images, labels, mean=dataset.mean, std=dataset.std,
                                    device=self.device, batch_size=batch_size, channels_last=self.channels_last)

    def latching_features(self, loader: DeviceLoader, epoch: int, seed: int, rank: int = 0,
                          images: int = 0, micro_batch: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Features of the training set as ``epoch``'s training steps see them (see ``training_mode_features``);
        with ``images``, of about that many: the first ⌈images/batch⌉ batches of the epoch's order."""
        steps = math.ceil(images / loader.batch_size) if images else None
        return training_mode_features(self.model, loader, epoch, seed=seed, rank=rank, autocast=self.autocast,
                                      steps=steps, micro_batch=micro_batch)


def construction_of(config: TrainConfig) -> Construction:
    """The ReduNet settings of a configuration (its ε² is the rates', eq. 1; its layers are the epochs)."""
    settings = ReduNetSettings(layers=config.epochs, eta=config.redunet_eta, eps2=config.eps2,
                               lam=config.redunet_lambda, pool=config.redunet_pool, channels=config.redunet_channels,
                               kernel=config.redunet_kernel, shifts=config.redunet_shifts,
                               head=config.redunet_head)
    return Construction(settings, getattr(torch, config.objective_dtype))


def on_device(model: nn.Module, device: torch.device, precision: BackbonePrecision) -> nn.Module:
    """A featurizer on ``device``, in the memory format ``precision`` runs it in."""
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if precision.channels_last else model


@contextmanager
def not_fitting(where: str) -> Iterator[None]:
    """The errors of ``load_state_dict`` on a checkpoint that does not fit, as one-line BadInput."""
    try:
        yield
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BadInput(f"{where}: the checkpoint does not fit the run's config.toml: {first}") from None
