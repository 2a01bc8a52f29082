"""What the processes of the distributed tests run (tests/test_distributed.py).

``run_on_processes`` starts W processes with the environment torchrun would give them
and runs every scenario in each; the scenarios save what they saw as ``.pt`` files
for the test process to compare with one process's results. One start for all
scenarios: starting a process that imports torch is the slow part.
"""

from __future__ import annotations

import faulthandler
import os
import shutil
import socket
import warnings
from itertools import islice
from pathlib import Path

import torch
from torch import nn

from vmcr2_cli.config import TrainConfig, resolve_config
from vmcr2_cli.distributed import SINGLE_PROCESS, Distributed, FollowerRun, process_group_from_environment, run_for_rank
from vmcr2_cli.errors import BadInput
from vmcr2_cli.objective_registry import SELF_SUPERVISED
from vmcr2_cli.objectives import ClassPartition, VariationalMCR2
from vmcr2_cli.runs import RunDir
from vmcr2_cli.training.latching import latch_over_dataset
from vmcr2_cli.training.setup import load_training_data
from vmcr2_cli.data.seeding import step_seed
from vmcr2_cli.training.interrupts import TrainingInterrupted
from vmcr2_cli.training.trainer import Trainer

# vmcr2-<method>: vmcr2_method = <method>; the self-supervised ones with 4 views of each image.
OBJECTIVES = ("mcr2", "vmcr2", "vmcr2-block", "vmcr2-tangent", "vmcr2-tangent-push", "ce", "mcr2-ssl", "tcr")
CPU = torch.device("cpu")


def tiny_config(objective: str, **changes) -> TrainConfig:
    """10 synthetic classes, 400 images, 4 steps of 100 an epoch: seconds on a CPU. fp32: the processes'
    results are compared with one process's to float32 rounding, finer than bf16's."""
    values = {"synthetic_train_per_class": 40, "synthetic_test_per_class": 10, "batch_size": 100,
              "device": "cpu", "log_every": 1, "eval_at_end": False, "precision": "fp32", **changes}
    if objective in SELF_SUPERVISED:
        values.update(augment="resized-crop", views=4)
    elif objective.startswith("vmcr2-"):
        objective, _, values["vmcr2_method"] = objective.partition("-")
    return resolve_config("synthetic", objective, values)[0]


def tiny_trainer(objective: str, out: Path, **changes) -> Trainer:
    """A one-process Trainer of ``tiny_config(objective, **changes)`` writing nothing (a follower's run)."""
    config = tiny_config(objective, **changes)
    return Trainer(config, load_training_data(config), FollowerRun(RunDir(out)), CPU)


def one_step_config(objective: str, **changes) -> TrainConfig:
    """Plain SGD with a large rate, so that the parameters' change is the gradient itself."""
    return tiny_config(objective, optimizer="sgd", lr=1.0, momentum=0.0, **changes)


# One step's variants on the processes: "" the whole share at once, "-chunked" in chunks of 15 rows
# of each process's 50 (200 with 4 views), the last one smaller.
STEP_VARIANTS = {"": {}, "-chunked": {"micro_batch": 15}}


def without_dropout(trainer: Trainer) -> Trainer:
    """Dropout draws per process; the one-step comparison needs the same network everywhere."""
    for module in trainer.model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    return trainer


def global_partition(trainer: Trainer, epoch: int, step: int) -> ClassPartition:
    """The classes of the global batch (epoch, step), which every process knows."""
    loader = trainer.loader
    return ClassPartition(loader.batch_labels(loader.labels_cpu[loader.batch_indices(epoch, step)]),
                          trainer.dataset.num_classes)


def trained_state(trainer: Trainer) -> dict[str, torch.Tensor]:
    """The featurizer's parameters and the objective's state (Γ, A or the CE head)."""
    return {**{f"model.{k}": v.clone() for k, v in trainer.model.state_dict().items()},
            **{f"objective.{k}": v.clone() for k, v in trainer.objective.state_dict().items()}}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_on_processes(out: Path, world_size: int = 2) -> None:
    """Every scenario on ``world_size`` CPU processes (gloo); results under ``out``.

    A process killed by a signal (gloo aborts the process when a peer's socket fails, which
    a loaded CI machine made happen once) is started again once, with what the processes
    printed as a warning; a second death fails with their output in the message, since
    pytest's captured output of spawned processes is easily cut from a CI log. A scenario's
    Python exception is never retried.
    """
    for attempt in (1, 2):
        try:
            torch.multiprocessing.spawn(_process, args=(world_size, free_port(), str(out)), nprocs=world_size)
            return
        except torch.multiprocessing.ProcessExitedException as error:
            report = f"{error}; what the processes printed:\n{_printed(out, world_size)}"
            if attempt == 2:
                raise AssertionError(report) from None
            warnings.warn(f"distributed test processes started again after: {report}")
            shutil.rmtree(out / "runs", ignore_errors=True)  # the scenarios' run folders, made anew


