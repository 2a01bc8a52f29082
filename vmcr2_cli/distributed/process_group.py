"""This process's place among the training processes, and what they do together.

torchrun — or ``vmcr2 train --nproc N``, which uses torchrun's own launcher — starts one
process per device and tells each its place through environment variables (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). :func:`process_group_from_environment`
reads them and joins the process group; without them it yields :data:`SINGLE_PROCESS`,
whose every operation is the identity, so one process runs exactly the plain code path.

Two kinds of traffic share the one default group, which routes by the tensors' device:
- data: the training step's features and statistics, on the training device (NCCL
  between GPUs, gloo between CPUs) — :meth:`Distributed.gather_rows`,
  :meth:`Distributed.sum`, :meth:`Distributed.broadcast_`;
- control: small CPU tensors and pickled objects, always over gloo, so deciding
  together (stop at this step? did anyone fail to load the data?) never waits for
  the GPU stream — :meth:`Distributed.any`, :meth:`Distributed.on_main`,
  :meth:`Distributed.agree`, :meth:`Distributed.all_gather_objects`.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from vmcr2_cli.errors import BadInput, Stopped

T = TypeVar("T")

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def launched_by_torchrun(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process was started by torchrun (or ``--nproc``): it has a rank to read."""
    return all(name in environ for name in TORCHRUN_VARIABLES)


# torch ≥ 2.14 renames all_gather_into_tensor; both gather equal shares into one tensor.
_all_gather_single = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


class _GatherRows(torch.autograd.Function):
    """All processes' rows in rank order; backward: W × this process's rows of the gradient.

    Every process computes the same loss from the gathered rows, so the gradients of
    the gathered tensor are the same on every process and their sum over processes —
    the reduce-scatter that ``torch.distributed.nn.functional.all_gather`` does in its
    backward — is W times this process's rows of it: computed here without communication.
    """

    @staticmethod
    def forward(ctx, Z: Tensor, rank: int, world_size: int) -> Tensor:
        Z = Z.contiguous()
        gathered = Z.new_empty((world_size * Z.shape[0], *Z.shape[1:]))
        _all_gather_single(gathered, Z)
        ctx.rows = slice(rank * Z.shape[0], (rank + 1) * Z.shape[0])
        ctx.world_size = world_size
        return gathered

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        return grad[ctx.rows] * ctx.world_size, None, None


