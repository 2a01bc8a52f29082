"""``vmcr2 train`` and ``vmcr2 profiles``.

Under torchrun (or ``--nproc N``) every process runs ``train``: rank 0 resolves the
configuration and creates or opens the run directory and tells the others; every rank
loads the data and trains its share; a bad input anywhere ends every rank with rank 0's
one-line message and exit code 2. Only rank 0 writes and prints.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Optional

import typer

from vmcr2_cli.errors import EXIT_INTERRUPTED, BadInput, RunFailed

RESUME_CHANGEABLE = ("epochs", "device", "data_root", "log_every", "eval_at_end")


def profiles(json_out: bool = typer.Option(False, "--json", help="One JSON document on stdout.")) -> None:
    """List the training profiles, each with a one-line description."""
    from rich.console import Console
    from rich.table import Table

    from vmcr2_cli.config import list_profiles, profiles_dir

    found = list_profiles()
    if json_out:
        typer.echo(json.dumps(found, indent=2))
        return
    table = Table(title=f"profiles ({profiles_dir()})", title_justify="left")
    table.add_column("profile", style="bold")
    table.add_column("description")
    for name, description in found.items():
        table.add_row(name, description)
    Console().print(table)


def train(
    profile: str = typer.Option("default", "--profile", "-p",
                                help="A profile name (see `vmcr2 profiles`) or a path to a .toml file."),
    objective: Optional[str] = typer.Option(None, "--objective", "-o",
                                            help="mcr2, vmcr2 or ce (default: the profile's)."),
    overrides: list[str] = typer.Option([], "--set", help="Override a profile key: key=value (repeatable)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Shortcut for --set epochs=N."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Shortcut for --set batch_size=N."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Shortcut for --set seed=N."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Folder with the dataset files."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run directories are created."),
    name: Optional[str] = typer.Option(None, "--name", help="Run name (the run id's tail)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue this run exactly where it stopped."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as one JSON document on stdout."),
    nproc: Optional[int] = typer.Option(None, "--nproc", help="Train in N local processes (DDP), launched through "
                                        "torchrun's launcher; for several nodes run torchrun itself."),
) -> None:
    """Train a featurizer with MCR², V-MCR² or CE; write a run directory."""
    from vmcr2_cli.config import parse_override
    from vmcr2_cli.distributed import process_group_from_environment

    if nproc is not None:
        from vmcr2_cli.distributed.launcher import launch_local

        args = _worker_args(profile=profile, objective=objective, overrides=overrides, epochs=epochs,
                            batch_size=batch_size, device=device, seed=seed, data_root=data_root,
                            runs_dir=runs_dir, name=name, resume=resume, json_out=json_out)
        code = launch_local(nproc, args)
        if code:
            raise typer.Exit(code)
        return
    values: dict[str, Any] = dict(parse_override(text) for text in overrides)
    shortcuts = {"epochs": epochs, "batch_size": batch_size, "device": device, "seed": seed,
                 "data_root": str(data_root) if data_root is not None else None}
    values.update({key: value for key, value in shortcuts.items() if value is not None})
    with process_group_from_environment() as dist:
        try:
            if resume is not None:
                result = _resume(dist, resume, objective, values)
            else:
                result = _start(dist, profile, objective, values, runs_dir, name)
        except (BadInput, RunFailed) as error:
            if not dist.enabled:
                raise
            dist.exit_together(error.exit_code, str(error))  # outcomes every rank reached together
        if not dist.is_main:
            return
    if json_out:
        typer.echo(json.dumps(result, indent=2))
    else:
        accuracy = result.get("nearest_subspace_accuracy")
        typer.echo(f"run: {result['run_dir']}")
        if accuracy is not None:
            typer.echo(f"nearest-subspace test accuracy: {accuracy:.4f}")


def _worker_args(*, profile: str, objective: str | None, overrides: list[str], epochs: int | None,
                 batch_size: int | None, device: str | None, seed: int | None, data_root: Path | None,
                 runs_dir: Path, name: str | None, resume: Path | None, json_out: bool) -> list[str]:
    """The ``vmcr2 train`` arguments that start each ``--nproc`` worker: these options, minus --nproc."""
    args = ["--profile", profile, "--runs-dir", str(runs_dir)]
    for flag, value in (("--objective", objective), ("--epochs", epochs), ("--batch-size", batch_size),
                        ("--device", device), ("--seed", seed), ("--data-root", data_root),
                        ("--name", name), ("--resume", resume)):
        if value is not None:
            args += [flag, str(value)]
    for override in overrides:
        args += ["--set", override]
    return args + (["--json"] if json_out else [])


def _start(dist, profile: str, objective: str | None, values: dict[str, Any], runs_dir: Path,
           name: str | None) -> dict[str, Any]:
    from vmcr2_cli.config import resolve_config, to_toml
    from vmcr2_cli.distributed import run_for_rank
    from vmcr2_cli.runs import RunDir, atomic_write_text, point_latest

    config, path = dist.on_main(lambda: resolve_config(profile, objective, values))
    session = _Session.prepare(config, dist)

    def create_run() -> RunDir:
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{name or f'{path.stem}-{config.objective}'}"
        _check_run_name(run_id)
        run = RunDir.create(runs_dir, run_id)
        atomic_write_text(run.config_path, to_toml(config))
        run.write_meta(_initial_meta(run, config, path, session))
        point_latest(run)
        return run

    run = dist.on_main(create_run)
    return session.train(run_for_rank(run, dist.is_main), resume_state=None)


def _resume(dist, path: Path, objective: str | None, values: dict[str, Any]) -> dict[str, Any]:
    from vmcr2_cli.config import config_from_dict, load_config_file, to_toml
    from vmcr2_cli.distributed import run_for_rank
    from vmcr2_cli.runs import RunDir, atomic_write_text, writer_alive

    def open_run():
        run = RunDir.open(path)
        config = load_config_file(run.config_path)
        if objective is not None and objective != config.objective:
            raise BadInput(f"--resume {path}: the run trains {config.objective}, not {objective}")
        fixed = sorted(key for key in values if key not in RESUME_CHANGEABLE)
        if fixed:
            raise BadInput(f"--resume {path}: cannot change {', '.join(fixed)} of an existing run "
                           f"(changeable: {', '.join(RESUME_CHANGEABLE)})")
        meta = run.read_meta()
        if writer_alive(meta) and meta.get("pid") != os.getpid():
            raise BadInput(f"--resume {path}: the run is still running (pid {meta.get('pid')})")
        return run, config_from_dict({**config.to_dict(), **values}, "--resume"), meta

    run, config, meta = dist.on_main(open_run)
    session = _Session.prepare(config, dist)
    # Rank 0 reads the checkpoint and sends it: the other nodes need not see the run directory.
    state = dist.on_main(lambda: run.load_checkpoint(map_location="cpu" if dist.enabled else session.device))
    if dist.is_main:
        if values:
            atomic_write_text(run.config_path, to_toml(config))
        run.set_status("running", meta={"pid": os.getpid(), "host": socket.gethostname(), "epochs": config.epochs,
                                        "resumed": meta.get("resumed", 0) + 1, **_distributed_meta(session)},
                       resumed_at_step=state["global_step"])
    return session.train(run_for_rank(run, dist.is_main), resume_state=state)


class _Session:
    """The resolved config, its device and its dataset: everything checked before a run exists."""

    def __init__(self, config, device, dataset, dist, ranks: list[dict[str, str]]) -> None:
        self.config, self.device, self.dataset, self.dist, self.ranks = config, device, dataset, dist, ranks

    @classmethod
    def prepare(cls, config, dist) -> "_Session":
        """Device and data on every rank; a bad input on any rank is every rank's."""
        from vmcr2_cli.training.setup import load_training_data, resolve_device

        def prepare_here():
            device = resolve_device(config.device, dist.local_rank if dist.enabled else None)
            if config.batch_size % dist.world_size:
                raise BadInput(f"batch_size {config.batch_size} does not split evenly over "
                               f"{dist.world_size} processes")
            return device, load_training_data(config)

        device, dataset = dist.agree(prepare_here, local_rank_0_first=True)  # a download once per node
        ranks = dist.all_gather_objects({"host": socket.gethostname(), "device": str(device)})
        return cls(config, device, dataset, dist, ranks)

    def train(self, run, resume_state: dict | None) -> dict[str, Any]:
        from vmcr2_cli.training.display import TrainingDisplay
        from vmcr2_cli.training.finish import final_evaluation
        from vmcr2_cli.training.interrupts import StopRequested
        from vmcr2_cli.training.trainer import NonFiniteLoss, Trainer, TrainingInterrupted

        config, dist = self.config, self.dist
        trainer = Trainer(config, self.dataset, run, self.device, dist)
        if resume_state is not None:
            trainer.load_state_dict(resume_state)
        display = TrainingDisplay(config.epochs, trainer.loader.steps_per_epoch, quiet=not dist.is_main)
        trainer.on_step, trainer.on_epoch = display.on_step, display.on_epoch
        processes = f"  {dist.world_size} processes ({dist.backend})" if dist.enabled else ""
        display.message(f"[bold]{run.name}[/]  {config.objective} on {config.dataset} "
                        f"({self.dataset.num_classes} classes)  {config.model}  device {self.device}{processes}  "
                        f"→ {run.path}")
        try:
            with StopRequested(under_launcher=dist.enabled) as stop, display:
                trainer.fit(stop)
            result = {"run_dir": str(run.path), "status": "finished", "epochs": trainer.epoch}
            if not dist.is_main:
                return result  # rank 0 evaluates and records the end alone
            if config.eval_at_end:
                display.message("evaluating: nearest subspace on the test set…")
                evaluation = final_evaluation(trainer)
                run.append_metrics("eval", epoch=trainer.epoch, step=trainer.global_step, **evaluation)
                result.update(evaluation)
        except TrainingInterrupted as stopped:
            run.set_status("interrupted", epoch=trainer.epoch, step=trainer.global_step)
            display.message(f"interrupted ({stopped}) at epoch {trainer.epoch + 1}, step {trainer.global_step}; "
                            f"checkpoint saved. Continue with: vmcr2 train --resume {run.path}")
            if dist.enabled:
                dist.exit_together(EXIT_INTERRUPTED, None)
            raise typer.Exit(EXIT_INTERRUPTED)
        except NonFiniteLoss as failure:
            run.set_status("failed", meta={"failed_step": failure.step, "error": str(failure)}, step=failure.step,
                           error=str(failure))
            raise RunFailed(f"{failure}; the last good checkpoint is kept in {run.checkpoint_path}") from None
        except BaseException as error:
            run.set_status("failed", meta={"error": f"{type(error).__name__}: {error}"}, step=trainer.global_step,
                           error=str(error))
            raise
        run.set_status("finished", meta={key: value for key, value in result.items() if key.endswith("accuracy")},
                       epoch=trainer.epoch, step=trainer.global_step)
        return result


