"""The device-resident loader: permutations, reproducible batches, augmentations, evaluation order.

The labels given to the loader here are the sample indices themselves (``torch.arange(N)``),
so ``batch.labels_cpu`` says exactly which images a batch holds.
"""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from vmcr2_cli.data import DeviceLoader, iterate_eval
from vmcr2_cli.data import augment as aug
from vmcr2_cli.errors import BadInput

N, C, H, W = 50, 3, 32, 32
MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def images(n: int = N, channels: int = C, seed: int = 0) -> torch.Tensor:
    return torch.randint(1, 256, (n, channels, H, W), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def loader(batch_size: int = 8, **options) -> DeviceLoader:
    options = {"augment": "crop-flip", "mean": MEAN, "std": STD, "seed": 3, **options}
    n = options.pop("n", N)
    return DeviceLoader(images(n), torch.arange(n), batch_size, "cpu", **options)


def normalized(uint8: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN).view(1, -1, 1, 1)
    std = torch.tensor(STD).view(1, -1, 1, 1)
    return (uint8.float() / 255 - mean) / std


def reference_crop_flip(image: torch.Tensor, top: int, left: int, flip: bool, padding: int = 8) -> torch.Tensor:
    """torchvision's per-image ops: pad with zeros, crop at (top, left), mirror."""
    out = TF.crop(TF.pad(image, [padding]), top, left, image.shape[-2], image.shape[-1])
    return TF.horizontal_flip(out) if flip else out


# --------------------------------------------------------------------------- order


def test_permutation_covers_every_index_once_per_epoch():
    data = loader(batch_size=8, drop_last=False)
    assert data.steps_per_epoch == 7 and len(data) == 7
    for epoch in range(3):
        seen = torch.cat([batch.labels_cpu for _, batch in data.epoch(epoch)])
        assert torch.equal(seen, data.permutation(epoch)) and torch.equal(seen.sort().values, torch.arange(N))


def test_drop_last_skips_only_the_last_partial_batch():
    data = loader(batch_size=8, drop_last=True)
    batches = [batch for _, batch in data.epoch(0)]
    assert data.steps_per_epoch == 6 and len(batches) == 6 and all(b.images.shape[0] == 8 for b in batches)
    assert len(set(torch.cat([b.labels_cpu for b in batches]).tolist())) == 48


def test_each_epoch_has_its_own_permutation_and_seed_matters():
    data = loader()
    assert not torch.equal(data.permutation(0), data.permutation(1))
    assert torch.equal(data.permutation(4), loader().permutation(4))
    assert not torch.equal(data.permutation(0), loader(seed=4).permutation(0))


def test_same_seed_epoch_and_step_give_the_identical_batch():
    first = dict(loader().epoch(2))
    second = dict(loader().epoch(2))  # a fresh loader, as after a restart
    for step in first:
        assert torch.equal(first[step].images, second[step].images)
        assert torch.equal(first[step].labels_cpu, second[step].labels_cpu)


def test_resuming_at_a_step_gives_the_batches_of_the_uninterrupted_epoch():
    data = loader()
    uninterrupted = list(data.epoch(5))
    resumed = list(loader().epoch(5, start_step=3))
    assert [step for step, _ in resumed] == [3, 4, 5]
    for (step_a, a), (step_b, b) in zip(uninterrupted[3:], resumed):
        assert step_a == step_b and torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert list(data.epoch(5, start_step=data.steps_per_epoch)) == []
    with pytest.raises(ValueError, match="start_step"):
        next(data.epoch(5, start_step=data.steps_per_epoch + 1))


def test_the_global_random_state_is_neither_used_nor_changed():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    batches = [b.images for _, b in loader().epoch(0)]
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(999)  # a different global state changes nothing
    assert all(torch.equal(a, b.images) for a, (_, b) in zip(batches, loader().epoch(0)))


def test_labels_cpu_match_the_device_labels_and_the_images():
    data = DeviceLoader(images(), torch.arange(N) % 7, 8, "cpu", augment="none", mean=MEAN, std=STD, seed=1)
    source = images()
    for step, batch in data.epoch(0):
        indices = data.batch_indices(0, step)
        assert batch.labels_cpu.device.type == "cpu" and batch.labels.dtype == torch.int64
        assert torch.equal(batch.labels.cpu(), batch.labels_cpu) and torch.equal(batch.labels_cpu, indices % 7)
        assert torch.allclose(batch.images, normalized(source[indices]), atol=1e-6)


# --------------------------------------------------------------------------- augmentation


def test_crop_flip_equals_a_per_image_reference_at_the_same_offsets():
    data = loader(batch_size=16)
    source = images()
    _, batch = next(iter(data.epoch(1, start_step=2)))
    indices = data.batch_indices(1, 2)
    params = data.augment_params(1, 2, 16)
    assert params[:, 2].any() and not params[:, 2].all()  # both flipped and unflipped images
    expected = torch.stack([reference_crop_flip(source[i], int(t), int(l), bool(f)) for i, (t, l, f) in zip(indices, params)])
    assert torch.allclose(batch.images, normalized(expected), atol=1e-6)


def test_crop_flip_function_matches_the_reference_at_extreme_offsets():
    batch = images(6)
    offsets = torch.tensor([[0, 0], [16, 16], [0, 16], [16, 0], [8, 8], [3, 11]])
    flips = torch.tensor([False, True, True, False, True, False])
    out = aug.crop_flip(batch, offsets, flips, padding=8)
    for i in range(6):
        assert torch.equal(out[i], reference_crop_flip(batch[i], *offsets[i].tolist(), bool(flips[i])))
    assert torch.equal(aug.crop_flip(batch, torch.full((6, 2), 8), torch.zeros(6, dtype=torch.bool), 8), batch)


def test_crop_offsets_span_the_padding_and_flips_are_fair():
    params = aug.draw_params("crop-flip", 20000, torch.Generator().manual_seed(0), padding=8)
    assert params[:, :2].min() == 0 and params[:, :2].max() == 16
    assert params[:, :2].flatten().bincount(minlength=17).min() > 2000  # every offset drawn
    assert params[:, 2].float().mean().item() == pytest.approx(0.5, abs=0.02)


def test_flip_mirrors_without_cropping():
    data = loader(augment="flip")
    source = images()
    _, batch = next(iter(data.epoch(0)))
    params = data.augment_params(0, 0, 8)
    indices = data.batch_indices(0, 0)
    expected = torch.stack([TF.horizontal_flip(source[i]) if f else source[i] for i, f in zip(indices, params[:, 2])])
    assert torch.allclose(batch.images, normalized(expected), atol=1e-6)


def test_no_augmentation_returns_the_normalized_images():
    data = loader(augment="none")
    _, batch = next(iter(data.epoch(0)))
    assert torch.allclose(batch.images, normalized(images()[data.batch_indices(0, 0)]), atol=1e-6)


def test_unknown_augmentation_is_bad_input():
    with pytest.raises(BadInput, match="unknown augmentation 'rotate'; known: crop-flip, flip, resized-crop, none"):
        loader(augment="rotate")


def test_channels_last_output():
    _, batch = next(iter(loader(channels_last=True).epoch(0)))
    assert batch.images.is_contiguous(memory_format=torch.channels_last) and batch.images.dtype == torch.float32
    _, plain = next(iter(loader().epoch(0)))
    assert torch.equal(batch.images, plain.images)


def test_single_channel_images_take_one_mean_and_std():
    data = DeviceLoader(images(channels=1), torch.arange(N), 10, augment="none", mean=(0.5,), std=(0.25,))
    _, batch = next(iter(data.epoch(0)))
    expected = (images(channels=1)[data.batch_indices(0, 0)].float() / 255 - 0.5) / 0.25
    assert torch.allclose(batch.images, expected, atol=1e-6)


def test_batch_larger_than_the_training_set_is_bad_input():
    with pytest.raises(BadInput, match="batch size 64 is larger than the training set"):
        loader(batch_size=64)


def test_ddp_shares_make_up_the_single_process_batch():
    whole = dict(loader(batch_size=10).epoch(0))
    shares = [dict(loader(batch_size=10, rank=r, world_size=2).epoch(0)) for r in range(2)]
    for step, batch in whole.items():
        assert torch.equal(torch.cat([s[step].labels_cpu for s in shares]), batch.labels_cpu)
        assert torch.equal(torch.cat([s[step].images for s in shares]), batch.images)


# --------------------------------------------------------------------------- evaluation


def test_eval_batches_are_in_dataset_order_unaugmented_with_the_last_partial_batch():
    data = loader(batch_size=8)
    batches = list(data.eval_batches(batch_size=15))
    assert [b.images.shape[0] for b in batches] == [15, 15, 15, 5]
    assert torch.equal(torch.cat([b.labels_cpu for b in batches]), torch.arange(N))
    assert torch.allclose(torch.cat([b.images for b in batches]), normalized(images()), atol=1e-6)


def test_iterate_eval_matches_the_loader_eval_batches():
    ours = list(iterate_eval(images(), torch.arange(N), 20, "cpu", mean=MEAN, std=STD))
    theirs = list(loader().eval_batches(20))
    assert len(ours) == 3
    assert all(torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) for a, b in zip(ours, theirs))


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batches_equal_the_cpu_batches():
    cpu = dict(loader(channels_last=True).epoch(3))
    source = images()
    cuda = DeviceLoader(source, torch.arange(N), 8, "cuda", augment="crop-flip", mean=MEAN, std=STD, seed=3, channels_last=True)
    assert cuda.images.is_cuda
    for step, batch in cuda.epoch(3):
        assert batch.images.is_cuda and batch.labels.is_cuda and not batch.labels_cpu.is_cuda
        assert torch.allclose(batch.images.cpu(), cpu[step].images, atol=1e-6)
        assert torch.equal(batch.labels_cpu, cpu[step].labels_cpu)
