"""Latching's class moments: over a dataset chunk by chunk, or over an epoch's own batches (latch_source)."""

import io

import pytest
import torch
import torch.nn.functional as F

from distributed_workers import NeverStop, epoch_latch_trainer, tiny_trainer
from vmcr2_cli.objectives import ClassPartition
from vmcr2_cli.training.latching import dataset_class_moments


def test_dataset_moments_are_the_sums_over_chunks():
    g = torch.Generator().manual_seed(0)
    features = F.normalize(torch.randn(1000, 8, generator=g), dim=1)
    labels = torch.randint(0, 3, (1000,), generator=g)
    moments, counts = dataset_class_moments(features, labels, 3, chunk=128)
    assert moments.dtype == features.dtype
    whole = features.double()
    for j in range(3):
        rows = whole[labels == j]
        assert torch.allclose(moments[j].double(), rows.T @ rows, rtol=1e-5, atol=1e-5)
    assert counts.tolist() == torch.bincount(labels, minlength=3).tolist()



def test_latch_images_latches_on_the_first_batches_of_the_epochs_order(tmp_path, monkeypatch):
    from fixtures_data import isolate_data
    from vmcr2_cli.config import resolve_config
    from vmcr2_cli.distributed import FollowerRun
    from vmcr2_cli.runs import RunDir
    from vmcr2_cli.training.setup import load_training_data
    from vmcr2_cli.training.trainer import Trainer

    isolate_data(monkeypatch, tmp_path)

    def trainer(**changes) -> Trainer:
        values = {"synthetic_train_per_class": 40, "synthetic_test_per_class": 10, "batch_size": 100,
                  "device": "cpu", **changes}
        config = resolve_config("synthetic", "vmcr2", values)[0]
        return Trainer(config, load_training_data(config), FollowerRun(RunDir(tmp_path)), torch.device("cpu"))

    whole, sampled = trainer(), trainer(latch_images=150)
    all_features, _ = whole.latching_features()
    features, labels = sampled.latching_features()
    assert all_features.shape[0] == 400 and features.shape[0] == 200  # ⌈150/100⌉ batches
    first = torch.cat([whole.loader.batch_indices(0, 0), whole.loader.batch_indices(0, 1)])
    assert labels.tolist() == whole.loader.labels_cpu[first].tolist()
    torch.testing.assert_close(features, all_features[:200])  # the same features, in the epoch's order


def _trainer(out, **changes):
    """A V-MCR² Trainer on 10 synthetic classes of 40 images, 4 steps of 100 an epoch, latching every epoch."""
    return tiny_trainer("vmcr2", out, **{"dropout": False, "latch_every": 1, "epochs": 1, **changes})


def _class_dictionaries(trainer) -> torch.Tensor:
    """Γ_j Diag(A_j) Γ_jᵀ of every class (k, d, d): what a latch sets, free of eigenvectors' signs."""
    variational = trainer.objective.variational
    k, d = variational.num_classes, variational.gamma.shape[0]
    atoms = variational.gamma.T.reshape(k, -1, d)  # class j's atoms: rows j·s … (j+1)·s − 1 of Γᵀ
    spectra = torch.stack([variational.A.reshape(k, -1, k)[j, :, j] for j in range(k)])  # (k, s)
    return torch.einsum("ksd,ks,kse->kde", atoms.double(), spectra.double(), atoms.double())


def test_latching_from_the_epochs_batches_equals_a_pass_when_the_network_does_not_move(tmp_path):
    """lr = 0: the steps' features are the pass's features, so the two latches agree (to float32 sums)."""
    latched = {}
    for source in ("pass", "epoch"):
        trainer = epoch_latch_trainer(tmp_path / source, latch_source=source)
        trainer.fit(NeverStop())
        latched[source] = _class_dictionaries(trainer)
        assert trainer.epoch_moments is None  # the last epoch's latch used them; no epoch follows
    torch.testing.assert_close(latched["epoch"], latched["pass"], rtol=1e-6, atol=1e-6)
    assert latched["pass"].abs().max() > 0.1  # a real latch, not two zero dictionaries


