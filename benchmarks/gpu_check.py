"""The check to run first on a GPU machine: does vmcr2 work there, and how fast is it?

    benchmarks/gpu_check.sh [--cpu] [--out DIR] [--budget-s SECONDS]

Runs, each as its own process with a time limit, from this checkout (no install needed;
the GPU images here have torch, torchvision, typer and rich but not textual or tomli),
in this order, most telling first:

1. the imports: ``vmcr2_cli.cli`` and ``vmcr2 train --help`` with Textual blocked;
2. one epoch of V-MCR² on CIFAR-100-shaped data (written here in the real on-disk format);
3. the host-sync census (``benchmarks/sync_census.py``): two epochs of a Tiny-ImageNet-shaped
   V-MCR² run under ``torch.cuda.set_sync_debug_mode("warn")``, each sync site and its count;
4. ``--resume`` of step 2's run from its CUDA checkpoint to a second epoch, with a latch and
   step lines; then one epoch of the tangent method; then ``vmcr2 pack`` of the CIFAR-100 files and
   step 2's epoch again from the pack (streamed from disk, pinned, non-blocking copies);
5. the CUDA tests (``pytest -m gpu``), where pytest is installed;
6. ``vmcr2 bench`` of the objectives alone at the paper's shape (m = 2000, d = 500, q = 10·k,
   k = 10 … 1000), and of ResNet-18 training steps at batch 2000, whole and with micro_batch 500
   (time and peak memory of each);
7. one epoch of every other objective on CIFAR-100- and Tiny-ImageNet-shaped data;
8. ``vmcr2 train --nproc 1``: the DDP path on NCCL.

Each step's result is written as soon as it ends: its whole output in DIR/logs/, DIR/gpu_check.json
and DIR/gpu_check.md rewritten (atomically), then a line of DIR/steps.jsonl; one line is
printed per step. When ``--budget-s`` (default 480 s on a GPU, unlimited with --cpu) runs out
no new step starts (the rest are listed as skipped) and a running step is stopped at the
budget, so a device call that is cut off still brings back every finished step. SIGTERM or
SIGINT ends the running step, records it as killed and writes the summaries. What cannot run
here (no pytest, no CUDA) is recorded as skipped with the reason, never as passed. The exit
code is 1 if a step failed. ``--cpu`` runs the same steps at toy sizes on the CPU, in about
a minute: CI runs it so that this script stays working between GPU sessions.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the real-format dataset writers live with the tests

OUTPUT_TAIL = 2000  # characters of a step's output kept in the JSON
# The objectives trained for one epoch: the three of the paper, and V-MCR²'s block and tangent methods.
TRAINED = {"mcr2": [], "vmcr2": [], "vmcr2-block": ["--set", "vmcr2_method=block"],
           "vmcr2-tangent": ["--set", "vmcr2_method=tangent", "--set", "latch_every=1"], "ce": []}
BLOCK_TEXTUAL = "import sys; sys.modules['textual'] = None; sys.modules['tomli'] = None; "


@dataclass(frozen=True)
class Sizes:
    """What each step runs at: the paper's shapes on a GPU, toy ones with --cpu."""

    device: str
    bench: list[str]
    step_bench: list[str]
    cifar100: dict  # write_cifar100 arguments
    tinyimagenet: dict  # write_tinyimagenet arguments
    train: list[str]  # extra `vmcr2 train` arguments (--set only: the sync census takes them too)
    timeout_s: int  # per step
    budget_s: float | None  # for all the steps; None: no limit


