"""Data-parallel training on PyTorch's distributed engine (DDP, launched by torchrun).

Modules: ``process_group`` (this process's rank from torchrun's environment, the
autograd-aware feature gather, the reductions and the decisions taken together),
``run_access`` (rank 0 alone writes the run directory), ``launcher`` (``--nproc``
through torchrun's launcher). The objectives' side — what a batch spread over
processes means for MCR², V-MCR² and CE — is ``vmcr2_cli.objectives.sharding``.
"""

from vmcr2_cli.distributed.process_group import (
    SINGLE_PROCESS,
    Distributed,
    launched_by_torchrun,
    process_group_from_environment,
)
from vmcr2_cli.distributed.run_access import FollowerRun, run_for_rank

__all__ = [
    "SINGLE_PROCESS",
    "Distributed",
    "FollowerRun",
    "launched_by_torchrun",
    "process_group_from_environment",
    "run_for_rank",
]
