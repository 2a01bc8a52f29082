"""kill -9 at random moments, then resume: is every run resumable, with nothing lost but the epoch in progress?

    python benchmarks/kill_resume.py [--runs 20] [--moments training|life] [--seed 0] [--out kill_resume.json]

Trains an uninterrupted reference run (synthetic data, V-MCR², 4 epochs of 10 steps, a latch
at every epoch's end), timing it. Then, ``--runs`` times: starts the same training in a
process of its own and SIGKILLs it at a moment drawn uniformly from its life after its run
directory appeared (``--moments training``: the first latch, steps, checkpoint writes,
latches, the final evaluation) or from its whole life (``life``: start-up too, where about
half the kills land before there is anything to lose). Then it checks what the kill left:

- no half-made run directory (a run directory either exists whole or not at all);
- if it exists: ``train --resume`` finishes it, every epoch that had been logged before
  the kill is still there, each epoch appears once to the readers, and the final
  parameters and accuracy equal the uninterrupted run's (resume is exact);
- if the kill came before the run directory existed: nothing to lose, nothing left.

Prints one line per run and a summary, and writes them as JSON. What ran beside it on the
machine changes the timings, not the outcome.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from vmcr2_cli.evaluation.comparison import read_run
from vmcr2_cli.runs import RunDir, is_run_dir

TRAIN = ["--profile", "synthetic", "--set", "synthetic_train_per_class=100", "--set", "synthetic_test_per_class=10",
         "--batch-size", "100", "--set", "log_every=1", "--epochs", "4", "--set", "latch_every=1", "--json"]


def vmcr2(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vmcr2_cli", *args], capture_output=True, text=True, **kwargs)


def parameters(run: RunDir) -> dict[str, torch.Tensor]:
    state = run.load_checkpoint()
    return {**state["model"], **{f"objective.{k}": v for k, v in state["objective"].items()}}


def same_parameters(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-6) for k in a)


def logged_epochs(run: RunDir) -> list[int]:
    return [line["epoch"] for line in read_run(run).epochs]


def start_training(runs_dir: Path) -> tuple[subprocess.Popen, float]:
    """A training process, and the seconds until its run directory appeared (inf if it did not)."""
    process = subprocess.Popen([sys.executable, "-m", "vmcr2_cli", "train", *TRAIN, "--runs-dir", str(runs_dir)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return process, time.perf_counter()


def wait_for_run_directory(runs_dir: Path, process: subprocess.Popen) -> bool:
    while process.poll() is None:
        if (runs_dir / "latest").exists():
            return True
        time.sleep(0.005)
    return (runs_dir / "latest").exists()


def one_kill(root: Path, delay: float, after_run_directory: bool, reference: tuple[dict, float]) -> dict:
    runs_dir = root / "runs"
    process, _ = start_training(runs_dir)
    if after_run_directory:
        wait_for_run_directory(runs_dir, process)
    time.sleep(delay)
    finished_first = process.poll() is not None
    process.kill()
    process.wait()
    visible = [p for p in runs_dir.iterdir() if not p.name.startswith(".") and p.name != "latest"] \
        if runs_dir.exists() else []
    outcome = {"kill_after_s": round(delay, 3), "finished_before_the_kill": finished_first}
    if not all(is_run_dir(p) for p in visible):
        return {**outcome, "ok": False, "what": f"half-made run directory: {visible}"}
    if not visible:
        return {**outcome, "ok": True, "what": "killed before the run directory existed"}
    run = RunDir(visible[0])
    before = logged_epochs(run)
    state = run.load_checkpoint() if run.checkpoint_path.is_file() else None
    outcome.update(epochs_logged_before=before, checkpoint_step=state["global_step"] if state else None,
                   status_left=run.read_meta()["status"])
    resumed = vmcr2("train", "--resume", str(run.path), "--json", timeout=600)
    if resumed.returncode != 0:
        return {**outcome, "ok": False, "what": f"resume failed: {resumed.stderr.strip().splitlines()[-1:]}"}
    accuracy = json.loads(resumed.stdout).get("nearest_subspace_accuracy")
    after = logged_epochs(run)
    problems = []
    if after != [0, 1, 2, 3]:
        problems.append(f"epochs after resume {after}")
    if before != after[:len(before)]:
        problems.append(f"lost epochs: {before} before, {after} after")
    if not same_parameters(parameters(run), reference[0]):
        problems.append("parameters differ from the uninterrupted run")
    if accuracy is None or abs(accuracy - reference[1]) > 1e-6:
        problems.append(f"accuracy {accuracy} != {reference[1]}")
    return {**outcome, "ok": not problems, "what": "; ".join(problems) or "resumed exactly",
            "status_after": run.read_meta()["status"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--moments", choices=("training", "life"), default="training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("kill_resume.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vmcr2-kill-") as tmp:
        root = Path(tmp)
        process, start = start_training(root / "reference")
        wait_for_run_directory(root / "reference", process)
        appeared = time.perf_counter() - start
        out, err = process.communicate(timeout=600)
        lifetime = time.perf_counter() - start
        if process.returncode:
            raise SystemExit(f"the reference run failed: {err}")
        reference_run = RunDir.open(root / "reference" / "latest")
        reference = (parameters(reference_run), json.loads(out)["nearest_subspace_accuracy"])
        after = args.moments == "training"
        window = lifetime - appeared if after else lifetime
        print(f"uninterrupted run: {lifetime:.1f} s, its run directory after {appeared:.1f} s; killing {args.runs} "
              f"runs at uniform moments in [0, {window:.1f}] s after {'it appeared' if after else 'the start'}")
        draw = random.Random(args.seed)
        results = []
        for index in range(args.runs):
            result = one_kill(root / f"kill-{index:02d}", draw.uniform(0.0, window), after, reference)
            results.append(result)
            print(f"{index + 1:2d}. kill at {result['kill_after_s']:6.2f} s  "
                  f"epochs logged {result.get('epochs_logged_before', '-')!s:9}  "
                  f"checkpoint step {result.get('checkpoint_step', '-')!s:4}  "
                  f"{'ok ' if result['ok'] else 'BAD'} {result['what']}", flush=True)
    resumable = sum(r["ok"] for r in results)
    summary = {"runs": len(results), "ok": resumable, "moments": args.moments, "reference_seconds": lifetime,
               "seed": args.seed, "results": results}
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{resumable} of {len(results)} resumable with nothing lost but the epoch in progress → {args.out}")
    raise SystemExit(0 if resumable == len(results) else 1)


if __name__ == "__main__":
    main()
