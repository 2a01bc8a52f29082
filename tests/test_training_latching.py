"""Latching's class moments over a dataset: summed chunk by chunk, equal to the whole sum."""

import torch
import torch.nn.functional as F

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
