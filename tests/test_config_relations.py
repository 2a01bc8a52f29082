"""Constraints between config keys: refused when the config resolves, before any run directory or data exists."""

from __future__ import annotations

import pytest

from fixtures_data import isolate_data, write_idx_dataset

from cli_runner import vmcr2
from vmcr2_cli.config import DATASETS, FIELDS, MODELS, OBJECTIVES, resolve_config
from vmcr2_cli.data.registry import DATASETS as DATASET_REGISTRY
from vmcr2_cli.models.registry import CONSTRUCTED_MODELS, MODEL_BUILDERS
from vmcr2_cli.objective_registry import OBJECTIVES as OBJECTIVE_REGISTRY, SELF_SUPERVISED, VMCR2_METHODS


@pytest.fixture(autouse=True)
def no_data_and_no_launch(monkeypatch, tmp_path):
    """Loading a dataset or starting worker processes fails the test: the config alone must be refused."""
    isolate_data(monkeypatch, tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("the configuration was not refused before the data were loaded")

    monkeypatch.setattr("vmcr2_cli.training.setup.load_dataset", refuse)
    monkeypatch.setattr("vmcr2_cli.distributed.launcher.launch_local", refuse)


# (arguments of `vmcr2 train`, the words the one-line error must hold)
CROSS_KEY_CASES = {
    "stem-without-resnet18": (["--set", "stem=cifar"], "stem = 'cifar' has no effect with model = 'mnist-cnn'"),
    "stem-on-preact-resnet": (["--profile", "cifar100-recipe", "--set", "stem=cifar"],
                              "has no effect with model = 'preact-resnet18' (only with model = 'resnet18')"),
    "width-without-mnist-cnn": (["--profile", "cifar10", "--set", "width=0.5"],
                                "width = 0.5 has no effect with model = 'resnet18'"),
    "latch-images-without-vmcr2": (["--objective", "mcr2", "--set", "latch_images=1000"],
                                   "latch_images = 1000 has no effect with objective = 'mcr2'"),
    "dropout-on-a-resnet": (["--profile", "cifar10", "--set", "dropout=false"],
                            "dropout = False has no effect with model = 'resnet18'"),
    "ssl-crop-of-composed-images": (["--profile", "fashion-mnist-pairs", "--objective", "mcr2-ssl",
                                     "--set", "augment='resized-crop'"],
                                    "augment = 'resized-crop' flips images, which changes the class of "
                                    "fashion-mnist-pairs"),
    "momentum-with-adam": (["--set", "momentum=0.9"], "momentum = 0.9 has no effect with optimizer = 'adam'"),
    "track-rate-with-paper": (["--set", "track_rate=0.5"],
                              "track_rate = 0.5 has no effect with vmcr2_method = 'paper'"),
    "mu-with-tangent": (["--profile", "fashion-mnist", "--set", "mu=0.1"],
                        "mu = 0.1 has no effect with vmcr2_method = 'tangent' (only with vmcr2_method = 'paper' or "
                        "'block' or 'tangent-push')"),
    "nu-gamma-with-tangent-push": (["--set", "vmcr2_method='tangent-push'", "--set", "nu_gamma=2"],
                                   "nu_gamma = 2.0 has no effect with vmcr2_method = 'tangent-push' (only with "
                                   "vmcr2_method = 'paper' or 'block')"),
    "nu-with-tangent": (["--profile", "fashion-mnist-pairs", "--set", "nu_a=2"],
                        "nu_a = 2.0 has no effect with vmcr2_method = 'tangent'"),
    "classes-of-a-real-dataset": (["--set", "num_classes=20"],
                                  "num_classes = 20 has no effect with dataset = 'fashion-mnist'"),
    "synthetic-key-on-a-real-dataset": (["--objective", "ce", "--set", "synthetic_subspace_dim=5"],
                                        "synthetic_subspace_dim = 5 has no effect with dataset = 'fashion-mnist'"),
    "batch-below-classes": (["--batch-size", "5"], "batch_size = 5 is smaller than the 10 classes of fashion-mnist"),
    "batch-below-100-classes": (["--profile", "fashion-mnist-pairs", "--batch-size", "50"],
                                "batch_size = 50 is smaller than the 100 classes of fashion-mnist-pairs"),
    "batch-below-synthetic-classes": (["--profile", "synthetic", "--set", "num_classes=600"],
                                      "batch_size = 500 is smaller than the 600 classes of synthetic"),
    "batch-above-the-dataset": (["--objective", "mcr2", "--batch-size", "70000"],
                                "batch_size = 70000 exceeds the 60000 training images of fashion-mnist"),
    "batch-above-the-subset": (["--set", "train_subset=200"], "batch_size = 250 exceeds train_subset = 200"),
    "subset-above-the-dataset": (["--profile", "cifar10", "--set", "train_subset=50001"],
                                 "train_subset = 50001 exceeds the 50000 training images of cifar10"),
    "batch-above-synthetic-images": (["--profile", "synthetic", "--set", "synthetic_train_per_class=10"],
                                     "batch_size = 500 exceeds the 100 training images of synthetic"),
    "flip-of-composed-images": (["--profile", "fashion-mnist-pairs", "--set", "augment=flip"],
                                "augment = 'flip' flips images, which changes the class of fashion-mnist-pairs"),
    "crop-flip-of-composed-images": (["--profile", "fashion-mnist-pairs", "--objective", "ce",
                                      "--set", "augment=crop-flip"], "changes the class"),
    "atoms-above-dimension": (["--profile", "cifar100", "--set", "feature_dim=8"],
                              "atoms_per_class = 10 exceeds feature_dim = 8"),
    "batch-over-processes": (["--nproc", "3"], "batch_size = 250 does not split evenly over 3 processes"),
    "synthetic-channels": (["--profile", "synthetic", "--set", "synthetic_channels=2"],
                           "'synthetic_channels' must be one of 1, 3"),
    "npz-without-its-file": (["--set", "dataset=npz"], "dataset = 'npz' needs data_root (or --data-root)"),
    "image-size-of-a-built-in-dataset": (["--set", "image_size=64"],
                                         "image_size = 64 has no effect with dataset = 'fashion-mnist'"),
}


@pytest.mark.parametrize("args, message", list(CROSS_KEY_CASES.values()), ids=list(CROSS_KEY_CASES))
def test_a_cross_key_conflict_is_one_line_exit_2_and_leaves_nothing(tmp_path, capsys, args, message):
    runs = tmp_path / "runs"
    code, out, err = vmcr2("train", "--runs-dir", str(runs), *args, capsys=capsys)
    assert code == 2, err
    assert err.startswith("error: ") and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not runs.exists()


def test_a_conflict_is_refused_for_every_objective_that_compare_would_train(tmp_path, capsys):
    code, out, err = vmcr2("compare", "--train", "--profile", "synthetic", "--runs-dir", str(tmp_path / "runs"),
                           "--set", "num_classes=600", capsys=capsys)
    assert code == 2 and "batch_size = 500 is smaller than the 600 classes" in err
    assert not (tmp_path / "runs").exists()


def test_a_key_at_its_default_is_not_a_conflict():
    config, _ = resolve_config("default", "vmcr2", {"stem": "imagenet", "momentum": 0.0, "num_classes": 10})
    assert config.model == "mnist-cnn"


def test_a_keys_condition_is_its_own_value_not_the_objective():
    """A profile's V-MCR² keys stay valid when another supervised objective trains it (compare trains all
    three; the self-supervised ones need the views' augmentation, which this profile does not set)."""
    for objective in (name for name in OBJECTIVES if name not in SELF_SUPERVISED):
        config, _ = resolve_config("fashion-mnist-pairs", objective)
        assert config.track_rate == 0.1


def test_a_profile_value_stays_when_an_override_makes_it_moot():
    config, _ = resolve_config("synthetic", "vmcr2", {"vmcr2_method": "tangent"})
    assert config.mu == 0.01  # the profile's μ, for Algorithm 1; the tangent method does not read it


def test_a_profile_that_sets_a_key_without_effect_is_refused(tmp_path, capsys):
    profile = tmp_path / "mine.toml"
    profile.write_text('description = "mine"\nmodel = "mnist-cnn"\nstem = "cifar"\n')
    code, out, err = vmcr2("train", "--profile", str(profile), "--runs-dir", str(tmp_path / "runs"), capsys=capsys)
    assert code == 2 and f"profile {profile}: stem = 'cifar' has no effect with model = 'mnist-cnn'" in err
    assert not (tmp_path / "runs").exists()


def test_the_files_are_checked_again_when_they_hold_fewer_images(monkeypatch, tmp_path, capsys):
    monkeypatch.undo()
    isolate_data(monkeypatch, tmp_path)
    write_idx_dataset(tmp_path / "data", name="fashion-mnist", n_train=200, n_test=40)
    code, out, err = vmcr2("train", "--runs-dir", str(tmp_path / "runs"), "--data-root", str(tmp_path / "data"),
                           "--set", "train_subset=300", "--batch-size", "100", capsys=capsys)
    assert code == 2 and "train_subset = 300 exceeds the 200 training images of fashion-mnist" in err
    assert err.count("\n") == 1 and not (tmp_path / "runs").exists()


# ----------------------------------------------------------------------------- registries and config choices

def test_every_registry_name_is_a_config_choice_and_every_choice_is_registered():
    choices = {name: f.metadata["choices"] for name, f in FIELDS.items()}
    assert choices["dataset"] == DATASETS == tuple(DATASET_REGISTRY)
    assert choices["model"] == MODELS == tuple(MODEL_BUILDERS)
    assert choices["objective"] == OBJECTIVES == tuple(OBJECTIVE_REGISTRY)
    assert choices["vmcr2_method"] == VMCR2_METHODS


@pytest.mark.parametrize("key, names", [("dataset", tuple(DATASET_REGISTRY)), ("model", tuple(MODEL_BUILDERS)),
                                        ("objective", tuple(OBJECTIVE_REGISTRY)), ("vmcr2_method", VMCR2_METHODS)])
def test_every_registered_name_resolves_as_a_config(tmp_path, key, names):
    defaults = tmp_path / "defaults.toml"  # every key at its default
    defaults.write_text('description = "the defaults"\n')
    for name in names:
        values = {key: name, "augment": "resized-crop" if name in SELF_SUPERVISED else "none"}
        if name in CONSTRUCTED_MODELS:
            values["objective"] = "mcr2"  # a ReduNet is constructed from ΔR's gradient
        if key == "dataset" and DATASET_REGISTRY[name].num_classes is None and name != "synthetic":
            values["data_root"] = str(tmp_path)  # the user's own files: found where data_root says
        config, _ = resolve_config(str(defaults), None, values)
        assert getattr(config, key) == name


def test_every_key_that_applies_only_somewhere_names_a_real_key_and_real_values():
    conditional = {name: f.metadata["applies"] for name, f in FIELDS.items() if f.metadata["applies"]}
    assert {"stem", "width", "momentum", "track_rate", "mu", "num_classes"} <= set(conditional)
    for name, (other, values) in conditional.items():
        assert other in FIELDS and other != name
        assert set(values) <= set(FIELDS[other].metadata["choices"]), name


def test_every_registered_objective_builds_under_its_name_and_has_its_colours():
    from vmcr2_cli.bench.settings import VARIANTS
    from vmcr2_cli.objectives import ObjectiveSettings, build_objective
    from vmcr2_cli.plots.style import OBJECTIVE_COLORS
    from vmcr2_cli.tui.formatting import OTHER_COLOURS, run_colours

    for name, entry in OBJECTIVE_REGISTRY.items():
        assert build_objective(name, 8, 2, ObjectiveSettings(atoms_per_class=2)).name == name
        assert OBJECTIVE_COLORS[name] == entry.color
        assert (name in VARIANTS) != entry.self_supervised  # bench times the supervised objectives
        assert run_colours([name])[0] == entry.terminal_colours[0] != OTHER_COLOURS[0]
