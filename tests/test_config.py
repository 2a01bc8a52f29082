"""The profile schema: every key checked, every mistake one clear BadInput."""

import pytest

from vmcr2_cli.config import (TrainConfig, config_from_dict, list_profiles, load_config_file, parse_override,
                              profiles_dir, resolve_config, to_toml)
from vmcr2_cli.errors import BadInput
from vmcr2_cli.models.registry import CONSTRUCTED_MODELS
from vmcr2_cli.objective_registry import SELF_SUPERVISED, SUPERVISED

PAPER_PROFILES = ("mnist", "fashion-mnist", "cifar10", "cifar100", "tinyimagenet",
                  "cifar100-recipe", "tinyimagenet-recipe", "synthetic", "default")


@pytest.mark.parametrize("name", sorted(list_profiles()))
def test_every_shipped_profile_resolves_for_every_objective(name):
    """The supervised ones for mcr2, vmcr2 and ce (an objective-only key belongs in its table);
    the self-supervised ones for their objectives; a constructed network (ReduNet) for MCR², whose
    ΔR builds it, and for no other objective."""
    default = resolve_config(name)[0]
    objectives = SELF_SUPERVISED if default.objective in SELF_SUPERVISED else SUPERVISED
    if default.model in CONSTRUCTED_MODELS:
        objectives = ("mcr2",)
        for other in set(SUPERVISED) - {"mcr2"}:
            with pytest.raises(BadInput, match="constructed from the gradient"):
                resolve_config(name, other)
    for objective in objectives:
        config, path = resolve_config(name, objective)
        assert config.objective == objective
        assert path.parent == profiles_dir()


def test_every_profile_has_a_description():
    assert all(list_profiles()[name] for name in PAPER_PROFILES)


def test_objective_table_applies_only_to_its_objective():
    assert resolve_config("cifar10", "ce")[0].lr == pytest.approx(1e-2)
    assert resolve_config("cifar10", "vmcr2")[0].lr == pytest.approx(1e-3)


def test_paper_shapes_of_the_200_class_profile():
    config, _ = resolve_config("tinyimagenet", "vmcr2")
    assert (config.feature_dim, config.atoms_per_class, config.batch_size) == (500, 10, 2000)
    assert (config.eps2, config.mu, config.nu_gamma, config.nu_a, config.latch_every) == (0.5, 1.0, 5.0, 5.0, 50)


def test_override_beats_profile_and_objective_table():
    config, _ = resolve_config("cifar10", "ce", {"lr": 0.5})
    assert config.lr == 0.5


def test_unknown_key_suggests_the_closest():
    with pytest.raises(BadInput, match=r"unknown key 'feature_dims' \(did you mean 'feature_dim'\?\)"):
        resolve_config("mnist", None, {"feature_dims": 1})
    with pytest.raises(BadInput, match=r"did you mean 'batch_size'"):
        resolve_config("mnist", None, {"batchsize": 10})


@pytest.mark.parametrize("key, value, message", [
    ("epochs", "ten", "must be an integer"),
    ("epochs", 1.5, "must be an integer"),
    ("epochs", 0, "must be >= 1"),
    ("lr", -1.0, "must be > 0"),
    ("label_noise", 1.5, "must be <= 1"),
    ("eval_at_end", "yes", "must be true or false"),
    ("objective", "vmcr", "did you mean 'vmcr2'"),
    ("device", "gpu", "auto, cpu, cuda or cuda:N"),
])
def test_wrong_values_are_bad_input(key, value, message):
    with pytest.raises(BadInput, match=message):
        resolve_config("mnist", None, {key: value})


def test_unknown_profile_suggests_the_closest():
    with pytest.raises(BadInput, match=r"unknown profile 'cifar1O'.*did you mean 'cifar10'"):
        resolve_config("cifar1O")


def test_toml_syntax_error_names_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = = 3\n")
    with pytest.raises(BadInput, match=r"bad.toml: TOML syntax error"):
        resolve_config(str(bad))


def test_unknown_key_in_a_profile_file_names_the_file(tmp_path):
    bad = tmp_path / "mine.toml"
    bad.write_text('dataset = "mnist"\nepoch = 3\n')
    with pytest.raises(BadInput, match=r"mine.toml: unknown key 'epoch' \(did you mean 'epochs'\?\)"):
        resolve_config(str(bad))


def test_missing_profile_file():
    with pytest.raises(BadInput, match="profile file not found"):
        resolve_config("nowhere/mine.toml")


@pytest.mark.parametrize("text, expected", [
    ("epochs=3", ("epochs", 3)), ("lr=1e-2", ("lr", 0.01)), ("dataset=cifar10", ("dataset", "cifar10")),
    ("eval_at_end=false", ("eval_at_end", False)), ("device=cuda:0", ("device", "cuda:0")),
    ('description="a b"', ("description", "a b")),
])
def test_set_values_are_read_as_toml_or_bare_words(text, expected):
    assert parse_override(text) == expected


def test_set_without_equals_is_bad_input():
    with pytest.raises(BadInput, match="expected key=value"):
        parse_override("epochs")


def test_resolved_config_round_trips_through_toml(tmp_path):
    config, _ = resolve_config("cifar100-recipe", "vmcr2", {"description": 'quote " and \\ slash'})
    path = tmp_path / "config.toml"
    path.write_text(to_toml(config))
    assert load_config_file(path) == config


def test_config_from_dict_rejects_unknown_keys():
    with pytest.raises(BadInput, match="unknown key"):
        config_from_dict({"nope": 1}, "here")
    assert config_from_dict({}, "here") == TrainConfig()
