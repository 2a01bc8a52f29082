"""The check to run first on a GPU machine: does vmcr2 work there, and how fast is it?

    benchmarks/gpu_check.sh [--cpu] [--out DIR]

Runs, each as its own process with a time limit, from this checkout (no install needed;
the GPU images here have torch, torchvision, typer and rich but not textual or tomli):

1. the imports: ``vmcr2_cli.cli`` and ``vmcr2 train --help`` with Textual blocked;
2. the CUDA tests (``pytest -m gpu``), where pytest is installed;
3. ``vmcr2 bench`` of the objectives alone at the paper's shape (m = 2000, d = 500,
   q = 10·k, k = 10 … 1000);
4. ``vmcr2 bench`` of ResNet-18 training steps at batch 2000 (each objective's share);
5. one real epoch of ``vmcr2 train`` per objective on CIFAR-100- and Tiny-ImageNet-shaped
   data, written here in the real on-disk formats (no network);
6. ``vmcr2 train --nproc 1``: the DDP path on NCCL.

It writes DIR/gpu_check.json (every step's command, status, seconds, output tail and
figures) and DIR/gpu_check.md (the same as tables) and exits 1 if a step failed.
``--cpu`` runs the same steps at toy sizes on the CPU (the CUDA tests are skipped), in
about a minute: CI runs it so that this script stays working between GPU sessions.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the real-format dataset writers live with the tests

OUTPUT_TAIL = 2000  # characters of a step's output kept in the JSON
# The objectives trained for one epoch: the three of the paper, and V-MCR²'s block method.
TRAINED = {"mcr2": [], "vmcr2": [], "vmcr2-block": ["--set", "vmcr2_method=block"], "ce": []}
BLOCK_TEXTUAL = "import sys; sys.modules['textual'] = None; sys.modules['tomli'] = None; "


@dataclass(frozen=True)
class Sizes:
    """What each step runs at: the paper's shapes on a GPU, toy ones with --cpu."""

    device: str
    bench: list[str]
    step_bench: list[str]
    cifar100: dict  # write_cifar100 arguments
    tinyimagenet: dict  # write_tinyimagenet arguments
    train: list[str]  # extra `vmcr2 train` arguments
    timeout_s: int  # per step


GPU = Sizes(
    device="cuda",
    bench=["--classes", "10,100,200,1000"],
    step_bench=["--classes", "100", "--backbone", "resnet18", "--variants", "mcr2,vmcr2,vmcr2-block,ce",
                "--repeats", "5", "--budget", "10"],
    cifar100={"n_train": 20_000, "n_test": 2_000},
    tinyimagenet={"n_classes": 200, "per_class": 100, "val_per_class": 10, "archive": True},
    train=[],
    timeout_s=240,
)
CPU = Sizes(
    device="cpu",
    bench=["--classes", "2,4", "--batch-size", "32", "--dim", "8", "--atoms-per-class", "2", "--repeats", "2",
           "--warmup", "1"],
    step_bench=["--classes", "4", "--backbone", "resnet18", "--batch-size", "8", "--dim", "8",
                "--atoms-per-class", "2", "--variants", "mcr2,vmcr2,vmcr2-block,ce", "--dataset-size", "64",
                "--repeats", "2", "--warmup", "1"],
    cifar100={"n_train": 400, "n_test": 100},
    tinyimagenet={"n_classes": 200, "per_class": 2, "val_per_class": 1, "archive": True},
    train=["--set", "model=mnist-cnn", "--set", "width=0.25", "--set", "feature_dim=16", "--set", "atoms_per_class=2",
           "--batch-size", "200", "--set", "augment=none"],
    timeout_s=120,
)


