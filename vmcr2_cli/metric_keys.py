"""The keys of metrics.jsonl's lines, declared once: the writers (the trainer, the objectives,
latching) and the readers (watch, ``vmcr2 latch``, the tests of the run directory) read them here.

Imports nothing: the objectives, the run directory and the dashboard all sit above it.
"""

from __future__ import annotations

METRIC_TYPES = ("epoch", "step", "latch", "eval", "status")

# The exact coding rates of a batch (eq. 1): every objective logs them.
RATE_KEYS = ("r", "r_c", "delta_r")
# What V-MCR² adds: eq. 7's R^v, R_c^v and M of the batch, and R^v / R (its faithfulness, 1 = exact).
VARIATIONAL_KEYS = ("r_v", "r_c_v", "m_term", "r_v_over_r")
# A latch line's terms of eq. 7 on a probe batch, each logged before and after (``<term>_before``).
LATCH_TERMS = ("r_v", "r_c_v", "m_term", "delta_r_v")
# An epoch line: its position, the means of its steps' metrics, the learning rate and the speed.
EPOCH_KEYS = ("epoch", "step", *RATE_KEYS, "loss", "lr", "epoch_time_s", "images_per_s", "gpu_util", "gpu_mem_mb")
# Step and epoch lines of a μ continuation (``mu_final``) also record the μ of their last step.
CONTINUATION_KEYS = ("mu",)