class Distributed:
    """This process's rank among ``world_size`` processes, and the collectives training needs.

    Implements the objectives' ``Collective`` (``gather_rows``, ``sum``), so it is passed
    to ``objective.step`` as is. Without a process group (``backend`` None: one process
    not launched by torchrun) every method is the identity and nothing touches
    ``torch.distributed``; under torchrun even one process joins a group, so that
    ``--nproc 1`` runs the data-parallel path (on NCCL with a GPU) for real.
    """

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0, backend: str | None = None) -> None:
        self.rank, self.world_size, self.local_rank, self.backend = rank, world_size, local_rank, backend

    def __repr__(self) -> str:
        return f"Distributed(rank={self.rank}, world_size={self.world_size}, backend={self.backend})"

    @property
    def enabled(self) -> bool:
        """A process group was joined: the collectives communicate."""
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes the run directory and prints."""
        return self.rank == 0

    # ------------------------------------------------------------------ data (training device)
    def gather_rows(self, Z: Tensor) -> Tensor:
        """Every process's rows of a batch, in rank order (equal shares), autograd-aware."""
        return _GatherRows.apply(Z, self.rank, self.world_size) if self.enabled else Z

    @torch.no_grad()
    def sum(self, tensor: Tensor) -> Tensor:
        """``tensor`` summed over processes, in place."""
        if self.enabled:
            dist.all_reduce(tensor)
        return tensor

    @torch.no_grad()
    def broadcast_(self, tensors: list[Tensor]) -> None:
        """Overwrite ``tensors`` with rank 0's, in place."""
        if self.enabled:
            for tensor in tensors:
                dist.broadcast(tensor, src=0)

    # ------------------------------------------------------------------ models
    def data_parallel(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` as trained by this process: DDP over the processes, ``model`` itself for one.

        On GPUs BatchNorm layers become SyncBatchNorm first, in place and keeping their
        parameters and buffers, so that they normalize by the global batch as one process
        does. PyTorch has no SyncBatchNorm on the CPU: there each process normalizes by
        its share of the batch (and DDP keeps rank 0's running statistics).
        """
        if not self.enabled:
            return model
        if device.type == "cuda":
            _convert_batchnorm_in_place(model)
            return nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
        return nn.parallel.DistributedDataParallel(model)

    # ------------------------------------------------------------------ control (CPU, gloo)
    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any process; every process gets the same answer."""
        if not self.enabled:
            return flag
        votes = torch.tensor([int(flag)])
        dist.all_reduce(votes, op=dist.ReduceOp.MAX)
        return bool(votes.item())

    def barrier(self) -> None:
        """Wait until every process gets here (a CPU all-reduce: never waits for a GPU stream)."""
        self.any(False)

    def all_gather_objects(self, obj: T) -> list[T]:
        """Every process's ``obj`` (picklable), in rank order."""
        if not self.enabled:
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast_object(self, obj: T) -> T:
        """Rank 0's ``obj`` (picklable) on every process."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def on_main(self, produce: Callable[[], T]) -> T:
        """``produce()`` run on rank 0 alone; its result, or its BadInput, on every process."""
        if not self.enabled:
            return produce()
        outcome: tuple[bool, Any] | None = None
        if self.is_main:
            try:
                outcome = (True, produce())
            except BadInput as error:
                outcome = (False, str(error))
        ok, value = self.broadcast_object(outcome)
        if not ok:
            raise BadInput(value)
        return value

    def agree(self, produce: Callable[[], T], *, local_rank_0_first: bool = False) -> T:
        """``produce()`` on every process; a BadInput on any of them is raised on all.

        ``local_rank_0_first``: the first process of each node runs alone first (say, to
        download a dataset once per node), the others after it.
        """
        if not self.enabled:
            return produce()
        result, error = None, None

        def attempt() -> None:
            nonlocal result, error
            try:
                result = produce()
            except BadInput as failure:
                error = str(failure)

        if local_rank_0_first and self.local_rank == 0:
            attempt()
        if local_rank_0_first:
            self.barrier()
        if not local_rank_0_first or self.local_rank != 0:
            attempt()
        errors = [message for message in self.all_gather_objects(error) if message is not None]
        if errors:
            raise BadInput(errors[0])
        return result

    def exit_together(self, code: int, message: str | None) -> None:
        """End every process with ``code`` after rank 0 has printed ``message`` (one line).

        For outcomes all processes agree on (bad input, an interrupt, a non-finite loss):
        the barrier keeps the launcher, which stops the others as soon as one process
        exits, from cutting rank 0 off before it has written its last words.
        """
        if self.is_main and message:
            sys.stderr.write(f"error: {message}\n")
            sys.stderr.flush()
        self.barrier()
        raise Stopped(code)


SINGLE_PROCESS = Distributed()


def _convert_batchnorm_in_place(model: nn.Module) -> None:
    """Replace every BatchNorm child of ``model`` by a SyncBatchNorm with its state."""
    for name, child in model.named_children():
        converted = nn.SyncBatchNorm.convert_sync_batchnorm(child)
        if converted is not child:
            setattr(model, name, converted)


def _environment_int(name: str) -> int:
    value = os.environ[name]
    try:
        return int(value)
    except ValueError:
        raise BadInput(f"environment variable {name}={value!r} is not an integer (set by torchrun)") from None


@contextmanager
def process_group_from_environment() -> Iterator[Distributed]:
    """Join the process group torchrun described in the environment; leave it on exit.

    Backend: gloo for CPU tensors and, when this PyTorch has CUDA and NCCL, NCCL for
    CUDA tensors (one group, routed by device). Each process binds GPU ``LOCAL_RANK``.
    Rendezvous (MASTER_ADDR, MASTER_PORT) is torchrun's: the ``env://`` method.
    """
    if not launched_by_torchrun():
        yield SINGLE_PROCESS
        return
    rank, world_size, local_rank = (_environment_int(name) for name in TORCHRUN_VARIABLES)
    cuda = torch.cuda.is_available() and dist.is_nccl_available()
    backend = "cpu:gloo,cuda:nccl" if cuda else "gloo"
    if cuda and local_rank < torch.cuda.device_count():
        torch.cuda.set_device(local_rank)
    # DDP imports torch._dynamo on first use; imported after the group exists, it keeps ten
    # references to it, so destroy_process_group cannot free it and gloo's worker threads live
    # on into interpreter shutdown, where releasing the last collective's tensors aborts the
    # process ("terminate called without an active exception", one exit in ~8 on a busy CPU).
    importlib.import_module("torch._dynamo")
    dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    try:
        yield Distributed(rank, world_size, local_rank, backend)
    finally:
        dist.destroy_process_group()
