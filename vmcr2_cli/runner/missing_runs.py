"""``vmcr2 compare --train``: train the runs of an experiment that are not there yet.

Each missing objective is trained by a ``vmcr2 train`` subprocess with the same profile,
overrides, epochs and seed (so the same initial weights and the same data order). With
``--sweep key=v1,v2`` (repeatable) every combination of the swept values is trained for
each objective, each run named after its values. The whole plan is checked — profile,
keys, values, and that the new runs solve the same task as the runs given — before the
first run starts.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmcr2_cli.config import OBJECTIVES, TrainConfig, load_config_file, parse_override, resolve_config
from vmcr2_cli.errors import BadInput, RunFailed
from vmcr2_cli.evaluation.comparison import MUST_MATCH
from vmcr2_cli.runs import RunDir, runs_in


@dataclass(frozen=True)
class TrainRequest:
    """What ``compare --train`` was asked: ``objectives`` comma-separated, ``overrides`` as ``--set`` texts."""

    profile: str | None
    objectives: str = ",".join(OBJECTIVES)
    epochs: int | None = None
    seed: int | None = None
    overrides: list[str] = field(default_factory=list)
    device: str | None = None
    data_root: Path | None = None
    sweeps: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PlannedRun:
    """One ``vmcr2 train`` to run: its objective, what it sweeps and its arguments after ``train``."""

    objective: str
    arguments: list[str]
    label: str = ""  # the swept values, e.g. "mu=0.1 lr=0.01"


def parse_sweeps(texts: list[str]) -> list[tuple[str, list[Any]]]:
    """``["mu=0.01,0.1", "lr=1e-3"]`` → ``[("mu", [0.01, 0.1]), ("lr", [0.001])]``; BadInput for a bad one."""
    sweeps: list[tuple[str, list[Any]]] = []
    for text in texts:
        key, sep, raw = text.partition("=")
        key = key.strip()
        values = [value.strip() for value in raw.split(",") if value.strip()]
        if not sep or not key or not values:
            raise BadInput(f"--sweep {text!r}: expected key=value,value,…")
        if key in (name for name, _ in sweeps):
            raise BadInput(f"--sweep {key}: swept twice")
        sweeps.append((key, [parse_override(f"{key}={value}")[1] for value in values]))
    return sweeps


def _sweep_name(profile: str, objective: str, combination: dict[str, Any]) -> str:
    """A run name that says what it sweeps: ``synthetic-vmcr2-mu0.1-lr0.01``."""
    parts = [Path(profile).stem, objective, *(f"{key}{value}" for key, value in combination.items())]
    return "-".join(str(part).replace("/", "_") for part in parts)


def plan_missing_runs(given: list[RunDir], request: TrainRequest, *, mixed: bool = False) -> list[PlannedRun]:
    """The runs to train: one per objective of ``request`` that no run of ``given`` has.

    Seed and epochs default to those of the first given run, so that a new run lines up
    with it; flags and ``--set`` win over that. BadInput for anything that would fail
    (or, unless ``mixed``, train a different task than the first given run).
    """
    if request.profile is None:
        raise BadInput("compare --train: name the profile to train with --profile")
    wanted = [name.strip() for name in request.objectives.split(",") if name.strip()]
    if not wanted or any(name not in OBJECTIVES for name in wanted):
        raise BadInput(f"--objectives {request.objectives!r}: expected a comma-separated list of "
                       f"{', '.join(OBJECTIVES)}")
    values: dict[str, Any] = dict(parse_override(text) for text in request.overrides)
    flags = {"epochs": request.epochs, "seed": request.seed, "device": request.device,
             "data_root": None if request.data_root is None else str(request.data_root)}
    values.update({key: value for key, value in flags.items() if value is not None})
    first = load_config_file(given[0].config_path) if given else None
    if first is not None:
        values.setdefault("seed", first.seed)
        values.setdefault("epochs", first.epochs)
    sweeps = parse_sweeps(request.sweeps)
    clash = sorted({key for key, _ in sweeps} & set(values))
    if clash:
        raise BadInput(f"--sweep {clash[0]}: also set by --set or a flag; sweep it or set it, not both")
    have = {load_config_file(run.config_path).objective for run in given}
    combinations = [dict(zip([key for key, _ in sweeps], chosen))
                    for chosen in itertools.product(*(values for _, values in sweeps))]
    plans = []
    for objective in dict.fromkeys(wanted):
        if objective in have and not sweeps:
            continue
        for combination in combinations:  # one empty combination without --sweep
            settings = {**values, **combination}
            config, _ = resolve_config(request.profile, objective, settings)  # BadInput for any bad key or value
            if first is not None and not mixed:
                _check_same_task(config, first, given[0])
            arguments = ["--profile", request.profile, "--objective", objective]
            for key, value in settings.items():
                arguments += ["--set", f"{key}={_toml_value(value)}"]
            label = " ".join(f"{key}={value}" for key, value in combination.items())
            if combination:
                arguments += ["--name", _sweep_name(request.profile, objective, combination)]
            plans.append(PlannedRun(objective, arguments, label))
    return plans


def train_planned_runs(plans: list[PlannedRun], runs_dir: Path, log: Callable[[str], None]) -> list[RunDir]:
    """Train each plan in turn (progress passed through to stderr); the new runs, failed ones included.

    BadInput if a training refuses its input, RunFailed if one fails before creating its
    run, KeyboardInterrupt after the child has checkpointed on Ctrl-C.
    """
    new_runs = []
    for number, plan in enumerate(plans, 1):
        what = f"{plan.objective} {plan.label}".strip()
        log(f"[bold]compare --train[/]: training {what} ({number}/{len(plans)})…")
        before = _run_dirs(runs_dir)
        command = [sys.executable, "-m", "vmcr2_cli", "train", *plan.arguments, "--runs-dir", str(runs_dir), "--json"]
        code, stdout, error_line = _train_subprocess(command)
        if code == 130:
            raise KeyboardInterrupt
        if code == 2:
            raise BadInput(f"compare --train ({plan.objective}): {error_line or 'bad input'}")
        created = _created_run(stdout) if code == 0 else None
        if created is None:
            fresh = sorted(_run_dirs(runs_dir) - before)
            created = fresh[-1] if fresh else None
        if created is None:
            raise RunFailed(f"compare --train ({plan.objective}): training failed before creating a run "
                            f"(exit {code}): {error_line or 'no message'}")
        if code != 0:
            log(f"[red]the {plan.objective} run failed (exit {code}): {error_line}[/]; comparing it as it stands")
        new_runs.append(RunDir.open(created))
    return new_runs


def _check_same_task(config: TrainConfig, first: TrainConfig, first_run: RunDir) -> None:
    for key in MUST_MATCH:
        if key == "num_classes" and config.dataset != "synthetic":
            continue  # a real dataset fixes its own
        new, old = getattr(config, key), getattr(first, key)
        if new != old:
            raise BadInput(f"compare --train: the {config.objective} run would have {key} = {new}, "
                           f"{first_run.name} has {key} = {old} (set it with --set {key}=…, or --mixed)")


def _train_subprocess(command: list[str]) -> tuple[int, str, str]:
    """Run ``vmcr2 train``, its stderr passed through as it comes: (exit code, stdout, its error line)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
    error_line = ""
    try:
        for line in process.stderr:
            sys.stderr.write(line)
            sys.stderr.flush()
            if line.startswith("error: "):
                error_line = line[len("error: "):].strip()
        stdout = process.stdout.read()
        code = process.wait()
    except KeyboardInterrupt:
        process.wait(timeout=60)  # the child got the same Ctrl-C: let it checkpoint
        raise
    return code, stdout, error_line


def _created_run(stdout: str) -> Path | None:
    """The run directory that ``vmcr2 train --json`` reports."""
    try:
        return Path(json.loads(stdout)["run_dir"])
    except (ValueError, KeyError, TypeError):
        return None


def _run_dirs(runs_dir: Path) -> set[Path]:
    return {run.path for run in runs_in(runs_dir)} if Path(runs_dir).is_dir() else set()


def _toml_value(value: Any) -> str:
    """A value as ``--set`` reads it back (TOML; bare words stay strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a TOML basic string
