"""The structure of the class subspaces: principal angles between them, and their spectra."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vmcr2_cli.plots.style import new_figure, save_png, short_class_name


def plot_subspace_structure(cosines: np.ndarray, spectra: np.ndarray, class_names: list[str],
                            shown: list[int], components: int, path: Path, *, title: str,
                            subspaces: str = "") -> Path:
    """Two panels.

    Left: the (k, k) mean |cos θ| of the principal angles between class subspaces
    (0 = orthogonal; values printed when k ≤ 12); ``subspaces`` says what a class's
    subspace is, for the panel's title. Right: the normalized spectrum
    λ_i / Σλ of each class in ``shown`` (log scale), with the eq.-8 cut at ``components``:
    a class on a low-dimensional subspace drops steeply after its dimension.
    """
    k = cosines.shape[0]
    figure = new_figure(12.0, 5.0)
    left, right = figure.subplots(1, 2, width_ratios=[1.0, 1.1])

    image = left.imshow(cosines, vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest")
    if k <= 12:
        for i in range(k):
            for j in range(k):
                value = cosines[i, j]
                if np.isfinite(value):
                    left.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                              color="black" if value > 0.6 else "white")
    if k <= 20:
        names = [short_class_name(name) for name in class_names]
        left.set_xticks(range(k), names, rotation=45, ha="right", rotation_mode="anchor")
        left.set_yticks(range(k), names)
    else:
        left.set_xlabel("class")
        left.set_ylabel("class")
    left.tick_params(length=0)
    for side in ("top", "right", "bottom", "left"):
        left.spines[side].set_visible(False)
    colorbar = figure.colorbar(image, ax=left, fraction=0.046, pad=0.03)
    colorbar.set_label(r"mean $|\cos\theta|$ of principal angles")
    left.set_title("Principal angles between class subspaces" + (f"\n({subspaces})" if subspaces else ""),
                   fontsize=11)

    dims = np.arange(1, spectra.shape[1] + 1)
    colors = _class_colors(len(shown))
    for color, j in zip(colors, shown):
        spectrum = spectra[j]
        total = spectrum.sum()
        if total <= 0:
            continue
        share = np.clip(spectrum / total, 1e-12, None)
        right.plot(dims, share, color=color, linewidth=1.4, label=short_class_name(class_names[j], 16))
    right.axvline(components + 0.5, color="black", linestyle="--", linewidth=1.0)
    right.annotate(f"eq. 8 keeps {components}", xy=(components + 0.5, 1.0), xycoords=("data", "axes fraction"),
                   xytext=(4, -12), textcoords="offset points", fontsize=9)
    right.set_yscale("log")
    right.set_ylim(1e-6, 1.5)
    right.set_xlim(0.5, min(spectra.shape[1], max(4 * components, 16)) + 0.5)
    right.set_xlabel("principal direction i")
    right.set_ylabel(r"$\lambda_i / \sum \lambda$ of the class's second moment")
    right.grid(True, which="major")
    suffix = "" if len(shown) == k else f" ({len(shown)} of {k} classes)"
    right.set_title("Spectrum of each class" + suffix)
    right.legend(ncol=2 if len(shown) > 5 else 1, frameon=False, loc="upper right", bbox_to_anchor=(1.0, 0.93))
    figure.suptitle(title, fontsize=12)
    return save_png(figure, path)


def _class_colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]