def _stderr_file(out: Path, rank: int) -> Path:
    return out / f"rank{rank}.stderr"


def _printed(out: Path, world_size: int, lines: int = 30) -> str:
    """The last ``lines`` lines each process wrote to its stderr."""
    tails = []
    for rank in range(world_size):
        path = _stderr_file(out, rank)
        text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else ["(nothing)"]
        tails.append(f"--- rank {rank}\n" + "\n".join(text))
    return "\n".join(tails)


def _process(rank: int, world_size: int, port: int, out: str) -> None:
    # The C++ side's last words (gloo's "terminate called after …") and, on a fatal signal, the
    # Python stack, in a file of this rank's that ``run_on_processes`` reads back on failure.
    stderr = open(_stderr_file(Path(out), rank), "w")
    os.dup2(stderr.fileno(), 2)
    faulthandler.enable(file=stderr)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    with process_group_from_environment() as dist:
        for scenario in (one_step, gamma_and_A_through_steps_and_latches, latch_over_shards,
                         latch_from_the_epoch, interrupt_and_resume, bad_input_agreement, failure_on_rank_1):
            scenario(dist, Path(out))
    torch.save(_threads_named("gloo"), Path(out) / f"gloo-threads-after-rank{rank}.pt")


def _threads_named(part: str) -> list[str] | None:
    """The names of this process's threads that contain ``part`` (None where /proc cannot tell)."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return None
    names = (task.joinpath("comm").read_text().strip() for task in tasks.iterdir())
    return sorted(name for name in names if part in name)


# ---------------------------------------------------------------------------------- scenarios

def one_step(dist: Distributed, out: Path) -> None:
    """From the state the test saved, one step on this process's share of global batch 0."""
    for objective in OBJECTIVES:
        for variant, changes in STEP_VARIANTS.items():
            config = one_step_config(objective, **changes)
            trainer = without_dropout(Trainer(config, load_training_data(config), FollowerRun(RunDir(out)), CPU,
                                              dist))
            trainer.load_state_dict(torch.load(out / f"{objective}-initial.pt", weights_only=True))
            _, batch = next(iter(trainer.loader.epoch(0)))
            result = trainer.train_step(batch.images, global_partition(trainer, 0, 0))
            torch.save({"loss": result.loss.detach(), "metrics": result.metrics, "state": trained_state(trainer),
                        "rows": batch.labels_cpu.numel()}, out / f"{objective}{variant}-one-step-rank{dist.rank}.pt")


def gamma_and_A_through_steps_and_latches(dist: Distributed, out: Path) -> None:
    """Latch, 3 steps, latch, 1 step — all inside epoch 0, before any end-of-epoch broadcast."""
    config = tiny_config("vmcr2")
    trainer = Trainer(config, load_training_data(config), FollowerRun(RunDir(out)), CPU, dist)
    trainer.latch()
    steps = trainer.loader.epoch(0)
    for step, batch in islice(steps, 3):
        torch.manual_seed(step_seed(config.seed, step, dist.rank))
        trainer.train_step(batch.images, global_partition(trainer, 0, step))
    trainer.latch()
    latched = trainer.objective.variational.gamma.clone()
    for step, batch in steps:
        torch.manual_seed(step_seed(config.seed, step, dist.rank))
        trainer.train_step(batch.images, global_partition(trainer, 0, step))
    variational = trainer.objective.variational
    torch.save({"gamma": variational.gamma, "A": variational.A, "latched_gamma": latched},
               out / f"gamma-A-rank{dist.rank}.pt")


def epoch_latch_trainer(out: Path, dist: Distributed = SINGLE_PROCESS, **changes) -> Trainer:
    """One epoch of V-MCR² that latches at its end, with the featurizer frozen (lr 0): its steps'
    features are then what a pass over the training set would see."""
    config = tiny_config("vmcr2", epochs=1, latch_every=1, dropout=False, **changes)
    trainer = Trainer(config, load_training_data(config), FollowerRun(RunDir(out)), CPU, dist)
    for group in trainer.optimizer.param_groups:
        group["lr"] = 0.0
    trainer.schedule.set = lambda step: None  # the schedule sets the lr before each step
    return trainer


def latch_from_the_epoch(dist: Distributed, out: Path) -> None:
    """latch_source = "epoch" on this process's rows of every batch: the moments are summed over processes."""
    trainer = epoch_latch_trainer(out, dist, latch_source="epoch")
    trainer.fit(NeverStop())
    variational = trainer.objective.variational
    torch.save({"gamma": variational.gamma, "A": variational.A}, out / f"epoch-latch-rank{dist.rank}.pt")