GPU = Sizes(
    device="cuda",
    bench=["--classes", "10,100,200,1000"],
    step_bench=["--classes", "100", "--backbone", "resnet18", "--variants", "mcr2,vmcr2,vmcr2-block,ce",
                "--repeats", "5", "--budget", "10", "--micro-batch", "500"],
    cifar100={"n_train": 20_000, "n_test": 2_000},
    tinyimagenet={"n_classes": 200, "per_class": 100, "val_per_class": 10, "archive": True},
    train=[],
    timeout_s=240,
    budget_s=480,  # 8 minutes: a device call gives 10, and the machine takes time to start
)
CPU = Sizes(
    device="cpu",
    bench=["--classes", "2,4", "--batch-size", "32", "--dim", "8", "--atoms-per-class", "2", "--repeats", "2",
           "--warmup", "1"],
    step_bench=["--classes", "4", "--backbone", "resnet18", "--batch-size", "8", "--dim", "8",
                "--atoms-per-class", "2", "--variants", "mcr2,vmcr2,vmcr2-block,ce", "--dataset-size", "64",
                "--repeats", "2", "--warmup", "1", "--micro-batch", "4"],
    cifar100={"n_train": 400, "n_test": 100},
    tinyimagenet={"n_classes": 200, "per_class": 2, "val_per_class": 1, "archive": True},
    train=["--set", "model=mnist-cnn", "--set", "width=0.25", "--set", "feature_dim=16", "--set", "atoms_per_class=2",
           "--set", "batch_size=200", "--set", "augment=none"],
    # Generous: the ResNet-18 bench step takes 7 s on an idle 2-core machine and 26–81 s beside one
    # training process (OpenMP threads oversubscribed); a CI machine shared with others must not fail it.
    timeout_s=300,
    budget_s=None,
)


@dataclass
class Result:
    """One step: what ran, how it ended, and the figures read from its output."""

    name: str
    command: list[str]
    status: str = "skipped"  # passed, failed, killed or skipped
    seconds: float = 0.0
    reason: str = ""
    figures: dict = field(default_factory=dict)
    output_tail: str = ""


class Stopped(Exception):
    """SIGTERM or SIGINT reached the check: the running step is ended and recorded as killed."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop(signum: int, frame) -> None:
    raise Stopped(signum)


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


@contextmanager
def _signals_held() -> Iterator[None]:
    """SIGTERM and SIGINT wait until the block ends: a step's record (its line, then both summaries) is
    written whole, never cut between the line a reader has seen and the summary."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # a pending one is handled here


class Check:
    """The steps' shared state: sizes, output folder, time budget, and the record written so far."""

    def __init__(self, sizes: Sizes, out: Path, machine: dict, mode: str) -> None:
        self.sizes, self.out = sizes, out
        self.started = time.time()
        self.deadline = None if sizes.budget_s is None else time.monotonic() + sizes.budget_s
        self.summary = {"tool": "benchmarks/gpu_check.sh", "mode": mode, "machine": machine,
                        "budget_s": sizes.budget_s,
                        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
                        "seconds": 0.0, "steps": []}
        self._last_output = ""  # what the step in progress printed, for its log
        (out / "logs").mkdir(parents=True, exist_ok=True)
        (out / "steps.jsonl").write_text("")

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def record(self, result: Result, output: str = "") -> Result:
        """Write ``result`` now: its line, its log, both summaries; print one line."""
        with _signals_held():
            return self._write(result, output)

    def _write(self, result: Result, output: str) -> Result:
        """The log and both summaries first, the line of steps.jsonl last: a step that has its line has the
        rest (a SIGKILL, which nothing can hold, may fall between two of these writes)."""
        number = len(self.summary["steps"]) + 1
        if output:
            slug = re.sub(r"[^a-z0-9]+", "-", result.name.lower()).strip("-")[:60]
            (self.out / "logs" / f"{number:02d}-{slug}.log").write_text(output)
        self.summary["steps"].append(asdict(result))
        self.summary["seconds"] = round(time.time() - self.started, 1)
        _atomic_write(self.out / "gpu_check.json", json.dumps(self.summary, indent=2, ensure_ascii=False) + "\n")
        _atomic_write(self.out / "gpu_check.md", markdown(self.summary))
        with open(self.out / "steps.jsonl", "a") as steps:
            steps.write(json.dumps(asdict(result), ensure_ascii=False) + "\n")
            steps.flush()
            os.fsync(steps.fileno())
        note = f" ({result.reason})" if result.reason else ""
        print(f"[{number:2d}] {result.status:<7} {result.seconds:6.1f} s  {result.name}{note}", flush=True)
        return result

    def run(self, name: str, command: list[str]) -> tuple[Result, str]:
        """The step ``command`` within its time limit and the budget, and its stdout ('' if it did not end).

        The step runs in a session of its own, so that ending it (time limit, budget, a signal to
        the check) ends every process it started."""
        result, stdout = Result(name, command), ""
        remaining = self.remaining()
        limit = self.sizes.timeout_s if remaining is None else max(1.0, min(self.sizes.timeout_s, remaining))
        begin = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                                   env=_env(), start_new_session=True)
        try:
            stdout, stderr = process.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            stdout, stderr = _end(process)
            over_budget = remaining is not None and limit < self.sizes.timeout_s
            result.status = "failed"
            result.reason = f"stopped at the budget after {limit:.0f} s" if over_budget else f"timed out after {limit:.0f} s"
            stdout = ""
        except Stopped as stopped:
            stdout, stderr = _end(process)
            result.status, result.reason = "killed", f"{stopped} during the step"
            result.seconds = round(time.perf_counter() - begin, 1)
            result.output_tail = (stdout + stderr)[-OUTPUT_TAIL:]
            self.record(result, stdout + stderr)
            raise
        else:
            result.status = "passed" if process.returncode == 0 else "failed"
            result.reason = "" if process.returncode == 0 else f"exit code {process.returncode}"
        result.seconds = round(time.perf_counter() - begin, 1)
        result.output_tail = (stdout + stderr)[-OUTPUT_TAIL:]
        self._last_output = stdout + stderr
        return result, stdout

    def step(self, name: str, make: Callable[[str], Result]) -> None:
        """Run one step unless the budget is spent; record it either way."""
        remaining = self.remaining()
        if remaining is not None and remaining <= 1:
            self.record(Result(name, [], reason="the time budget was spent"))
            return
        self._last_output = ""
        try:
            result = make(name)
        except Stopped:
            raise
        except Exception as error:  # reading a step's figures must never end the check
            result = Result(name, [], "failed", reason=f"the check itself failed: {type(error).__name__}: {error}")
        self.record(result, self._last_output)


