"""``vmcr2 eval``'s measurements of one run, as one JSON-able dict (what eval.json holds).

- accuracy: nearest subspace (eq. 8, p = ⌊d/k⌋ directions unless set; and with each class's
  fewest directions holding 90% of its energy, at most p), kNN (cosine,
  k = 10), and the CE head's for CE runs — all on the test set; on request the linear SVM,
  the linear probe and the two clusterings of ``classical.py``;
- the exact R, R_c, ΔR of the whole training set in float64 (eval-mode features, no
  augmentation), next to the batch-averaged values training logged for its last epoch
  (train-mode, augmented batches: a different scale, α = d/(mε²) with m the batch size);
- the structure of the class subspaces: principal angles, effective dimensions, NC1,
  and the figures (Figure 2's |ZᵀZ| heatmap, the subspace panels).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vmcr2_cli.errors import BadInput, RunFailed
from vmcr2_cli.evaluation.classical import (DEFAULT_METHODS, SCORES, check_available, compression_scores,
                                            kmeans_scores, linear_probe_accuracy, linear_svm_accuracy)
from vmcr2_cli.evaluation.knn import knn_predict
from vmcr2_cli.evaluation.loading import LoadedRun
from vmcr2_cli.evaluation.nearest_subspace import (accuracy, default_components, head_accuracy, per_class_recall,
                                                   predict_nearest_subspace)
from vmcr2_cli.numbers import finite, finite_or_none
from vmcr2_cli.runs import epoch_number
from vmcr2_cli.evaluation.statistics import nearest_subspace_predictions
from vmcr2_cli.evaluation.subspace_file import save_class_subspaces
from vmcr2_cli.evaluation.structure import (dominant_bases, effective_dimension, energy_dimension, feature_cosines,
                                            heatmap_sample, off_diagonal, principal_cosines,
                                            within_class_variability)

DOMINANT_ENERGY = 0.9  # a class's subspace: its directions holding this share of its energy (at most p)
# The k × k principal-cosine matrix is written into eval.json up to this many classes: at k = 1000
# it is 10⁶ numbers (27 MB of JSON); each class's closest class and the means stay.
MAX_CLASSES_IN_MATRIX = 200

HEATMAP_FILE = "zz_heatmap.png"
SUBSPACES_FILE = "subspaces.png"
EXACT_FEATURES = "eval mode (BatchNorm running statistics, no dropout), no augmentation"
LOGGED_FEATURES = "mean over the last epoch's training batches ({mode}), as logged"


@dataclass(frozen=True)
class EvalOptions:
    """What ``vmcr2 eval`` measures and writes.

    methods: the classifiers and clusterings to run (``classical.METHODS``; nearest
    subspace always); components: eq. 8's p (None: ⌊d/k⌋); knn_k: neighbours of the kNN view;
    heatmap_samples, max_heatmap_classes: points and classes in Figure 2's heatmap;
    save_features: an .npz to write the features to; figures: whether to draw the PNGs.
    """

    methods: tuple[str, ...] = DEFAULT_METHODS
    components: int | None = None
    knn_k: int = 10
    heatmap_samples: int = 1000
    max_heatmap_classes: int = 10
    save_features: Path | None = None
    figures: bool = True

    def check(self, feature_dim: int) -> None:
        """BadInput for options that cannot work with features of dimension ``feature_dim``."""
        if self.components is not None and not 1 <= self.components <= feature_dim:
            raise BadInput(f"--components {self.components}: must be between 1 and the feature dimension "
                           f"d = {feature_dim}")
        if self.knn_k < 1:
            raise BadInput(f"--knn-k {self.knn_k}: must be at least 1")
        check_available(self.methods)


@torch.no_grad()
def evaluate_run(loaded: LoadedRun, options: EvalOptions = EvalOptions(),
                 log: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """Measure ``loaded``'s checkpoint; write the figures (and features) it asks for; return the results."""
    started = time.perf_counter()
    run, config, dataset = loaded.run, loaded.config, loaded.dataset
    k, d = dataset.num_classes, config.feature_dim
    options.check(d)
    components = options.components or default_components(d, k)

    reference_images, reference_labels = dataset.reference()
    reference = "training" if dataset.labelled_train else "reference (half the labelled test tree)"
    log(f"features of {len(reference_images)} {reference} and {dataset.num_test} test images…")
    train_z, train_y = loaded.evaluation_features(reference_images, reference_labels)
    test_z, test_y = loaded.evaluation_features(dataset.test_images, dataset.test_labels)
    _check_finite(train_z, test_z, run.name)

    log("class moments, exact rates (float64) and subspaces…")
    stats, predicted = nearest_subspace_predictions(train_z, train_y, test_z, k, components=components,
                                                    eps2=config.eps2)
    ns_accuracy = accuracy(predicted, test_y)
    save_class_subspaces(run, loaded.checkpoint, stats.bases, loaded.global_step)  # for embed --predict
    recall = per_class_recall(predicted, test_y, k)
    scores = method_scores(train_z, train_y, test_z, test_y, k, options.methods, eps2=config.eps2,
                           seed=config.seed, knn_k=options.knn_k, log=log)
    head = head_accuracy(loaded.networks.model, loaded.networks.objective, test_z, test_y)

    effective = effective_dimension(stats.eigenvalues)
    dim90 = energy_dimension(stats.eigenvalues, DOMINANT_ENERGY)
    dominant = dominant_bases(stats.bases, dim90)  # each class's energy subspace: eq. 8 by energy, and the angles
    ns_energy_accuracy = accuracy(predict_nearest_subspace(test_z, dominant.to(test_z.device, torch.float32)), test_y)
    cosines = principal_cosines(dominant)
    between = off_diagonal(cosines)
    within_cos, between_cos = feature_cosines(train_z, train_y, seed=config.seed)
    variability = within_class_variability(stats)
    names = loaded.class_names

    results: dict[str, Any] = {
        "run_id": run.name,
        "run_dir": str(run.path),
        "objective": config.objective,
        "dataset": config.dataset,
        "num_classes": k,
        "feature_dim": d,
        "epoch": loaded.epoch,
        "step": loaded.global_step,
        "device": str(loaded.device),
        "num_train": int(train_z.shape[0]),
        "fitted_on": "train" if dataset.labelled_train else "test-half",
        "num_test": int(test_z.shape[0]),
        "components": components,
        "nearest_subspace_accuracy": ns_accuracy,
        "nearest_subspace_energy_accuracy": ns_energy_accuracy,
        "knn_k": options.knn_k,
        **scores,
        "methods": list(options.methods),
        "head_accuracy": head,
        "exact": {"r": stats.r, "r_c": stats.r_c, "delta_r": stats.delta_r, "samples": stats.num_samples,
                  "dtype": "float64", "eps2": config.eps2, "features": EXACT_FEATURES},
        "logged": logged_rates(run, augmented=config.augment != "none"),
        "structure": {
            "subspaces": f"each class's top directions holding {DOMINANT_ENERGY:.0%} of its energy, at most "
                         f"{components}",
            "mean_abs_cos": _mean(between),
            "max_abs_cos": _max(between),
            "mean_effective_dim": _mean(effective[stats.counts > 0]),
            "union_effective_dim": finite(effective_dimension(
                torch.linalg.eigvalsh(stats.total_moment).flip(-1)[None])[0].item()),
            "feature_abs_cos_within": finite(within_cos),
            "feature_abs_cos_between": finite(between_cos),
            "nc1": variability.nc1,
            "within_between_trace_ratio": variability.trace_ratio,
            "principal_cosines": ([[finite(v) for v in row] for row in cosines.tolist()]
                                  if k <= MAX_CLASSES_IN_MATRIX else None),
        },
        "classes": [_class_row(j, names, stats, recall, effective, dim90, cosines) for j in range(k)],
        "figures": {},
        "features_file": None,
    }
    if options.figures:
        log("figures…")
        results["figures"] = _draw_figures(loaded, train_z, train_y, stats, cosines, names, components, options)
    if options.save_features is not None:
        results["features_file"] = str(save_features(options.save_features, train_z, train_y, test_z, test_y))
    results["seconds"] = round(time.perf_counter() - started, 3)
    results["time"] = round(time.time(), 3)
    return finite_or_none(results)


