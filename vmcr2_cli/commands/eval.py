"""``vmcr2 eval RUN``: nearest-subspace accuracy, exact ΔR, and the structure of the learned subspaces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

COLLAPSE_HINT = "0 = orthogonal, 1 = the same subspace"


def eval_run(
    run: Path = typer.Argument(..., help="A run directory (runs/latest works)."),
    components: Optional[int] = typer.Option(None, "--components", "-p",
                                             help="Directions per class of the nearest-subspace classifier "
                                                  "(default ⌊d/k⌋, the paper's)."),
    methods: str = typer.Option("nearsub,knn", "--methods",
                                help="Comma-separated: nearsub (always), knn, svm (linear SVM), probe (logistic "
                                     "regression on the frozen features), kmeans and rrc (clustering by compression; "
                                     "both: clustering accuracy and NMI); all but nearsub and knn need vmcr2[sklearn]."),
    knn_k: int = typer.Option(10, "--knn-k", help="Neighbours of the kNN accuracy (cosine similarity)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    data_root: Optional[Path] = typer.Option(None, "--data-root",
                                             help="Folder with the dataset files, if not where the run found them."),
    save_features: Optional[Path] = typer.Option(None, "--save-features",
                                                 help="Also write the train and test features and labels to FILE.npz."),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Write the PNGs into the run's figures/."),
    checkpoint: str = typer.Option("last", "--checkpoint",
                                   help="last (checkpoints/last.pt) or best (checkpoints/best.pt of a run trained "
                                        "with keep_best; results in eval-best.json, no metrics line)."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as one JSON document on stdout."),
) -> None:
    """Test accuracy, exact ΔR and subspace structure of a run's checkpoint.

    Accuracy on the test set: nearest subspace (eq. 8), kNN (cosine) and, for CE runs, the head's.

    Rates: the exact R, R_c and ΔR of the whole training set (float64), beside the logged batch means.

    Structure: the |ZᵀZ| heatmap, principal angles between class subspaces, effective dimensions, NC1.

    Writes eval.json and figures/ into the run, and an `eval` line into metrics.jsonl
    (--checkpoint best: eval-best.json only).
    """
    from rich.console import Console

    from vmcr2_cli.evaluation.classical import parse_methods
    from vmcr2_cli.evaluation.evaluate import EvalOptions, evaluate_run, metrics_record
    from vmcr2_cli.evaluation.loading import check_checkpoint_name, load_run, open_run

    check_checkpoint_name(checkpoint)
    opened = open_run(run)
    options = EvalOptions(methods=parse_methods(methods), components=components, knn_k=knn_k,
                          save_features=save_features, figures=figures)
    options.check(opened.config.feature_dim)  # before the dataset and the model are loaded
    messages = Console(stderr=True, highlight=False)
    log = (lambda text: None) if json_out else (lambda text: messages.print(f"[dim]{text}[/]"))
    loaded = load_run(opened, device=device, data_root=data_root, purpose="eval", log=log, checkpoint=checkpoint)
    results = {**evaluate_run(loaded, options, log=log), "checkpoint": checkpoint}
    loaded.run.write_eval(results, which=checkpoint)
    if checkpoint == "last":  # best.pt's epoch has its line already, from the evaluation that chose it
        loaded.run.append_metrics("eval", **metrics_record(results))
    if json_out:
        typer.echo(json.dumps(results, indent=2))
    else:
        render_eval(results, str(loaded.run.eval_file(checkpoint)), Console(highlight=False))


def render_eval(results: dict[str, Any], eval_path: str, console) -> None:
    """The eval results as Rich tables."""
    from rich.table import Table

    from vmcr2_cli.evaluation.classical import SCORES
    from vmcr2_cli.numbers import fmt
    from vmcr2_cli.objective_registry import objective_label

    k, d = results["num_classes"], results["feature_dim"]
    console.print(f"[bold]{results['run_id']}[/]  {objective_label(results['objective'])} on "
                  f"{results['dataset']} ({k} classes, d = {d}), {results.get('checkpoint', 'last')} checkpoint "
                  f"(after epoch {results['epoch']}), "
                  f"on {results['device']}")

    accuracy = Table(title=f"Test accuracy ({results['num_test']} test images)", title_justify="left")
    accuracy.add_column("classifier")
    accuracy.add_column("accuracy", justify="right")
    accuracy.add_row(f"nearest subspace (eq. 8, {results['components']} directions per class)",
                     fmt(results["nearest_subspace_accuracy"], ".4f"))
    accuracy.add_row(f"nearest subspace, each class's directions holding 90% of its energy (≤ {results['components']})",
                     fmt(results["nearest_subspace_energy_accuracy"], ".4f"))
    optional = [(f"kNN (cosine, k = {results['knn_k']})", "knn_accuracy"),
                *((score.label, score.key) for score in SCORES),
                ("CE head (Linear(d, k))" if results["objective"] == "ce" else "ReduNet head (π̂, eq. 14)", "head_accuracy")]
    for label, key in optional:
        if results.get(key) is not None:
            accuracy.add_row(label, fmt(results[key], ".4f"))
    console.print(accuracy)

    exact, logged = results["exact"], results["logged"]
    rates = Table(title=f"Coding rate reduction (ε² = {exact['eps2']})", title_justify="left")
    rates.add_column("measured on")
    for name in ("ΔR", "R", "R_c"):
        rates.add_column(name, justify="right")
    rates.add_row(f"exact: the whole training set, {exact['samples']} samples, float64, eval-mode features",
                  *(fmt(exact[key], ".4f") for key in ("delta_r", "r", "r_c")))
    if logged is not None:
        rates.add_row(f"as logged: batch mean over epoch {logged['epoch']} ({logged['mode']})",
                      *(fmt(logged[key], ".4f") for key in ("delta_r", "r", "r_c")))
    else:
        rates.add_row("as logged: no epoch line in metrics.jsonl", "—", "—", "—")
    console.print(rates)
    console.print("[dim]The two rows differ in scale by design: α = d/(mε²) with m the whole set or one batch.[/]")

    structure = results["structure"]
    summary = Table(title="Structure of the learned class subspaces", title_justify="left")
    summary.add_column("measure")
    summary.add_column("value", justify="right")
    summary.add_column("reading")
    summary.add_row("mean |⟨z_a, z_b⟩|, same class / different classes",
                    f"{fmt(structure['feature_abs_cos_within'], '.3f')} / "
                    f"{fmt(structure['feature_abs_cos_between'], '.3f')}",
                    "Figure 2's diagonal blocks / the rest")
    summary.add_row("mean |cos| of principal angles between classes", fmt(structure["mean_abs_cos"], ".3f"),
                    f"{COLLAPSE_HINT} (90%-energy directions)")
    worst = max((row for row in results["classes"] if row["closest_abs_cos"] is not None),
                key=lambda row: row["closest_abs_cos"], default=None)
    if worst is not None:
        summary.add_row("largest |cos| between two classes", fmt(worst["closest_abs_cos"], ".3f"),
                        f"{worst['name']} and {results['classes'][worst['closest_class']]['name']}")
    summary.add_row("mean effective dimension of a class", fmt(structure["mean_effective_dim"], ".2f"),
                    f"eq. 8 uses {results['components']} directions per class")
    summary.add_row("effective dimension of all classes together", fmt(structure["union_effective_dim"], ".2f"),
                    f"of d = {d}; small means the features collapsed")
    summary.add_row("NC1 = tr(Σ_W Σ_B†)", fmt(structure["nc1"], ".3g"),
                    "0: each class collapsed to one point; larger: spread within classes")
    summary.add_row("tr(Σ_W) / tr(Σ_B)", fmt(structure["within_between_trace_ratio"], ".3g"), "")
    console.print(summary)
    console.print(f"reading: {structure_verdict(results)}")

    classes = results["classes"]
    if len(classes) <= 20:
        rows, title = classes, "Per class"
    else:
        rows = sorted(classes, key=lambda row: (row["nearest_subspace_recall"] is None,
                                                row["nearest_subspace_recall"] or 0.0))[:10]
        title = f"Per class: the 10 of {len(classes)} with the lowest recall (all in eval.json)"
    table = Table(title=title, title_justify="left")
    for name, justify in (("class", "left"), ("train images", "right"), ("NS recall", "right"),
                          ("effective dim", "right"), ("dims for 90%", "right"), ("closest class", "left")):
        table.add_column(name, justify=justify)
    for row in rows:
        closest = ("—" if row["closest_class"] is None else
                   f"{classes[row['closest_class']]['name']} ({fmt(row['closest_abs_cos'], '.2f')})")
        table.add_row(row["name"], str(row["train_count"]), fmt(row["nearest_subspace_recall"], ".3f"),
                      fmt(row["effective_dim"], ".2f"), str(row["dim_90"]), closest)
    console.print(table)
    for name, path in results["figures"].items():
        console.print(f"figure ({name}): {path}", soft_wrap=True)
    if results["features_file"]:
        console.print(f"features: {results['features_file']}", soft_wrap=True)
    console.print(f"results: {eval_path}", soft_wrap=True)


def structure_verdict(results: dict[str, Any]) -> str:
    """One sentence on what the structure numbers say (rules of thumb, not tests)."""
    structure = results["structure"]
    cos, union = structure["mean_abs_cos"], structure["union_effective_dim"]
    effective = structure["mean_effective_dim"]
    d, k = results["feature_dim"], results["num_classes"]
    if union is not None and union < min(k, d) / 2:
        return (f"collapsed: all classes together span only ≈{union:.1f} effective dimensions "
                f"(ΔR near 0 or a poor optimum)")
    if cos is None:
        return "not enough classes with samples to compare subspaces"
    size = "" if effective is None else f" (mean effective dimension ≈{effective:.1f})"
    if cos < 0.2:
        return f"nearly orthogonal class subspaces{size}: |ZᵀZ| is block-diagonal (Figure 2's good case)"
    if cos < 0.5:
        return f"partly overlapping class subspaces{size}: a blurred block-diagonal |ZᵀZ|"
    return (f"strongly overlapping class subspaces{size}: no block-diagonal structure "
            f"(the paper's MCR² failure on CIFAR-100)")
