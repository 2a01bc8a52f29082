"""Featurizers built by name: adding a backbone is one function and one registry line."""

from vmcr2_cli.models.registry import MODEL_BUILDERS, build_featurizer

__all__ = ["MODEL_BUILDERS", "build_featurizer"]