def method_scores(train_z: torch.Tensor, train_y: torch.Tensor, test_z: torch.Tensor, test_y: torch.Tensor,
                  num_classes: int, methods: tuple[str, ...], *, eps2: float, seed: int, knn_k: int = 10,
                  log: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """kNN's accuracy and every ``classical.SCORES`` entry (None where its method was not asked for)."""
    k = num_classes
    scores: dict[str, Any] = {"knn_accuracy": None, **{score.key: None for score in SCORES},
                              "rrc_natural_groups": None}
    if "knn" in methods:
        log(f"kNN (cosine, k = {knn_k})…")
        scores["knn_accuracy"] = accuracy(knn_predict(train_z, train_y, test_z, k, knn_k), test_y)
    if "svm" in methods:
        log("linear SVM on the training features (scikit-learn)…")
        scores["svm_accuracy"] = linear_svm_accuracy(train_z, train_y, test_z, test_y, seed=seed)
    if "probe" in methods:
        log("linear probe: logistic regression on the training features (scikit-learn)…")
        scores["probe_accuracy"] = linear_probe_accuracy(train_z, train_y, test_z, test_y, seed=seed)
    if "kmeans" in methods:
        log(f"k-means of the test features into {k} clusters (scikit-learn)…")
        scores.update(kmeans_scores(test_z, test_y, k, seed=seed))
    if "rrc" in methods:
        log(f"clustering by compression of the test features into {k} groups…")
        scores.update(compression_scores(test_z, test_y, k, eps2, seed=seed))
    return scores


def metrics_record(results: dict[str, Any]) -> dict[str, Any]:
    """The flat ``eval`` line for metrics.jsonl (what watch and compare read)."""
    exact, structure = results["exact"], results["structure"]
    return {
        "epoch": results["epoch"], "step": results["step"], "source": "vmcr2 eval",
        "nearest_subspace_accuracy": results["nearest_subspace_accuracy"], "components": results["components"],
        "nearest_subspace_energy_accuracy": results["nearest_subspace_energy_accuracy"],
        "knn_accuracy": results["knn_accuracy"], "head_accuracy": results["head_accuracy"],
        **{score.key: results[score.key] for score in SCORES if results[score.key] is not None},
        "exact_delta_r": exact["delta_r"], "exact_r": exact["r"], "exact_r_c": exact["r_c"],
        "mean_abs_cos": structure["mean_abs_cos"], "nc1": structure["nc1"],
    }


def logged_rates(run, augmented: bool = True) -> dict[str, Any] | None:
    """ΔR, R, R_c of the run's last ``epoch`` line (batch means over that epoch), or None."""
    last = None
    for line in run.read_metrics(skip_types=("step", "latch", "eval", "status")):
        if line.get("type") == "epoch":
            last = line
    if last is None:
        return None
    mode = "train mode, augmented" if augmented else "train mode"
    return {"delta_r": last.get("delta_r"), "r": last.get("r"), "r_c": last.get("r_c"),
            "epoch": epoch_number(last) if isinstance(last.get("epoch"), int) else None,
            "mode": mode, "features": LOGGED_FEATURES.format(mode=mode)}


def save_features(path: Path, train_z: torch.Tensor, train_y: torch.Tensor, test_z: torch.Tensor,
                  test_y: torch.Tensor) -> Path:
    """train_features, train_labels, test_features, test_labels (float32, int64) as an .npz, atomically."""
    import numpy as np

    from vmcr2_cli.runs import atomic_write_bytes, with_suffix_npz

    path = with_suffix_npz(path)  # the name np.savez would give it, said in the result
    buffer = io.BytesIO()
    np.savez(buffer, train_features=train_z.float().cpu().numpy(), train_labels=train_y.cpu().numpy(),
             test_features=test_z.float().cpu().numpy(), test_labels=test_y.cpu().numpy())
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as error:
        raise BadInput(f"--save-features {path}: cannot write: {error.strerror or error}") from None
    return path


# ----------------------------------------------------------------------------- helpers

def _draw_figures(loaded: LoadedRun, train_z, train_y, stats, cosines, names, components,
                  options: EvalOptions) -> dict[str, str]:
    from vmcr2_cli.plots.heatmap import plot_gram_heatmap
    from vmcr2_cli.plots.subspaces import plot_subspace_structure
    from vmcr2_cli.objective_registry import objective_label

    run, config = loaded.run, loaded.config
    k = stats.num_classes
    sample_z, sample_y, shown = heatmap_sample(train_z, train_y, k, max_classes=options.max_heatmap_classes,
                                               samples=options.heatmap_samples, seed=config.seed)
    which = f"all {k} classes" if len(shown) == k else f"{len(shown)} of {k} classes at random"
    about = f"{objective_label(config.objective)} on {config.dataset}, epoch {loaded.epoch}"
    heatmap = plot_gram_heatmap(sample_z.numpy(), sample_y.numpy(), [names[j] for j in shown],
                                run.figures_dir / HEATMAP_FILE,
                                title=r"$|Z^\top Z|$ of training features, sorted by class",
                                subtitle=f"{run.name}\n{about}; {which}")
    subspaces = plot_subspace_structure(cosines.numpy(), stats.eigenvalues.numpy(), names, shown, components,
                                        run.figures_dir / SUBSPACES_FILE,
                                        title=f"Class subspaces of {run.name} ({about})",
                                        subspaces=f"each class: its directions holding {DOMINANT_ENERGY:.0%} "
                                                  f"of its energy, at most {components}")
    return {"heatmap": str(heatmap), "subspaces": str(subspaces)}


def _class_row(j, names, stats, recall, effective, dim90, cosines) -> dict[str, Any]:
    row = cosines[j].clone()
    row[j] = float("nan")
    known = torch.isfinite(row)
    closest = int(torch.where(known, row, torch.tensor(-1.0, dtype=row.dtype)).argmax()) if known.any() else None
    return {"class": j, "name": names[j], "train_count": int(stats.counts[j]),
            "nearest_subspace_recall": finite(recall[j].item()),
            "effective_dim": finite(effective[j].item()), "dim_90": int(dim90[j]),
            "r_c_term": finite(stats.class_r_c[j].item()),
            "closest_class": closest, "closest_abs_cos": finite(row[closest].item()) if closest is not None else None}


def _check_finite(train_z: torch.Tensor, test_z: torch.Tensor, name: str) -> None:
    if not (torch.isfinite(train_z).all() and torch.isfinite(test_z).all()):
        raise RunFailed(f"run {name}: the checkpoint's features contain NaN or inf (the run diverged)")


def _mean(values: torch.Tensor) -> float | None:
    return finite(values.double().mean().item()) if values.numel() else None


def _max(values: torch.Tensor) -> float | None:
    return finite(values.double().max().item()) if values.numel() else None