@dataclass
class Result:
    """One step: what ran, how it ended, and the figures read from its output."""

    name: str
    command: list[str]
    status: str = "skipped"  # passed, failed or skipped
    seconds: float = 0.0
    reason: str = ""
    figures: dict = field(default_factory=dict)
    output_tail: str = ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu_check.sh", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="toy sizes on the CPU (what CI runs)")
    parser.add_argument("--out", type=Path, default=Path("gpu_check"), help="folder for the results")
    args = parser.parse_args(argv)
    sizes = CPU if args.cpu else GPU
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    machine = _machine(sizes)
    if sizes.device == "cuda" and not machine.get("cuda"):
        print("gpu_check: no CUDA device here; run with --cpu for the reduced check", file=sys.stderr)
        return 2
    results = [
        _run("imports without textual", [sys.executable, "-c", BLOCK_TEXTUAL + "import vmcr2_cli.cli"], sizes)[0],
        _run("vmcr2 train --help without textual",
             [sys.executable, "-c", BLOCK_TEXTUAL + "sys.argv = ['vmcr2', 'train', '--help']; "
              "from vmcr2_cli.cli import main; main()"], sizes)[0],
        _cuda_tests(sizes),
        _bench("bench: objectives at the paper's shape", sizes.bench, sizes, out),
        _bench("bench: ResNet-18 training step", sizes.step_bench, sizes, out),
    ]
    data = out / "data"
    results += _trainings(sizes, data, out)
    summary = {"tool": "benchmarks/gpu_check.sh", "mode": "cpu" if args.cpu else "gpu", "machine": machine,
               "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
               "seconds": round(time.time() - started, 1), "steps": [asdict(result) for result in results]}
    (out / "gpu_check.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    (out / "gpu_check.md").write_text(markdown(summary))
    failed = [result.name for result in results if result.status == "failed"]
    print(f"gpu_check: {len(results) - len(failed)} of {len(results)} steps did not fail"
          + (f"; failed: {', '.join(failed)}" if failed else "") + f" ({summary['seconds']:.0f} s); "
          f"results in {out / 'gpu_check.md'}")
    return 1 if failed else 0


def _machine(sizes: Sizes) -> dict:
    """The device and versions, read in a child process like every step."""
    code = ("import json, torch; cuda = torch.cuda.is_available(); print(json.dumps({'torch': torch.__version__, "
            "'cuda': torch.version.cuda if cuda else None, 'device': torch.cuda.get_device_name(0) if cuda else "
            "'cpu', 'nccl': cuda and torch.distributed.is_nccl_available()}))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120)
    machine = json.loads(found.stdout) if found.returncode == 0 else {"error": found.stderr[-OUTPUT_TAIL:]}
    return {**machine, "python": platform.python_version(), "host": platform.node(), "cpus": os.cpu_count(),
            "textual": importlib.util.find_spec("textual") is not None,
            "matplotlib": importlib.util.find_spec("matplotlib") is not None, "requested": sizes.device}


def _env() -> dict:
    """This checkout first on the path, so that nothing needs installing."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def _run(name: str, command: list[str], sizes: Sizes) -> tuple[Result, str]:
    """The step ``command`` within ``sizes.timeout_s``, and its stdout ('' if it timed out)."""
    result, stdout = Result(name, command), ""
    begin = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=_env(),
                              timeout=sizes.timeout_s)
    except subprocess.TimeoutExpired as expired:
        result.status, result.reason = "failed", f"timed out after {expired.timeout:.0f} s"
        result.output_tail = _text(expired.stdout)[-OUTPUT_TAIL:] + _text(expired.stderr)[-OUTPUT_TAIL:]
    else:
        result.status = "passed" if done.returncode == 0 else "failed"
        result.reason = "" if done.returncode == 0 else f"exit code {done.returncode}"
        result.output_tail = (done.stdout + done.stderr)[-OUTPUT_TAIL:]
        stdout = done.stdout
    result.seconds = round(time.perf_counter() - begin, 1)
    return result, stdout


def _text(output: bytes | str | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def _vmcr2(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "vmcr2_cli", *arguments]


def _cuda_tests(sizes: Sizes) -> Result:
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-p", "no:cacheprovider", "-q",
               "tests/test_objectives_cuda.py"]
    if sizes.device != "cuda":
        return Result("CUDA tests (pytest -m gpu)", command, reason="--cpu: no CUDA device")
    if importlib.util.find_spec("pytest") is None:
        return Result("CUDA tests (pytest -m gpu)", command, reason="pytest is not installed")
    return _run("CUDA tests (pytest -m gpu)", command, sizes)[0]


def _bench(name: str, arguments: list[str], sizes: Sizes, out: Path) -> Result:
    """A `vmcr2 bench --json` step; its figures: each row's median (and the V-MCR² ratios)."""
    result, stdout = _run(name, _vmcr2("bench", *arguments, "--device", sizes.device, "--json",
                                       "--runs-dir", str(out / "bench")), sizes)
    if result.status == "passed":
        report = json.loads(stdout)
        result.figures = {
            "rows": [{key: row[key] for key in ("variant", "classes", "median_s", "peak_memory_mb", "step_median_s",
                                                 "step_share", "epoch_s")} for row in report["rows"]],
            "vmcr2": {entry["classes"]: entry["vmcr2"] for entry in report["ratios"]},
        }
    return result


def _trainings(sizes: Sizes, data: Path, out: Path) -> list[Result]:
    """One epoch per objective on each dataset, and the same on one process of the DDP path."""
    from fixtures_data import write_cifar100, write_tinyimagenet

    begin = time.perf_counter()
    write_cifar100(data, **sizes.cifar100)
    write_tinyimagenet(data, **sizes.tinyimagenet)
    written = round(time.perf_counter() - begin, 1)
    results = []
    for profile in ("cifar100", "tinyimagenet"):
        for objective, extra in TRAINED.items():
            name = f"{profile}-{objective}"
            arguments = ["--profile", profile, "--set", f"objective={objective.split('-')[0]}", *extra]
            results.append(_train(f"train 1 epoch: {name}", name, arguments, sizes, data, out))
    nccl = _train("train --nproc 1 (DDP, NCCL on a GPU)", "cifar100-vmcr2-ddp",
                  ["--profile", "cifar100", "--nproc", "1"], sizes, data, out)
    expected = "nccl" if sizes.device == "cuda" else "gloo"
    if nccl.status == "passed" and expected not in str(nccl.figures.get("backend")):
        nccl.status, nccl.reason = "failed", f"backend {nccl.figures.get('backend')!r}, expected {expected}"
    results.append(nccl)
    results[0].figures["datasets_written_s"] = written
    return results


def _train(title: str, name: str, arguments: list[str], sizes: Sizes, data: Path, out: Path) -> Result:
    """`vmcr2 train … --epochs 1`; its figures from the run directory: ΔR, epoch time, accuracy."""
    result, _ = _run(title, _vmcr2("train", *arguments, *sizes.train, "--epochs", "1", "--device", sizes.device,
                                   "--data-root", str(data), "--runs-dir", str(out / "runs"), "--name", name), sizes)
    runs = sorted((out / "runs").glob(f"*-{name}"))  # train names the folder <timestamp>-<name>
    run = runs[-1] if runs else out / "runs" / name
    if (run / "meta.json").is_file():
        meta = json.loads((run / "meta.json").read_text())
        epochs = [line for line in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
                  if line.get("type") == "epoch"]
        result.figures = {"status": meta.get("status"), "backend": meta.get("backend"),
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
             f"{'installed' if machine.get('textual') else 'absent'} · {summary['seconds']:.0f} s in all", "",
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
    trainings = [step for step in summary["steps"] if step["name"].startswith("train")]
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
