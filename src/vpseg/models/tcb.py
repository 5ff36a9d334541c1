"""Video semantic segmentation: PSPNet, OCRNet and VSPW's Temporal Context Blending (TCB,
Miao et al., CVPR 2021, Sec. 4.1).

One network covers the four: a dilated backbone (output stride 8) gives every frame its
features; a context module (``psp``: pyramid pooling, Zhao et al. 2017; ``ocr``:
object-contextual representations, Yuan et al. 2020) augments the target frame's features; a
classifier predicts the classes; an auxiliary head on the stride-8 stage before the last (weight
0.4 in the loss) helps training and, for OCR, gives the soft object regions. With support frames
(``dilations``: frames t − d₁ … t − d_N) the context is taken over the target and the support
frames together (TCB); without, it is the image model.

* **ST-PPM** (Sec. 4.1.2): every frame's last-stage feature is average-pooled to 1×1, 2×2, 3×3
  and 6×6; each scale is averaged over the frames, reduced by 1×1 conv → BN → ReLU, upsampled to
  the target's size and concatenated with the target's feature. With identical frames it is the
  image PPM exactly.
* **ST-OCR** (Sec. 4.1.1, Eq. 1–3): the K soft object regions M^k are the auxiliary head's
  class logits (on stage 3), each a softmax over one frame's pixels; a frame's object
  representation is the sum of its pixel representations weighted by that softmax, and f_k is
  the mean over the target and the N support frames (Eq. 1's 1/(N+1); the official code,
  ``SpatialTemporalGather_Module`` of sssdddwww2/CVPR2021_VSPW_Implement, does the same, not one
  softmax over all frames' pixels). A pixel of the target relates to f_k by a softmax over k of
  φ(x)ᵀψ(f_k) (Eq. 2, scaled by 1/√key channels as OCRNet's code does); its contextual
  representation ρ(Σ_k w_ik δ(f_k)) (Eq. 3) is concatenated with x and fused by 1×1 conv → BN →
  ReLU. Every frame's feature comes through the same 3×3 reduction.

Everything a support frame contributes depends on that frame alone (``FrameContext``: for PPM
its pooled pyramid, for OCR its per-class object representations), so at inference
``TCBStream`` keeps the last max(d) frames' contexts and each frame costs one backbone pass; the
result equals recomputing the support frames (``tests/test_tcb.py``). Support frames before the
video's first frame are the first frame.

Differences from the official code, on purpose: support frames are past frames at training and
inference, as the paper's t − d (the official training draws them from the future or, with a
reversed video, the past, and its test script reads t + 3, t + 6, t + 9 where they exist); the
ResNet is torchvision's (one 7×7 stem conv, not the CSAIL deep stem); the optimiser is the
engine's AdamW, not SGD. The paper's long-range "memory" variant (TCB_st-ocr mem: the mean of the
last 8 frames' object representations; in the official code it never updates past the first
frame) is not built.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vpseg.models.layers import ConvBN

__all__ = ["TCBConfig", "TCBNet", "FrameContext", "TCBStream", "CONFIGS", "support_indices",
           "DilatedTinyBackbone", "PPMContext", "OCRContext"]


@dataclass(frozen=True)
class TCBConfig:
    """``context``: "psp" or "ocr"; ``dilations``: support frames t − d (empty: the image model)."""

    backbone: str = "resnet50"  # resnet50 / resnet101 dilated to stride 8, or "tiny"
    context: str = "ocr"
    dilations: tuple[int, ...] = (3, 6, 9)  # the paper's
    channels: int = 512  # OCR: the reduced feature; PSP: the fused one
    key_channels: int = 256  # OCR's φ/ψ/δ width
    bins: tuple[int, ...] = (1, 2, 3, 6)  # PPM scales
    aux_channels: int = 512  # auxiliary head width
    dropout: float = 0.0  # before the classifiers (0: the official 0.05 for OCR, 0.1 for PSP)

    def __post_init__(self) -> None:
        if self.context not in ("psp", "ocr"):
            raise ValueError(f"context must be 'psp' or 'ocr', not {self.context!r}")
        if any(d < 1 for d in self.dilations) or len(set(self.dilations)) != len(self.dilations):
            raise ValueError(f"dilations must be distinct positive frame offsets, got {self.dilations}")

    @property
    def span(self) -> int:
        """Frames a training sample covers: t − max(d) … t."""
        return max(self.dilations, default=0) + 1


_TINY = dict(backbone="tiny", channels=128, key_channels=64, aux_channels=64)
CONFIGS: dict[str, TCBConfig] = {}
for _ctx in ("psp", "ocr"):
    for _size, _extra in (("r50", {}), ("r101", {"backbone": "resnet101"}), ("tiny", _TINY)):
        CONFIGS[f"{_ctx}-{_size}"] = TCBConfig(context=_ctx, dilations=(), **_extra)
        CONFIGS[f"tcb-{_ctx}-{_size}"] = TCBConfig(context=_ctx, **_extra)


def support_indices(t: int, dilations: Sequence[int]) -> list[int]:
    """The support frames of frame ``t`` (clamped to the video's first frame)."""
    return [max(t - d, 0) for d in dilations]


# ---------------------------------------------------------------------------------------------
# backbones: (stage-3 feature, stage-4 feature), both at stride 8


class DilatedResNet(nn.Module):
    """torchvision ResNet-50/101 with the last two stages dilated (2, 4): output stride 8."""

    def __init__(self, depth: int = 50) -> None:
        super().__init__()
        from torchvision.models import resnet50, resnet101

        build = {50: resnet50, 101: resnet101}[depth]
        net = build(weights=None, replace_stride_with_dilation=[False, True, True])
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.channels = (1024, 2048)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c3 = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return c3, self.layer4(c3)


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, dilation: int) -> None:
        super().__init__()
        last = nn.BatchNorm2d(cout)
        nn.init.zeros_(last.weight)  # each block starts as the identity
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, dilation, dilation, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, 1, dilation, dilation, bias=False), last)
        self.short = (nn.Identity() if cin == cout and stride == 1
                      else ConvBN(cin, cout, 1, stride=stride, act=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.short(x) + self.body(x))


class DilatedTinyBackbone(nn.Module):
    """A small ResNet of basic blocks for the CPU, stages 3 and 4 dilated (2, 4): stride 8."""

    def __init__(self, widths: tuple[int, int, int, int] = (32, 64, 128, 192),
                 blocks: tuple[int, int, int, int] = (1, 2, 2, 2)) -> None:
        super().__init__()
        self.stem = nn.Sequential(ConvBN(3, widths[0] // 2, 3, stride=2, act="relu"),
                                  ConvBN(widths[0] // 2, widths[0], 3, stride=2, act="relu"))
        stages, cin = [], widths[0]
        for w, n, stride, dilation in zip(widths, blocks, (1, 2, 1, 1), (1, 1, 2, 4), strict=True):
            layers = [_Block(cin, w, stride, dilation)] + [_Block(w, w, 1, dilation) for _ in range(n - 1)]
            stages.append(nn.Sequential(*layers))
            cin = w
        self.stages = nn.ModuleList(stages)
        self.channels = (widths[2], widths[3])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        x = self.stages[1](self.stages[0](x))
        c3 = self.stages[2](x)
        return c3, self.stages[3](c3)


def _backbone(name: str) -> DilatedResNet | DilatedTinyBackbone:
    if name == "tiny":
        return DilatedTinyBackbone()
    if name in ("resnet50", "resnet101"):
        return DilatedResNet(int(name.removeprefix("resnet")))
    raise ValueError(f"unknown backbone {name!r}; known: tiny, resnet50, resnet101")


# ---------------------------------------------------------------------------------------------
# what one frame contributes to the context of a target frame


@dataclass
class FrameContext:
    """PPM: ``pooled`` one ``N×C×b×b`` map per bin. OCR: ``objects`` ``N×K×C`` (per class the
    frame's pixel representations weighted by the class's spatial softmax over the frame)."""

    pooled: list[torch.Tensor] | None = None
    objects: torch.Tensor | None = None


class PPMContext(nn.Module):
    """The (spatial-temporal) pyramid pooling module."""

    def __init__(self, cin: int, channels: int, bins: Sequence[int]) -> None:
        super().__init__()
        self.bins = tuple(bins)
        reduced = cin // len(self.bins)
        self.reduce = nn.ModuleList(ConvBN(cin, reduced, 1, act="relu") for _ in self.bins)
        self.fuse = ConvBN(cin + reduced * len(self.bins), channels, 3, act="relu")

    def frame(self, feature: torch.Tensor) -> FrameContext:
        return FrameContext(pooled=[F.adaptive_avg_pool2d(feature, b) for b in self.bins])

    def forward(self, feature: torch.Tensor, frames: Sequence[FrameContext]) -> torch.Tensor:
        """``feature``: the target's ``N×C×h×w``; ``frames``: the target's and the support frames'
        contexts. Each scale is averaged over the frames before its reduction."""
        size = feature.shape[-2:]
        levels = [feature]
        for i, reduce in enumerate(self.reduce):
            pooled = torch.stack([f.pooled[i] for f in frames]).mean(0)  # type: ignore[index]
            levels.append(F.interpolate(reduce(pooled), size=size, mode="bilinear", align_corners=False))
        return self.fuse(torch.cat(levels, 1))


class OCRContext(nn.Module):
    """The (spatial-temporal) object-contextual representations."""

    def __init__(self, channels: int, key_channels: int) -> None:
        super().__init__()
        self.key_channels = key_channels
        self.phi = nn.Sequential(ConvBN(channels, key_channels, 1, act="relu"),
                                 ConvBN(key_channels, key_channels, 1, act="relu"))
        self.psi = nn.Sequential(ConvBN(channels, key_channels, 1, act="relu"),
                                 ConvBN(key_channels, key_channels, 1, act="relu"))
        self.delta = ConvBN(channels, key_channels, 1, act="relu")
        self.rho = ConvBN(key_channels, channels, 1, act="relu")
        self.fuse = ConvBN(2 * channels, channels, 1, act="relu")

    @staticmethod
    def frame(feature: torch.Tensor, regions: torch.Tensor) -> FrameContext:
        """``feature`` ``N×C×h×w``, ``regions`` (soft object region logits) ``N×K×h×w``."""
        weights = regions.flatten(2).float().softmax(-1)  # N×K×P: the soft object regions
        objects = torch.einsum("nkp,ncp->nkc", weights, feature.flatten(2).float())
        return FrameContext(objects=objects)

    @staticmethod
    def objects(frames: Sequence[FrameContext]) -> torch.Tensor:
        """Eq. 1: the frames' object representations averaged (``N×K×C``)."""
        return torch.stack([f.objects for f in frames]).mean(0)  # type: ignore[misc]

    def forward(self, feature: torch.Tensor, frames: Sequence[FrameContext]) -> torch.Tensor:
        n, c, h, w = feature.shape
        objects = self.objects(frames).to(feature.dtype).transpose(1, 2).unsqueeze(-1)  # N×C×K×1
        query = self.phi(feature).flatten(2).transpose(1, 2)  # N×P×key
        key = self.psi(objects).flatten(2)  # N×key×K
        value = self.delta(objects).flatten(2).transpose(1, 2)  # N×K×key
        relation = torch.softmax(query @ key * self.key_channels ** -0.5, dim=-1)  # Eq. 2
        context = (relation @ value).transpose(1, 2).reshape(n, self.key_channels, h, w)
        return self.fuse(torch.cat([self.rho(context), feature], 1))  # Eq. 3, then fused


# ---------------------------------------------------------------------------------------------


@dataclass
class FrameFeatures:
    """One backbone pass: what the target needs (``feature``, ``aux``) and what it lends
    others as a support frame (``context``)."""

    feature: torch.Tensor
    aux: torch.Tensor
    context: FrameContext


class TCBNet(nn.Module):
    """``forward(images)`` on ``N×T×3×H×W`` clips whose last frame is the target and the others
    its support frames (T = 1 + len(dilations)): ``{"logits"}`` of the target and ``{"aux"}`` of
    every frame (``N×T×K×h×w``; the official code puts the auxiliary loss on all of them), at
    stride 8. ``frame`` and ``head`` split it for streaming inference (``TCBStream``)."""

    def __init__(self, config: TCBConfig, num_classes: int) -> None:
        super().__init__()
        self.config, self.num_classes = config, num_classes
        self.backbone = _backbone(config.backbone)
        c3, c4 = self.backbone.channels
        dropout = config.dropout or (0.05 if config.context == "ocr" else 0.1)
        self.aux_head = nn.Sequential(ConvBN(c3, config.aux_channels, 3, act="relu"),
                                      nn.Dropout2d(dropout), nn.Conv2d(config.aux_channels, num_classes, 1))
        self.context: PPMContext | OCRContext
        if config.context == "psp":
            self.reduce: nn.Module = nn.Identity()
            self.context = PPMContext(c4, config.channels, config.bins)
        else:
            self.reduce = ConvBN(c4, config.channels, 3, act="relu")
            self.context = OCRContext(config.channels, config.key_channels)
        self.classifier = nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(config.channels, num_classes, 1))

    def frame(self, images: torch.Tensor) -> FrameFeatures:
        """One backbone pass for ``N×3×H×W`` frames."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"frames must be N×3×H×W images, got {tuple(images.shape)}")
        c3, c4 = self.backbone(images)
        aux = self.aux_head(c3)
        feature = self.reduce(c4)
        if isinstance(self.context, PPMContext):
            context = self.context.frame(feature)
        else:
            context = OCRContext.frame(feature, aux)
        return FrameFeatures(feature, aux, context)

    def head(self, target: FrameFeatures, support: Sequence[FrameContext]) -> torch.Tensor:
        """Class logits of the target frame given its support frames' contexts."""
        return self.classifier(self.context(target.feature, [target.context, *support]))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.ndim == 4:
            images = images.unsqueeze(1)
        n, t = images.shape[:2]
        if t != 1 + len(self.config.dilations):
            raise ValueError(f"expected clips of {1 + len(self.config.dilations)} frames (support "
                             f"frames at t - {self.config.dilations}, then the target), got {t}")
        frames = self.frame(images.flatten(0, 1))  # every frame through the backbone once

        def take(x: torch.Tensor, i: int) -> torch.Tensor:
            return x.unflatten(0, (n, t))[:, i]

        def context_of(i: int) -> FrameContext:
            c = frames.context
            return FrameContext(pooled=None if c.pooled is None else [take(p, i) for p in c.pooled],
                                objects=None if c.objects is None else take(c.objects, i))

        target = FrameFeatures(take(frames.feature, t - 1), take(frames.aux, t - 1), context_of(t - 1))
        logits = self.head(target, [context_of(i) for i in range(t - 1)])
        return {"logits": logits, "aux": frames.aux.unflatten(0, (n, t))}


class TCBStream:
    """Frame-by-frame inference with a memory of the last max(d) frames' contexts: each frame
    costs one backbone pass. ``memory=False`` recomputes every support frame instead (the
    reference the memory is tested against, and the cost it saves)."""

    def __init__(self, model: TCBNet, memory: bool = True) -> None:
        self.model, self.memory = model, memory
        self.dilations = model.config.dilations
        self.contexts: deque[FrameContext] = deque(maxlen=max(self.dilations, default=0) + 1)
        self.frames: list[torch.Tensor] = []  # without memory: the frames themselves
        self.t = 0

    @torch.no_grad()
    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """Class logits (``1×K×h×w``, stride 8) of the next frame ``1×3×H×W``."""
        target = self.model.frame(image)
        support_at = support_indices(self.t, self.dilations)
        if self.memory:
            self.contexts.append(target.context)
            first = self.t - (len(self.contexts) - 1)  # frame index of contexts[0]
            support = [self.contexts[i - first] if i >= first else self.contexts[0]
                       for i in support_at]
        else:
            self.frames.append(image)
            support = [self.model.frame(self.frames[i]).context for i in support_at]
        self.t += 1
        return self.model.head(target, support)