def test_the_epochs_moments_sum_its_batches_and_are_gathered_only_before_a_latch(tmp_path):
    trainer = _trainer(tmp_path, latch_source="epoch", latch_every=2, epochs=2)
    assert trainer.epoch_moments is None  # epoch 0 ends without a latch: nothing to gather
    trainer.epoch = 1
    trainer.epoch_moments = trainer._new_epoch_moments()
    assert trainer.epoch_moments is not None and trainer.epoch_moments.counts.sum() == 0
    seen = []
    for _, batch in trainer.loader.epoch(1):
        partition = ClassPartition(batch.labels_cpu, 10)
        trainer.train_step(batch.images, partition)
        seen.append(batch.labels)
    labels = torch.cat(seen)
    assert trainer.epoch_moments.counts.tolist() == torch.bincount(labels, minlength=10).tolist()
    traces = trainer.epoch_moments.moments.diagonal(dim1=1, dim2=2).sum(-1)  # Σ‖z‖² = the class's size
    torch.testing.assert_close(traces, trainer.epoch_moments.counts.float(), rtol=1e-4, atol=1e-4)


def test_a_resume_inside_an_epoch_continues_its_moments_exactly(tmp_path):
    whole = _trainer(tmp_path / "whole", latch_source="epoch", epochs=2)
    whole.fit(NeverStop())

    class StopAtStep:
        signal_name = "test"

        @property
        def requested(self) -> bool:
            return stopped.global_step == 6  # inside epoch 1 (4 steps an epoch)

    from vmcr2_cli.training.interrupts import TrainingInterrupted

    stopped = _trainer(tmp_path / "stopped", latch_source="epoch", epochs=2)
    with pytest.raises(TrainingInterrupted):
        stopped.fit(StopAtStep())
    buffer = io.BytesIO()
    torch.save(stopped.state_dict(), buffer)  # through the file format, read as resume reads it
    state = torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    assert state["epoch_moments"]["counts"].sum() == 200  # two of epoch 1's batches
    resumed = _trainer(tmp_path / "resumed", latch_source="epoch", epochs=2)
    resumed.load_state_dict(state)
    resumed.fit(NeverStop())
    torch.testing.assert_close(_class_dictionaries(resumed), _class_dictionaries(whole), rtol=0, atol=0)
    for key, value in whole.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0, msg=key)


def test_latch_source_epoch_and_a_latch_sample_are_refused_together():
    from vmcr2_cli.config import resolve_config
    from vmcr2_cli.errors import BadInput

    with pytest.raises(BadInput, match="latch_images = 500 samples the pass that latch_source = 'epoch'"):
        resolve_config("default", "vmcr2", {"latch_source": "epoch", "latch_images": 500})


def test_latching_rank_deficient_moments_gives_finite_orthonormal_atoms():
    """Each class spans 2 of d = 16 directions but gets s = 6 atoms: eigh of a rank-2 moment matrix."""
    from vmcr2_cli.objectives import VariationalMCR2

    g = torch.Generator().manual_seed(0)
    k, d, s = 3, 16, 6
    bases = torch.linalg.qr(torch.randn(k, d, 2, generator=g)).Q
    labels = torch.arange(k).repeat_interleave(50)
    features = F.normalize(torch.einsum("ndr,nr->nd", bases[labels], torch.randn(150, 2, generator=g)), dim=1)
    moments, counts = dataset_class_moments(features, labels, k)
    variational = VariationalMCR2(d, k, dictionary_size=k * s)
    variational.latch_from_moments(moments, counts, batch_size=150)
    gamma = variational.gamma
    assert torch.isfinite(gamma).all() and torch.isfinite(variational.A).all()
    torch.testing.assert_close(gamma.norm(dim=0), torch.ones(k * s), rtol=1e-5, atol=1e-5)


def test_a_checkpoint_at_an_epochs_start_stores_no_moments_and_loads_fresh_ones(tmp_path):
    """Empty sums are k·d² zeros (4 GB at k = d = 1000): not written, rebuilt on load."""
    trainer = _trainer(tmp_path, latch_source="epoch", epochs=2)
    saved = []
    trainer.run.save_checkpoint = saved.append
    trainer.fit(NeverStop())
    at_epoch_1 = next(state for state in saved if state["epoch"] == 1)
    assert at_epoch_1["step_in_epoch"] == 0 and at_epoch_1["epoch_moments"] is None
    resumed = _trainer(tmp_path / "resumed", latch_source="epoch", epochs=2)
    resumed.load_state_dict(at_epoch_1)
    assert resumed.epoch_moments is not None and int(resumed.epoch_moments.counts.sum()) == 0
