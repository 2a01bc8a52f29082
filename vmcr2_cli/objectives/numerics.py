"""Precision policy and the one log-determinant every objective uses.

Policy (DESIGN §4):
- compute in float32 by default, float64 on request, never in half precision:
  bf16/fp16 inputs are upcast and autocast is switched off inside the objectives;
- log-determinants come from a Cholesky factorization only, never sign·logabsdet:
  every matrix factored here is I + c·(Gram) with c > 0, positive definite by
  construction, so a failed factorization means NaN/inf features or a bug.

How a failure is reported depends on whether looking costs a host synchronization:
- on the CPU reading ``info`` is free, so a failure always raises
  :class:`NotPositiveDefiniteError`;
- on an accelerator it raises only when ``check=True`` (reading ``info`` waits for
  the device); with ``check=False`` the affected log-determinants are NaN, decided on
  the device, so a failure is never a plausible-looking number and the trainer's
  non-finite-loss check stops the run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor

COMPUTE_DTYPES = (torch.float32, torch.float64)


class NotPositiveDefiniteError(ValueError):
    """A matrix that must be positive definite is not (NaN/inf features or a bug)."""


def compute_dtype(requested: torch.dtype | None, input_dtype: torch.dtype) -> torch.dtype:
    """The dtype an objective computes in.

    ``requested`` None: float64 inputs stay float64, everything else (float32, bf16,
    fp16) computes in float32. An explicit request must be float32 or float64.
    """
    if requested is None:
        return torch.float64 if input_dtype == torch.float64 else torch.float32
    if requested not in COMPUTE_DTYPES:
        raise ValueError(
            f"dtype must be torch.float32 or torch.float64 (objectives never compute in "
            f"half precision), got {requested}"
        )
    return requested


@contextlib.contextmanager
def full_precision(device: torch.device) -> Iterator[None]:
    """Switch autocast off on ``device`` so that matmuls run in the tensors' own dtype."""
    if torch.amp.is_autocast_available(device.type):
        with torch.autocast(device_type=device.type, enabled=False):
            yield
    else:
        yield


def prepare_features(Z: Tensor, dtype: torch.dtype | None) -> Tensor:
    """Z in its compute dtype (see :func:`compute_dtype`); a differentiable cast."""
    return Z.to(compute_dtype(dtype, Z.dtype))


def symmetric_eigh(matrices: Tensor) -> tuple[Tensor, Tensor]:
    """``torch.linalg.eigh`` (ascending) of symmetric matrices, in float64; on the CPU with subnormal
    numbers flushed to zero, in this thread alone.

    Class moments are rank-deficient (a class's features span few directions; one sample
    makes them rank one), and LAPACK's eigensolver on such matrices runs into subnormal
    numbers (below 2.2e-308), which x86 CPUs compute some hundred times slower: 1000 rank-one
    128×128 moments of a 1000-class run took minutes instead of 1.1 s. Flushing them to zero
    changes the results by less than 1e-300, but the flag is a thread's own: torch's worker
    threads would still compute them, so the CPU path runs on one thread. Float64: float32
    eigh of rank-deficient matrices returns NaN (or a cuSOLVER error) on some builds.
    """
    if matrices.device.type != "cpu":
        return torch.linalg.eigh(matrices.double())
    threads = torch.get_num_threads()
    flushing = torch.set_flush_denormal(True)  # False where the CPU cannot flush them
    torch.set_num_threads(1)
    try:
        return torch.linalg.eigh(matrices.double())
    finally:
        torch.set_num_threads(threads)
        if flushing:
            torch.set_flush_denormal(False)


def add_identity(matrices: Tensor) -> Tensor:
    """I + matrices for (..., n, n) matrices, in place (an intermediate, autograd-safe)."""
    matrices.diagonal(dim1=-2, dim2=-1).add_(1.0)
    return matrices


def checks_are_free(device: torch.device) -> bool:
    """True where reading a tensor's value needs no host synchronization (the CPU)."""
    return device.type == "cpu"


def cholesky_factor(matrices: Tensor, *, check: bool, what: str = "matrix") -> tuple[Tensor, Tensor]:
    """Cholesky factor and log det of symmetric positive definite matrices.

    Args:
        matrices: (..., n, n) symmetric positive definite.
        check: on an accelerator, raise on a failed factorization (costs a host
            synchronization). On the CPU failures always raise.
        what: names the matrices in the error message.

    Returns:
        (L, logdet): L (..., n, n) lower triangular and logdet (...) = 2·Σ log diag(L),
        NaN where the factorization failed (the unchecked case).
    """
    factor, info = torch.linalg.cholesky_ex(matrices)
    logdet = 2.0 * factor.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    failed = info != 0
    if check or checks_are_free(matrices.device):
        if bool(failed.any()):
            where = torch.nonzero(failed.reshape(-1)).reshape(-1)[:5].tolist()
            raise NotPositiveDefiniteError(
                f"{what} is not positive definite (Cholesky failed at batch index "
                f"{where}): the features contain NaN/inf or the computation is broken"
            )
    return factor, torch.where(failed, torch.full_like(logdet, float("nan")), logdet)


def cholesky_logdet(matrices: Tensor, *, check: bool, what: str = "matrix") -> Tensor:
    """log det of symmetric positive definite (..., n, n) matrices; see :func:`cholesky_factor`."""
    return cholesky_factor(matrices, check=check, what=what)[1]


def inverse_from_cholesky(factor: Tensor) -> Tensor:
    """(L Lᵀ)⁻¹ from a lower Cholesky factor L, (..., n, n).

    Triangular solves and products only: unlike cholesky_solve/cholesky_inverse there
    is no LAPACK status to inspect, so nothing waits for the device. Used for matrices
    I + PSD, whose inverses have eigenvalues in (0, 1], so forming them is safe.
    """
    eye = torch.eye(factor.shape[-1], dtype=factor.dtype, device=factor.device)
    inverse_factor = torch.linalg.solve_triangular(factor, eye, upper=False)
    return inverse_factor.mT @ inverse_factor
