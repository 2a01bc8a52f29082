"""vmcr2: train, watch, evaluate and benchmark MCR² and V-MCR² featurizers."""

__version__ = "0.1.0"