def _end(process: subprocess.Popen) -> tuple[str, str]:
    """Kill a step's whole session and collect what it printed."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    stdout, stderr = process.communicate()
    return stdout or "", stderr or ""


def _atomic_write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu_check.sh", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="toy sizes on the CPU (what CI runs)")
    parser.add_argument("--out", type=Path, default=Path("gpu_check"), help="folder for the results")
    parser.add_argument("--budget-s", type=float, help="seconds for all the steps (default: 480 on a GPU, "
                        "no limit with --cpu); no step starts after it, a running one is stopped at it")
    args = parser.parse_args(argv)
    sizes = CPU if args.cpu else GPU
    if args.budget_s is not None:
        sizes = Sizes(**{**asdict(sizes), "budget_s": args.budget_s})
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    machine = _machine(sizes)
    if sizes.device == "cuda" and not machine.get("cuda"):
        print("gpu_check: no CUDA device here; run with --cpu for the reduced check", file=sys.stderr)
        return 2
    check = Check(sizes, out, machine, "cpu" if args.cpu else "gpu")
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"gpu_check: {machine.get('device')}, torch {machine.get('torch')}, budget "
          f"{'none' if sizes.budget_s is None else f'{sizes.budget_s:.0f} s'}; results in {out}", flush=True)
    steps = _steps(check)
    try:
        for position, (name, make) in enumerate(steps):
            check.step(name, make)
    except Stopped as stopped:
        if len(check.summary["steps"]) == position:  # the signal came as the step started, outside its run
            check.record(Result(steps[position][0], [], "killed", reason=f"{stopped} as the step started"))
        for name, _ in steps[position + 1:]:
            check.record(Result(name, [], reason=f"not started: the check got {stopped}"))
        print(f"gpu_check: stopped by {stopped}; finished steps are in {out / 'gpu_check.md'}", file=sys.stderr)
        return 128 + stopped.signum
    results = check.summary["steps"]
    failed = [result["name"] for result in results if result["status"] == "failed"]
    print(f"gpu_check: {len(results) - len(failed)} of {len(results)} steps did not fail"
          + (f"; failed: {', '.join(failed)}" if failed else "") + f" ({check.summary['seconds']:.0f} s); "
          f"results in {out / 'gpu_check.md'}")
    return 1 if failed else 0


def _steps(check: Check) -> list[tuple[str, Callable[[str], Result]]]:
    """Every step, most telling first (see the module docstring), as (name, what runs it given its name)."""
    sizes, data = check.sizes, check.out / "data"
    first = "cifar100-vmcr2"

    def one_epoch(profile: str, objective: str) -> tuple[str, Callable[[str], Result]]:
        arguments = ["--profile", profile, "--set", f"objective={objective.split('-')[0]}", *TRAINED[objective]]
        return (f"train 1 epoch: {profile}-{objective}",
                lambda name: _train(check, name, f"{profile}-{objective}", arguments, data))

    others = [one_epoch(profile, objective) for profile in ("cifar100", "tinyimagenet") for objective in TRAINED
              if (profile, objective) not in (("cifar100", "vmcr2"), ("cifar100", "vmcr2-tangent"))]
    return [
        ("imports without textual",
         lambda name: check.run(name, [sys.executable, "-c", BLOCK_TEXTUAL + "import vmcr2_cli.cli"])[0]),
        ("vmcr2 train --help without textual",
         lambda name: check.run(name, [sys.executable, "-c", BLOCK_TEXTUAL + "sys.argv = ['vmcr2', 'train', "
                                       "'--help']; from vmcr2_cli.cli import main; main()"])[0]),
        ("write the datasets (CIFAR-100, Tiny ImageNet formats)", lambda name: _write_data(name, sizes, data)),
        (f"train 1 epoch: {first}",
         lambda name: _train(check, name, first, ["--profile", "cifar100", "--set", "objective=vmcr2",
                                                  "--set", "latch_every=1", "--set", "log_every=1"], data)),
        ("sync census: 2 epochs of tinyimagenet V-MCR²", lambda name: _census(check, name, data)),
        ("resume from the checkpoint: a 2nd epoch with a latch", lambda name: _resume(check, name, first)),
        one_epoch("cifar100", "vmcr2-tangent"),
        (f"pack CIFAR-100, train 1 epoch from the pack: {first}", lambda name: _packed(check, name, first, data)),
        ("CUDA tests (pytest -m gpu)", lambda name: _cuda_tests(check, name)),
        ("bench: objectives at the paper's shape", lambda name: _bench(check, name, sizes.bench)),
        ("bench: ResNet-18 training step", lambda name: _bench(check, name, sizes.step_bench)),
        *others,
        ("train --nproc 1 (DDP, NCCL on a GPU)", lambda name: _ddp(check, name, data)),
    ]


def _write_data(name: str, sizes: Sizes, data: Path) -> Result:
    """The datasets the trainings read, in their real on-disk formats (no network)."""
    from fixtures_data import write_cifar100, write_tinyimagenet

    begin = time.perf_counter()
    write_cifar100(data, **sizes.cifar100)
    write_tinyimagenet(data, **sizes.tinyimagenet)
    return Result(name, ["fixtures_data.write_*"], "passed", round(time.perf_counter() - begin, 1))


def _machine(sizes: Sizes) -> dict:
    """The device and versions, read in a child process like every step."""
    code = ("import json, torch; cuda = torch.cuda.is_available(); print(json.dumps({'torch': torch.__version__, "
            "'cuda': torch.version.cuda if cuda else None, 'device': torch.cuda.get_device_name(0) if cuda else "
            "'cpu', 'nccl': cuda and torch.distributed.is_nccl_available()}))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120)
    machine = json.loads(found.stdout) if found.returncode == 0 else {"error": found.stderr[-OUTPUT_TAIL:]}
    return {**machine, "python": platform.python_version(), "host": platform.node(), "cpus": os.cpu_count(),
            "textual": importlib.util.find_spec("textual") is not None,
            "pytest": importlib.util.find_spec("pytest") is not None,
            "matplotlib": importlib.util.find_spec("matplotlib") is not None, "requested": sizes.device}


def _env() -> dict:
    """This checkout first on the path, so that nothing needs installing."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def _vmcr2(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "vmcr2_cli", *arguments]


