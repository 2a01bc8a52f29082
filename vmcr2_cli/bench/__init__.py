"""``vmcr2 bench``: the objectives' cost as the number of classes grows (the paper's Table 1 claim).

Modules, one job each: ``settings`` (every option, its default and its check),
``workload`` (features, images and latching shaped like real training), ``cases``
(the timed steps), ``timing`` (warm-up, CUDA events, medians and spread),
``runner`` (the sweep, into one JSON-ready report), ``report`` (the Rich tables),
``figure`` (the log-log PNG), ``output`` (the bench folder, its JSON and CSV),
``paper`` (Table 1), ``environment`` (device and versions).

    from vmcr2_cli.bench import make_settings, run_bench
    report = run_bench(make_settings(classes="10,200", device="cpu"))
"""

# Exported lazily: the CLI imports ``vmcr2_cli.bench.settings`` at start-up, and that
# must not pull in torch.
_EXPORTS = {
    "run_bench": "runner",
    "BenchSettings": "settings", "VARIANTS": "settings", "make_settings": "settings",
    "CaseTiming": "timing", "Timing": "timing", "TimingPlan": "timing", "time_budgeted": "timing",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