def _check_run_name(run_id: str) -> None:
    if "/" in run_id or run_id.startswith(".") or run_id.endswith("latest"):
        raise BadInput(f"--name: {run_id!r} is not a valid run name")


def _distributed_meta(session: _Session) -> dict[str, Any]:
    """meta.json's record of the processes that train: world size, backend, each rank's host and device."""
    dist = session.dist
    return {"world_size": dist.world_size, "backend": dist.backend, "ranks": session.ranks}


def _initial_meta(run, config, profile_path: Path, session: _Session) -> dict[str, Any]:
    import torch
    import torchvision

    from vmcr2_cli import __version__, invocation

    device_name = (torch.cuda.get_device_name(session.device) if session.device.type == "cuda"
                   else platform.processor() or platform.machine())
    return {
        "status": "running",
        "run_id": run.name,
        "profile": profile_path.stem,
        "profile_path": str(profile_path.resolve()),
        "objective": config.objective,
        "dataset": config.dataset,
        "num_classes": session.dataset.num_classes,
        "train_size": int(session.dataset.train_images.shape[0]),
        "epochs": config.epochs,
        "model": config.model,
        "stem": config.stem if config.model == "resnet18" else None,
        "seed": config.seed,
        "device": str(session.device),
        "device_name": device_name,
        "command": invocation.command_line(),
        "versions": {"vmcr2": __version__, "python": platform.python_version(),
                     "torch": torch.__version__, "torchvision": torchvision.__version__},
        "git_commit": _git_commit(),
        "start_time": time.time(),
        "end_time": None,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        **_distributed_meta(session),
    }


def _git_commit() -> str | None:
    """The commit of the vmcr2 source tree, when it is a git checkout."""
    source = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
