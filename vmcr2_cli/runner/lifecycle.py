"""A run's life: created or reopened, trained, then finished, interrupted or failed.

``vmcr2 train`` parses its options and calls :func:`start` or :func:`resume`; every
status a run goes through is written here. Everything that can be checked is checked
before anything is written: the configuration, that the runs folder is writable, the
data, the checkpoint and that no other process writes the run. A run directory is
created whole (``RunDir.create``) and its writer holds the run's lock until it ends.

Under torchrun every process runs this: rank 0 resolves the configuration, creates or
opens the run directory, holds the lock and tells the others; every rank loads the
data and trains its share; only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

from vmcr2_cli.errors import EXIT_INTERRUPTED, BadInput, RunFailed, RunWriteFailed, Stopped

__all__ = ["start", "resume", "check_launch"]


def start(dist, profile: str, objective: str | None, values: dict[str, Any], runs_dir: Path,
          name: str | None) -> dict[str, Any]:
    """Train a new run of ``profile`` with ``values`` overridden; its result (run_dir, accuracy, …)."""
    from vmcr2_cli.config import to_toml
    from vmcr2_cli.distributed import run_for_rank
    from vmcr2_cli.runs import RunDir, point_latest

    config, path = dist.on_main(lambda: _resolve_new(profile, objective, values, runs_dir, name, dist.world_size))
    session = Session.prepare(config, dist)
    locks: list = []

    def create_run() -> RunDir:
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{name or f'{path.stem}-{config.objective}'}"
        run = RunDir.create(runs_dir, run_id, config_text=to_toml(config),
                            meta=_initial_meta(config, path, session))
        locks.append(run.lock("train"))
        return run

    run = dist.on_main(create_run)
    with _released(locks):
        try:
            trainer = session.trainer(run_for_rank(run, dist.is_main))
        except BaseException:
            if dist.is_main:  # nothing was trained: leave no run behind
                shutil.rmtree(run.path, ignore_errors=True)
            raise
        if dist.is_main:
            point_latest(run)
        return session.train(trainer)


def check_launch(nproc: int, profile: str, objective: str | None, values: dict[str, Any], runs_dir: Path,
                 name: str | None, resume_path: Path | None) -> None:
    """What rank 0 would refuse at once, refused before ``--nproc`` starts any process."""
    from vmcr2_cli.config import load_config_file
    from vmcr2_cli.distributed.launcher import check_nproc
    from vmcr2_cli.runs import RunDir

    check_nproc(nproc)
    if resume_path is None:
        _resolve_new(profile, objective, values, runs_dir, name, nproc)
    else:
        _resumed_config(load_config_file(RunDir.open(resume_path).config_path), values, f"--resume {resume_path}",
                        nproc)


def _resumed_config(config, values: dict[str, Any], where: str, processes: int):
    """A run's config with the keys ``--resume`` changes, validated for ``processes`` processes."""
    from vmcr2_cli.config import config_from_dict

    return config_from_dict({**config.to_dict(), **values}, where, processes)


def _resolve_new(profile: str, objective: str | None, values: dict[str, Any], runs_dir: Path, name: str | None,
                 processes: int):
    """The validated configuration of a new run and its profile's path; BadInput for anything wrong."""
    from vmcr2_cli.config import resolve_config
    from vmcr2_cli.runs import check_writable
    from vmcr2_cli.training.initial import check_init_from

    if name is not None:
        _check_run_name(name)
    config, path = resolve_config(profile, objective, values, processes=processes)
    config = check_init_from(config)
    check_writable(runs_dir)
    return config, path


