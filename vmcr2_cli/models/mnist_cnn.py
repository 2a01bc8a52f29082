"""Architecture 1 of the appendix: the MNIST featurizer (32×32 input, or wider composed images)."""

from torch import nn

from vmcr2_cli.models.heads import Normalize


def mnist_cnn(in_channels: int, feature_dim: int, width: float = 1.0,
              image_size: tuple[int, int] = (32, 32), dropout: bool = True) -> nn.Sequential:
    """Conv-Conv-MaxPool-Linear; ``Linear(12544, d)`` at width 1 since 12544 = 64·14·14 for 32×32 input.

    ``width`` scales the channels (32, 64); 1.0 is the paper's network. ``image_size`` (H, W)
    sizes the first Linear layer: a 32×64 image of two items (fashion-mnist-pairs) gives
    64·14·30 inputs. The Linear layer keeps every position, so the network can tell the
    left item from the right one (class 10·a + b is not 10·b + a); pooling the wider map
    down to 14×14 would blur exactly that. ``dropout=False`` sets both dropout rates to 0 (the
    layers stay, so checkpoints have the same keys).
    """
    c1, c2 = max(1, round(32 * width)), max(1, round(64 * width))
    height, width_px = ((size - 4) // 2 for size in image_size)  # two 3×3 convs, then 2×2 pooling
    return nn.Sequential(
        nn.Conv2d(in_channels, c1, kernel_size=3, stride=1),  # 32 -> 30
        nn.ReLU(inplace=True),
        nn.Conv2d(c1, c2, kernel_size=3, stride=1),  # 30 -> 28
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=2),  # 28 -> 14
        nn.Dropout(p=0.25 if dropout else 0.0),
        nn.Flatten(),
        nn.Linear(c2 * height * width_px, feature_dim),
        nn.ReLU(inplace=True),
        nn.Dropout(p=0.5 if dropout else 0.0),
        nn.Linear(feature_dim, feature_dim),
        Normalize(),
    )
