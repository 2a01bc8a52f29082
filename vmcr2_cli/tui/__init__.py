"""``vmcr2 watch``: the live dashboard of run directories, and the summary it shares with ``--once``.

Modules without Textual (usable by ``--once`` and by scripts):
``watcher`` (polls run directories), ``history`` (what a run has logged so far),
``summary`` (the per-run summary: status incl. stalled, ETA…), ``tables`` (Rich tables).
Everything else here is the Textual app; import it only when the dashboard starts.
"""