def resume(dist, path: Path, objective: str | None, values: dict[str, Any]) -> dict[str, Any]:
    """Continue the run at ``path`` where its checkpoint stopped (from step 0 when it has none)."""
    from vmcr2_cli.config import RESUME_CHANGEABLE, load_config_file, to_toml
    from vmcr2_cli.distributed import run_for_rank
    from vmcr2_cli.runs import RunDir, atomic_write_text
    from vmcr2_cli.training.checkpoints import check_checkpoint

    where = f"--resume {path}"
    locks: list = []
    checkpoint: list = []

    def open_run():
        run = RunDir.open(path)
        locks.append(run.lock("--resume"))  # from here on no other process writes the run
        try:
            config = load_config_file(run.config_path)
            if objective is not None and objective != config.objective:
                raise BadInput(f"{where}: the run trains {config.objective}, not {objective}")
            fixed = sorted(key for key in values if key not in RESUME_CHANGEABLE)
            if fixed:
                raise BadInput(f"{where}: cannot change {', '.join(fixed)} of an existing run "
                               f"(changeable: {', '.join(RESUME_CHANGEABLE)})")
            meta = run.read_meta()
            state = run.load_checkpoint() if run.checkpoint_path.is_file() else None
            if state is not None:
                check_checkpoint(state, config, where)
            checkpoint.append(state)
            return run, _resumed_config(config, values, where, dist.world_size), meta
        except BaseException:
            locks.pop().release()
            raise

    run, config, meta = dist.on_main(open_run)
    with _released(locks):
        session = Session.prepare(config, dist)
        # Rank 0 read the checkpoint and sends it: the other nodes need not see the run directory.
        state = dist.on_main(lambda: checkpoint[0])
        purge_from = state["global_step"] + 1 if state is not None else 0  # the steps logged again
        trainer = session.trainer(run_for_rank(run, dist.is_main), state, where, purge_from)
        if dist.is_main:
            if state is None:
                session.display_message(f"{run.name} stopped before its first checkpoint: it starts again at step 0")
            run.drop_partial_metrics_line()
            if values:
                atomic_write_text(run.config_path, to_toml(config))
            run.set_status("running", meta={"pid": os.getpid(), "host": socket.gethostname(),
                                            "epochs": config.epochs, "resumed": meta.get("resumed", 0) + 1,
                                            **_distributed_meta(session)},
                           resumed_at_step=state["global_step"] if state is not None else 0)
        return session.train(trainer)


@contextlib.contextmanager
def _released(locks: list) -> Iterator[None]:
    """Release the run's lock (held by rank 0 alone) however the block ends."""
    try:
        yield
    finally:
        for lock in locks:
            lock.release()


