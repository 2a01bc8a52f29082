"""Model name -> builder. Each builder takes the image channels, the image size and the feature dimension d
(and what its own kind needs: the ResNet's stem, the CNN's width and dropout, a ReduNet's construction)."""

from typing import Callable

from torch import nn

from vmcr2_cli.models.constructed import redunet
from vmcr2_cli.models.mnist_cnn import mnist_cnn
from vmcr2_cli.models.preact_resnet import preact_resnet18
from vmcr2_cli.models.resnet import resnet18

MODEL_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "mnist-cnn": lambda in_channels, feature_dim, image_size, width, dropout, **_: mnist_cnn(
        in_channels, feature_dim, width, image_size, dropout),
    # The ResNets end in global average pooling: any image size.
    "resnet18": lambda in_channels, feature_dim, stem, **_: resnet18(in_channels, feature_dim, stem),
    "preact-resnet18": lambda in_channels, feature_dim, **_: preact_resnet18(in_channels, feature_dim),
    # Constructed layer by layer from ΔR's gradient, not trained by back-propagation (training/construction.py).
    "redunet": lambda in_channels, feature_dim, image_size, construction, **_: redunet(
        False, in_channels, feature_dim, image_size, construction),
    "redunet-shift": lambda in_channels, feature_dim, image_size, construction, **_: redunet(
        True, in_channels, feature_dim, image_size, construction),
}
# The models ``vmcr2 train`` constructs instead of training (one layer an epoch line).
CONSTRUCTED_MODELS = ("redunet", "redunet-shift")


def build_featurizer(name: str, *, in_channels: int, feature_dim: int, stem: str = "imagenet",
                     width: float = 1.0, image_size: tuple[int, int] = (32, 32), dropout: bool = True,
                     construction=None) -> nn.Module:
    """A featurizer f_θ whose output rows lie on the unit sphere; ``image_size`` is (H, W); ``dropout``:
    the MNIST CNN's dropout layers on (the paper's) or off; ``construction``: a ReduNet's
    :class:`~vmcr2_cli.models.constructed.Construction` (its settings and precision)."""
    if name not in MODEL_BUILDERS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODEL_BUILDERS)}")
    return MODEL_BUILDERS[name](in_channels=in_channels, feature_dim=feature_dim, stem=stem, width=width,
                               image_size=tuple(image_size), dropout=dropout, construction=construction)
