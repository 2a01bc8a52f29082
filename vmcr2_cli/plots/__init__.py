"""Matplotlib figures of eval and compare, written as PNGs into a run's ``figures/``.

Figures are built on ``matplotlib.figure.Figure`` directly (the Agg canvas, no pyplot):
no global state, no display needed, safe over SSH. Modules: ``style`` (sizes, colours,
atomic PNG writes), ``heatmap`` (Figure 2's |ZᵀZ|), ``subspaces`` (principal angles and
class spectra), ``curves`` (Figure 1's ΔR, R, R_c over epochs).
"""
