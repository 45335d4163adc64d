"""The backbones of Table 2: ConvNet4, ResNet12 and SE-ResNet12 (paper Appendix B.2)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["BACKBONES", "ConvNet4", "ResNet12", "SEResNet12", "SqueezeExcitation", "backbone"]


class _PooledBackbone(nn.Module):
    """``blocks`` -> global average pool -> ``fc``: the layout shared by the few-shot backbones."""

    blocks: nn.Sequential
    pool: nn.Module
    fc: nn.Linear

    @property
    def embedding_dim(self) -> int:
        return self.fc.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.blocks(x)), 1))


class ConvNet4(_PooledBackbone):
    """The 4-layer convolutional network of Table 2: ``hidden`` filters in every layer.

    Each item of ``blocks`` is Conv3x3(``hidden``) -> BatchNorm -> ReLU -> MaxPool2d(2). The last
    feature map is globally average-pooled into a ``hidden``-dimensional embedding (so any input
    size works; Tian et al. flatten the 5x5 map of 84-px inputs instead), and ``fc`` classifies
    it into ``num_classes`` meta-train classes.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, hidden: int = 64):
        super().__init__()
        chans = [in_channels] + [hidden] * 4
        self.blocks = nn.Sequential(*[
            nn.Sequential(
                nn.Conv2d(a, b, 3, padding=1, bias=False),
                nn.BatchNorm2d(b),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )
            for a, b in zip(chans[:-1], chans[1:])
        ])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(hidden, num_classes)
        _init_weights(self)


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation (Hu et al., 2018): rescale channels by a gate computed from their means."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean(dim=(2, 3))))))
        return x * gate[:, :, None, None]


class ResNet12Block(nn.Module):
    """One residual block of ResNet12 (a paper unit).

    Three 3x3 convolutions, each followed by BatchNorm and (except the last) LeakyReLU(0.1); an
    optional squeeze-and-excitation on the residual branch; a 1x1 convolution + BatchNorm
    shortcut; LeakyReLU(0.1) after the addition; then a 2x2 max-pool when ``pool``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, pool: bool, se: bool, se_reduction: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv3 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.act = nn.LeakyReLU(0.1)
        self.se = SqueezeExcitation(out_channels, se_reduction) if se else nn.Identity()
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
        )
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.act(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        return self.pool(self.act(out + self.shortcut(x)))


class ResNet12(_PooledBackbone):
    """ResNet12 of Table 2 (paper Appendix B.2; Oreshkin et al. 2018, Lee et al. 2019).

    Four residual blocks (the items of ``blocks``, paper Blocks 1-4) of widths ``widths``
    (64, 160, 320, 640 as in Tian et al.; pass smaller widths for a CPU-sized network). Each
    has three 3x3 conv -> BN -> LeakyReLU(0.1) layers and a 1x1 conv + BN shortcut; a 2x2
    max-pool follows each of the first three blocks, and global average pooling after the
    fourth gives the ``widths[-1]``-dimensional embedding classified by ``fc``. With ``se`` a
    squeeze-and-excitation module (reduction ``se_reduction``) gates the residual branch of
    every block (:class:`SEResNet12`). DropBlock regularisation, which some ResNet12
    implementations add, is not part of the paper's description and is not included.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        widths: Sequence[int] = (64, 160, 320, 640),
        se: bool = False,
        se_reduction: int = 16,
    ):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) != 4 or min(widths) < 1:
            raise ValueError(f"ResNet12 needs 4 positive widths; got {widths}.")
        chans = (in_channels,) + widths
        self.blocks = nn.Sequential(*[
            ResNet12Block(chans[i], chans[i + 1], pool=i < 3, se=se, se_reduction=se_reduction)
            for i in range(4)
        ])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1], num_classes)
        _init_weights(self)


class SEResNet12(ResNet12):
    """:class:`ResNet12` with a squeeze-and-excitation module in every block (Hu et al., 2018)."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        widths: Sequence[int] = (64, 160, 320, 640),
        se_reduction: int = 16,
    ):
        super().__init__(num_classes, in_channels, widths, se=True, se_reduction=se_reduction)


def _init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="leaky_relu", a=0.1)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


#: The few-shot backbones of Table 2 by name.
BACKBONES: dict[str, type[nn.Module]] = {
    "convnet4": ConvNet4,
    "resnet12": ResNet12,
    "seresnet12": SEResNet12,
}


def backbone(name: str, num_classes: int, **kwargs) -> nn.Module:
    """Build a Table 2 backbone by name: ``"convnet4"``, ``"resnet12"`` or ``"seresnet12"``.

    ``kwargs`` go to the class (``in_channels``, ``hidden`` for ConvNet4, ``widths`` and
    ``se_reduction`` for the ResNets), e.g. ``backbone("resnet12", 64, widths=(16, 32, 64, 128))``
    for a small CPU network.
    """
    key = name.lower().replace("-", "").replace("_", "")
    if key not in BACKBONES:
        raise ValueError(f"unknown few-shot backbone {name!r}; choose one of {sorted(BACKBONES)}.")
    return BACKBONES[key](num_classes, **kwargs)

