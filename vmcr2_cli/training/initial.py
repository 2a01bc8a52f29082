"""A network's starting weights taken from another run (``init_from``): a constructed ReduNet whose layers
back-propagation then trains, the lecture's fine-tuning ("Experiment: Back Propagation of ReduNet").

The run's network must be the one this config builds: the keys that shape it or change what its layers
compute are compared first (from its config.toml, before anything is created), its checkpoint's shapes
when the weights are loaded.
"""

from __future__ import annotations

import dataclasses

import torch

from vmcr2_cli.config import TrainConfig, load_config_file
from vmcr2_cli.errors import BadInput

# What makes a ReduNet's layers (the data's shape and classes included: E and C_j follow them).
NETWORK_KEYS = ("dataset", "model", "feature_dim", "redunet_eta", "redunet_lambda", "redunet_pool", "redunet_channels",
                "redunet_kernel", "redunet_shifts", "objective_dtype")


def _run(config: TrainConfig):
    from vmcr2_cli.runs import RunDir

    return RunDir.open(config.init_from)


def check_init_from(config: TrainConfig) -> TrainConfig:
    """``config`` with ``init_from`` resolved (``runs/latest`` followed: the run it names now, not whichever
    it names later); BadInput (one line) unless that is a run of the network ``config`` builds."""
    if not config.init_from:
        return config
    run = _run(config)
    source = load_config_file(run.config_path)
    for key in NETWORK_KEYS:
        theirs, ours = getattr(source, key), getattr(config, key)
        if theirs != ours:
            raise BadInput(f"init_from {config.init_from}: its network has {key} = {theirs!r}, this config "
                           f"{key} = {ours!r}: set {key} = {theirs!r}")
    return dataclasses.replace(config, init_from=str(run.path))


def initial_model_state(config: TrainConfig) -> dict[str, torch.Tensor]:
    """The weights of ``init_from``'s last checkpoint, without a constructed network's head (the operators
    of its construction set's last features, and a calibrated head's scale: they no longer describe the
    features once the layers train)."""
    check_init_from(config)
    state = _run(config).load_checkpoint()
    if not isinstance(state.get("model"), dict):
        raise BadInput(f"init_from {config.init_from}: its checkpoint holds no network weights")
    return {name: tensor for name, tensor in state["model"].items()
            if not (name.startswith("head.") or name == "head_scale")}
