"""The training configuration: one typed dataclass names every key once.

A profile is a flat TOML table of these keys plus optional per-objective tables
(``[ce]``, ``[mcr2]``, ``[vmcr2]``) whose keys apply only when that objective is
trained (the paper uses lr 1e-3 for MCR²/V-MCR² but 1e-2 for CE). ``--set
key=value`` overrides any key after the profile is resolved. Every problem is a
``BadInput`` naming the key and where it came from.
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmcr2_cli.data.augment import AUGMENTATIONS, FLIPPING, RESIZED_CROP
from vmcr2_cli.data.registry import dataset_names, get_spec
from vmcr2_cli.errors import BadInput
from vmcr2_cli.models.redunet import HEADS
from vmcr2_cli.models.redunet_shift import SIGNALS
from vmcr2_cli.models.registry import CONSTRUCTED_MODELS, MODEL_BUILDERS
from vmcr2_cli.objective_registry import (OBJECTIVES as OBJECTIVE_REGISTRY, SELF_SUPERVISED, VMCR2_METHODS,
                                         methods_with_key)
from vmcr2_cli.runs import read_toml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

# The registries are the one list of each kind of name.
# The accuracies an evaluation during training measures, which ``keep_best`` may select on.
SELECTION_METRICS = ("nearest_subspace_accuracy", "knn_accuracy", "head_accuracy")
OBJECTIVES = tuple(OBJECTIVE_REGISTRY)
DATASETS = tuple(dataset_names())
MODELS = tuple(MODEL_BUILDERS)


def _key(default: Any, help: str, *, choices: tuple = (), low: float | None = None,
         high: float | None = None, low_open: bool = False, applies: tuple[str, tuple[str, ...]] | None = None) -> Any:
    """A config key: its default, a one-line help, and what values it accepts.

    ``applies``: (key, values) where the key has an effect only when that other key has
    one of those values; a profile or ``--set`` that gives it elsewhere is refused, not ignored.
    """
    meta = {"help": help, "choices": choices, "low": low, "high": high, "low_open": low_open, "applies": applies}
    return field(default=default, metadata=meta)


_SYNTHETIC = ("dataset", ("synthetic",))
_CONSTRUCTED = ("model", CONSTRUCTED_MODELS)
_INVARIANT = ("model", ("redunet-shift",))


@dataclass
class TrainConfig:
    description: str = _key("", "one line saying what the profile is for")
    # --- data
    dataset: str = _key("fashion-mnist", "dataset name", choices=DATASETS)
    data_root: str = _key("", "folder with the dataset files ('' = search the usual places)")
    augment: str = _key("crop-flip", "on-device augmentation: RandomCrop(32, pad 8)+flip, flip only, random "
                        "resized crop+flip+jitter (self-supervised views), none", choices=AUGMENTATIONS)
    label_noise: float = _key(0.0, "fraction of training labels re-drawn uniformly (seeded)", low=0.0, high=1.0)
    train_subset: int = _key(0, "train on the first N shuffled training images (0 = all)", low=0)
    num_classes: int = _key(10, "classes of the synthetic dataset (real datasets fix their own)", low=2,
                            applies=_SYNTHETIC)
    synthetic_subspace_dim: int = _key(3, "dimension of each synthetic class subspace", low=1, applies=_SYNTHETIC)
    synthetic_train_per_class: int = _key(500, "synthetic training images per class", low=1, applies=_SYNTHETIC)
    synthetic_test_per_class: int = _key(100, "synthetic test images per class", low=1, applies=_SYNTHETIC)
    synthetic_channels: int = _key(3, "channels of synthetic images (1 or 3)", choices=(1, 3), applies=_SYNTHETIC)
    image_size: int = _key(32, "folder dataset: shorter side resized to this, centre-cropped square (0 = as is)",
                           low=0, applies=("dataset", ("folder",)))
    # --- model
    model: str = _key("mnist-cnn", "featurizer architecture", choices=MODELS)
    stem: str = _key("imagenet", "ResNet18 stem: the paper's ImageNet stem or the CIFAR stem (3x3, no max-pool)",
                     choices=("imagenet", "cifar"), applies=("model", ("resnet18",)))
    width: float = _key(1.0, "channel width multiplier of the MNIST CNN (1.0 = the paper's)", low=0.0, low_open=True,
                        applies=("model", ("mnist-cnn",)))
    dropout: bool = _key(True, "MNIST CNN: the paper's dropout layers (0.25, 0.5); false turns them off",
                         applies=("model", ("mnist-cnn",)))
    feature_dim: int = _key(128, "feature dimension d (a ReduNet: the size of its input, c·H·W/pool², or "
                            "C·H·W/pool² lifted)", low=1)
    redunet_samples: int = _key(1000, "ReduNet: images of the construction set, a class-balanced seeded sample "
                                "of the training set; its features entering each layer make that layer's E and "
                                "C_j (the lecture: 100–2000)", low=2, applies=_CONSTRUCTED)
    redunet_eta: float = _key(0.5, "ReduNet: η, each layer's step along ΔR's gradient (eq. 17)", low=0.0,
                              low_open=True, applies=_CONSTRUCTED)
    redunet_lambda: float = _key(500.0, "ReduNet: λ of the memberships π̂ = softmax(−λ‖C_j z‖) of a sample "
                                 "without a label (eq. 14)", low=0.0, low_open=True, applies=_CONSTRUCTED)
    redunet_head: str = _key("lecture", "ReduNet: how the network classifies (head_accuracy): the class of least "
                             "‖C_j z‖ by the next layer's operators, eq. 14 as the lecture writes it (lecture), or "
                             "each ‖C_j z‖ over its mean over the construction set's other classes (calibrated: "
                             "no pull towards a class that spreads into many directions; the layers are the "
                             "same, benchmarks/REDUNET.md §4)", choices=HEADS, applies=_CONSTRUCTED)
    redunet_pool: int = _key(1, "ReduNet: average the image over pool×pool blocks before the first layer",
                             low=1, applies=_CONSTRUCTED)
    redunet_channels: int = _key(8, "invariant ReduNet: C, the channels the random lifting makes", low=1,
                                 applies=_INVARIANT)
    redunet_kernel: int = _key(5, "invariant ReduNet: taps a side of the lifting's random filters", low=1,
                               applies=_INVARIANT)
    redunet_shifts: str = _key("2d", "invariant ReduNet: to 2D cyclic translations (2d), to horizontal cyclic "
                               "shifts, each image row a channel of a 1D signal (rows), or to rotations, the image "
                               "sampled at R = size/2 radii and 6R angles, each radius a channel (polar)",
                               choices=SIGNALS, applies=_INVARIANT)
    init_from: str = _key("", "ReduNet: a ReduNet run whose layers the network starts from, then trained by the "
                          "objective with back-propagation, its operators E, C_j parameters (the lecture's "
                          "fine-tuning); '' = construct the network from ΔR's gradient", applies=_CONSTRUCTED)
    init_random: bool = _key(False, "ReduNet with init_from: keep only that run's architecture (its layers, lifting "
                             "and memberships' class weights) and draw the operators at random (the lecture's "
                             "back-propagation-only control)", applies=_CONSTRUCTED)
    # --- objective (paper §4.1)
    objective: str = _key("vmcr2", "training objective", choices=OBJECTIVES)
    eps2: float = _key(0.5, "precision ε² of the coding rates", low=0.0, low_open=True)
    mu: float = _key(1.0, "weight μ of the matching term M (V-MCR²)", low=0.0, low_open=True,
                     applies=("vmcr2_method", methods_with_key("mu")))
    mu_final: float = _key(0.0, "μ continuation (not in the paper): μ grows geometrically, step by step, from mu at "
                           "the first step to this at the last, towards the μ → ∞ limit that the tangent method "
                           "trains by; 0 = μ stays mu (Algorithm 1 as written)", low=0.0,
                           applies=("vmcr2_method", methods_with_key("mu_final")))
    nu_gamma: float = _key(5.0, "step size ν_Γ of the dictionary update, in units of 1/L_Γ", low=0.0, low_open=True,
                           applies=("vmcr2_method", methods_with_key("nu_gamma")))
    nu_a: float = _key(5.0, "step size ν_A of the encoding update, in units of 1/L_A", low=0.0, low_open=True,
                       applies=("vmcr2_method", methods_with_key("nu_a")))
    vmcr2_method: str = _key("paper", "how V-MCR² trains θ: Algorithm 1 as written (paper), Algorithm 1 with A kept "
                             "on each class's own atoms (block: cost flat in k), the tangent bound of ΔR "
                             "(tangent: the μ → ∞ limit; ignores mu, nu_gamma, nu_a), or that bound at a spectrum one "
                             "A-step of Algorithm 1 ahead (tangent-push: not in the paper; reads mu, nu_a)",
                             choices=VMCR2_METHODS)
    track_rate: float = _key(1.0, "tangent methods: how far Γ, A move towards each batch (1 = refit)",
                             low=0.0, high=1.0, low_open=True, applies=("vmcr2_method", methods_with_key("track_rate")))
    views: int = _key(8, "self-supervised: random views of each image per step (they form its class)", low=2,
                      applies=("objective", SELF_SUPERVISED))
    invariance_weight: float = _key(200.0, "TCR: weight λ of the pull of each view to its image's mean view",
                                    low=0.0, applies=("objective", ("tcr",)))
    atoms_per_class: int = _key(20, "dictionary atoms per class s; q = s·k", low=1)
    latch_every: int = _key(50, "epochs between latchings (Algorithm 2); 0 = only before training", low=0)
    latch_images: int = _key(0, "images a latch reads: 0 = the whole training set (Algorithm 2 as written), else "
                             "a seeded random sample of about this many", low=0, applies=("objective", ("vmcr2",)))
    latch_source: str = _key("pass", "what a latch after training epochs reads: pass = the training set's features "
                             "in a pass of their own (Algorithm 2 as written), epoch = the class moments of the "
                             "epoch's own training batches (no extra pass; the first latch still makes one)",
                             choices=("pass", "epoch"), applies=("objective", ("vmcr2",)))
    objective_dtype: str = _key("float32", "precision of the objectives", choices=("float32", "float64"))
    # --- optimisation
    epochs: int = _key(2000, "training epochs (a ReduNet: its layers, one constructed an epoch)", low=1)
    batch_size: int = _key(1000, "images per step (self-supervised: each with its views)", low=2)
    micro_batch: int = _key(0, "rows the network computes at once (a self-supervised view is a row): the step "
                            "computes the batch's features in chunks of this many without a graph, the objective "
                            "and ∂loss/∂Z on the whole batch, then each chunk again with its graph (exact "
                            "gradients for one extra forward pass; BatchNorm normalizes by each chunk's "
                            "statistics); 0 = the whole batch at once", low=0)
    optimizer: str = _key("sgd", "optimizer of the featurizer θ", choices=("sgd", "adam"))
    lr: float = _key(1e-3, "learning rate", low=0.0, low_open=True)
    momentum: float = _key(0.0, "SGD momentum", low=0.0, high=1.0, applies=("optimizer", ("sgd",)))
    weight_decay: float = _key(0.0, "weight decay", low=0.0)
    lr_schedule: str = _key("constant", "constant, step (the paper's: x0.1 at 1/2 and 3/4 of the epochs) or cosine "
                            "(to 0 at the last step), set at every step", choices=("constant", "step", "cosine"))
    warmup_epochs: float = _key(0.0, "epochs over which the lr rises linearly from lr/steps to lr, step by step, "
                                "before the schedule (cosine then decays over the steps left)", low=0.0)
    # --- runtime
    device: str = _key("auto", "auto, cpu, cuda or cuda:N")
    precision: str = _key("bf16", "autocast precision of the backbone: bf16 on GPU and on CPUs that compute it "
                          "natively, else fp32 (objectives stay float32+)",
                          choices=("bf16", "fp32"))
    seed: int = _key(0, "seed of every random stream (init, data order, augmentation)", low=0)
    wandb: str = _key("off", "Weights & Biases: off, offline (into the run's wandb/ folder, no network; "
                      "`wandb sync` later) or online (vmcr2[wandb] extra)", choices=("off", "offline", "online"))
    wandb_project: str = _key("vmcr2", "W&B project", applies=("wandb", ("offline", "online")))
    wandb_entity: str = _key("", "W&B entity, a team or user ('' = your default)",
                             applies=("wandb", ("offline", "online")))
    log_every: int = _key(50, "steps between step lines in metrics.jsonl", low=1)
    checkpoint_minutes: float = _key(0.0, "minutes between checkpoints at epoch ends; 0 = every epoch unless a "
                                     "checkpoint costs over 2% of the time since the last (the last epoch and "
                                     "every stop always write one)", low=0.0)
    eval_at_end: bool = _key(True, "compute the nearest-subspace test accuracy when training ends")
    eval_every: int = _key(0, "epochs between evaluations during training (nearest subspace, kNN, CE's head, "
                           "exact ΔR and the class subspaces' structure: an eval line each); 0 = at the end only",
                           low=0)
    val_fraction: float = _key(0.0, "hold out this share of the training images (seeded) as a validation split "
                               "that evaluations during training measure, for choosing a checkpoint without "
                               "the test set; 0 = they measure the test set", low=0.0, high=0.5)
    keep_best: str = _key("", "keep checkpoints/best.pt at the evaluation during training that scored highest "
                          "on this metric ('' = none)", choices=("", *SELECTION_METRICS))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def network_batch(self) -> int:
        """Images a pass without a graph (evaluation, latching) gives the network at once."""
        return self.micro_batch or self.batch_size


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
# What ``train --resume`` may change in an existing run: where and how long it runs, not what it trains
# (micro_batch leaves the gradients exact: a run that ran out of GPU memory resumes in chunks).
RESUME_CHANGEABLE = ("epochs", "device", "data_root", "log_every", "eval_at_end", "checkpoint_minutes", "eval_every",
                     "micro_batch", "wandb", "wandb_project", "wandb_entity")


def _suggest(key: str) -> str:
    close = difflib.get_close_matches(key, list(FIELDS), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _coerce(key: str, value: Any, where: str) -> Any:
    """Check one value against its field's type and range; return it converted."""
    if key not in FIELDS:
        raise BadInput(f"{where}: unknown key '{key}'{_suggest(key)}")
    f = FIELDS[key]
    kind = type(f.default)
    meta = f.metadata
    if kind is bool:
        if not isinstance(value, bool):
            raise BadInput(f"{where}: '{key}' must be true or false, not {value!r}")
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadInput(f"{where}: '{key}' must be an integer, not {value!r}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadInput(f"{where}: '{key}' must be a number, not {value!r}")
        value = float(value)
    elif kind is str:
        if not isinstance(value, str):
            raise BadInput(f"{where}: '{key}' must be a string, not {value!r}")
    if meta["choices"] and value not in meta["choices"]:
        raise BadInput(f"{where}: '{key}' must be one of {', '.join(map(str, meta['choices']))}, not {value!r}"
                       f"{_suggest_choice(value, meta['choices'])}")
    low, high = meta["low"], meta["high"]
    if low is not None and (value < low or (meta["low_open"] and value == low)):
        bound = f"> {low}" if meta["low_open"] else f">= {low}"
        raise BadInput(f"{where}: '{key}' must be {bound}, not {value!r}")
    if high is not None and value > high:
        raise BadInput(f"{where}: '{key}' must be <= {high}, not {value!r}")
    if key == "device":
        _check_device(value, where)
    return value


def _suggest_choice(value: Any, choices: tuple) -> str:
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_device(value: str, where: str) -> None:
    head, _, index = value.partition(":")
    if head not in ("auto", "cpu", "cuda") or (index and (head != "cuda" or not index.isdigit())):
        raise BadInput(f"{where}: 'device' must be auto, cpu, cuda or cuda:N, not {value!r}")


# ----------------------------------------------------------------------------- profiles

def profiles_dir() -> Path:
    """The profiles shipped in the installed package, else the repository's ``profiles/``."""
    here = Path(__file__).resolve().parent
    packaged = here / "profiles"
    return packaged if packaged.is_dir() else here.parent / "profiles"


def list_profiles() -> dict[str, str]:
    """Profile name -> its one-line description."""
    found = {}
    for path in sorted(profiles_dir().glob("*.toml")):
        try:
            found[path.stem] = str(_read_toml(path).get("description", ""))
        except BadInput:
            found[path.stem] = "(unreadable profile)"
    return found


def profile_path(profile: str) -> Path:
    """A profile name from ``profiles/`` or a path to a ``.toml`` file."""
    as_path = Path(profile)
    if profile.endswith(".toml") or as_path.parent != Path("."):
        if not as_path.is_file():
            raise BadInput(f"profile file not found: {profile}")
        return as_path
    path = profiles_dir() / f"{profile}.toml"
    if not path.is_file():
        names = list(list_profiles())
        close = difflib.get_close_matches(profile, names, n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise BadInput(f"unknown profile '{profile}'{hint}; known: {', '.join(names)}")
    return path


def _read_toml(path: Path) -> dict[str, Any]:
    return read_toml(path, f"profile {path}")


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` from ``--set``: the value is read as TOML, else taken as a string."""
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key:
        raise BadInput(f"--set {text!r}: expected key=value")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # bare words such as cifar10 or cuda:0
    return key, value


def resolve_config(profile: str, objective: str | None = None,
                   overrides: dict[str, Any] | None = None,
                   override_source: str = "--set", processes: int = 1) -> tuple[TrainConfig, Path]:
    """Profile + objective section + overrides -> a validated TrainConfig and the profile's path.

    ``processes``: how many processes will share each batch (DDP).
    """
    path = profile_path(profile)
    table = _read_toml(path)
    where = f"profile {path}"
    sections = {name: table.pop(name) for name in OBJECTIVES if isinstance(table.get(name), dict)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            raise BadInput(f"{where}: unknown table [{key}] (objective tables are {', '.join(OBJECTIVES)})")
        values[key] = _coerce(key, value, where)
    chosen = objective or values.get("objective", TrainConfig.objective)
    chosen = _coerce("objective", chosen, "--objective")
    values["objective"] = chosen
    for key, value in sections.get(chosen, {}).items():
        values[key] = _coerce(key, value, f"{where} [{chosen}]")
    _check_effect(TrainConfig(**values), values, where)
    for key, value in (overrides or {}).items():
        values[key] = _coerce(key, value, f"{override_source} {key}")
    config = TrainConfig(**values)
    _check_effect(config, overrides or {}, override_source)
    return check_relations(config, f"profile {path.stem}", processes), path


def _check_effect(config: TrainConfig, given: dict[str, Any], where: str) -> None:
    """BadInput for a key in ``given`` that has no effect in ``config`` (see ``_key``'s ``applies``).

    Checked per layer: the profile on its own, then the overrides. A profile's μ still
    stands when ``--set vmcr2_method=tangent`` makes it moot, but ``--set mu=…`` with
    the tangent method is refused: it would change nothing.
    """
    for key in given:
        applies = FIELDS[key].metadata["applies"]
        value = getattr(config, key)
        if applies is None or value == FIELDS[key].default:
            continue
        other, effective = applies
        if getattr(config, other) not in effective:
            only = " or ".join(repr(choice) for choice in effective)
            raise BadInput(f"{where}: {key} = {value!r} has no effect with {other} = {getattr(config, other)!r} "
                           f"(only with {other} = {only}); remove it")


def config_from_dict(values: dict[str, Any], where: str, processes: int = 1) -> TrainConfig:
    """A TrainConfig from a resolved table (a run's config.toml), validated."""
    config = TrainConfig(**{key: _coerce(key, value, where) for key, value in values.items()})
    return check_relations(config, where, processes)


def check_relations(config: TrainConfig, where: str, processes: int = 1) -> TrainConfig:
    """The constraints between keys that a run's resolved config must meet, checked before any
    run directory or dataset exists (keys without effect are the profile's concern, see
    :func:`_check_effect`).

    The data's size is the published dataset's (the registry's) or, for the synthetic
    dataset, the configuration's; :func:`check_data_fit` checks again against the files.
    """
    if config.init_random and not config.init_from:
        raise BadInput(f"{where}: init_random = true draws the operators of init_from's architecture: set init_from")
    # A constructed network next: no other key matters to an objective it does not train by.
    if constructs(config):
        if config.objective != "mcr2":
            raise BadInput(f"{where}: model = {config.model!r} is constructed from the gradient of MCR²'s ΔR "
                           f"(eq. 1), not trained by an objective: set objective = 'mcr2', not {config.objective!r} "
                           f"(or init_from = a ReduNet run, to train its layers by back-propagation)")
        if processes > 1:
            raise BadInput(f"{where}: model = {config.model!r} is constructed in one process, not {processes}")
    if config.objective == "vmcr2" and config.atoms_per_class > config.feature_dim:
        raise BadInput(f"{where}: atoms_per_class = {config.atoms_per_class} exceeds feature_dim = "
                       f"{config.feature_dim}: latching takes each class's top atoms_per_class eigenvectors "
                       f"in a feature_dim-dimensional space")
    if config.latch_images and config.latch_source == "epoch":
        raise BadInput(f"{where}: latch_images = {config.latch_images} samples the pass that latch_source = 'epoch' "
                       f"replaces by the epoch's own batches: set one or the other")
    if config.keep_best and not config.eval_every:
        raise BadInput(f"{where}: keep_best = {config.keep_best!r} selects among the evaluations during training: "
                       f"set eval_every too")
    if config.keep_best == "head_accuracy" and config.objective != "ce" and not constructs(config):
        raise BadInput(f"{where}: keep_best = 'head_accuracy' needs a classification head: only objective = 'ce' "
                       f"and the constructed ReduNets (their memberships π̂) have one")
    if config.warmup_epochs > config.epochs:
        raise BadInput(f"{where}: warmup_epochs = {config.warmup_epochs} exceeds epochs = {config.epochs}")
    spec = get_spec(config.dataset)
    if config.objective in SELF_SUPERVISED and config.augment != RESIZED_CROP:
        raise BadInput(f"{where}: objective = {config.objective!r} learns from random views of each image: "
                       f"it needs augment = {RESIZED_CROP!r}, not {config.augment!r}")
    check_flips(config, spec.mirror_safe, config.dataset, where)
    if config.batch_size % processes:
        raise BadInput(f"{where}: batch_size = {config.batch_size} does not split evenly over {processes} processes")
    if config.dataset == "synthetic":  # its size is the configuration's
        check_data_fit(config, config.num_classes, config.num_classes * config.synthetic_train_per_class, where)
    elif spec.num_classes is not None:
        check_data_fit(config, spec.num_classes, spec.num_train, where)
    elif not config.data_root:  # the user's files: their size is known once they are read
        raise BadInput(f"{where}: dataset = {config.dataset!r} needs data_root (or --data-root): "
                       f"{spec.description.split(': ', 1)[1]}")
    return config


def constructs(config: TrainConfig) -> bool:
    """Whether ``config``'s network is constructed layer by layer (a ReduNet without ``init_from``) rather than
    trained by back-propagation."""
    return config.model in CONSTRUCTED_MODELS and not config.init_from


def check_flips(config: TrainConfig, mirror_safe: bool, data: str, where: str) -> None:
    """A flip of images whose class is read left to right (composed images) is refused."""
    if config.augment in FLIPPING and not mirror_safe:
        raise BadInput(f"{where}: augment = {config.augment!r} flips images, which changes the class of "
                       f"{data} (read left to right); use augment = 'none'")


def check_data_fit(config: TrainConfig, num_classes: int, num_train: int, where: str) -> None:
    """BadInput unless ``config``'s train_subset and batch fit a dataset of that size."""
    if config.train_subset > num_train:
        raise BadInput(f"{where}: train_subset = {config.train_subset} exceeds the {num_train} training images "
                       f"of {config.dataset}")
    images = config.train_subset or num_train
    held = validation_size(images, config.val_fraction)
    if config.batch_size > images - held:
        source = (f"train_subset = {config.train_subset}" if config.train_subset
                  else f"the {images} training images of {config.dataset}")
        if held:
            source += f" less the {held} that val_fraction = {config.val_fraction} holds out"
        raise BadInput(f"{where}: batch_size = {config.batch_size} exceeds {source}")
    if constructs(config) and config.redunet_samples > images - held:
        raise BadInput(f"{where}: redunet_samples = {config.redunet_samples} exceeds the {images - held} training "
                       f"images of {config.dataset} (after train_subset and val_fraction)")
    if config.objective == "vmcr2" and config.batch_size < num_classes:
        raise BadInput(f"{where}: batch_size = {config.batch_size} is smaller than the {num_classes} classes of "
                       f"{config.dataset}")


def validation_size(images: int, fraction: float) -> int:
    """How many of ``images`` training images ``val_fraction`` holds out (at least one when > 0)."""
    return max(1, round(images * fraction)) if fraction else 0


def load_config_file(path: Path) -> TrainConfig:
    """Read a run's resolved ``config.toml``."""
    return config_from_dict(read_toml(path, str(path)), str(path))


def to_toml(config: TrainConfig) -> str:
    """The resolved configuration as TOML (flat; strings, numbers and booleans only)."""
    lines = []
    for key, value in config.to_dict().items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = repr(value)
        else:
            text = '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"
