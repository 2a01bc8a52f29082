"""Specification of ClassPartition: a batch grouped by class once, for batched per-class work."""

import pytest
import torch

from vmcr2_cli.objectives import ClassPartition

CPU = torch.device("cpu")


def test_counts_slots_and_order_describe_the_classes():
    labels = torch.tensor([2, 0, 2, 2, 0, 3])
    partition = ClassPartition(labels, num_classes=5)
    assert partition.counts.tolist() == [2, 0, 3, 1, 0]
    assert partition.n_max == 3
    assert partition.labels[partition.order].tolist() == [0, 0, 2, 2, 2, 3]
    assert partition.slot.tolist() == [0, 0, 1, 2, 1, 0]


def test_pad_puts_each_class_in_its_own_block_with_zero_padding():
    labels = torch.tensor([1, 0, 1, 1])
    Z = torch.arange(8.0).reshape(4, 2) + 1
    padded = ClassPartition(labels, num_classes=3).pad(Z)
    assert padded.shape == (3, 3, 2)
    assert torch.equal(padded[0, 0], Z[1])
    assert torch.equal(padded[1], Z[[0, 2, 3]])
    assert not padded[0, 1:].any() and not padded[2].any()


def test_pad_is_differentiable():
    Z = torch.randn(5, 3, requires_grad=True)
    ClassPartition(torch.tensor([0, 1, 0, 2, 1]), 3).pad(Z).sum().backward()
    assert torch.equal(Z.grad, torch.ones(5, 3))


def test_balanced_batch_uses_one_bucket_without_gathering():
    partition = ClassPartition(torch.arange(40) % 10, num_classes=10)
    (bucket,) = partition.size_buckets(feature_dim=16, device=CPU)
    assert bucket.rows == 4 and bucket.num_classes == 10 and bucket.sample_index is None


def test_one_large_class_gets_its_own_bucket_and_absent_classes_none():
    sizes = [1, 3, 20, 0, 5, 2]
    labels = torch.repeat_interleave(torch.arange(6), torch.tensor(sizes))
    buckets = ClassPartition(labels, num_classes=6).size_buckets(feature_dim=8, device=CPU)
    assert [sorted(b.classes.tolist()) for b in buckets] == [[0, 1, 4, 5], [2]]
    assert [b.rows for b in buckets] == [5, 20]


def test_buckets_pad_every_present_sample_exactly_once():
    labels = torch.tensor([0, 4, 4, 1, 4, 4, 4, 4, 4, 4, 4, 4, 0, 2])
    Z = torch.randn(len(labels), 3)
    padded_rows = []
    for bucket in ClassPartition(labels, 5).size_buckets(feature_dim=3, device=CPU):
        padded = bucket.pad(Z)
        assert padded.shape == (bucket.num_classes, bucket.rows, 3)
        padded_rows.append(padded.reshape(-1, 3))
    rows = torch.cat(padded_rows)
    nonzero = rows[rows.abs().sum(1) > 0]
    assert sorted(map(tuple, nonzero.tolist())) == sorted(map(tuple, Z.tolist()))


def test_partition_can_stand_in_for_labels_but_must_match_the_class_count():
    from vmcr2_cli.objectives import rate_reduction

    Z = torch.nn.functional.normalize(torch.randn(6, 4, dtype=torch.float64), dim=1)
    labels = torch.tensor([0, 1, 1, 2, 0, 2])
    partition = ClassPartition(labels, 3)
    assert torch.equal(rate_reduction(Z, partition, 3).delta_r, rate_reduction(Z, labels, 3).delta_r)
    with pytest.raises(ValueError, match="built for 3 classes"):
        rate_reduction(Z, partition, 4)
