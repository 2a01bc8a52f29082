"""``vmcr2 embed``'s work: the inputs a user names (image files, folders, the run's own splits) through a
:class:`~vmcr2_cli.featurizer.Featurizer`, into one .npz.

The .npz holds ``features`` (N × d float32 unit rows), ``paths`` (N strings in the order of the rows; a
split's image as ``test:<index>``), ``labels`` (+ ``label_names``) where every input has labels,
``skipped`` and ``skipped_reasons`` (the files that gave no image), and with ``--predict`` eq. 8's
``predicted`` class, its ``predicted_names``, the ``residuals`` (N × k) and the ``class_names``.
Read it with ``np.load(FILE)`` (no pickles inside).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vmcr2_cli.errors import BadInput
from vmcr2_cli.featurizer.featurizer import Featurizer
from vmcr2_cli.featurizer.images import Decoded, Skipped, conversion_notes, find_images, read_images
from vmcr2_cli.runs import atomic_write_bytes

SPLITS = ("train", "test")
SPLIT_PREFIX = ":"  # ":test" is always the split; "test" is, unless a file or folder has that name


@dataclass(frozen=True)
class Inputs:
    """What to embed: files and folders, and the run's own splits."""

    paths: list[Path]
    splits: list[str]


def parse_inputs(names: list[str]) -> Inputs:
    """The command line's PATHs: ``:train``/``:test`` (or a bare ``train``/``test`` that names no file)
    are the run's splits, anything else a file or folder."""
    paths, splits = [], []
    for name in names:
        bare = name.removeprefix(SPLIT_PREFIX)
        if name.startswith(SPLIT_PREFIX) and bare in SPLITS:
            splits.append(bare)
        elif name in SPLITS and not Path(name).exists():
            splits.append(name)
        elif name in SPLITS:
            raise BadInput(f"{name}: both a file or folder here and the run's {name} split; "
                           f"write ./{name} for the path or {SPLIT_PREFIX}{name} for the split")
        else:
            paths.append(Path(name))
    return Inputs(paths, splits)


@dataclass
class Embedding:
    """Features and what they are of, as they accumulate."""

    features: list[torch.Tensor] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    labels: list[int] | None = field(default_factory=list)
    label_names: list[str] | None = None
    skipped: list[Skipped] = field(default_factory=list)
    decoded: list[Decoded] = field(default_factory=list)  # the files' (for the conversion notes)
    ignored: int = 0

    @property
    def count(self) -> int:
        return len(self.paths)

    def matrix(self) -> torch.Tensor:
        return torch.cat(self.features) if self.features else torch.zeros((0, 0))


def embed_inputs(featurizer: Featurizer, inputs: Inputs, batch_size: int, *, data_root: str | None = None,
                 total: Callable[[int], None] = lambda count: None,
                 advance: Callable[[int], None] = lambda count: None,
                 skipped: Callable[[Skipped], None] = lambda item: None) -> Embedding:
    """Features of every input, in order: the files first (as named, folders sorted), then the splits.
    ``total``/``advance``: the progress (images); ``skipped``: told of each file that gave no image."""
    found = find_images(inputs.paths)
    dataset = featurizer.dataset(data_root) if inputs.splits else None
    total(len(found.files) + sum(len(_split(dataset, name)[0]) for name in inputs.splits))
    result = Embedding(ignored=found.ignored)
    for item in found.skipped:
        skipped(item)
    result.skipped += found.skipped
    labelled = found.labels is not None or not found.files
    for start in range(0, len(found.files), batch_size):
        files = found.files[start:start + batch_size]
        decoded = read_images(files, featurizer.preprocessing)
        result.decoded += decoded
        good = [j for j, item in enumerate(decoded) if item.image is not None]
        for j, item in enumerate(decoded):
            if item.image is None:
                result.skipped.append(Skipped(str(files[j]), item.reason or "unreadable"))
                skipped(result.skipped[-1])
        if good:
            result.features.append(featurizer.features(torch.stack([decoded[j].image for j in good]), batch_size))
            result.paths += [str(files[j]) for j in good]
            if found.labels is not None:
                result.labels += [found.labels[start + j] for j in good]  # type: ignore[operator]
        advance(len(files))
    result.label_names = found.label_names
    for name in inputs.splits:
        images, labels = _split(dataset, name)
        for start in range(0, len(images), batch_size):
            result.features.append(featurizer.features(images[start:start + batch_size], batch_size))
            advance(min(batch_size, len(images) - start))
        result.paths += [f"{name}:{index}" for index in range(len(images))]
        result.labels += labels.tolist()  # type: ignore[operator]
        result.label_names = featurizer.class_names
    if "train" in inputs.splits and not dataset.labelled_train:
        labelled = False  # a training set without labels (its train_labels are placeholders)
    if not labelled or (found.labels is not None and inputs.splits):
        result.labels, result.label_names = None, None  # unlabelled files, or two kinds of label
    return result


def _split(dataset, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    return (dataset.train_images, dataset.train_labels) if name == "train" else (dataset.test_images,
                                                                                 dataset.test_labels)


def notes(result: Embedding, featurizer: Featurizer) -> list[str]:
    """What was done to the files to fit the run, and what in the folders was not an image; one line each."""
    lines = conversion_notes(result.decoded, featurizer.preprocessing)
    if result.ignored:
        lines.append(f"{result.ignored} file(s) in the folders left out: their names are not an image's "
                     f"(.png, .jpg, …)")
    return lines


def write_embedding(path: Path, result: Embedding, featurizer: Featurizer, predict: bool,
                    log: Callable[[str], None] = lambda text: None, data_root: str | None = None) -> None:
    """The .npz (module docstring), written to a temporary name and renamed."""
    features = result.matrix()
    arrays: dict[str, np.ndarray] = {
        "features": features.numpy().astype(np.float32),
        "paths": np.array(result.paths, dtype=str),
        "skipped": np.array([item.path for item in result.skipped], dtype=str),
        "skipped_reasons": np.array([item.reason for item in result.skipped], dtype=str),
    }
    if result.labels is not None:
        arrays["labels"] = np.array(result.labels, dtype=np.int64)
        arrays["label_names"] = np.array(result.label_names or [], dtype=str)
    if predict:
        featurizer.class_subspaces(data_root=data_root, log=log)  # saved, or fitted (and saved) now
        prediction = featurizer.predict_features(features)
        arrays.update(predicted=prediction.classes, predicted_names=np.array(prediction.names, dtype=str),
                      residuals=prediction.residuals, class_names=np.array(featurizer.class_names, dtype=str))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