class Session:
    """The resolved config, its device and its dataset: everything checked before a run exists."""

    def __init__(self, config, device, dataset, dist, ranks: list[dict[str, str]]) -> None:
        self.config, self.device, self.dataset, self.dist, self.ranks = config, device, dataset, dist, ranks
        self.display = None
        self.mirrored = None  # rank 0's MirroredRun (TensorBoard, W&B), closed when training ends
        self.mirror_notes: list[str] = []  # how to enable a mirror that is missing, or why one did not start

    @classmethod
    def prepare(cls, config, dist) -> "Session":
        """Device and data on every rank; a bad input on any rank is every rank's."""
        from vmcr2_cli.training.setup import load_training_data, resolve_device

        def prepare_here():
            device = resolve_device(config.device, dist.local_rank if dist.enabled else None)
            return device, load_training_data(config)

        device, dataset = dist.agree(prepare_here, local_rank_0_first=True)  # a download once per node
        ranks = dist.all_gather_objects({"host": socket.gethostname(), "device": str(device)})
        return cls(config, device, dataset, dist, ranks)

    def trainer(self, run, state: dict | None = None, where: str = "", purge_from: int | None = None):
        """The Trainer of ``run``, at ``state`` when given (BadInput if the checkpoint does not fit).

        On rank 0 its metrics also go to TensorBoard and W&B (``purge_from``: see ``open_tensorboard``).
        """
        from vmcr2_cli.config import constructs
        from vmcr2_cli.evaluation.during_training import measure
        from vmcr2_cli.runner.display import TrainingDisplay
        from vmcr2_cli.training.construction import Constructor
        from vmcr2_cli.training.initial import initial_model_state
        from vmcr2_cli.training.trainer import Trainer

        config = self.config
        if constructs(config):
            trainer = Constructor(config, self.dataset, run, self.device, self.dist, measure=measure)
        else:
            # A fine-tuned ReduNet's layers exist before its optimizer: the checkpoint's, or init_from's.
            initial = (self.dist.on_main(lambda: initial_model_state(config))
                       if config.init_from and state is None else None)
            trainer = Trainer(config, self.dataset, run, self.device, self.dist, measure=measure,
                              layers_of=state["model"] if state is not None else initial)
            if initial is not None:
                trainer.start_from(initial, f"init_from {config.init_from}")
        if state is not None:
            trainer.restore(state, where)
        self.display = TrainingDisplay(self.config.epochs, trainer.steps_per_epoch, quiet=not self.dist.is_main)
        if self.dist.is_main:
            trainer.run = self.mirrored = self._mirrored(run, purge_from)
        trainer.on_step, trainer.on_epoch = self.display.on_step, self.display.on_epoch
        return trainer

    def _mirrored(self, run, purge_from: int | None):
        """``run`` with its metrics also going to every logger that is on and installed."""
        from vmcr2_cli.config import to_toml
        from vmcr2_cli.runner.mirrors import MirroredRun
        from vmcr2_cli.runner.tensorboard import open_tensorboard
        from vmcr2_cli.runner.wandb_mirror import open_wandb

        mirrors = []
        for mirror, note in (open_tensorboard(run, to_toml(self.config), purge_from), open_wandb(run, self.config)):
            mirrors += [mirror] if mirror is not None else []
            self.mirror_notes += [note] if note else []
        return MirroredRun(run.path, mirrors, warn=lambda text: self.display.message((f"warning: {text}", "yellow")))

    def display_message(self, text: str) -> None:
        self.display.message(text)

    def train(self, trainer) -> dict[str, Any]:
        """Train to the end, evaluate, and record how the run ended."""
        from vmcr2_cli.training.interrupts import StopRequested, TrainingInterrupted
        from vmcr2_cli.training.trainer import NonFiniteLoss, OutOfDeviceMemory

        config, dist, display, run = self.config, self.dist, self.display, trainer.run
        processes = f"  {dist.world_size} processes ({dist.backend})" if dist.enabled else ""
        display.message((run.name, "bold"), f"  {config.objective} on {config.dataset} "
                        f"({self.dataset.num_classes} classes)  {config.model}  device {self.device}{processes}  "
                        f"backbone {trainer.networks.precision.describe()}  → {run.path}")
        for note in self.mirror_notes:
            display.message((note, "dim"))
        try:
            with StopRequested(under_launcher=dist.enabled) as stop, display:
                trainer.fit(stop)
                result = {"run_dir": str(run.path), "status": "finished", "epochs": trainer.epoch}
                if not dist.is_main:
                    return result  # rank 0 evaluates and records the end alone
                evaluation = trainer.evaluation
                if config.eval_at_end and (evaluation is None or evaluation["epoch"] != trainer.epoch):
                    display.message(f"evaluating: nearest subspace and kNN on the "
                                    f"{'validation split' if trainer.dataset.val_images is not None else 'test set'}…")
                    with stop.immediate():  # it writes nothing until it ends: a signal stops it at once
                        evaluation = trainer.evaluate()
                if evaluation is not None:
                    result.update({key: value for key, value in evaluation.items() if key.endswith("accuracy")
                                   or key in ("components", "split")})
        except TrainingInterrupted as stopped:
            _record(run, "interrupted", epoch=trainer.epoch, step=trainer.global_step)
            where = ("during the final evaluation (training is complete)" if trainer.epoch >= config.epochs
                     else f"at epoch {trainer.epoch + 1}, step {trainer.global_step}; checkpoint saved")
            display.message(f"interrupted ({stopped}) {where}. Continue with: vmcr2 train --resume {run.path}")
            if dist.enabled:
                dist.exit_together(EXIT_INTERRUPTED, None)
            raise Stopped(EXIT_INTERRUPTED)
        except KeyboardInterrupt:  # a second Ctrl-C, while the first one's checkpoint was being written
            _record(run, "interrupted", step=trainer.global_step)
            display.message(f"interrupted again: {_kept(trainer)}. Continue with: vmcr2 train --resume {run.path}")
            raise Stopped(EXIT_INTERRUPTED) from None
        except NonFiniteLoss as failure:
            _record(run, "failed", meta={"failed_step": failure.step, "error": str(failure)}, step=failure.step,
                    error=str(failure))
            raise RunFailed(f"{failure}; {_kept(trainer)}") from None
        except OutOfDeviceMemory as failure:
            _record(run, "failed", meta={"error": str(failure)}, step=trainer.global_step, error=str(failure))
            then = (f". Continue with: vmcr2 train --resume {run.path} --set micro_batch={failure.fits}"
                    if failure.fits else "")
            raise RunFailed(f"{failure}; {_kept(trainer)}{then}") from None
        except RunWriteFailed as failure:  # a full disk: the status may not be writable either
            _record(run, "failed", meta={"error": str(failure)}, step=trainer.global_step, error=str(failure))
            raise RunFailed(f"{failure}; {_kept(trainer)}") from None
        except BaseException as error:
            _record(run, "failed", meta={"error": f"{type(error).__name__}: {error}"}, step=trainer.global_step,
                    error=str(error))
            raise
        finally:
            if self.mirrored is not None:
                self.mirrored.close()
        run.set_status("finished", meta={key: value for key, value in result.items() if key.endswith("accuracy")},
                       epoch=trainer.epoch, step=trainer.global_step)
        return result


