"""The training loop: Algorithm 1 for V-MCR², the same loop for MCR² and CE.

Everything random is derived from (seed, epoch, step) — the data order and the
augmentation by the loader, dropout by re-seeding the global generator before each
step — so a run resumed at any step sees exactly what an uninterrupted run sees.
Per-step metrics stay on the device and are read only at log points.

Data parallelism (``dist``, see ``vmcr2_cli.distributed``): each process runs this
loop on its share of every global batch, its featurizer wrapped in DDP; the objective
sees the global batch through ``dist`` (features gathered with their gradients,
statistics summed), so loss, metrics, Γ and A are the global ones on every process.
Each process draws its own dropout stream (``step_seed`` of its rank). The processes
decide together when to stop, rank 0 alone writes the run directory (the others hold
a ``FollowerRun``), and the objective's state is re-broadcast from rank 0 at each
epoch's end, so nondeterministic GPU kernels cannot make the copies drift apart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from vmcr2_cli.config import TrainConfig
from vmcr2_cli.data import ImageDataset
from vmcr2_cli.data.seeding import step_seed
from vmcr2_cli.distributed import SINGLE_PROCESS, Distributed
from vmcr2_cli.objectives import (ClassPartition, NonFiniteFeaturesError, NotPositiveDefiniteError, StepResult,
                                  whole_batch)
from vmcr2_cli.runs import RunDir
from vmcr2_cli.training.checkpoints import CHECKPOINT_VERSION
from vmcr2_cli.training.gpu_monitor import GpuMonitor
from vmcr2_cli.training.interrupts import StopRequested, TrainingInterrupted
from vmcr2_cli.training.latching import ClassMomentSums, latch_from_moments, latch_over_dataset
from vmcr2_cli.training.loop import RunLoop, signal_name
from vmcr2_cli.training.networks import not_fitting
from vmcr2_cli.training.optim import StepSchedule, build_optimizer
from vmcr2_cli.training.setup import training_loader
from vmcr2_cli.training.step import fitting_micro_batch, step_gradients, training_step

class NonFiniteLoss(Exception):
    """The loss became NaN or ±inf; the last good checkpoint is kept."""

    def __init__(self, step: int) -> None:
        super().__init__(f"non-finite loss at step {step}")
        self.step = step


@dataclass
class EpochAccumulator:
    """Device-side sums of the per-step metrics of the current epoch (no host sync)."""

    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    steps: int = 0
    images: int = 0
    seconds: float = 0.0  # wall time of the steps done so far this epoch (resume adds to it)

    def add(self, metrics: dict[str, torch.Tensor], images: int) -> None:
        for key, value in metrics.items():
            value = value.detach().float()
            self.sums[key] = self.sums[key] + value if key in self.sums else value.clone()
        self.steps += 1
        self.images += images

    def means(self) -> dict[str, float]:
        return {key: value.item() / self.steps for key, value in self.sums.items()}

    def state_dict(self) -> dict:
        return {"sums": {k: v.cpu() for k, v in self.sums.items()}, "steps": self.steps,
                "images": self.images, "seconds": self.seconds}

    @classmethod
    def from_state(cls, state: dict, device: torch.device) -> "EpochAccumulator":
        sums = {k: v.to(device) for k, v in state["sums"].items()}
        return cls(sums, state["steps"], state["images"], state["seconds"])


class OutOfDeviceMemory(Exception):
    """A training step ran out of GPU memory; ``fits``: the micro_batch measured to fit, if one was."""

    def __init__(self, message: str, fits: int | None = None) -> None:
        super().__init__(message)
        self.fits = fits


class Trainer(RunLoop):
    """Owns the model, the objective, the optimizer and the loop over epochs.

    ``on_epoch`` / ``on_step`` callbacks receive the logged records, for the
    terminal display; the run directory is written here (by rank 0: the other ranks
    are given a ``FollowerRun``). ``model`` is the featurizer itself (checkpoints,
    evaluation, latching); ``train_model`` the one the training step runs (its DDP
    wrapper under data parallelism). ``measure``: what an evaluation during training
    computes from the trainer (``evaluation.during_training.measure``, given by the runner:
    the loop does not import the judging); needed only with ``eval_every`` or at the end.
    """

    def __init__(self, config: TrainConfig, dataset: ImageDataset, run: RunDir, device: torch.device,
                 dist: Distributed = SINGLE_PROCESS,
                 measure: Callable[["Trainer"], dict[str, Any]] | None = None, layers_of: dict | None = None) -> None:
        super().__init__(config, dataset, run, device, dist, measure, layers_of)
        # What the objective needs from the other processes; None keeps the one-process path.
        self.collective = dist if dist.enabled else None
        self.autocast = self.networks.autocast
        self.train_model = dist.data_parallel(self.model, device)
        self.optimizer = build_optimizer(list(self.model.parameters()) + list(self.objective.parameters()), config)
        self.loader = training_loader(config, dataset, device, self.networks.channels_last, dist)
        self.steps_per_epoch = self.loader.steps_per_epoch
        self.schedule = StepSchedule(self.optimizer, config, self.loader.steps_per_epoch,
                                     getattr(self.objective, "variational", None))
        self.gpu = GpuMonitor(device)
        self.step_in_epoch = 0  # steps of ``epoch`` already done
        self.latched = False
        self.accumulator = EpochAccumulator()
        # Class moments of this epoch's training batches, when the latch at its end reads them.
        self.epoch_moments: ClassMomentSums | None = self._new_epoch_moments()

    def start_from(self, weights: dict, where: str) -> None:
        """f_θ's weights from another run (``init_from``) before the first step; with ``init_random``, its
        ReduNet's operators then drawn anew (seeded by the run's seed)."""
        with not_fitting(where):
            self.model.load_state_dict(weights)
        if self.config.init_random:
            self.model.randomize_operators(torch.Generator().manual_seed(self.config.seed))

    @property
    def is_variational(self) -> bool:
        return self.config.objective == "vmcr2"

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        return {
            "version": CHECKPOINT_VERSION,
            "model": self.model.state_dict(),
            "objective": self.objective.state_dict(),  # Γ and A for V-MCR², the head for CE
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "latched": self.latched,
            "accumulator": self.accumulator.state_dict(),
            # Empty at an epoch's start (k·d² zeros: 4 GB at k = d = 1000): rebuilt on load instead.
            "epoch_moments": (self.epoch_moments.state_dict() if self.epoch_moments is not None
                              and self.step_in_epoch > 0 else None),
            # Every random stream is derived from the seed and (epoch, step): see module docstring.
            "seed": self.config.seed,
            "config": self.config.to_dict(),  # what trained it: an edited config.toml is found at resume
        }

    def _load_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.objective.load_state_dict(state["objective"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = state["epoch"]
        self.step_in_epoch = state["step_in_epoch"]
        self.global_step = state["global_step"]
        self.latched = state["latched"]
        self.accumulator = EpochAccumulator.from_state(state["accumulator"], self.device)
        moments = state.get("epoch_moments")  # None at an epoch's start; absent before latch_source existed
        self.epoch_moments = (ClassMomentSums.from_state(moments, self.device) if moments is not None
                              else self._new_epoch_moments())

    def _synchronize_objective(self) -> None:
        """Rank 0's Γ, A (and CE head) on every rank: equal by construction, equal bit for bit."""
        if self.dist.enabled:
            self.dist.broadcast_([*self.objective.parameters(), *self.objective.buffers()])

    # ------------------------------------------------------------------ latching (Algorithm 2)
    def latch(self) -> dict:
        """Latch Γ and A (Algorithm 2); log a ``latch`` line.

        From the class moments of the epoch's own training batches when they were gathered
        (``latch_source = "epoch"``), else from a pass over the training set (or its sample).
        """
        variational, k, batch_size = self.objective.variational, self.dataset.num_classes, self.config.batch_size
        if self.epoch_moments is not None and self.epoch_moments.probe is not None:
            moments, counts = self.epoch_moments.summed(self.collective)
            probe_z, probe_y = self.epoch_moments.probe  # the epoch's last batch: this rank's rows, gathered
            probe = (whole_batch(probe_z, self.collective), whole_batch(probe_y, self.collective))
            report = latch_from_moments(variational, moments, counts, probe, k, batch_size)
        else:
            features, labels = self.latching_features()  # this rank's share of the training set (or of its sample)
            report = latch_over_dataset(variational, features, labels, k, batch_size, seed=self.config.seed,
                                        collective=self.collective)
        record = {"epoch": self.epoch, "step": self.global_step, **report}
        self.run.append_metrics("latch", **record)
        self.latched = True
        return record

    def latching_features(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's share of the training set's features, as this epoch's steps see them."""
        return self.networks.latching_features(self.loader, self.epoch, self.config.seed, self.dist.rank,
                                               images=self.config.latch_images, micro_batch=self.config.micro_batch)

    def _latches_after(self, epoch: int) -> bool:
        """True when Algorithm 1 latches at the end of ``epoch`` (0-based): every latch_every epochs."""
        every = self.config.latch_every
        return self.is_variational and every > 0 and (epoch + 1) % every == 0

    def _new_epoch_moments(self) -> ClassMomentSums | None:
        """Empty sums for the epoch in progress when its latch reads the epoch's batches, else None."""
        if (self.config.latch_source != "epoch" or self.epoch >= self.config.epochs
                or not self._latches_after(self.epoch)):
            return None
        return ClassMomentSums.zeros(self.dataset.num_classes, self.config.feature_dim, self.device)

    # ------------------------------------------------------------------ the loop
    def fit(self, stop: StopRequested) -> None:
        """Train until ``config.epochs``; raises TrainingInterrupted or NonFiniteLoss."""
        config = self.config
        if self.is_variational and not self.latched:
            self.latch()  # Algorithm 1, line 2: initialize Γ, A by latching
            self.save_checkpoint()
            if self.dist.any(stop.requested):  # a signal during the latch: stop before the first step
                raise TrainingInterrupted(signal_name(stop))
        while self.epoch < config.epochs:
            self._train_epoch(stop)
            if self._latches_after(self.epoch):
                self.latch()  # Algorithm 1, lines 13–14 (every latch_every epochs)
            self._synchronize_objective()
            self.epoch += 1
            self.step_in_epoch = 0
            self.accumulator = EpochAccumulator()
            self.epoch_moments = self._new_epoch_moments()
            if self._evaluation_due():
                self.evaluate()  # the other ranks wait for rank 0 at the next collective
            stopping = self.dist.any(stop.requested)
            if stopping or self.epoch == config.epochs or self.checkpoint_clock.due():
                self.save_checkpoint()
            if stopping:
                raise TrainingInterrupted(signal_name(stop))

    def train_step(self, images: torch.Tensor, partition: ClassPartition) -> StepResult:
        """Algorithm 1, lines 4–12 on one batch: this rank's images, the global batch's classes. When the
        epoch's latch reads its batches, their features join its class moments."""
        moments = self.epoch_moments
        observe = None if moments is None else (
            lambda Z: moments.add(Z, partition.rows_of(self.dist.rank, self.dist.world_size)))
        try:
            return training_step(self.train_model, self.objective, self.optimizer, self.autocast, images,
                                 partition, self.collective, observe=observe, micro_batch=self.config.micro_batch)
        except (NonFiniteFeaturesError, NotPositiveDefiniteError):  # caught where validation runs (CPU)
            raise NonFiniteLoss(self.global_step) from None
        except torch.OutOfMemoryError:
            raise self._out_of_memory(images, partition) from None

    def _out_of_memory(self, images: torch.Tensor, partition: ClassPartition) -> OutOfDeviceMemory:
        """The error of a step that ran out of GPU memory, naming the micro_batch that fits: measured by
        computing the step's gradients in ever smaller chunks (one process only: the attempts' collectives
        would wait for processes that did not fail). The attempts move Γ, A; the run stops after them and
        its checkpoint on disk is the last good one."""
        rows, tried = images.shape[0], self.config.micro_batch
        what = (f"out of GPU memory at step {self.global_step + 1} with "
                + (f"micro_batch = {tried}" if 0 < tried < rows else f"{rows} images at once"))
        if self.dist.enabled:
            return OutOfDeviceMemory(f"{what}; set a smaller micro_batch (a one-process run measures the one "
                                     f"that fits)")

        cuda = self.device.type == "cuda"

        def attempt(size: int) -> None:
            self.optimizer.zero_grad(set_to_none=True)
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(self.device)
            step_gradients(self.train_model, self.objective, self.autocast, images, partition, micro_batch=size)

        fits = fitting_micro_batch(attempt, rows, tried)
        self.optimizer.zero_grad(set_to_none=True)
        if fits is None:
            return OutOfDeviceMemory(f"{what}; not even micro_batch = 1 fits: the network or the objective "
                                     f"alone is too large for this GPU")
        peak = ""
        if cuda:
            used, total = (torch.cuda.max_memory_allocated(self.device),
                           torch.cuda.get_device_properties(self.device).total_memory)
            peak = f": a step in chunks of {fits} peaked at {used / 2**30:.1f} of {total / 2**30:.1f} GiB"
        return OutOfDeviceMemory(f"{what}; micro_batch = {fits} fits (measured{peak})", fits)

    def _train_epoch(self, stop: StopRequested) -> None:
        config = self.config
        self.model.train()
        acc = self.accumulator
        # First step at which the loss was non-finite, and the step counter it is taken from: both
        # on the device, so that no step waits for a host→device copy; read at log points.
        first_bad_step = torch.full((), -1, dtype=torch.long, device=self.device)
        device_step = torch.full((), self.global_step, dtype=torch.long, device=self.device)
        log_mark = (time.perf_counter(), acc.images)
        epoch_start = time.perf_counter() - acc.seconds
        order = self.loader.permutation(self.epoch) if self.dist.enabled else None
        for step, batch in self.loader.epoch(self.epoch, start_step=self.step_in_epoch):
            torch.manual_seed(step_seed(config.seed, self.global_step, self.dist.rank))  # dropout stream of this step
            self.schedule.set(self.global_step)
            # Grouping by class from the CPU labels: no device→host sync in the step. Under
            # DDP every rank knows the global batch's labels from the epoch's order.
            labels = batch.labels_cpu if order is None else self.loader.batch_labels(self.loader.labels_cpu[
                order[step * self.loader.batch_size:(step + 1) * self.loader.batch_size]])
            partition = ClassPartition(labels, self.dataset.num_classes)
            result = self.train_step(batch.images, partition)
            finite = torch.isfinite(result.loss.detach())
            first_bad_step = torch.where((first_bad_step < 0) & ~finite, device_step, first_bad_step)
            device_step += 1
            acc.add({"loss": result.loss.detach(), **result.metrics}, partition.num_samples)
            self.global_step += 1
            self.step_in_epoch = step + 1
            if self.global_step % config.log_every == 0:
                self._check_finite(first_bad_step)
                now = time.perf_counter()
                images_per_s = (acc.images - log_mark[1]) / max(now - log_mark[0], 1e-9)
                log_mark = (now, acc.images)
                record = {"epoch": self.epoch, "step": self.global_step, "loss": result.loss.item(),
                          **{k: v.item() for k, v in result.metrics.items()},
                          "lr": self.optimizer.param_groups[0]["lr"], **self.schedule.logged(self.global_step - 1),
                          "images_per_s": images_per_s, **self._gpu_sample()}
                self.run.append_metrics("step", **record)
                self.on_step(record)
            if self.dist.any(stop.requested):  # every rank stops after the same step
                self._check_finite(first_bad_step)
                acc.seconds = time.perf_counter() - epoch_start
                self.save_checkpoint()
                raise TrainingInterrupted(signal_name(stop))
        self._check_finite(first_bad_step)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        epoch_time = time.perf_counter() - epoch_start
        record = {"epoch": self.epoch, "step": self.global_step, **acc.means(),
                  "lr": self.optimizer.param_groups[0]["lr"], **self.schedule.logged(self.global_step - 1),
                  "epoch_time_s": epoch_time,
                  "images_per_s": acc.images / max(epoch_time, 1e-9), **self._gpu_sample()}
        self.run.append_metrics("epoch", **record)
        self.on_epoch(record)

    def _gpu_sample(self) -> dict:
        """GPU utilization and memory: this device's, or under DDP every rank's.

        With several ranks ``gpu_util`` is their mean and ``gpu_mem_mb`` their maximum
        (the one nearest to running out), and ``*_per_rank`` lists each rank's.
        """
        if not self.dist.enabled:
            return self.gpu.sample()
        samples = self.dist.all_gather_objects(self.gpu.sample())
        utils = [s["gpu_util"] for s in samples]
        memory = [s["gpu_mem_mb"] for s in samples]
        known_utils = [u for u in utils if u is not None]
        known_memory = [m for m in memory if m is not None]
        return {"gpu_util": sum(known_utils) / len(known_utils) if known_utils else None,
                "gpu_mem_mb": max(known_memory) if known_memory else None,
                "gpu_util_per_rank": utils, "gpu_mem_mb_per_rank": memory}

    def _check_finite(self, first_bad_step: torch.Tensor) -> None:
        bad = int(first_bad_step.item())
        if bad >= 0:
            raise NonFiniteLoss(bad)


