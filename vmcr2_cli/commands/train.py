"""``vmcr2 train`` and ``vmcr2 profiles``: options parsed here, the run's life in runner/lifecycle.py.

Under torchrun (or ``--nproc N``) every process runs ``train``; a bad input anywhere ends
every rank with rank 0's one-line message and exit code 2. Only rank 0 writes and prints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from vmcr2_cli.errors import BadInput, RunFailed


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
    from vmcr2_cli.runner import lifecycle

    values: dict[str, Any] = dict(parse_override(text) for text in overrides)
    shortcuts = {"epochs": epochs, "batch_size": batch_size, "device": device, "seed": seed,
                 "data_root": str(data_root) if data_root is not None else None}
    values.update({key: value for key, value in shortcuts.items() if value is not None})
    if nproc is not None:
        from vmcr2_cli.distributed.launcher import launch_local

        lifecycle.check_launch(nproc, profile, objective, values, runs_dir, name, resume)
        args = _worker_args(profile=profile, objective=objective, overrides=overrides, epochs=epochs,
                            batch_size=batch_size, device=device, seed=seed, data_root=data_root,
                            runs_dir=runs_dir, name=name, resume=resume, json_out=json_out)
        code = launch_local(nproc, args)
        if code:
            raise typer.Exit(code)
        return
    with process_group_from_environment() as dist:
        try:
            if resume is not None:
                result = lifecycle.resume(dist, resume, objective, values)
            else:
                result = lifecycle.start(dist, profile, objective, values, runs_dir, name)
        except (BadInput, RunFailed) as error:
            if not dist.enabled:
                raise
            dist.exit_together(error.exit_code, str(error))  # outcomes every rank reached together
        if not dist.is_main:
            return
    if json_out:
        typer.echo(json.dumps(result, indent=2))
    else:
        split = "validation" if result.get("split") == "val" else "test"
        typer.echo(f"run: {result['run_dir']}")
        for key, name in (("nearest_subspace_accuracy", "nearest-subspace"), ("knn_accuracy", "kNN"),
                          ("head_accuracy", "head")):
            if result.get(key) is not None:
                typer.echo(f"{name} {split} accuracy: {result[key]:.4f}")


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
