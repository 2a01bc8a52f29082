"""What ``vmcr2 bench`` measures: every setting named once, with its default, unit and check.

The defaults are the paper's shape for CIFAR-100 and Tiny ImageNet (§4.1): batch
m = 2000, feature dimension d = 500, q = 10·k atoms, ε² = 0.5, objectives in float32.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vmcr2_cli.errors import BadInput
from vmcr2_cli.objective_registry import OBJECTIVES, VMCR2_METHOD_ENTRIES

if TYPE_CHECKING:  # torch is imported when a bench runs, not when the CLI starts
    import torch

# ``mcr2-reference`` is the paper's baseline: one d×d log-determinant per class, in a Python loop.
REFERENCE = "mcr2-reference"
# The V-MCR² variants → the objective's ``method``: Algorithm 1 as written ("vmcr2"), then "vmcr2-<method>".
VMCR2_VARIANTS = {method.bench: name for name, method in VMCR2_METHOD_ENTRIES.items()}
# The variants in the order of the table: the reference, then every registered objective
# (V-MCR² once per method).
# The self-supervised objectives are left out: their classes are a batch's images, not --classes.
VARIANTS = (REFERENCE, *(variant for name, entry in OBJECTIVES.items() if not entry.self_supervised
                         for variant in (VMCR2_VARIANTS if name == "vmcr2" else (name,))))
# Featurizers a training step can be timed with (names of ``models.registry``) → the
# channels of their images (all C×32×32) and the training set whose epoch is projected
# by default: the paper's dataset for that architecture.
BACKBONES = {"mnist-cnn": (1, "mnist"), "resnet18": (3, "cifar100"), "preact-resnet18": (3, "cifar100")}
STEMS = ("imagenet", "cifar")
PRECISIONS = ("bf16", "fp32")  # of the backbone, as the config's ``precision`` key
DTYPES = ("float32", "float64")  # the objectives compute in float32 or float64, never half
# Training-set sizes (images) of the datasets, by their ``data.registry`` names.
DATASET_SIZES = {"mnist": 60_000, "fashion-mnist": 60_000, "cifar10": 50_000, "cifar100": 50_000,
                 "tinyimagenet": 100_000}
IMAGE_SIZE = 32

DEFAULT_CLASSES = "10,100,200,1000"  # the paper's datasets (10, 100, 200 classes), and beyond
DEFAULT_BATCH_SIZE = 2000  # m for CIFAR-100 and Tiny ImageNet
DEFAULT_DIM = 500  # d for CIFAR-100 and Tiny ImageNet
DEFAULT_ATOMS_PER_CLASS = 10  # q = 10·k
DEFAULT_EPS2 = 0.5  # ε², throughout the paper
DEFAULT_REPEATS = 10  # timed calls per case (fewer for slow cases, see budget)
DEFAULT_WARMUP = 2  # untimed calls first: allocator, kernels' first-call costs
# Seconds of timed calls per case. With the minimum of 3 repeats it lets the CPU sweep
# 10…1000 classes finish in minutes: one call of the reference takes ~2 s at k = 200 and
# ~10 s at k = 1000 on one free core (several times that on a busy one).
DEFAULT_BUDGET_S = 30.0


@dataclass(frozen=True)
class BenchSettings:
    """A checked bench configuration (see :func:`make_settings`)."""

    classes: tuple[int, ...]  # k values, ascending
    variants: tuple[str, ...]  # from VARIANTS, in its order
    batch_size: int  # m
    dim: int  # d
    atoms_per_class: int  # q / k
    eps2: float  # ε²
    dtype: str  # the objectives' compute dtype
    device: str  # as given: auto, cpu, cuda, cuda:N
    backbone: str | None  # None: the objectives alone
    stem: str  # ResNet18's stem (the paper's is ImageNet's 7×7/2 + max-pool)
    precision: str  # the backbone's autocast: bf16 or fp32 (bf16 on a CPU only where native)
    dataset_size: int  # training images per projected epoch
    dataset_name: str | None  # the dataset that gave dataset_size, if one did
    repeats: int  # timed calls per case, at most
    warmup: int  # untimed calls per case first, at most
    budget_s: float  # seconds of timed calls per case
    threads: int | None  # torch's CPU threads; None: torch's default
    seed: int
    micro_batch: int = 0  # > 0: each training step is also timed in chunks of this many images

    @property
    def torch_dtype(self) -> "torch.dtype":
        import torch

        return getattr(torch, self.dtype)

    @property
    def image_channels(self) -> int:
        return BACKBONES[self.backbone][0] if self.backbone else 0

    def dictionary_size(self, classes: int) -> int:
        """q = atoms per class · k."""
        return self.atoms_per_class * classes

    def steps_per_epoch(self) -> int:
        """Training steps in one epoch of ``dataset_size`` images (the last partial batch dropped)."""
        return self.dataset_size // self.batch_size

    def to_json(self) -> dict:
        return {
            "classes": list(self.classes), "variants": list(self.variants), "batch_size": self.batch_size,
            "dim": self.dim, "atoms_per_class": self.atoms_per_class, "eps2": self.eps2, "dtype": self.dtype,
            "device": self.device, "backbone": self.backbone, "stem": self.stem if self.backbone == "resnet18"
            else None, "precision": self.precision if self.backbone else None, "dataset_size": self.dataset_size, "dataset_name": self.dataset_name,
            "steps_per_epoch": self.steps_per_epoch(), "repeats": self.repeats, "warmup": self.warmup,
            "budget_s": self.budget_s, "threads": self.threads, "seed": self.seed, "micro_batch": self.micro_batch,
        }


def parse_classes(text: str) -> tuple[int, ...]:
    """'10,100,200' → (10, 100, 200): positive integers, sorted, duplicates dropped."""
    values = []
    for item in text.split(","):
        item = item.strip()
        try:
            value = int(item)
        except ValueError:
            raise BadInput(f"--classes: {item!r} is not a whole number (e.g. --classes 10,100,200)") from None
        if value < 1:
            raise BadInput(f"--classes: {value} classes; every class count must be at least 1")
        values.append(value)
    return tuple(sorted(set(values)))


def parse_variants(text: str) -> tuple[str, ...]:
    """'mcr2,vmcr2' → the named variants in the table's order."""
    names = {item.strip() for item in text.split(",") if item.strip()}
    unknown = sorted(names - set(VARIANTS))
    if unknown or not names:
        raise BadInput(f"--variants: unknown {', '.join(map(repr, unknown)) or 'empty list'}; "
                       f"choose from {', '.join(VARIANTS)}")
    return tuple(name for name in VARIANTS if name in names)