def _cuda_tests(check: Check, name: str) -> Result:
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-p", "no:cacheprovider", "-q",
               "tests/test_objectives_cuda.py"]
    if check.sizes.device != "cuda":
        return Result(name, command, reason="--cpu: no CUDA device")
    if importlib.util.find_spec("pytest") is None:
        return Result(name, command, reason="pytest is not installed")
    return check.run(name, command)[0]


def _bench(check: Check, name: str, arguments: list[str]) -> Result:
    """A `vmcr2 bench --json` step; its figures: each row's median (and the V-MCR² ratios)."""
    result, stdout = check.run(name, _vmcr2("bench", *arguments, "--device", check.sizes.device, "--json",
                                            "--runs-dir", str(check.out / "bench")))
    if result.status == "passed":
        report = json.loads(stdout)
        result.figures = {
            "rows": [{key: row.get(key) for key in ("variant", "classes", "median_s", "peak_memory_mb", "step_median_s",
                                                     "step_share", "epoch_s", "step_peak_memory_mb",
                                                     "chunked_step_median_s", "chunked_step_peak_memory_mb")}
                     for row in report["rows"]],
            "vmcr2": {entry["classes"]: entry["vmcr2"] for entry in report["ratios"]},
        }
    return result


def _census(check: Check, name: str, data: Path) -> Result:
    """benchmarks/sync_census.py: each host-sync site of two epochs and how often it fired."""
    census = check.out / "sync_census.json"
    sets = check.sizes.train
    result, _ = check.run(name, [sys.executable, "benchmarks/sync_census.py", "--data-root", str(data), "--device",
                           check.sizes.device, "--out", str(census), *sets])
    if result.status == "passed" and census.is_file():
        found = json.loads(census.read_text())
        result.figures = {"steps": found["steps"], "sites": found["sites"][:20]}
        if not found["cuda"]:
            result.reason = "no CUDA device: trained, nothing to count"
    return result


