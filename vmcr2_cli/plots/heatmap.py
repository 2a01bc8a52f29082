"""Figure 2 of the paper: |ZᵀZ| of training features sorted by class."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vmcr2_cli.plots.style import new_figure, save_png, short_class_name


def plot_gram_heatmap(features: np.ndarray, labels: np.ndarray, class_names: list[str], path: Path, *,
                      title: str, subtitle: str = "") -> Path:
    """Heatmap of |⟨z_a, z_b⟩| for (n, d) unit-norm ``features`` sorted by ``labels``.

    Thin white lines separate the classes; each block is labelled with its class. A run
    that learned orthogonal class subspaces shows bright diagonal blocks on a dark field.
    ``class_names`` are the names of the classes present, in ascending label order.
    """
    gram = np.abs(features @ features.T)
    classes, sizes = np.unique(labels, return_counts=True)
    edges = np.concatenate([[0], np.cumsum(sizes)])
    centres = (edges[:-1] + edges[1:]) / 2 - 0.5
    figure = new_figure(6.4, 5.6)
    axes = figure.add_subplot()
    image = axes.imshow(gram, vmin=0.0, vmax=1.0, cmap="viridis", interpolation="antialiased")
    for edge in edges[1:-1]:
        axes.axhline(edge - 0.5, color="white", linewidth=0.6, alpha=0.9)
        axes.axvline(edge - 0.5, color="white", linewidth=0.6, alpha=0.9)
    names = [short_class_name(name) for name in class_names]
    axes.set_xticks(centres, names, rotation=45, ha="right", rotation_mode="anchor")
    axes.set_yticks(centres, names)
    axes.tick_params(length=0)
    for side in ("top", "right", "bottom", "left"):
        axes.spines[side].set_visible(False)
    axes.set_xlabel(f"training samples, sorted by class ({len(labels)} shown)")
    axes.set_ylabel("training samples, sorted by class")
    colorbar = figure.colorbar(image, ax=axes, fraction=0.046, pad=0.03)
    colorbar.set_label(r"$|\langle z_a, z_b\rangle|$")
    axes.set_title(title + (f"\n{subtitle}" if subtitle else ""), fontsize=11)
    return save_png(figure, path)
