"""Architecture 1 of the appendix: the MNIST featurizer (32×32 input)."""

from torch import nn

from vmcr2_cli.models.heads import Normalize


def mnist_cnn(in_channels: int, feature_dim: int, width: float = 1.0) -> nn.Sequential:
    """Conv-Conv-MaxPool-Linear; ``Linear(12544, d)`` at width 1 since 12544 = 64·14·14 for 32×32 input.

    ``width`` scales the channels (32, 64); 1.0 is the paper's network.
    """
    c1, c2 = max(1, round(32 * width)), max(1, round(64 * width))
    return nn.Sequential(
        nn.Conv2d(in_channels, c1, kernel_size=3, stride=1),  # 32 -> 30
        nn.ReLU(inplace=True),
        nn.Conv2d(c1, c2, kernel_size=3, stride=1),  # 30 -> 28
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=2),  # 28 -> 14
        nn.Dropout(p=0.25),
        nn.Flatten(),
        nn.Linear(c2 * 14 * 14, feature_dim),
        nn.ReLU(inplace=True),
        nn.Dropout(p=0.5),
        nn.Linear(feature_dim, feature_dim),
        Normalize(),
    )
