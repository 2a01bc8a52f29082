"""``vmcr2 train`` and ``vmcr2 profiles``."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
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
) -> None:
    """Train a featurizer with MCR², V-MCR² or CE; write a run directory."""
    from vmcr2_cli.config import parse_override

    values: dict[str, Any] = dict(parse_override(text) for text in overrides)
    shortcuts = {"epochs": epochs, "batch_size": batch_size, "device": device, "seed": seed,
                 "data_root": str(data_root) if data_root is not None else None}
    values.update({key: value for key, value in shortcuts.items() if value is not None})
    if resume is not None:
        result = _resume(resume, objective, values)
    else:
        result = _start(profile, objective, values, runs_dir, name)
    if json_out:
        typer.echo(json.dumps(result, indent=2))
    else:
        accuracy = result.get("nearest_subspace_accuracy")
        typer.echo(f"run: {result['run_dir']}")
        if accuracy is not None:
            typer.echo(f"nearest-subspace test accuracy: {accuracy:.4f}")


def _start(profile: str, objective: str | None, values: dict[str, Any], runs_dir: Path,
           name: str | None) -> dict[str, Any]:
    from vmcr2_cli.config import resolve_config, to_toml
    from vmcr2_cli.runs import RunDir, atomic_write_text, point_latest

    config, path = resolve_config(profile, objective, values)
    session = _Session.prepare(config)
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{name or f'{path.stem}-{config.objective}'}"
    _check_run_name(run_id)
    run = RunDir.create(runs_dir, run_id)
    atomic_write_text(run.config_path, to_toml(config))
    run.write_meta(_initial_meta(run, config, path, session))
    point_latest(run)
    return session.train(run, resume_state=None)


def _resume(path: Path, objective: str | None, values: dict[str, Any]) -> dict[str, Any]:
    from vmcr2_cli.config import config_from_dict, load_config_file, to_toml
    from vmcr2_cli.runs import RunDir, atomic_write_text

    run = RunDir.open(path)
    config = load_config_file(run.config_path)
    if objective is not None and objective != config.objective:
        raise BadInput(f"--resume {path}: the run trains {config.objective}, not {objective}")
    fixed = sorted(key for key in values if key not in RESUME_CHANGEABLE)
    if fixed:
        raise BadInput(f"--resume {path}: cannot change {', '.join(fixed)} of an existing run "
                       f"(changeable: {', '.join(RESUME_CHANGEABLE)})")
    meta = run.read_meta()
    if meta.get("status") == "running" and _process_alive(meta):
        raise BadInput(f"--resume {path}: the run is still running (pid {meta.get('pid')})")
    config = config_from_dict({**config.to_dict(), **values}, "--resume")
    session = _Session.prepare(config)
    state = run.load_checkpoint(map_location=session.device)
    if values:
        atomic_write_text(run.config_path, to_toml(config))
    run.update_meta(status="running", end_time=None, pid=os.getpid(), host=socket.gethostname(),
                    epochs=config.epochs, resumed=meta.get("resumed", 0) + 1)
    run.append_metrics("status", status="running", resumed_at_step=state["global_step"])
    return session.train(run, resume_state=state)


class _Session:
    """The resolved config, its device and its dataset: everything checked before a run exists."""

    def __init__(self, config, device, dataset) -> None:
        self.config, self.device, self.dataset = config, device, dataset

    @classmethod
    def prepare(cls, config) -> "_Session":
        from vmcr2_cli.training.setup import load_training_data, resolve_device

        return cls(config, resolve_device(config.device), load_training_data(config))

    def train(self, run, resume_state: dict | None) -> dict[str, Any]:
        from vmcr2_cli.training.display import TrainingDisplay
        from vmcr2_cli.training.finish import final_evaluation
        from vmcr2_cli.training.interrupts import StopRequested
        from vmcr2_cli.training.trainer import NonFiniteLoss, Trainer, TrainingInterrupted

        config = self.config
        trainer = Trainer(config, self.dataset, run, self.device)
        if resume_state is not None:
            trainer.load_state_dict(resume_state)
        display = TrainingDisplay(config.epochs, trainer.loader.steps_per_epoch)
        trainer.on_step, trainer.on_epoch = display.on_step, display.on_epoch
        display.message(f"[bold]{run.name}[/]  {config.objective} on {config.dataset} "
                        f"({self.dataset.num_classes} classes)  {config.model}  device {self.device}  "
                        f"→ {run.path}")
        try:
            with StopRequested() as stop, display:
                trainer.fit(stop)
            result = {"run_dir": str(run.path), "status": "finished", "epochs": trainer.epoch}
            if config.eval_at_end:
                display.message("evaluating: nearest subspace on the test set…")
                evaluation = final_evaluation(trainer)
                run.append_metrics("eval", epoch=trainer.epoch, step=trainer.global_step, **evaluation)
                result.update(evaluation)
        except TrainingInterrupted as stopped:
            run.update_meta(status="interrupted", end_time=time.time())
            run.append_metrics("status", status="interrupted", epoch=trainer.epoch, step=trainer.global_step)
            display.message(f"interrupted ({stopped}) at epoch {trainer.epoch + 1}, step {trainer.global_step}; "
                            f"checkpoint saved. Continue with: vmcr2 train --resume {run.path}")
            raise typer.Exit(EXIT_INTERRUPTED)
        except NonFiniteLoss as failure:
            run.update_meta(status="failed", end_time=time.time(), failed_step=failure.step, error=str(failure))
            run.append_metrics("status", status="failed", step=failure.step, error=str(failure))
            raise RunFailed(f"{failure}; the last good checkpoint is kept in {run.checkpoint_path}") from None
        except BaseException as error:
            run.update_meta(status="failed", end_time=time.time(), error=f"{type(error).__name__}: {error}")
            run.append_metrics("status", status="failed", step=trainer.global_step, error=str(error))
            raise
        run.update_meta(status="finished", end_time=time.time(),
                        **{key: value for key, value in result.items() if key.endswith("accuracy")})
        run.append_metrics("status", status="finished", epoch=trainer.epoch, step=trainer.global_step)
        return result


def _check_run_name(run_id: str) -> None:
    if "/" in run_id or run_id.startswith(".") or run_id.endswith("latest"):
        raise BadInput(f"--name: {run_id!r} is not a valid run name")


def _process_alive(meta: dict) -> bool:
    """Whether the process that wrote a 'running' meta.json still runs on this host."""
    pid = meta.get("pid")
    if not isinstance(pid, int) or meta.get("host") != socket.gethostname() or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _initial_meta(run, config, profile_path: Path, session: _Session) -> dict[str, Any]:
    import torch
    import torchvision

    from vmcr2_cli import __version__

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
        "command": " ".join(["vmcr2", *sys.argv[1:]]),
        "versions": {"vmcr2": __version__, "python": platform.python_version(),
                     "torch": torch.__version__, "torchvision": torchvision.__version__},
        "git_commit": _git_commit(),
        "start_time": time.time(),
        "end_time": None,
        "pid": os.getpid(),
        "host": socket.gethostname(),
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
