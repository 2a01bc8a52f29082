"""Where the time of V-MCR²'s block step goes, at the bench's shape (m = 2000, d = 500, q = 10·k).

    python benchmarks/block_step_parts.py [--classes 10,1000] [--repeats 7]

Times, on the CPU (or --device cuda), the parts of one `vmcr2_method = "block"` training
step on the bench's latched synthetic batch: R^v with ∇ (the d×d Cholesky and the two
d²·q products), the per-class products on each class's own atoms, the dictionary's
per-class Grams, the exact ΔR the trainer logs, the θ loss with its backward, and the
whole step (``VMCR2Objective.step`` and backward) beside exact MCR²'s step. Medians of
``--repeats`` calls after two warm-up calls, each part alone.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from vmcr2_cli.bench.timing import time_call
from vmcr2_cli.bench.workload import latch_on_batch, subspace_features
from vmcr2_cli.objectives import ClassPartition, ObjectiveSettings, build_objective, rate_reduction
from vmcr2_cli.objectives import block
from vmcr2_cli.objectives.variational import _within_class_energy, dictionary_rate


def median_seconds(fn, device: torch.device, repeats: int) -> float:
    for _ in range(2):
        fn()
    return statistics.median(time_call(fn, device) for _ in range(repeats))


def parts(classes: int, device: torch.device, repeats: int, m: int = 2000, d: int = 500, s: int = 10) -> dict:
    generator = torch.Generator().manual_seed(classes)
    Z, labels = subspace_features(m, d, classes, s, device, generator)
    objective = build_objective("vmcr2", d, classes, ObjectiveSettings(atoms_per_class=s, method="block")).to(device)
    variational = objective.variational
    partition = ClassPartition(labels, classes)
    latch_on_batch(variational, Z, partition, generator)
    mcr2 = build_objective("mcr2", d, classes)
    _, spectra = block.dictionary_blocks(variational.gamma, variational.A, classes)
    atoms = block.class_atoms(variational, classes)
    alpha = d / (m * variational.eps2)

    def step(chosen):
        def run():
            features = Z.detach().requires_grad_()
            chosen.step(features, ClassPartition(labels, classes)).loss.backward()
        return run

    def theta_loss():
        features = Z.detach().requires_grad_()
        block.theta_loss(variational, features, partition).backward()

    timed = {
        "R^v and ΓᵀK (dictionary_rate)": lambda: dictionary_rate(atoms.view(-1, d), spectra.reshape(-1), alpha,
                                                                 check=False),
        "own-atom products Γ_jᵀZ_jᵀZ_j": lambda: block.own_moment_products(Z, partition, atoms),
        "class Grams Γ_jᵀΓ_j, G_j^⊙2 A_j": lambda: block.dictionary_energy(atoms, spectra),
        "‖Z_jZ_jᵀ‖²": lambda: _within_class_energy(Z, partition),
        "exact ΔR (logged)": lambda: rate_reduction(Z, partition, classes, variational.eps2),
        "θ loss + backward": theta_loss,
        "block step (whole)": step(objective),
        "mcr2 step (whole)": step(mcr2),
    }
    return {name: median_seconds(fn, device, repeats) for name, fn in timed.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", default="10,1000")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    counts = [int(k) for k in args.classes.split(",")]
    results = {k: parts(k, device, args.repeats) for k in counts}
    names = list(results[counts[0]])
    print("| part | " + " | ".join(f"k = {k}" for k in counts) + " |")
    print("| --- | " + " | ".join("---:" for _ in counts) + " |")
    for name in names:
        print(f"| {name} | " + " | ".join(f"{results[k][name] * 1e3:.1f} ms" for k in counts) + " |")


if __name__ == "__main__":
    main()
