"""micro_batch: the network in chunks, the objective on the whole batch (gradient caching).

The objectives are not sums over samples, so a step in chunks is right only if it gives the
whole batch's gradients: checked for every objective in float64 on a network without batch
statistics, with dropout replayed between a chunk's two passes, under DDP (test_distributed.py)
and across a mid-epoch resume.
"""

from __future__ import annotations

import copy
import contextlib
from pathlib import Path

import pytest
import torch
from torch import nn

from cli_runner import TINY_SYNTHETIC, vmcr2
from distributed_workers import OBJECTIVES, StopAfter, NeverStop, global_partition, tiny_trainer, without_dropout
from fixtures_data import isolate_data
from vmcr2_cli.config import resolve_config
from vmcr2_cli.errors import BadInput
from vmcr2_cli.models.heads import Normalize
from vmcr2_cli.objectives import ClassPartition, build_objective
from vmcr2_cli.runs import RunDir
from vmcr2_cli.training.interrupts import TrainingInterrupted
from vmcr2_cli.training.step import step_gradients

QUICK = [*TINY_SYNTHETIC, "--set", "log_every=1"]
UNEVEN = 30  # chunks of 30 rows of a 100-row batch (400 with 4 views): the last one smaller


def gradients(model: nn.Module, objective: nn.Module, images: torch.Tensor, partition: ClassPartition,
              micro_batch: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The loss and every parameter's gradient (θ's, then the objective's), from copies of both."""
    model, objective = copy.deepcopy(model), copy.deepcopy(objective)  # V-MCR²'s step moves Γ, A
    result = step_gradients(model, objective, contextlib.nullcontext(), images, partition, micro_batch=micro_batch)
    return result.loss.detach(), [p.grad for p in [*model.parameters(), *objective.parameters()]]


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_in_chunks_every_objectives_float64_gradients_are_the_whole_batchs(tmp_path, objective):
    trainer = without_dropout(tiny_trainer(objective, tmp_path, objective_dtype="float64"))
    if objective.startswith("vmcr2"):
        trainer.latch()
    model = trainer.model.double()
    _, batch = next(iter(trainer.loader.epoch(0)))
    images, partition = batch.images.double(), global_partition(trainer, 0, 0)
    whole_loss, whole = gradients(model, trainer.objective, images, partition, micro_batch=0)
    chunked_loss, chunked = gradients(model, trainer.objective, images, partition, micro_batch=UNEVEN)
    assert images.shape[0] > 2 * UNEVEN
    torch.testing.assert_close(chunked_loss, whole_loss, rtol=1e-10, atol=0)
    assert len(whole) == len(chunked) and all(g is not None for g in whole + chunked)
    for expected, got in zip(whole, chunked):
        assert (got - expected).norm() <= 1e-6 * expected.norm() + 1e-12


def test_a_chunks_two_passes_draw_the_same_dropout(tmp_path):
    trainer = tiny_trainer("mcr2", tmp_path, dropout=True)
    assert any(isinstance(m, nn.Dropout) and m.p > 0 for m in trainer.model.modules())
    outputs = []
    trainer.model.register_forward_hook(lambda module, inputs, output: outputs.append(output.detach().clone()))
    _, batch = next(iter(trainer.loader.epoch(0)))
    torch.manual_seed(0)
    step_gradients(trainer.model, trainer.objective, contextlib.nullcontext(), batch.images,
                   global_partition(trainer, 0, 0), micro_batch=UNEVEN)
    first, second = outputs[:4], outputs[4:]
    assert len(first) == len(second) == 4  # 30 + 30 + 30 + 10 rows, twice
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not torch.equal(first[0][:10], first[3])  # dropout did draw: different chunks, different masks
    # ...and the replay is what makes them agree: the same chunk twice in a row draws two masks.
    with torch.no_grad():
        again = [trainer.model(batch.images[:UNEVEN]) for _ in range(2)]
    assert not torch.equal(*again)


def test_batchnorm_running_statistics_move_once_per_chunk(tmp_path):
    """Pass 1 leaves them; pass 2 updates them chunk by chunk, as consecutive batches of a chunk's size do."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 8))
    reference = copy.deepcopy(model)
    objective = build_objective("mcr2", 8, 4)
    images, labels = torch.randn(100, 12), torch.arange(100) % 4
    step_gradients(model, objective, contextlib.nullcontext(), images, ClassPartition(labels, 4), micro_batch=UNEVEN)
    with torch.no_grad():
        for chunk in images.split(UNEVEN):
            reference(chunk)
    norm, expected = model[1], reference[1]
    assert int(norm.num_batches_tracked) == 4
    torch.testing.assert_close(norm.running_mean, expected.running_mean)
    torch.testing.assert_close(norm.running_var, expected.running_var)


def test_a_run_in_chunks_resumed_mid_epoch_ends_where_the_uninterrupted_one_does(tmp_path):
    changes = dict(epochs=2, latch_every=1, micro_batch=UNEVEN, dropout=True)  # dropout: the streams matter
    whole = tiny_trainer("vmcr2", tmp_path, **changes)
    whole.fit(NeverStop())
    stopped = tiny_trainer("vmcr2", tmp_path, **changes)
    with pytest.raises(TrainingInterrupted):
        stopped.fit(StopAfter(stopped, rank=0, step=3))  # inside epoch 0 of 4 steps
    checkpoint = copy.deepcopy(stopped.state_dict())
    assert checkpoint["step_in_epoch"] == 3
    resumed = tiny_trainer("vmcr2", tmp_path, **changes)
    resumed.load_state_dict(checkpoint)
    resumed.fit(NeverStop())
    for key, value in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    assert torch.equal(resumed.objective.variational.gamma, whole.objective.variational.gamma)


def test_micro_batch_is_a_count_of_rows():
    assert resolve_config("synthetic", "vmcr2", {"micro_batch": 64})[0].micro_batch == 64
    with pytest.raises(BadInput, match="micro_batch"):
        resolve_config("synthetic", "vmcr2", {"micro_batch": -1})


def test_a_step_out_of_gpu_memory_stops_naming_the_measured_micro_batch_that_fits(tmp_path, capsys, monkeypatch):
    """The GPU's out-of-memory error, simulated on the CPU: more than 30 rows at once do not fit."""
    isolate_data(monkeypatch, tmp_path)
    forward = Normalize.forward

    def limited(self, x):
        if x.shape[0] > 30:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(self, x)

    monkeypatch.setattr(Normalize, "forward", limited)
    runs = tmp_path / "runs"
    code, _, err = vmcr2("train", *QUICK, "--objective", "mcr2", "--runs-dir", str(runs), "--epochs", "2",
                         capsys=capsys)  # mcr2: no latching pass before the first step
    assert code == 1 and "Traceback" not in err
    # 100 rows ran out; halving, 50 runs out and 25 is the first that fits.
    assert "out of GPU memory at step 1 with 100 images at once; micro_batch = 25 fits (measured)" in err
    run = RunDir.open(runs / "latest")
    assert f"Continue with: vmcr2 train --resume {run.path.resolve()} --set micro_batch=25" in err
    assert run.read_meta()["status"] == "failed"
    assert vmcr2("train", "--resume", str(run.path), "--set", "micro_batch=25", capsys=capsys)[0] == 0
    assert run.read_meta()["status"] == "finished"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("objective", ["mcr2", "vmcr2-tangent", "ce"])
def test_on_a_gpu_chunks_give_the_whole_batchs_gradients_and_less_memory(tmp_path, objective):
    cuda = torch.device("cuda")
    trainer = without_dropout(tiny_trainer(objective, tmp_path, device="cuda"))
    trainer.model.to(cuda), trainer.objective.to(cuda)
    if objective.startswith("vmcr2"):
        trainer.latch()
    _, batch = next(iter(trainer.loader.epoch(0)))
    images, partition = batch.images.to(cuda), global_partition(trainer, 0, 0)
    peaks, grads = [], []
    for micro_batch in (0, UNEVEN):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        grads.append(gradients(trainer.model, trainer.objective, images, partition, micro_batch)[1])
        peaks.append(torch.cuda.max_memory_allocated() - before)
    for expected, got in zip(*grads):
        assert (got - expected).norm() <= 1e-4 * expected.norm() + 1e-7
    assert peaks[1] < peaks[0]


def test_with_batchnorm_the_gradients_are_those_of_the_network_applied_chunk_by_chunk(tmp_path):
    """BatchNorm makes the chunked step another function (each chunk normalized by its own statistics):
    its gradients are exactly that function's, computed with the whole graph at once as the reference."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 8)).double()
    objective = build_objective("mcr2", 8, 4)
    images, labels = torch.randn(100, 12, dtype=torch.float64), torch.arange(100) % 4
    partition = ClassPartition(labels, 4)
    _, chunked = gradients(model, objective, images, partition, micro_batch=UNEVEN)
    reference = copy.deepcopy(model)
    Z = torch.cat([reference(chunk) for chunk in images.split(UNEVEN)]).float()
    copy.deepcopy(objective).step(Z, partition).loss.backward()
    _, whole = gradients(model, objective, images, partition, micro_batch=0)
    for got, expected, whole_batch in zip(chunked, [p.grad for p in reference.parameters()], whole):
        assert (got - expected).norm() <= 1e-6 * expected.norm() + 1e-12
    assert any((c - w).norm() > 1e-3 * w.norm() for c, w in zip(chunked, whole))  # and it is not the whole batch's
