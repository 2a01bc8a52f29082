"""Architecture 2 of the appendix: torchvision's ResNet18 with the reshaping head."""

from torch import nn

from vmcr2_cli.models.heads import reshaping_head


def resnet18(in_channels: int, feature_dim: int, stem: str = "imagenet") -> nn.Module:
    """ResNet18 whose fc is replaced by Linear→BN→ReLU→Linear(512, d)→normalize.

    ``stem="imagenet"`` keeps torchvision's 7×7/2 conv and max-pool, as the paper
    does on 32×32 images; ``stem="cifar"`` uses a 3×3/1 conv and no max-pool, which
    keeps the spatial resolution small images need.
    """
    from torchvision.models import resnet18 as torchvision_resnet18  # imported when built, not at every command's start

    model = torchvision_resnet18(weights=None)
    if stem == "cifar":
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    model.fc = reshaping_head(512, feature_dim)
    return model
