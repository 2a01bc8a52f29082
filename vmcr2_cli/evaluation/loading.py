"""A run's checkpoint brought back to life: config, dataset, model and objective on a device.

Shared by ``vmcr2 eval`` and ``vmcr2 latch``. The commands first :func:`open_run` (cheap:
config.toml and meta.json, every check of the user's input), then :func:`load_run` (the
dataset, the model and the checkpoint's weights).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmcr2_cli.config import TrainConfig, load_config_file
from vmcr2_cli.errors import BadInput
from vmcr2_cli.runs import CHECKPOINT_FILES, RunDir


@dataclass(frozen=True)
class OpenedRun:
    """A run directory with its resolved configuration and its meta.json."""

    run: RunDir
    config: TrainConfig
    meta: dict[str, Any]


@dataclass
class LoadedRun:
    """A run at one of its checkpoints: ``networks`` holds its model and objective with their weights."""

    run: RunDir
    config: TrainConfig
    meta: dict[str, Any]
    state: dict[str, Any]  # the checkpoint, on the CPU
    dataset: Any  # ImageDataset
    networks: Any  # training.networks.Networks
    device: Any  # torch.device
    checkpoint: str = "last"  # which of CHECKPOINT_FILES

    def evaluation_features(self, images, labels):
        """Features of an image set in eval mode, in batches of the run's size."""
        return self.networks.evaluation_features(images, labels, self.dataset, self.config.network_batch)

    def latching_features(self):
        """The training set's features as the checkpoint's epoch's training steps see them."""
        from vmcr2_cli.training.setup import training_loader

        loader = training_loader(self.config, self.dataset, self.device, self.networks.channels_last)
        return self.networks.latching_features(loader, self.epoch, self.config.seed,
                                               micro_batch=self.config.micro_batch)

    @property
    def epoch(self) -> int:
        """Epochs completed at the checkpoint."""
        return int(self.state.get("epoch", 0))

    @property
    def global_step(self) -> int:
        return int(self.state.get("global_step", 0))

    @property
    def class_names(self) -> list[str]:
        """The dataset's class names, or the class numbers when it has none."""
        k = self.dataset.num_classes
        names = list(getattr(self.dataset, "class_names", None) or [])
        return names if len(names) == k else [str(j) for j in range(k)]


def open_run(path: str | Path) -> OpenedRun:
    """The run at ``path`` (``runs/latest`` followed); BadInput if it is not a readable run."""
    run = RunDir.open(path)
    return OpenedRun(run, load_config_file(run.config_path), run.read_meta())


def load_run(opened: OpenedRun, *, device: str = "auto", data_root: str | Path | None = None,
             purpose: str = "eval", log: Callable[[str], None] = lambda text: None,
             checkpoint: str = "last") -> LoadedRun:
    """Rebuild ``opened``'s model and objective from a checkpoint on ``device``.

    Args:
        device: where to compute (auto, cpu, cuda, cuda:N), whatever device the run trained on.
        data_root: where the dataset's files are, when not where the run found them.
        purpose: the command's name, for messages.
        checkpoint: ``last`` (checkpoints/last.pt) or ``best`` (checkpoints/best.pt, with keep_best).
    """
    from vmcr2_cli.training.networks import Networks
    from vmcr2_cli.training.setup import load_training_data

    run = opened.run
    torch_device = device_named(device)
    changes: dict[str, Any] = {"device": device}
    if data_root is not None:
        changes["data_root"] = str(data_root)
    config = dataclasses.replace(opened.config, **changes)
    state = load_state(opened, checkpoint, purpose)
    where = f"{purpose} {run.path}"
    log(f"loading {config.dataset} for {run.name}…")
    dataset = load_training_data(config)
    networks = Networks.build(config, dataset, torch_device)
    networks.load(state, where)
    return LoadedRun(run, config, opened.meta, state, dataset, networks, torch_device, checkpoint)


def device_named(device: str):
    """The torch.device of ``--device`` (auto, cpu, cuda, cuda:N); BadInput for a malformed name."""
    from vmcr2_cli.training.setup import resolve_device

    try:
        return resolve_device(device)
    except RuntimeError:  # torch.device() of a malformed name
        raise BadInput(f"--device {device!r}: expected auto, cpu, cuda or cuda:N") from None


def check_checkpoint_name(checkpoint: str) -> None:
    """BadInput unless ``--checkpoint`` names one of CHECKPOINT_FILES (last, best)."""
    if checkpoint not in CHECKPOINT_FILES:
        raise BadInput(f"--checkpoint {checkpoint!r}: expected {' or '.join(CHECKPOINT_FILES)}")


def load_state(opened: OpenedRun, checkpoint: str, purpose: str) -> dict[str, Any]:
    """The run's ``checkpoint`` (last or best) on the CPU, checked against its config.toml (BadInput)."""
    from vmcr2_cli.training.checkpoints import check_checkpoint

    run = opened.run
    check_checkpoint_name(checkpoint)
    if checkpoint == "best" and not opened.config.keep_best:
        raise BadInput(f"{purpose} {run.path}: --checkpoint best: the run keeps no best checkpoint "
                       f"(train with --set keep_best=<metric> and eval_every)")
    if not run.checkpoint_file(checkpoint).is_file():
        raise BadInput(f"{purpose} {run.path}: the run has no checkpoint yet ({CHECKPOINT_FILES[checkpoint]})")
    state = run.load_checkpoint(map_location="cpu", which=checkpoint)
    check_checkpoint(state, opened.config, f"{purpose} {run.path}")  # before the dataset loads
    return state
