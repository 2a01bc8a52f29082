"""What separates V-MCR²'s block method from Algorithm 1 on a real run: the constraint or the step?

    python benchmarks/block_constraint.py RUN [--steps 40]

From RUN's checkpoint (a vmcr2 run, latched at the end of its last epoch), with θ fixed:
- takes ``--steps`` dense proximal steps of Algorithm 1 (``VariationalMCR2.proximal_step``)
  on the next epoch's training batches (the trainer's own loader, train-mode features,
  BatchNorm statistics untouched) and reports how
  much of A has grown off latching's blocks — what ``vmcr2_method = "block"`` forbids;
- reports eq. 19's ‖(ΓᵀΓ)^⊙2‖_F over the whole dictionary against its diagonal blocks
  (the block method's L_A before it measured the cross-class part at each latch): their ratio
  is how much further that version moved A.
"""

from __future__ import annotations

import argparse

import torch

from vmcr2_cli.evaluation.loading import load_run, open_run
from vmcr2_cli.objectives import ClassPartition
from vmcr2_cli.training.features import frozen_batchnorm_statistics
from vmcr2_cli.training.trainer import Trainer


def block_mask(q: int, k: int) -> torch.Tensor:
    """(q, k) True on each class's own atoms."""
    return torch.block_diag(*[torch.ones(q // k, 1, dtype=torch.bool)] * k)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    loaded = load_run(open_run(args.run), device="cpu")
    trainer = Trainer(loaded.config, loaded.dataset, run=None, device=loaded.device)  # its loader, at the checkpoint
    trainer.restore(loaded.state, args.run)
    variational = trainer.objective.variational
    k, q = trainer.dataset.num_classes, variational.dictionary_size
    on_block = block_mask(q, k)
    G2 = (variational.gamma.T @ variational.gamma).square()
    square_blocks = on_block.float() @ on_block.float().T > 0
    whole, diagonal = torch.linalg.matrix_norm(G2).item(), torch.linalg.vector_norm(G2[square_blocks]).item()
    print(f"‖(ΓᵀΓ)^⊙2‖_F: whole dictionary {whole:.2f}, diagonal blocks {diagonal:.2f}, ratio {whole / diagonal:.2f} "
          f"(q = {q}, d = {variational.feature_dim})")

    trainer.model.train()
    with torch.no_grad(), frozen_batchnorm_statistics(trainer.model):
        for step, batch in trainer.loader.epoch(trainer.epoch):
            if step >= args.steps:
                break
            variational.proximal_step(trainer.model(batch.images).float(), ClassPartition(batch.labels, k))
            A, done = variational.A, step + 1
            if done in (1, 5, args.steps) or done % 20 == 0:
                print(f"after {done} dense steps: {(A[~on_block].sum() / A.sum()).item():.4f} of A's mass and "
                      f"{(A[~on_block] > 0).float().mean().item():.4f} of its entries off the blocks")

if __name__ == "__main__":
    main()