def _ddp(check: Check, name: str, data: Path) -> Result:
    result = _train(check, name, "cifar100-vmcr2-ddp",
                    ["--profile", "cifar100", "--nproc", "1"], data)
    expected = "nccl" if check.sizes.device == "cuda" else "gloo"
    if result.status == "passed" and expected not in str(result.figures.get("backend")):
        result.status, result.reason = "failed", f"backend {result.figures.get('backend')!r}, expected {expected}"
    return result


def _packed(check: Check, title: str, first: str, data: Path) -> Result:
    """`vmcr2 pack cifar100`, then the first step's epoch again from the pack: batches streamed from disk
    through pinned memory, their epoch time beside the in-memory one's."""
    packed = check.out / "cifar100.packed"
    packing, _ = check.run(title, _vmcr2("pack", "cifar100", str(packed), "--data-root", str(data)))
    if packing.status != "passed":
        return packing
    result = _train(check, title, f"{first}-packed", ["--profile", "cifar100", "--set", "objective=vmcr2",
                                                      "--set", "latch_every=1", "--set", "dataset=packed"], packed)
    in_memory = _run_figures(Result(title, []), _run_dir(check, first)).figures
    result.figures.update(pack_s=packing.seconds, in_memory_epoch_time_s=in_memory.get("epoch_time_s"))
    return result


def _train(check: Check, title: str, name: str, arguments: list[str], data: Path) -> Result:
    """`vmcr2 train … --epochs 1`; its figures from the run directory: ΔR, epoch time, accuracy."""
    sizes = check.sizes
    result, _ = check.run(title, _vmcr2("train", *arguments, *sizes.train, "--epochs", "1", "--device", sizes.device,
                                        "--data-root", str(data), "--runs-dir", str(check.out / "runs"),
                                        "--name", name))
    return _run_figures(result, _run_dir(check, name))


def _resume(check: Check, title: str, name: str) -> Result:
    """``--resume`` of the finished one-epoch run ``name`` to two epochs: its checkpoint was written on the device."""
    run = _run_dir(check, name)
    if not (run / "meta.json").is_file():
        return Result(title, [], reason=f"no run {name} to resume")
    result, _ = check.run(title, _vmcr2("train", "--resume", str(run), "--epochs", "2"))
    result = _run_figures(result, run)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()] \
        if (run / "metrics.jsonl").is_file() else []
    epoch_1 = [line for line in lines if line.get("epoch") == 1]
    result.figures.update(latches=sum(line.get("type") == "latch" for line in lines),
                          epoch_1_step_lines=sum(line.get("type") == "step" for line in epoch_1),
                          epoch_1_latched=any(line.get("type") == "latch" for line in epoch_1))
    if result.status == "passed" and not (result.figures["epoch_1_latched"] and result.figures["epoch_1_step_lines"]):
        result.status, result.reason = "failed", "the resumed epoch logged no latch or no step line"
    return result


