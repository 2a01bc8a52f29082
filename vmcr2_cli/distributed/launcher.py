"""``vmcr2 train --nproc N``: N local training processes through torchrun's own launcher.

The same machinery as ``torchrun --standalone --nproc-per-node N -m vmcr2_cli train …``
(``torch.distributed.launcher.api.elastic_launch``: a c10d rendezvous on a free local
port, one elastic agent watching the workers), minus the need to type it. For several
nodes, run torchrun itself with its rendezvous options (see the README).

The agent forwards Ctrl-C/SIGTERM to the workers, which agree on a step to stop at,
checkpoint and exit 130; it SIGKILLs them if they are still alive 30 s later. The
launcher's exit code is the workers' (rank 0's when it failed): 0, 1, 2 or 130.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from typing import Iterator

from vmcr2_cli.distributed.process_group import launched_by_torchrun
from vmcr2_cli.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_RUN_FAILED, BadInput

# The exit codes a worker chooses itself; anything else (a crash, a signal) is a failed run.
_WORKER_EXIT_CODES = (EXIT_RUN_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED)


def check_nproc(nproc: int) -> None:
    """BadInput unless ``--nproc`` can start ``nproc`` processes from here."""
    if nproc < 1:
        raise BadInput(f"--nproc must be at least 1, not {nproc}")
    if launched_by_torchrun():
        raise BadInput("--nproc starts its own processes: do not combine it with torchrun "
                       "(under torchrun, drop --nproc)")


def launch_local(nproc: int, train_args: Sequence[str]) -> int:
    """Run ``vmcr2 train TRAIN_ARGS`` in ``nproc`` processes on this node; the exit code."""
    check_nproc(nproc)
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    # torchrun's own default is 1 thread per process; CPU training wants the cores shared.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cores // nproc)))
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"vmcr2-{uuid.uuid4().hex[:12]}",
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0)
    try:
        with _quiet_agent():
            elastic_launch(config, sys.executable)("-m", "vmcr2_cli", "train", *train_args)
    except ChildFailedError as failed:
        first_rank, _ = failed.get_first_failure()
        return exit_code_of({rank: failure.exitcode for rank, failure in failed.failures.items()}, first_rank)
    except SignalException:
        return EXIT_INTERRUPTED
    return EXIT_OK


def exit_code_of(failures: Mapping[int, int], first_rank: int) -> int:
    """The launcher's exit code from the failed workers' (global rank → exit code).

    Rank 0's when it chose bad input or an interrupt (it printed why); otherwise a worker
    that crashed or was killed (a code no worker chooses, negative for a signal) is the
    cause, even when rank 0 noticed its dead peer first and failed: it is named in one
    line, and the run failed. Else the first failure's own code.
    """
    if failures.get(0) in (EXIT_BAD_INPUT, EXIT_INTERRUPTED):
        return failures[0]
    crashed = sorted(rank for rank, code in failures.items() if code not in _WORKER_EXIT_CODES)
    if crashed:
        rank = first_rank if first_rank in crashed else crashed[0]
        sys.stderr.write(f"error: training process {rank} died first (exit code {failures[rank]}); "
                         f"the launcher stopped the others\n")
        return EXIT_RUN_FAILED
    return failures.get(0, failures[first_rank])


@contextmanager
def _quiet_agent() -> Iterator[None]:
    """Silence the agent, which logs every start and every worker's exit: the workers say what matters.

    torch's elastic modules each set their own logger's level, so each is raised here.
    """
    loggers = [logger for name, logger in logging.root.manager.loggerDict.items()
               if name.startswith(("torch.distributed.elastic", "torch.distributed.launcher"))
               and isinstance(logger, logging.Logger)]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
