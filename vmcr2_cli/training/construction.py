"""A ReduNet's layers constructed one an epoch (``model = "redunet"`` or ``"redunet-shift"``), not trained.

Each layer is one projected gradient-ascent step on ΔR (the MCR² lecture's eqs. 9–17, see
models/redunet.py), its operators E and C_j computed from the construction set's features entering
it: a class-balanced seeded sample of ``redunet_samples`` training images. Each layer logs an
``epoch`` line with the construction set's R, R_c and ΔR (eq. 1; shift-augmented for the invariant
form) leaving it, so watch, compare, TensorBoard and the CSV show the rates along the layers; the
layers built so far are the checkpoint. A resumed construction passes the construction set through
the saved layers with its labels and goes on: the same layers as one uninterrupted.
"""

from __future__ import annotations

import time

import torch

from vmcr2_cli.data import iterate_eval
from vmcr2_cli.training.checkpoints import CHECKPOINT_VERSION
from vmcr2_cli.training.interrupts import StopRequested, TrainingInterrupted
from vmcr2_cli.training.loop import RunLoop, signal_name
from vmcr2_cli.training.trainer import EpochAccumulator


class Constructor(RunLoop):
    """The loop of a constructed network: a layer an epoch, an epoch a step."""

    steps_per_epoch = 1

    def state_dict(self) -> dict:
        return {
            "version": CHECKPOINT_VERSION,
            "model": self.model.state_dict(),  # the operators of every layer built so far
            "objective": self.objective.state_dict(),
            "optimizer": {},  # nothing is trained by gradient
            "epoch": self.epoch,
            "step_in_epoch": 0,
            "global_step": self.global_step,
            "latched": False,
            "accumulator": EpochAccumulator().state_dict(),
            "seed": self.config.seed,
            "config": self.config.to_dict(),
        }

    def _load_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.epoch = state["epoch"]
        self.global_step = state["global_step"]

    def construction_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The construction set's normalized images and labels on the device (see :func:`balanced_sample`)."""
        dataset = self.dataset
        chosen = balanced_sample(dataset.train_labels, self.config.redunet_samples, self.config.seed)
        labels = dataset.train_labels[chosen]
        batches = iterate_eval(dataset.train_images[chosen], labels, self.config.network_batch, self.device,
                               mean=dataset.mean, std=dataset.std)
        return torch.cat([batch.images for batch in batches]), labels.to(self.device)

    @torch.no_grad()
    def fit(self, stop: StopRequested) -> None:
        """Construct layers until ``config.epochs``; raises TrainingInterrupted on a signal."""
        k = self.dataset.num_classes
        X, labels = self.construction_set()
        Z = self.model.through(self.model.input_features(X), labels)  # past the layers a resume loaded
        while self.epoch < self.config.epochs:
            started = time.perf_counter()
            Z = self.model.grow(Z, labels, k)
            rates = self.model.rates(Z, labels, k)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            seconds = time.perf_counter() - started
            self.global_step += 1
            record = {"epoch": self.epoch, "step": self.global_step, "loss": -rates.delta_r.item(),
                      "r": rates.r.item(), "r_c": rates.r_c.item(), "delta_r": rates.delta_r.item(),
                      "epoch_time_s": seconds, "images_per_s": len(X) / max(seconds, 1e-9)}
            self.run.append_metrics("epoch", **record)
            self.on_epoch(record)
            self.epoch += 1
            if self._evaluation_due():
                self.evaluate()
            stopping = stop.requested
            if stopping or self.epoch == self.config.epochs or self.checkpoint_clock.due():
                self.save_checkpoint()
            if stopping:
                raise TrainingInterrupted(signal_name(stop))


def balanced_sample(labels: torch.Tensor, samples: int, seed: int) -> torch.Tensor:
    """Indices of ``samples`` training images, as even across the classes as they allow: in a seeded
    random order, each class's first image, then each class's second, and so on (a class that runs
    out leaves its share to the others)."""
    labels = labels.cpu()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    classes = labels[order]
    by_class = torch.argsort(classes, stable=True)
    counts = torch.bincount(classes)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(order)
    rank[by_class] = torch.arange(len(order)) - starts[classes[by_class]]  # the image's place in its class
    rounds = torch.argsort(rank * len(order) + torch.arange(len(order)))
    return order[rounds[:samples]]