def _run_dir(check: Check, name: str) -> Path:
    runs = sorted((check.out / "runs").glob(f"*-{name}"))  # train names the folder <timestamp>-<name>
    return runs[-1] if runs else check.out / "runs" / name


def _run_figures(result: Result, run: Path) -> Result:
    """A training step's figures from its run directory; a run that did not finish fails the step."""
    if (run / "meta.json").is_file():
        meta = json.loads((run / "meta.json").read_text())
        metrics = run / "metrics.jsonl"  # absent when the step was stopped before its first line
        lines = map(json.loads, metrics.read_text().splitlines()) if metrics.is_file() else []
        epochs = [line for line in lines if line.get("type") == "epoch"]
        result.figures = {"status": meta.get("status"), "backend": meta.get("backend"),
                          "backbone_precision": meta.get("backbone_precision"),
                          "nearest_subspace_accuracy": meta.get("nearest_subspace_accuracy"),
                          "head_accuracy": meta.get("head_accuracy"),
                          "delta_r": epochs[-1].get("delta_r") if epochs else None,
                          "epoch_time_s": epochs[-1].get("epoch_time_s") if epochs else None}
        if result.status == "passed" and meta.get("status") != "finished":
            result.status, result.reason = "failed", f"run status {meta.get('status')!r}"
    return result


def markdown(summary: dict) -> str:
    """The summary as Markdown: the machine, every step, the bench rows and the trainings."""
    machine = summary["machine"]
    lines = [f"# gpu_check ({summary['mode']}), {summary['started']}", "",
             f"{machine.get('device')} · torch {machine.get('torch')} · CUDA {machine.get('cuda')} · "
             f"Python {machine.get('python')} · {machine.get('cpus')} CPUs · textual "
             f"{'installed' if machine.get('textual') else 'absent'} · pytest "
             f"{'installed' if machine.get('pytest') else 'absent'} · {summary['seconds']:.0f} s so far"
             f" (budget {summary.get('budget_s') or 'none'})", "",
             "| step | status | seconds | note |", "| --- | --- | ---: | --- |"]
    for step in summary["steps"]:
        lines.append(f"| {step['name']} | {step['status']} | {step['seconds']:.1f} | {step['reason']} |")
    for step in summary["steps"]:
        if step["name"].startswith("bench") and step["figures"].get("rows"):
            lines += ["", f"## {step['name']}", "", "| variant | k | median (s) | peak MiB | step (s) | share |",
                      "| --- | ---: | ---: | ---: | ---: | ---: |"]
            for row in step["figures"]["rows"]:
                lines.append(f"| {row['variant']} | {row['classes'] or '—'} | {_number(row['median_s'])} | "
                             f"{_number(row['peak_memory_mb'])} | {_number(row['step_median_s'])} | "
                             f"{_number(row['step_share'])} |")
    for step in summary["steps"]:
        if step["name"].startswith("sync census") and step["figures"].get("sites") is not None:
            lines += ["", f"## {step['name']} ({step['figures']['steps']} steps)", "", "| count | site |",
                      "| ---: | --- |"]
            lines += [f"| {site['count']} | `{site['site']}` |" for site in step["figures"]["sites"]]
    trainings = [step for step in summary["steps"] if step["name"].startswith(("train", "resume"))]
    if trainings:
        lines += ["", "## trainings (one epoch)", "", "| run | status | ΔR | epoch (s) | NS acc. | head acc. |",
                  "| --- | --- | ---: | ---: | ---: | ---: |"]
        for step in trainings:
            figures = step["figures"]
            lines.append(f"| {step['name']} | {figures.get('status', step['status'])} | "
                         f"{_number(figures.get('delta_r'))} | {_number(figures.get('epoch_time_s'))} | "
                         f"{_number(figures.get('nearest_subspace_accuracy'))} | "
                         f"{_number(figures.get('head_accuracy'))} |")
    return "\n".join(lines) + "\n"


def _number(value) -> str:
    return "—" if value is None else f"{value:.4g}"


if __name__ == "__main__":
    sys.exit(main())
