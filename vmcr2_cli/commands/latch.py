"""``vmcr2 latch RUN``: Algorithm 2 on a V-MCR² run's checkpoint, before/after report, ``--write``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from vmcr2_cli.errors import BadInput


def latch(
    run: Path = typer.Argument(..., help="A V-MCR² run directory (runs/latest works)."),
    write: bool = typer.Option(False, "--write",
                               help="Store the latched Γ and A in the run's checkpoint, so that "
                                    "`vmcr2 train --resume` starts from them."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    data_root: Optional[Path] = typer.Option(None, "--data-root",
                                             help="Folder with the dataset files, if not where the run found them."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as one JSON document on stdout."),
) -> None:
    """Latch a V-MCR² run's Γ and A (Algorithm 2) over its training set; report what changes.

    Shows R^v, R_c^v, M and ΔR^v before and after, beside the exact ΔR.

    Per class: the share of its spectrum that its s = q/k dictionary atoms capture, and the atoms 90/95/99% need.

    With --write, the latched Γ and A replace those in checkpoints/last.pt: `vmcr2 train --resume` starts from them.
    """
    from rich.console import Console

    from contextlib import nullcontext

    from vmcr2_cli.evaluation.latch_report import latch_run
    from vmcr2_cli.evaluation.loading import load_run, open_run

    opened = open_run(run)
    if opened.config.objective != "vmcr2":
        raise BadInput(f"latch {run}: the run trains {opened.config.objective}; latching (Algorithm 2) sets "
                       f"the dictionary Γ, A of V-MCR² runs only")
    # --write replaces the checkpoint: no training may write the run meanwhile (latching only reads it).
    with opened.run.lock("latch --write") if write else nullcontext():
        messages = Console(stderr=True, highlight=False)
        log = (lambda text: None) if json_out else (lambda text: messages.print(f"[dim]{text}[/]"))
        loaded = load_run(opened, device=device, data_root=data_root, purpose="latch", log=log)
        result = latch_run(loaded, write=write, log=log)
    if json_out:
        typer.echo(json.dumps(result, indent=2))
    else:
        render_latch(result, Console(highlight=False))


def render_latch(result: dict[str, Any], console) -> None:
    """The latch report as Rich tables."""
    from rich.table import Table

    from vmcr2_cli.numbers import fmt
    from vmcr2_cli.metric_keys import LATCH_TERMS
    from vmcr2_cli.numbers import fmt_value

    k, s = result["num_classes"], result["atoms_per_class"]
    console.print(f"[bold]{result['run_id']}[/]  V-MCR², checkpoint after epoch {result['epoch']} "
                  f"(step {result['step']}), q = {result['dictionary_size']} atoms = {s} per class × {k} classes")
    probe = result["probe"]
    table = Table(title=f"Eq. 7 on a probe batch of {probe['samples']} training features", title_justify="left")
    table.add_column("term")
    table.add_column("before", justify="right")
    table.add_column("after latching", justify="right")
    labels = dict(zip(LATCH_TERMS, ("R^v", "R_c^v", "M (loss weight μ/2m)", "ΔR^v = R^v − R_c^v"), strict=True))
    for key, label in labels.items():
        table.add_row(label, fmt_value(probe["before"][key]), fmt_value(probe["after"][key]))
    exact = probe["exact"]["delta_r"]
    table.add_row("exact ΔR of the same batch", fmt_value(exact), fmt_value(exact))
    gaps = [None if value is None or exact is None else value - exact
            for value in (probe["before"]["delta_r_v"], probe["after"]["delta_r_v"])]
    table.add_row("ΔR^v − exact ΔR", *(fmt_value(gap) for gap in gaps))
    console.print(table)
    console.print("[dim]Latching changes Γ and A, not the features: the exact ΔR is the same before and after.[/]")
    whole = result["dataset"]
    console.print(f"exact over the whole training set ({whole['samples']} samples, float64, train-mode features): "
                  f"ΔR {fmt(whole['delta_r'])}  R {fmt(whole['r'])}  R_c {fmt(whole['r_c'])}")

    classes = result["classes"]
    rows = classes if len(classes) <= 20 else sorted(
        classes, key=lambda row: 2.0 if row["spectrum_share"] is None else row["spectrum_share"])[:10]
    title = (f"Spectrum captured by the {s} atoms of each class" if len(classes) <= 20 else
             f"Spectrum captured by {s} atoms: the 10 of {len(classes)} classes with the lowest share")
    spectra = Table(title=title, title_justify="left")
    for name in ("class", "images", f"share of top {s}", "atoms for 90%", "95%", "99%"):
        spectra.add_column(name, justify="left" if name == "class" else "right")
    for row in rows:
        spectra.add_row(row["name"], str(row["count"]), fmt(row["spectrum_share"], ".1%"),
                        str(row["atoms_for_90"]), str(row["atoms_for_95"]), str(row["atoms_for_99"]))
    console.print(spectra)
    summary = result["spectrum_share"]
    suggested = result["suggested_atoms_per_class"]
    console.print(f"{s} atoms per class capture {fmt(summary['mean'], '.1%')} of a class's spectrum on average "
                  f"(lowest {fmt(summary['min'], '.1%')}, {summary['min_class']}). Atoms per class for every "
                  f"class to reach 90/95/99%: {suggested['90']}/{suggested['95']}/{suggested['99']} "
                  f"(q = {k}× that; set with --set atoms_per_class=N).")
    if result["written"]:
        console.print(f"[green]wrote the latched Γ and A into {result['run_dir']}/checkpoints/last.pt[/]; "
                      f"continue with: vmcr2 train --resume {result['run_dir']} --epochs N", soft_wrap=True)
    else:
        console.print("[dim]dry run: the checkpoint is unchanged (use --write to store Γ and A)[/]")
