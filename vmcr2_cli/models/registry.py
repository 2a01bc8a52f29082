"""Model name -> builder. Each builder takes the image channels, the image size and the feature dimension d."""

from typing import Callable

from torch import nn

from vmcr2_cli.models.mnist_cnn import mnist_cnn
from vmcr2_cli.models.preact_resnet import preact_resnet18
from vmcr2_cli.models.resnet import resnet18

MODEL_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "mnist-cnn": lambda in_channels, feature_dim, stem, width, image_size, dropout: mnist_cnn(
        in_channels, feature_dim, width, image_size, dropout),
    # The ResNets end in global average pooling: any image size.
    "resnet18": lambda in_channels, feature_dim, stem, width, image_size, dropout: resnet18(in_channels, feature_dim,
                                                                                            stem),
    "preact-resnet18": lambda in_channels, feature_dim, stem, width, image_size, dropout: preact_resnet18(
        in_channels, feature_dim),
}


def build_featurizer(name: str, *, in_channels: int, feature_dim: int, stem: str = "imagenet",
                     width: float = 1.0, image_size: tuple[int, int] = (32, 32), dropout: bool = True) -> nn.Module:
    """A featurizer f_θ whose output rows lie on the unit sphere; ``image_size`` is (H, W); ``dropout``:
    the MNIST CNN's dropout layers on (the paper's) or off."""
    if name not in MODEL_BUILDERS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODEL_BUILDERS)}")
    return MODEL_BUILDERS[name](in_channels=in_channels, feature_dim=feature_dim, stem=stem, width=width,
                               image_size=tuple(image_size), dropout=dropout)