def latch_features(num_samples: int = 200, dim: int = 16, classes: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed set of unit features and their classes (the test latches it in one process)."""
    generator = torch.Generator().manual_seed(7)
    features = torch.nn.functional.normalize(torch.randn(num_samples, dim, generator=generator), dim=1)
    return features, torch.arange(num_samples) % classes


def latch_over_shards(dist: Distributed, out: Path) -> None:
    """Algorithm 2 over a dataset whose halves sit on different processes."""
    features, labels = latch_features()
    share = features.shape[0] // dist.world_size
    rows = slice(dist.rank * share, (dist.rank + 1) * share)
    variational = VariationalMCR2(16, 4, 8)
    latch_over_dataset(variational, features[rows], labels[rows], 4, batch_size=50, collective=dist)
    torch.save({"gamma": variational.gamma, "A": variational.A}, out / f"latch-rank{dist.rank}.pt")


class StopAfter:
    """A stop request only process ``rank`` sees, once ``step`` steps are done (a signal to one rank)."""

    def __init__(self, trainer: Trainer, rank: int, step: int) -> None:
        self.trainer, self.rank, self.step = trainer, rank, step

    @property
    def requested(self) -> bool:
        return self.trainer.dist.rank == self.rank and self.trainer.global_step >= self.step

    @property
    def signal_name(self) -> str:
        return "SIGTERM" if self.requested else ""


class NeverStop:
    requested = False
    signal_name = ""


def interrupt_and_resume(dist: Distributed, out: Path) -> None:
    """An uninterrupted 2-epoch V-MCR² run; the same run stopped by rank 1 alone at step 3, resumed."""
    config = tiny_config("vmcr2", epochs=2, latch_every=1)
    dataset = load_training_data(config)
    runs = out / "runs"

    def new_run(name: str) -> RunDir:
        return dist.on_main(lambda: RunDir.create(runs, name))

    whole = Trainer(config, dataset, run_for_rank(new_run("whole"), dist.is_main), CPU, dist)
    whole.fit(NeverStop())

    run = new_run("stopped")
    stopped = Trainer(config, dataset, run_for_rank(run, dist.is_main), CPU, dist)
    try:
        stopped.fit(StopAfter(stopped, rank=1, step=3))
        stopped_at = None
    except TrainingInterrupted:
        stopped_at = stopped.global_step
    checkpoint = dist.on_main(lambda: run.load_checkpoint())  # rank 0 reads it and sends it
    resumed = Trainer(config, dataset, run_for_rank(run, dist.is_main), CPU, dist)
    resumed.load_state_dict(checkpoint)
    resumed.fit(NeverStop())
    torch.save({"whole": trained_state(whole), "resumed": trained_state(resumed), "stopped_at": stopped_at,
                "checkpoint_step": checkpoint["global_step"], "run": str(run.path)},
               out / f"resume-rank{dist.rank}.pt")


def bad_input_agreement(dist: Distributed, out: Path) -> None:
    """A BadInput on one process is raised on all: from ``agree`` (any rank) and ``on_main`` (rank 0)."""
    messages = []

    def fails_on_rank_1() -> int:
        if dist.rank == 1:
            raise BadInput("rank 1 has no data")
        return 1

    def fails_on_main() -> int:
        raise BadInput("rank 0 cannot read the run")

    for attempt in (lambda: dist.agree(fails_on_rank_1, local_rank_0_first=True), lambda: dist.on_main(fails_on_main)):
        try:
            attempt()
            messages.append(None)
        except BadInput as error:
            messages.append(str(error))
    torch.save(messages, out / f"agreement-rank{dist.rank}.pt")


def failure_on_rank_1(dist: Distributed, out: Path) -> None:
    """A whole run (the runner's ``start``) whose features turn NaN on rank 1 alone from its 3rd step (step 2): the
    loss is the global batch's, so both ranks fail at that step and record it — rank 1 into its
    follower's writes, which do nothing. Each rank saves the error it raised."""
    from vmcr2_cli.errors import RunFailed
    from vmcr2_cli.models.heads import Normalize
    from vmcr2_cli.runner import lifecycle

    forward, steps = Normalize.forward, []

    def poisoned(self, x):
        z = forward(self, x)
        if dist.rank == 1 and self.training and torch.is_grad_enabled():
            steps.append(1)
            if len(steps) >= 3:
                return z * float("nan")
        return z

    values = {"synthetic_train_per_class": 40, "synthetic_test_per_class": 10, "batch_size": 100, "epochs": 2,
              "device": "cpu", "log_every": 1, "eval_at_end": False, "precision": "fp32"}
    Normalize.forward = poisoned
    try:
        lifecycle.start(dist, "synthetic", "mcr2", values, out / "failing", "failing")
        outcome = None
    except RunFailed as error:
        outcome = str(error)
    finally:
        Normalize.forward = forward
    torch.save(outcome, out / f"failure-rank{dist.rank}.pt")
