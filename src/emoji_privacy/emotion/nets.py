"""The project's own emotion CNNs, built by name from the metadata of a ``.pt`` file.

Every network takes (N, 1, S, S) normalized gray crops framed like FER2013 (whole 48x48 frame
resized to S) and returns (N, 7) softmax probabilities in EMOTIONS order, so the pipeline can
run any of them through the same classifier code. ``build_emotion_net(name, **config)`` is what
both the trainer and the loader call, so a checkpoint's metadata is enough to rebuild its net.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .. import EMOTIONS

__all__ = ["EMOTION_NETS", "Paper42", "CompactResNet", "build_emotion_net", "count_parameters", "standardize_crops"]


STANDARD_STD = 0.42
"""The spread a standardized crop is scaled to: the median per-face standard deviation of FER2013 Training in the
nets' normalized units (53.7 gray levels / 127.5), so weights trained on plain crops start close to right."""
STANDARD_FLOOR = 2.0 / 127.5
"""A crop flatter than 2 gray levels is not stretched further (it would only amplify noise)."""


def standardize_crops(x: torch.Tensor) -> torch.Tensor:
    """Each crop to mean 0 and spread STANDARD_STD: photometric normalisation inside the net, so training, torch
    and every exported engine apply exactly the same one. A face's brightness and contrast (a dim room, an
    exposure that darkens everything by the same factor) no longer reach the first convolution."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = (x - mean).pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(STANDARD_FLOOR)
    return (x - mean) * (STANDARD_STD / std)


def _conv_bn_relu(cin: int, cout: int, k: int, padding: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride, padding, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class Paper42(nn.Module):
    """The emoji-replacement paper's CNN, layer for layer.

    42x42 gray -> conv 5x5/p2 32 -> pool (21) -> conv 4x4/p1 32 -> pool (10) -> conv 5x5/p2 64 ->
    pool (5) -> fc ``hidden`` -> fc 7, batch norm after every layer but the output, ReLU. The paper
    does not give the hidden width; 512 is our choice (what ``models/paper42.pt`` uses; it keeps the
    file under the project's 5 MB limit). Dropout (not a layer with weights) is ours too.
    """

    def __init__(self, input_size: int = 42, hidden: int = 512, dropout: float = 0.25):
        super().__init__()
        if input_size != 42:
            raise ValueError("paper42 is defined for 42x42 input")
        self.input_size = input_size
        self.config = {"input_size": input_size, "hidden": hidden, "dropout": dropout}  # stored in .pt metadata
        self.features = nn.Sequential(
            *_conv_bn_relu(1, 32, 5, 2), nn.MaxPool2d(2),   # 42 -> 21
            *_conv_bn_relu(32, 32, 4, 1), nn.MaxPool2d(2),  # 21 -> 20 -> 10
            *_conv_bn_relu(32, 64, 5, 2), nn.MaxPool2d(2),  # 10 -> 5
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout),
            nn.Linear(64 * 5 * 5, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(hidden, len(EMOTIONS)),
        )

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=1)


class _BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or 1x1 projection) shortcut, as in ResNet-18."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(*_conv_bn_relu(cin, cout, 3, 1, stride),
                                  nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class CompactResNet(nn.Module):
    """A narrow ResNet for 48x48 faces: small enough for ~1-2 ms per face on one CPU core.

    Why this shape: FER2013's best single models are VGG/ResNet-style stacks of 3x3 convs; at
    48x48 most of their cost is width, not depth, so this keeps ResNet's four stages of residual
    blocks (1, 2, 2, 1 of them: 13 convs) at a quarter to a third of ResNet-18's width, a 3x3 stem
    at full resolution (FER faces are small; early striding loses mouth and eye detail),
    max-pooling to 24, strided blocks to 12, 6 and 3, global average pooling, one linear layer.
    Measured on this project's 2-core VM: 0.89 M parameters, 28 M multiply-adds, ~1.4 ms per face
    on one core (batch 1), ~30 s per FER2013 epoch on two.
    """

    def __init__(self, input_size: int = 48, widths: tuple[int, ...] | list[int] = (16, 48, 96, 192),
                 blocks: tuple[int, ...] | list[int] = (1, 2, 2, 1), dropout: float = 0.2, standardize: bool = False):
        super().__init__()
        if len(widths) != len(blocks) or not widths:
            raise ValueError("widths and blocks must have the same, non-zero length")
        self.input_size = input_size
        self.config = {"input_size": input_size, "widths": list(widths), "blocks": list(blocks), "dropout": dropout}
        if standardize:  # only when on, so the metadata of models trained before it existed stays as it was
            self.config["standardize"] = True
        self.standardize = bool(standardize)
        layers: list[nn.Module] = [*_conv_bn_relu(1, widths[0], 3, 1), nn.MaxPool2d(2)]
        cin = widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks, strict=True)):
            for j in range(n):
                layers.append(_BasicBlock(cin, w, 2 if (i > 0 and j == 0) else 1))
                cin = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(cin, len(EMOTIONS)))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(standardize_crops(x) if self.standardize else x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=1)


EMOTION_NETS: dict[str, Callable[..., nn.Module]] = {
    "paper42": Paper42,
    "compact_resnet": CompactResNet,
}
"""Architecture name (as stored in ``.pt`` metadata and given to the trainer) -> constructor."""


def build_emotion_net(name: str, **config: Any) -> nn.Module:
    """A fresh network of architecture ``name`` with its keyword ``config``."""
    if name not in EMOTION_NETS:
        raise ValueError(f"unknown emotion architecture {name!r}; known: {', '.join(EMOTION_NETS)}")
    return EMOTION_NETS[name](**config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
