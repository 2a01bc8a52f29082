"""vmcr2: train, watch, evaluate and benchmark MCR² and V-MCR² featurizers.

>>> from vmcr2_cli import load_featurizer
>>> features = load_featurizer("runs/latest").embed(images)  # uint8 arrays or PIL images → (N, d)
"""

__version__ = "0.1.0"
__all__ = ["load_featurizer"]


def __getattr__(name: str):
    """``load_featurizer`` on first use: the CLI starts without importing torch for it."""
    if name == "load_featurizer":
        from vmcr2_cli.featurizer import load_featurizer

        return load_featurizer
    raise AttributeError(f"module 'vmcr2_cli' has no attribute {name!r}")
