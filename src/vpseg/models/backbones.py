"""Backbones returning features at strides 4, 8, 16 and 32.

ResNet-50 and ConvNeXt come from torchvision built with ``weights=None``: nothing is downloaded.
Pretrained weights load from a local torchvision state-dict file (``load_backbone_weights``).
``tiny`` is a small ResNet-style network (basic blocks) for training on a CPU in minutes.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vpseg.errors import InputError
from vpseg.models.layers import ConvBN

__all__ = ["Backbone", "build_backbone", "load_backbone_weights", "BACKBONES"]


class Backbone(nn.Module):
    """``forward(x)`` -> [stride 4, 8, 16, 32] features; ``channels`` lists their widths.
    ``extract(x, stride2=True)`` adds the stem's stride-2 feature (``stride2_channels`` wide)
    where the network has one, for a pixel decoder that goes on to stride 2."""

    channels: tuple[int, int, int, int]
    stride2_channels: int | None = None

    def extract(self, x: torch.Tensor, stride2: bool = False) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        if stride2:
            raise ValueError(f"{type(self).__name__} has no stride-2 feature")
        return self(x), None


class ResNetBackbone(Backbone):
    def __init__(self, depth: int = 50) -> None:
        super().__init__()
        from torchvision.models import resnet50

        if depth != 50:
            raise ValueError("only ResNet-50 is configured")
        net = resnet50(weights=None)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.channels = (256, 512, 1024, 2048)
        self.stride2_channels = 64

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.extract(x)[0]

    def extract(self, x: torch.Tensor, stride2: bool = False) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        s2 = self.stem[:3](x)  # conv1, bn1, relu: stride 2
        c2 = self.layer1(self.stem[3](s2))
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        return [c2, c3, c4, self.layer4(c4)], s2 if stride2 else None


class ConvNeXtBackbone(Backbone):
    def __init__(self, size: str = "large", drop_path: float = 0.0) -> None:
        super().__init__()
        from torchvision.models import convnext_base, convnext_large, convnext_small, convnext_tiny

        build = {"tiny": convnext_tiny, "small": convnext_small, "base": convnext_base,
                 "large": convnext_large}[size]
        net = build(weights=None, stochastic_depth_prob=drop_path)
        self.features = net.features  # stem, stage, down, stage, down, stage, down, stage
        widths = {"tiny": 96, "small": 96, "base": 128, "large": 192}[size]
        self.channels = (widths, 2 * widths, 4 * widths, 8 * widths)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in (1, 3, 5, 7):
                out.append(x)
        return out


class _Basic(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvBN(cin, cout, 3, stride=stride, act="relu"),
                                  ConvBN(cout, cout, 3, act=None, bn_init=0.0))
        self.short = (nn.Identity() if cin == cout and stride == 1
                      else ConvBN(cin, cout, 1, stride=stride, act=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.short(x) + self.body(x))


class TinyBackbone(Backbone):
    """Stem (two stride-2 3×3 convs) and four stages of basic blocks."""

    def __init__(self, widths: tuple[int, int, int, int] = (32, 64, 128, 192),
                 blocks: tuple[int, int, int, int] = (1, 2, 2, 2)) -> None:
        super().__init__()
        self.stem = nn.Sequential(ConvBN(3, widths[0] // 2, 3, stride=2, act="relu"),
                                  ConvBN(widths[0] // 2, widths[0], 3, stride=2, act="relu"))
        stages, cin = [], widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks, strict=True)):
            layers = [_Basic(cin, w, 1 if i == 0 else 2)] + [_Basic(w, w, 1) for _ in range(n - 1)]
            stages.append(nn.Sequential(*layers))
            cin = w
        self.stages = nn.ModuleList(stages)
        self.channels = widths
        self.stride2_channels = widths[0] // 2

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.extract(x)[0]

    def extract(self, x: torch.Tensor, stride2: bool = False) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        s2 = self.stem[0](x)
        x = self.stem[1](s2)
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out, s2 if stride2 else None


BACKBONES = ("tiny", "resnet50", "convnext_tiny", "convnext_small", "convnext_base",
             "convnext_large")


def build_backbone(name: str, *, drop_path: float = 0.0) -> Backbone:
    if name == "tiny":
        return TinyBackbone()
    if name == "resnet50":
        return ResNetBackbone()
    if name.startswith("convnext_") and name in BACKBONES:
        return ConvNeXtBackbone(name.split("_", 1)[1], drop_path=drop_path)
    raise ValueError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}")


def load_backbone_weights(backbone: Backbone, path: str | Path) -> list[str]:
    """Load a torchvision ImageNet state dict (``resnet50-*.pth``, ``convnext_large-*.pth``) from
    a local file; the classifier's keys are ignored. Returns the backbone keys left untouched
    (an error if that is more than none, i.e. the file is for another network)."""
    p = Path(path)
    if not p.is_file():
        raise InputError("backbone weights not found", path=p)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input error
        raise InputError(f"cannot read backbone weights: {str(exc).splitlines()[0]}", path=p) from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    mapped: dict[str, torch.Tensor] = {}
    if isinstance(backbone, ResNetBackbone):
        for k, v in state.items():
            if k.startswith(("conv1.", "bn1.")):
                mapped["stem." + {"conv1": "0", "bn1": "1"}[k.split(".")[0]] + k[k.index("."):]] = v
            elif k.startswith("layer"):
                mapped[k] = v
    elif isinstance(backbone, ConvNeXtBackbone):
        mapped = {k: v for k, v in state.items() if k.startswith("features.")}
    else:
        mapped = dict(state)
    missing, unexpected = backbone.load_state_dict(mapped, strict=False)
    if not mapped or missing or unexpected:
        raise InputError(f"weights do not fit this backbone ({len(missing)} missing, "
                         f"{len(unexpected)} unexpected keys)", path=p)
    return list(missing)