def _record(run, status: str, **fields: Any) -> None:
    """``run.set_status`` when the disk lets it: the run's end is reported on stderr either way."""
    with contextlib.suppress(RunWriteFailed):
        run.set_status(status, **fields)


def _kept(trainer) -> str:
    """Which checkpoint a run that stopped badly left on disk."""
    if trainer.saved_at is None:
        return "no checkpoint was written yet"
    epoch, step = trainer.saved_at
    return f"the last good checkpoint (epoch {epoch}, step {step}) is kept in {trainer.run.checkpoint_path}"


def _check_run_name(name: str) -> None:
    if "/" in name or name.startswith(".") or name.endswith("latest") or not name.strip():
        raise BadInput(f"--name: {name!r} is not a valid run name")


def _distributed_meta(session: Session) -> dict[str, Any]:
    """meta.json's record of the processes that train: world size, backend, each rank's host and device,
    and the backbone's precision and memory format there (a resumed run may run on another machine)."""
    from vmcr2_cli.training.precision import backbone_precision

    dist = session.dist
    precision = backbone_precision(session.device, session.config.precision)
    return {"world_size": dist.world_size, "backend": dist.backend, "ranks": session.ranks,
            "backbone_precision": precision.dtype, "channels_last": precision.channels_last,
            "precision_reason": precision.reason}


def _initial_meta(config, profile_path: Path, session: Session) -> dict[str, Any]:
    import torch

    from vmcr2_cli import __version__, invocation

    from vmcr2_cli.data.registry import preprocessing_of

    from vmcr2_cli.training.precision import cpu_name

    device_name = torch.cuda.get_device_name(session.device) if session.device.type == "cuda" else cpu_name()
    return {
        "status": "running",
        "profile": profile_path.stem,
        "profile_path": str(profile_path.resolve()),
        "objective": config.objective,
        "dataset": config.dataset,
        "num_classes": session.dataset.num_classes,
        "train_size": int(session.dataset.train_images.shape[0]),
        "class_names": list(session.dataset.class_names),
        "preprocessing": preprocessing_of(session.dataset).to_dict(),  # what embed and export apply
        "epochs": config.epochs,
        "model": config.model,
        "stem": config.stem if config.model == "resnet18" else None,
        "seed": config.seed,
        "device": str(session.device),
        "device_name": device_name,
        "command": invocation.command_line(),
        "versions": {"vmcr2": __version__, "python": platform.python_version(),
                     "torch": torch.__version__, "torchvision": _installed_version("torchvision")},
        "git_commit": _git_commit(),
        "start_time": time.time(),
        "end_time": None,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        **_distributed_meta(session),
    }


def _installed_version(package: str) -> str | None:
    """A package's version without importing it (importing torchvision added 0.4 s to every command's start)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    """The commit of the vmcr2 source tree, when it is a git checkout."""
    source = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None