def parse_dataset_size(text: str | None, backbone: str | None) -> tuple[int, str | None]:
    """A dataset name (see ``DATASET_SIZES``) or a number of training images → (size, dataset or None).

    None: the backbone's own dataset (``BACKBONES``), CIFAR-100 without one.
    """
    if text is None:
        text = BACKBONES[backbone][1] if backbone else "cifar100"
    from vmcr2_cli.data.registry import ALIASES  # imports torch: only when a bench runs

    name = text.strip().lower()
    name = ALIASES.get(name, name)
    if name in DATASET_SIZES:
        return DATASET_SIZES[name], name
    try:
        size = int(name)
    except ValueError:
        raise BadInput(f"--dataset-size: {text!r} is neither a number of images nor one of "
                       f"{', '.join(DATASET_SIZES)}") from None
    if size < 1:
        raise BadInput(f"--dataset-size must be at least 1 image, not {size}")
    return size, None


def make_settings(
    *,
    classes: str,
    variants: str = ",".join(VARIANTS),
    batch_size: int = DEFAULT_BATCH_SIZE,
    dim: int = DEFAULT_DIM,
    atoms_per_class: int = DEFAULT_ATOMS_PER_CLASS,
    eps2: float = DEFAULT_EPS2,
    dtype: str = "float32",
    device: str = "auto",
    backbone: str | None = None,
    stem: str = "imagenet",
    precision: str = "bf16",
    dataset_size: str | None = None,
    repeats: int = DEFAULT_REPEATS,
    warmup: int = DEFAULT_WARMUP,
    budget_s: float = DEFAULT_BUDGET_S,
    threads: int | None = None,
    seed: int = 0,
    micro_batch: int = 0,
) -> BenchSettings:
    """Check the command line's values and build the settings; BadInput names the first bad one."""
    class_counts = parse_classes(classes)
    chosen = parse_variants(variants)
    _at_least("--batch-size", batch_size, 1)
    _at_least("--dim", dim, 1)
    _at_least("--atoms-per-class", atoms_per_class, 1)
    _at_least("--repeats", repeats, 1)
    _at_least("--warmup", warmup, 0)
    if threads is not None:
        _at_least("--threads", threads, 1)
    if not eps2 > 0 or eps2 == float("inf"):
        raise BadInput(f"--eps2 must be a positive number, not {eps2}")
    if not budget_s > 0:
        raise BadInput(f"--budget must be a positive number of seconds, not {budget_s}")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise BadInput(f"--device {device!r}: use auto, cpu, cuda or cuda:N (the bench times CPUs and "
                       f"CUDA GPUs only)")
    if dtype not in DTYPES:
        raise BadInput(f"--dtype: {dtype!r}; the objectives compute in {' or '.join(DTYPES)}")
    if atoms_per_class > dim:
        raise BadInput(f"--atoms-per-class {atoms_per_class} exceeds --dim {dim}: V-MCR²'s latching takes "
                       f"q/k = {atoms_per_class} eigenvectors per class from a {dim}-dimensional space")
    largest = class_counts[-1]
    if batch_size < largest:
        raise BadInput(f"--batch-size {batch_size} is smaller than {largest} classes: a balanced batch "
                       f"needs at least one sample per class")
    if backbone is not None and backbone not in BACKBONES:
        raise BadInput(f"--backbone: unknown {backbone!r}; choose from {', '.join(BACKBONES)}")
    if stem not in STEMS:
        raise BadInput(f"--stem: unknown {stem!r}; choose from {', '.join(STEMS)}")
    if precision not in PRECISIONS:
        raise BadInput(f"--precision: unknown {precision!r}; choose from {', '.join(PRECISIONS)}")
    _at_least("--micro-batch", micro_batch, 0)
    if micro_batch and backbone is None:
        raise BadInput("--micro-batch chunks a training step's network: give --backbone too")
    if micro_batch >= batch_size:
        raise BadInput(f"--micro-batch {micro_batch} is not smaller than the batch of {batch_size}: "
                       f"there is nothing to chunk")
    size, preset = parse_dataset_size(dataset_size, backbone)
    if backbone is not None and size < batch_size:
        raise BadInput(f"--dataset-size {size} is smaller than one batch of {batch_size}: an epoch "
                       f"would have no step")
    return BenchSettings(
        classes=class_counts, variants=chosen, batch_size=batch_size, dim=dim, atoms_per_class=atoms_per_class,
        eps2=float(eps2), dtype=dtype, device=device, backbone=backbone, stem=stem, precision=precision, dataset_size=size,
        dataset_name=preset, repeats=repeats, warmup=warmup, budget_s=float(budget_s), threads=threads,
        seed=seed, micro_batch=micro_batch,
    )


def _at_least(flag: str, value: int, low: int) -> None:
    if value < low:
        raise BadInput(f"{flag} must be at least {low}, not {value}")
