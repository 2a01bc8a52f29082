"""Where each V-MCR² method sends the features, against where exact MCR² would.

For a featurizer (a run's last checkpoint, or the profile's random initialization) this
latches Γ, A over the training set exactly as the trainer does (train-mode features,
rescaled to the batch), then, on each of a few training batches, compares the direction
in which each method's θ-loss moves the features Z with the exact ascent direction
∇_Z ΔR of the same batch (both projected on the unit sphere's tangent space, since the
featurizer normalizes its rows). θ's gradient is the featurizer's Jacobian applied to
that direction, so a negative cosine here is a step that lowers ΔR.

    Algorithm 1 ("paper") at several μ: one proximal step on Γ, A, then ∇_Z μ/(2m)·M;
        also the share of that direction that is the batch's mismatch with the latched
        dictionary before the step (the residual), not the step itself.
    the tangent method at several track rates: one tracking step, then ∇_Z of the bound.

Usage (the numbers in benchmarks/REPRODUCTION.md):
    python benchmarks/gradient_alignment.py                      # default profile, at initialization
    python benchmarks/gradient_alignment.py --run runs/latest    # a trained run
"""

from __future__ import annotations

import argparse
import copy
import json

import torch

from vmcr2_cli.config import resolve_config
from vmcr2_cli.evaluation.loading import load_run, open_run
from vmcr2_cli.objectives import ClassPartition, VariationalMCR2, rate_reduction
from vmcr2_cli.objectives.tangent import tangent_bound, track
from vmcr2_cli.training.latching import latch_over_dataset
from vmcr2_cli.training.setup import load_training_data, resolve_device
from vmcr2_cli.data.seeding import step_seed
from vmcr2_cli.training.trainer import Trainer

MUS = (0.01, 0.03, 0.1, 1.0, 10.0, 100.0)
TRACK_RATES = (1.0, 0.3, 0.1)


def sphere_tangent(gradient: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
    return gradient - (gradient * Z).sum(dim=1, keepdim=True) * Z


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a * b).sum() / (a.norm() * b.norm()))


def descent_direction(loss_of, Z: torch.Tensor) -> torch.Tensor:
    """−∇_Z of a loss, on the sphere's tangent space."""
    Z = Z.detach().clone().requires_grad_()
    (gradient,) = torch.autograd.grad(loss_of(Z), Z)
    return sphere_tangent(-gradient, Z.detach())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a run directory (default: the profile's initial network)")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_default_dtype(torch.float32)
    if args.run:
        loaded = load_run(open_run(args.run), device="cpu")
        config, dataset = loaded.config, loaded.dataset
        trainer = Trainer(config, dataset, run=None, device=loaded.device)
        trainer.restore(loaded.state, args.run)
    else:
        config, _ = resolve_config(args.profile, "vmcr2")
        dataset = load_training_data(config)
        trainer = Trainer(config, dataset, run=None, device=resolve_device("cpu"))
    k, dtype = dataset.num_classes, torch.float64
    q = config.atoms_per_class * k
    features, labels = trainer.latching_features()
    latched = VariationalMCR2(config.feature_dim, k, q, eps2=config.eps2, dtype=dtype).to(features.device)
    latch_over_dataset(latched, features.to(dtype), labels, k, config.batch_size, seed=config.seed)

    rows: dict[str, list[float]] = {}
    trainer.model.train()
    for step, batch in trainer.loader.epoch(0):
        if step == args.batches:
            break
        torch.manual_seed(step_seed(config.seed, step))
        with torch.no_grad():
            Z = trainer.model(batch.images).to(dtype)
        partition = ClassPartition(batch.labels_cpu, k)
        ascent = descent_direction(lambda X: -rate_reduction(X, partition, k, config.eps2, dtype).delta_r, Z)
        for mu in MUS:
            paper = copy.deepcopy(latched)
            paper.mu = mu
            residual = descent_direction(lambda X: paper.theta_loss(X, partition), Z)
            paper.proximal_step(Z, partition)
            direction = descent_direction(lambda X: paper.theta_loss(X, partition), Z)
            rows.setdefault(f"paper mu={mu:g}", []).append(cosine(direction, ascent))
            rows.setdefault(f"paper mu={mu:g}: |residual|/|direction|", []).append(
                float(residual.norm() / direction.norm()))
        rows.setdefault("paper, the residual alone (any mu)", []).append(cosine(residual, ascent))
        for rate in TRACK_RATES:
            tangent = copy.deepcopy(latched)
            track(tangent.gamma, tangent.A, Z, partition, rate)
            direction = descent_direction(
                lambda X: -tangent_bound(X, partition, tangent.gamma, tangent.A, config.eps2).bound, Z)
            rows.setdefault(f"tangent track_rate={rate:g}", []).append(cosine(direction, ascent))
    summary = {name: sum(values) / len(values) for name, values in rows.items()}
    if args.json:
        print(json.dumps({"run": args.run, "profile": config.description, "batches": args.batches,
                          "mean": summary}, indent=2))
        return
    source = args.run or f"profile {args.profile}, initial network"
    print(f"cosine with the exact ΔR ascent direction, mean over {args.batches} batches ({source})")
    for name, value in summary.items():
        print(f"  {name:<42} {value:+.3f}")


if __name__ == "__main__":
    main()
