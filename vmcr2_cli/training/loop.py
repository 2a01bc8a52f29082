"""What every way of making a featurizer shares with the runner: the run it writes, its networks,
where it stands (epoch, global step), checkpoints, and the evaluations during it with best.pt.

Two loops stand on it: the trainer (back-propagation, training/trainer.py) and the construction of a
ReduNet's layers (training/construction.py). The runner (runner/lifecycle.py) drives either one the
same way: ``restore``, ``fit(stop)``, ``evaluate``, and reads ``epoch``, ``global_step``, ``saved_at``.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch

from vmcr2_cli.config import TrainConfig
from vmcr2_cli.data import ImageDataset
from vmcr2_cli.distributed import SINGLE_PROCESS, Distributed
from vmcr2_cli.runs import RunDir
from vmcr2_cli.training.checkpoints import check_checkpoint
from vmcr2_cli.training.networks import Networks, not_fitting


class RunLoop:
    """The state and the duties both loops share; ``state_dict``/``load_state_dict`` and ``fit`` are theirs.

    ``measure``: what an evaluation during training computes from the loop
    (``evaluation.during_training.measure``, given by the runner: the loops do not import the judging);
    needed only with ``eval_every`` or at the end.
    """

    steps_per_epoch: int

    def __init__(self, config: TrainConfig, dataset: ImageDataset, run: RunDir, device: torch.device,
                 dist: Distributed = SINGLE_PROCESS,
                 measure: Callable[["RunLoop"], dict[str, Any]] | None = None, layers_of: dict | None = None) -> None:
        self.config = config
        self.dataset = dataset
        self.run = run
        self.device = device
        self.dist = dist
        self.measure = measure
        self.networks = Networks.build(config, dataset, device, layers_of)
        self.model, self.objective = self.networks.model, self.networks.objective
        self.epoch = 0  # the epoch in progress (0-based)
        self.global_step = 0
        self.saved_at: tuple[int, int] | None = None  # (epoch, global step) of the checkpoint on disk
        self.checkpoint_clock = CheckpointClock(config.checkpoint_minutes)
        self.evaluation: dict | None = None  # the last eval line's values (rank 0)
        self.best: dict | None = None  # keep_best: metric, value, epoch, step of checkpoints/best.pt
        self.on_step: Callable[[dict], None] = lambda record: None
        self.on_epoch: Callable[[dict], None] = lambda record: None

    def state_dict(self) -> dict:
        raise NotImplementedError

    def _load_state(self, state: dict) -> None:
        """The loop's own part of ``load_state_dict``."""
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        self._load_state(state)
        self.saved_at = (self.epoch, self.global_step)
        self.best = self._best_on_disk()

    def restore(self, state: dict, where: str) -> None:
        """``load_state_dict``, for a checkpoint read from a file: BadInput (one line, starting
        with ``where``) when it is not a checkpoint this run can continue from."""
        check_checkpoint(state, self.config, where)
        self.networks.check_fits(state, where)
        with not_fitting(where):
            self.load_state_dict(state)

    def _best_on_disk(self) -> dict | None:
        """The record of the run's best.pt, the best so far for a resumed run: it may be newer than
        last.pt (written at an evaluation after which the run stopped before its next checkpoint)."""
        if not (self.config.keep_best and self.dist.is_main and self.run.checkpoint_file("best").is_file()):
            return None
        return self.run.load_checkpoint(which="best", mmap=True).get("best")

    def save_checkpoint(self) -> None:
        with self.checkpoint_clock.writing():
            if self.dist.is_main:
                self.run.save_checkpoint(self.state_dict())
        self.saved_at = (self.epoch, self.global_step)

    def evaluation_features(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features of an image set in eval mode, without augmentation (for classification)."""
        return self.networks.evaluation_features(images, labels, self.dataset, self.config.network_batch)

    def _evaluation_due(self) -> bool:
        """True when an evaluation during training follows the epoch just ended (rank 0 evaluates)."""
        return bool(self.config.eval_every) and self.epoch % self.config.eval_every == 0 and self.dist.is_main

    def evaluate(self) -> dict:
        """Measure the featurizer now (``measure``), log an ``eval`` line, keep best.pt if it is the best."""
        if self.measure is None:
            raise RuntimeError("this loop was built without a measure: evaluating needs one "
                               "(vmcr2_cli.evaluation.during_training.measure)")
        values = self.measure(self)
        self.run.append_metrics("eval", epoch=self.epoch, step=self.global_step, **values)
        self.evaluation = {"epoch": self.epoch, **values}
        metric = self.config.keep_best
        score = values.get(metric) if metric else None
        if score is not None and (self.best is None or score > self.best["value"]):
            self.best = {"metric": metric, "value": score, "epoch": self.epoch, "step": self.global_step}
            self.run.save_checkpoint({**self.state_dict(), "best": self.best}, which="best")
        return values


class CheckpointClock:
    """When an epoch's end writes a checkpoint (the last epoch and every stop always do).

    ``minutes`` > 0: once that many minutes have passed since the last checkpoint. 0 (auto):
    whenever the time since the last one is at least ``1/COST_SHARE`` times what writing the
    last one took, so checkpoints cost at most 2% of a run; on a CPU, where an epoch takes
    seconds and a checkpoint milliseconds, that is every epoch. Epochs between two
    checkpoints are replayed exactly by ``--resume`` after a crash; a signal or a full
    disk stops the run with a checkpoint of its last step.
    """

    COST_SHARE = 0.02

    def __init__(self, minutes: float) -> None:
        self.minutes = minutes
        self.last_end: float | None = None  # perf_counter() when the last checkpoint was written
        self.last_cost = 0.0  # seconds the last write took

    @contextmanager
    def writing(self) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.last_end = time.perf_counter()
        self.last_cost = self.last_end - start

    def due(self) -> bool:
        if self.last_end is None:
            return True
        elapsed = time.perf_counter() - self.last_end
        if self.minutes > 0:
            return elapsed >= self.minutes * 60
        return elapsed * self.COST_SHARE >= self.last_cost


def signal_name(stop) -> str:
    """The signal that stopped training; under DDP maybe another rank's."""
    return stop.signal_name or "a signal to another process"
