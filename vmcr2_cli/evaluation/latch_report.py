"""``vmcr2 latch``: Algorithm 2 on a run's checkpoint, with what it changes and what it captures.

Γ and A are latched exactly as the trainer does it (``latch_over_dataset`` on the
training-mode features of the checkpoint's epoch, rescaled to the batch), and reported:

- the terms of eq. 7 — R^v, R_c^v, M, ΔR^v — on a fixed probe batch before and after,
  next to the exact ΔR of that batch, which ΔR^v approximates (latching changes Γ and
  A, not the features, so the exact value is the same before and after);
- the exact R, R_c, ΔR of the whole training set (float64) under the same features;
- for each class, the share of its spectrum (top-s eigenvalues / trace of its second
  moment) that its s = q/k atoms capture, and how many atoms 90/95/99 % would need:
  the guide for choosing q = s·k.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from vmcr2_cli.evaluation.loading import LoadedRun
from vmcr2_cli.metric_keys import LATCH_TERMS
from vmcr2_cli.numbers import finite_or_none
from vmcr2_cli.evaluation.statistics import class_statistics
from vmcr2_cli.evaluation.structure import energy_dimension, spectrum_share
from vmcr2_cli.training.latching import latch_over_dataset

SHARES = (0.9, 0.95, 0.99)
LATCH_FEATURES = "train mode (dropout on, BatchNorm on batch statistics){augmentation}"


@torch.no_grad()
def latch_run(loaded: LoadedRun, *, write: bool = False,
              log: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """Latch the run's Γ, A over its training set; with ``write``, store them in its checkpoint."""
    run, config, dataset = loaded.run, loaded.config, loaded.dataset
    k = dataset.num_classes
    variational = loaded.networks.objective.variational
    q = variational.dictionary_size
    atoms = q // k

    log(f"training-mode features of {dataset.num_train} images (Algorithm 2's Z_θ)…")
    features, labels = loaded.latching_features()
    log("latching Γ and A (Algorithm 2)…")
    report = latch_over_dataset(variational, features, labels, k, config.batch_size, seed=config.seed)
    log("class spectra and the exact rates over the training set (float64)…")
    stats = class_statistics(features, labels, k, components=atoms, eps2=config.eps2)
    share = spectrum_share(stats.eigenvalues, atoms)
    needed = {f: energy_dimension(stats.eigenvalues, f) for f in SHARES}
    names = loaded.class_names
    present = stats.counts > 0

    classes = [{"class": j, "name": names[j], "count": int(stats.counts[j]),
                "spectrum_share": share[j].item(),
                **{f"atoms_for_{round(f * 100)}": int(needed[f][j]) for f in SHARES}} for j in range(k)]
    finite_share = share[present & torch.isfinite(share)]
    lowest = int(torch.where(torch.isfinite(share), share, torch.tensor(2.0, dtype=share.dtype)).argmin())
    result: dict[str, Any] = {
        "run_id": run.name,
        "run_dir": str(run.path),
        "objective": config.objective,
        "epoch": loaded.epoch,
        "step": loaded.global_step,
        "device": str(loaded.device),
        "num_classes": k,
        "feature_dim": config.feature_dim,
        "dictionary_size": q,
        "atoms_per_class": atoms,
        "batch_size": config.batch_size,
        "probe": {
            "samples": min(config.batch_size, int(features.shape[0])),
            "before": {key: report[f"{key}_before"] for key in LATCH_TERMS},
            "after": {key: report[f"{key}_after"] for key in LATCH_TERMS},
            "exact": {"delta_r": report["delta_r"], "r": report["r"], "r_c": report["r_c"]},
        },
        "dataset": {"samples": stats.num_samples, "delta_r": stats.delta_r, "r": stats.r, "r_c": stats.r_c,
                    "dtype": "float64",
                    "features": LATCH_FEATURES.format(augmentation=", this epoch's augmentation"
                                                      if config.augment != "none" else "")},
        "spectrum_share": {"mean": finite_share.mean().item() if finite_share.numel() else None,
                           "min": finite_share.min().item() if finite_share.numel() else None,
                           "min_class": names[lowest] if finite_share.numel() else None},
        "suggested_atoms_per_class": {f"{round(f * 100)}": int(needed[f][present].max()) if present.any() else None
                                      for f in SHARES},
        "classes": classes,
        "written": False,
    }
    if write:
        state = loaded.state
        objective_state = dict(state["objective"])
        objective_state["variational.gamma"] = variational.gamma.detach().cpu().clone()
        objective_state["variational.A"] = variational.A.detach().cpu().clone()
        state["objective"] = objective_state
        state["latched"] = True
        run.save_checkpoint(state)
        run.append_metrics("latch", epoch=loaded.epoch, step=loaded.global_step, source="vmcr2 latch", **report)
        result["written"] = True
    return finite_or_none(result)
