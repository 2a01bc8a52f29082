"""How the trainer runs on its device: the backbone's precision and memory format, the checkpoint
cadence, and the non-finite check kept on the device."""

from __future__ import annotations

import pytest
import torch

import vmcr2_cli.training.precision as precision_module
from distributed_workers import NeverStop, tiny_trainer
from vmcr2_cli.training.precision import backbone_precision
from vmcr2_cli.training.loop import CheckpointClock
from vmcr2_cli.training.trainer import NonFiniteLoss

CPU = torch.device("cpu")


def _cpu(monkeypatch, *, bf16: bool, amx: bool = False) -> None:
    """Pretend the CPU has (or lacks) native bf16 and AMX, whatever this machine has."""
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: bf16)
    monkeypatch.setattr(precision_module, "cpu_has_amx", lambda: amx)


@pytest.mark.parametrize("bf16, amx, dtype, channels_last", [
    (True, True, "bf16", True),  # AMX: bf16, and NHWC measured faster
    (True, False, "bf16", False),  # AVX512-BF16 alone: bf16, NHWC measured slower
    (False, False, "fp32", True),  # emulated bf16 is slower than fp32: fp32, NHWC measured faster
])
def test_bf16_on_a_cpu_only_where_it_computes_bf16_natively(monkeypatch, bf16, amx, dtype, channels_last):
    _cpu(monkeypatch, bf16=bf16, amx=amx)
    chosen = backbone_precision(CPU, "bf16")
    assert (chosen.dtype, chosen.channels_last) == (dtype, channels_last)
    assert ("natively" in chosen.reason) == bf16
    assert chosen.autocast.fast_dtype == torch.bfloat16 and chosen.autocast._enabled == (dtype == "bf16")


def test_precision_fp32_is_fp32_on_any_device(monkeypatch):
    _cpu(monkeypatch, bf16=True, amx=True)
    assert backbone_precision(CPU, "fp32").dtype == "fp32"
    assert backbone_precision(torch.device("cuda"), "fp32").dtype == "fp32"
    assert backbone_precision(torch.device("cuda"), "bf16").channels_last


@pytest.mark.parametrize("objective", ["mcr2", "vmcr2", "ce"])
def test_under_bf16_autocast_the_backbone_computes_in_bf16_and_the_objective_sees_float32(
        tmp_path, monkeypatch, objective):
    _cpu(monkeypatch, bf16=True, amx=True)  # bf16 is numerically the same on any CPU, only slower without it
    trainer = tiny_trainer(objective, tmp_path, precision="bf16")
    assert trainer.networks.precision.dtype == "bf16"
    convolution = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d))
    inside, seen = [], []
    convolution.register_forward_hook(lambda module, inputs, output: inside.append(output.dtype))
    step = trainer.objective.step

    def spy(Z, partition, **kwargs):
        seen.append(Z.dtype)
        return step(Z, partition, **kwargs)

    monkeypatch.setattr(trainer.objective, "step", spy)
    _, batch = next(iter(trainer.loader.epoch(0)))
    from vmcr2_cli.objectives import ClassPartition

    result = trainer.train_step(batch.images, ClassPartition(batch.labels_cpu, 10))
    assert inside == [torch.bfloat16] and seen == [torch.float32]
    assert result.loss.dtype in (torch.float32, torch.float64) and torch.isfinite(result.loss)
    assert batch.images.is_contiguous(memory_format=torch.channels_last)  # AMX: NHWC


def test_the_non_finite_check_stops_the_run_at_the_step_whose_loss_was_not_finite(tmp_path, monkeypatch):
    trainer = tiny_trainer("mcr2", tmp_path, epochs=3, log_every=5)
    step = trainer.objective.step
    calls = []

    def poisoned(Z, partition, **kwargs):
        calls.append(trainer.global_step)
        result = step(Z, partition, **kwargs)
        # A NaN value with the true gradient: θ stays finite, so only the loss check can see it.
        return result._replace(loss=result.loss + float("nan")) if len(calls) == 7 else result

    monkeypatch.setattr(trainer.objective, "step", poisoned)
    with pytest.raises(NonFiniteLoss) as failure:
        trainer.fit(NeverStop())
    assert failure.value.step == 6  # the 7th step (global step 6, 0-based), read at the next log point
    assert trainer.global_step == 8  # it ran on to the end of its epoch (step 8), where the flag is read


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_auto_cadence_writes_whenever_a_checkpoint_costs_at_most_two_percent(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr("vmcr2_cli.training.trainer.time.perf_counter", clock)
    cadence = CheckpointClock(0.0)
    assert cadence.due()  # none written yet
    with cadence.writing():
        clock.now += 0.5  # a write of 0.5 s
    clock.now += 24.0
    assert not cadence.due()  # 24 s of training: 0.5 s would be 2.1%
    clock.now += 1.0
    assert cadence.due()  # 25 s: 2.0%


def test_checkpoint_minutes_writes_once_that_many_minutes_passed(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr("vmcr2_cli.training.trainer.time.perf_counter", clock)
    cadence = CheckpointClock(2.0)
    with cadence.writing():
        clock.now += 0.01
    clock.now += 119.0
    assert not cadence.due()
    clock.now += 1.0
    assert cadence.due()


def test_a_run_with_a_long_cadence_checkpoints_after_the_first_latch_and_the_last_epoch(tmp_path, monkeypatch):
    trainer = tiny_trainer("vmcr2", tmp_path, epochs=3, latch_every=1, checkpoint_minutes=60.0)
    written = []
    monkeypatch.setattr(trainer.run, "save_checkpoint", lambda state: written.append(state["epoch"]))
    trainer.fit(NeverStop())
    assert written == [0, 3]  # the initial latch's, then none until the last epoch


def test_every_epoch_is_checkpointed_when_checkpoints_are_cheap(tmp_path, monkeypatch):
    trainer = tiny_trainer("mcr2", tmp_path, epochs=3)
    written = []
    monkeypatch.setattr(trainer.run, "save_checkpoint", lambda state: written.append(state["epoch"]))
    trainer.fit(NeverStop())
    assert written == [1, 2, 3]
