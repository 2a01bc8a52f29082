"""Objective name → how it is built and how every view shows it: the one list of objectives.

Adding an objective is its ``TrainingObjective`` subclass and builder (in
``objectives/training_objective.py``) and one line in :data:`OBJECTIVES`; config choices, watch's
labels and colours, the figures' colours, compare's default and bench's variants all
read this table. It lives outside the ``objectives`` package and imports nothing heavy:
``vmcr2 watch`` and the CLI's start-up read it without torch, which is imported when an
objective is first built.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Any

@dataclass(frozen=True)
class VMCR2Method:
    """One way V-MCR² trains θ (the ``vmcr2_method`` key): the one entry every place reads.

    ``keys``: the configuration keys that apply to this method alone among V-MCR²'s (a profile
    that gives one to another method is refused); ``block_layout``: A kept on latching's
    blocks, each class coding with its own q/k atoms (so q must be divisible by k); ``step``:
    the ``VMCR2Objective`` method that takes its step (its Γ/A update and θ loss); ``bench``:
    its variant's name in ``vmcr2 bench``.
    """

    name: str
    keys: tuple[str, ...]
    block_layout: bool
    step: str
    bench: str


# "paper" is Algorithm 1 as written (a proximal step on Γ, A, then θ descends μ/(2m)·M);
# "block" is Algorithm 1 with A kept on latching's blocks, at a cost flat in k (see
# ``block.py``); "tangent" refits Γ, A to the batch and θ ascends the tangent bound of ΔR
# that they define, the μ → ∞ limit of Algorithm 1 (see ``tangent.py``); "tangent-push" takes
# that bound at a spectrum one proximal A-step ahead of the tracked one (not in the paper; the
# step, ν_A/L_A at μ, is Algorithm 1's).
VMCR2_METHOD_ENTRIES: dict[str, VMCR2Method] = {
    method.name: method
    for method in [
        VMCR2Method("paper", ("mu", "mu_final", "nu_gamma", "nu_a"), block_layout=False, step="_paper_step",
                    bench="vmcr2"),
        VMCR2Method("block", ("mu", "mu_final", "nu_gamma", "nu_a"), block_layout=True, step="_block_step",
                    bench="vmcr2-block"),
        VMCR2Method("tangent", ("track_rate",), block_layout=True, step="_tangent_step", bench="vmcr2-tangent"),
        VMCR2Method("tangent-push", ("track_rate", "mu", "mu_final", "nu_a"), block_layout=True,
                    step="_tangent_push_step", bench="vmcr2-tangent-push"),
    ]
}
VMCR2_METHODS = tuple(VMCR2_METHOD_ENTRIES)


def methods_with_key(key: str) -> tuple[str, ...]:
    """The V-MCR² methods a configuration key applies to."""
    return tuple(name for name, method in VMCR2_METHOD_ENTRIES.items() if key in method.keys)


@dataclass(frozen=True)
class ObjectiveEntry:
    """One objective: ``builder`` is ``"module:function"``, imported when first used.

    ``color``: its colour in every figure (matplotlib); ``terminal_colours``: the ANSI
    colour numbers (of the 16 every SSH terminal has) that its runs take in turn in watch.
    ``self_supervised``: it trains without labels, on random views of each image (the
    views of one image are a class of the batch).
    """

    name: str
    label: str
    builder: str
    color: str
    terminal_colours: tuple[int, ...]
    self_supervised: bool = False

    def build(self, *args: Any, **kwargs: Any) -> Any:
        module, _, function = self.builder.partition(":")
        return getattr(import_module(module), function)(*args, **kwargs)


# MCR² in blues, V-MCR² in reds and magentas, CE in grey/green, the self-supervised ones in
# cyan and purple; yellow is kept for latch markers.
OBJECTIVES: dict[str, ObjectiveEntry] = {
    entry.name: entry
    for entry in [
        ObjectiveEntry("mcr2", "MCR²", "vmcr2_cli.objectives.training_objective:build_mcr2", "#1f77b4", (6, 4, 14, 12)),
        ObjectiveEntry("vmcr2", "V-MCR²", "vmcr2_cli.objectives.training_objective:build_vmcr2", "#d62728", (5, 1, 13, 9)),
        ObjectiveEntry("ce", "CE", "vmcr2_cli.objectives.training_objective:build_ce", "#7f7f7f", (2, 10)),
        ObjectiveEntry("mcr2-ssl", "MCR² (self-supervised)", "vmcr2_cli.objectives.self_supervised:build_mcr2_ssl",
                       "#17becf", (14, 6), self_supervised=True),
        ObjectiveEntry("tcr", "TCR (self-supervised)", "vmcr2_cli.objectives.self_supervised:build_tcr",
                       "#9467bd", (13, 5), self_supervised=True),
    ]
}
SELF_SUPERVISED = tuple(name for name, entry in OBJECTIVES.items() if entry.self_supervised)
SUPERVISED = tuple(name for name in OBJECTIVES if name not in SELF_SUPERVISED)


def objective_label(objective: str | None, method: str | None = None) -> str:
    """"V-MCR²"; with a V-MCR² method other than the paper's Algorithm 1, "V-MCR² (block)"."""
    if not objective:
        return "?"
    entry = OBJECTIVES.get(objective)
    label = entry.label if entry else objective
    return f"{label} ({method})" if objective == "vmcr2" and method not in (None, "paper") else label
