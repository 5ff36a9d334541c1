"""VPSNet (Kim et al., CVPR 2020): UPSNet on Mask R-CNN, with *Fuse* (pixel-level temporal
fusion) and *Track* (MaskTrack's object-level association head), on torchvision's detection
machinery (its RPN, RoIAlign, box and mask heads, box coder and losses).

Facts not in the paper come from the official code (mcahny/vps, an mmdetection fork; read for
these facts, nothing copied):

* **Backbone** ResNet-50 + FPN (P2–P6; a small basic-block network for the CPU in ``-tiny``).
* **Neck** (``BFPTcea``): the five levels are resized (nearest) to P2's size and averaged
  (*gather*); with Fuse, the reference frame's gathered feature is warped onto the target's with
  optical flow (FlowNet2 there, frozen; here DIS, or RAFT from a local file, computed on the RGB
  frames, scaled to stride 4), a small learned head refines it (a 9×9 correlation of target and
  warped reference, then four 3×3 convs predicting a residual flow that warps the warped feature
  once more), and EDVR's temporal-spatial attention (TCEA) fuses target and aligned reference
  into one map; a 3×3 conv refines it and it is *redistributed*: max-pooled to each level's size
  and added to the target's level. Without Fuse the gathered map is redistributed as it is (the
  paper's parameter-free neck).
* **Semantic head** (UPSNet): three 3×3 convs (deformable in ``vpsnet-r50``, DCNv1 through
  torchvision) with GroupNorm + ReLU shared by P2–P5, upsampled to stride 4, concatenated, a 1×1
  conv to every class; cross-entropy at the frame's resolution (weight 1).
* **Panoptic head** (UPSNet, ``panoptic_logits``): the stuff channels are the semantic logits of
  the stuff classes; an instance's channel is its mask logits (the box's 28×28 logits resized to
  the box, 0 outside) plus the semantic logit of its class inside its box (0 outside). The
  *unknown* channel (UPSNet: max over the thing classes' semantic logits minus max over the
  instance channels; VPSNet drops it) is ``unknown=True``. Trained on the ground-truth boxes at
  stride 4 with cross-entropy (weight 0.5).
* **Track head** (MaskTrack R-CNN): RoIAlign 7×7 features of a box → two FC layers (shared by
  target and reference, a Siamese pair) → embedding; the affinity of a target box to each
  reference object is their cosine (the paper's; times a temperature of 10, where the official
  code takes the raw dot product, which AdamW made explode), with a zero "new object" column
  first. Trained on the
  positive proposals of the target frame (features of the fused map) against the reference
  frame's ground-truth boxes (its unfused features), cross-entropy × 0.5.
* **Inference** (online, frame by frame, the previous frame as reference): softmax class scores,
  class-agnostic NMS at IoU 0.5, score > 0.6; masks pasted by score, one dropped if empty or
  more than 30 % covered by kept masks of its class; the panoptic logits' argmax; an instance
  whose pixels are mostly (≥ 50 %) one stuff class of the semantic head becomes that stuff;
  stuff segments below ``stuff_area`` pixels become void.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["VPSNetConfig", "VPSNet", "CONFIGS", "panoptic_logits", "warp", "correlation",
           "FrameTargets", "Detections"]


@dataclass(frozen=True)
class VPSNetConfig:
    backbone: str = "resnet50"  # or "tiny"
    fpn_channels: int = 256
    fuse: bool = True
    track: bool = True
    disjoined: bool = False  # the track head reads the unfused target features (Table 4)
    semantic_channels: tuple[int, int, int] = (256, 128, 128)
    deformable: bool = True  # deformable convs in the semantic head
    unknown: bool = False  # UPSNet's unknown channel (VPSNet has none)
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)  # P2..P6
    box_head_channels: int = 1024
    mask_channels: int = 256
    track_channels: int = 1024
    track_scale: float = 10.0  # affinity = scale × cosine (the paper's cosine; a temperature)
    refine_channels: tuple[int, int, int] = (64, 64, 32)  # the flow refinement head
    rpn_pre_nms: tuple[int, int] = (2000, 1000)  # train, test
    rpn_post_nms: tuple[int, int] = (2000, 1000)
    box_batch: int = 512  # RoIs sampled per image, 25 % positive
    score_threshold: float = 0.6
    nms_threshold: float = 0.5  # class-agnostic, at inference
    overlap_threshold: float = 0.3  # a mask more covered than this by kept ones is dropped
    stuff_area: int = 2048  # at Cityscapes' 1024×2048; scaled by the frame's area
    max_detections: int = 100

    def __post_init__(self) -> None:
        if self.backbone not in ("resnet50", "tiny"):
            raise ValueError(f"backbone must be resnet50 or tiny, not {self.backbone!r}")
        if self.disjoined and not (self.fuse and self.track):
            raise ValueError("disjoined needs both fuse and track")


CONFIGS: dict[str, VPSNetConfig] = {
    "vpsnet-r50": VPSNetConfig(),
    "vpsnet-tiny": VPSNetConfig(
        backbone="tiny", fpn_channels=64, semantic_channels=(64, 32, 32), deformable=False,
        anchor_sizes=(16, 32, 64, 128, 256), box_head_channels=256, mask_channels=64,
        track_channels=256, refine_channels=(32, 32, 16), rpn_pre_nms=(600, 300),
        rpn_post_nms=(300, 150), box_batch=128),
}

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


# ---------------------------------------------------------------------------------------------
# flow warping and correlation


def warp(feature: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``feature`` ``N×C×H×W`` sampled at ``x + flow(x)`` (``flow`` ``N×2×H×W``, pixels, (dx, dy)):
    the reference feature aligned onto the target. Bilinear; outside the map is zero."""
    n, _, h, w = feature.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=flow.device, dtype=flow.dtype),
                            torch.arange(w, device=flow.device, dtype=flow.dtype), indexing="ij")
    x = xs + flow[:, 0]
    y = ys + flow[:, 1]
    grid = torch.stack([2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1], dim=-1)
    return F.grid_sample(feature, grid.to(feature.dtype), mode="bilinear", padding_mode="zeros",
                         align_corners=True)


def correlation(a: torch.Tensor, b: torch.Tensor, max_displacement: int = 4) -> torch.Tensor:
    """``(2d + 1)²`` channels: the channel-mean of ``a(x) · b(x + δ)`` for every δ with
    ``|δ| ≤ d`` (kernel 1, as the official refinement's correlation layer); zero outside."""
    d = max_displacement
    h, w = a.shape[-2:]
    padded = F.pad(b, (d, d, d, d))
    out = [(a * padded[..., dy : dy + h, dx : dx + w]).mean(1)
           for dy in range(2 * d + 1) for dx in range(2 * d + 1)]
    return torch.stack(out, 1)


# ---------------------------------------------------------------------------------------------
# backbone + FPN


class _TinyBody(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        from vpseg.models.backbones import TinyBackbone

        self.net = TinyBackbone()
        self.channels = list(self.net.channels)

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return OrderedDict((str(i), f) for i, f in enumerate(self.net(x)))


class _ResNetBody(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import resnet50

        net = resnet50(weights=None)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layers = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
        self.channels = [256, 512, 1024, 2048]

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        out: OrderedDict[str, torch.Tensor] = OrderedDict()
        x = self.stem(x)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            out[str(i)] = x
        return out


class BackboneFPN(nn.Module):
    """Features ``{"0": P2, "1": P3, "2": P4, "3": P5, "pool": P6}``."""

    def __init__(self, config: VPSNetConfig) -> None:
        super().__init__()
        from torchvision.ops import FeaturePyramidNetwork
        from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

        self.body: nn.Module = _TinyBody() if config.backbone == "tiny" else _ResNetBody()
        self.fpn = FeaturePyramidNetwork(self.body.channels, config.fpn_channels,
                                         extra_blocks=LastLevelMaxPool())
        self.out_channels = config.fpn_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return self.fpn(self.body(x))


# ---------------------------------------------------------------------------------------------
# the neck: gather, align-and-attend (Fuse), redistribute


class TCEA(nn.Module):
    """EDVR's temporal and spatial attention fusion of the target and aligned reference maps."""

    def __init__(self, c: int, frames: int = 2) -> None:
        super().__init__()
        self.t_target = nn.Conv2d(c, c, 3, 1, 1)
        self.t_frames = nn.Conv2d(c, c, 3, 1, 1)
        self.fusion = nn.Conv2d(frames * c, c, 1)
        self.s1 = nn.Conv2d(frames * c, c, 1)
        self.s2 = nn.Conv2d(2 * c, c, 1)
        self.s3 = nn.Conv2d(c, c, 3, 1, 1)
        self.s4 = nn.Conv2d(c, c, 3, 1, 1)
        self.add1 = nn.Conv2d(c, c, 1)
        self.add2 = nn.Conv2d(c, c, 1)

    def forward(self, target: torch.Tensor, frames: Sequence[torch.Tensor]) -> torch.Tensor:
        act = lambda x: F.leaky_relu(x, 0.1)  # noqa: E731
        key = self.t_target(target)
        weighted = [f * torch.sigmoid((self.t_frames(f) * key).sum(1, keepdim=True)) for f in frames]
        stacked = torch.cat(weighted, 1)
        fea = act(self.fusion(stacked))
        att = act(self.s1(stacked))
        att = act(self.s2(torch.cat([F.max_pool2d(att, 3, 2, 1), F.avg_pool2d(att, 3, 2, 1)], 1)))
        att = act(self.s3(att))
        att = F.interpolate(att, size=fea.shape[-2:], mode="bilinear", align_corners=False)
        att = self.s4(att)
        att_add = self.add2(act(self.add1(att)))
        return fea * torch.sigmoid(att) * 2 + att_add


class FlowRefine(nn.Module):
    """Residual flow from the target map, its correlation with the warped reference, and the
    initial flow (the official ``LiteFlowNetCorr``)."""

    def __init__(self, c: int, widths: tuple[int, int, int], max_displacement: int = 4) -> None:
        super().__init__()
        self.d = max_displacement
        cin = c + (2 * max_displacement + 1) ** 2 + 2
        layers: list[nn.Module] = []
        for w in widths:
            layers += [nn.Conv2d(cin, w, 3, 1, 1), nn.LeakyReLU(0.1)]
            cin = w
        layers.append(nn.Conv2d(cin, 2, 3, 1, 1))
        nn.init.zeros_(layers[-1].weight)  # type: ignore[arg-type]  # starts at the given flow
        nn.init.zeros_(layers[-1].bias)  # type: ignore[arg-type]
        self.net = nn.Sequential(*layers)

    def forward(self, target: torch.Tensor, warped: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([target, correlation(target, warped, self.d), flow], 1))


class Neck(nn.Module):
    def __init__(self, config: VPSNetConfig) -> None:
        super().__init__()
        c = config.fpn_channels
        self.fuse = config.fuse
        if config.fuse:
            self.refine_flow = FlowRefine(c, config.refine_channels)
            self.attend = TCEA(c)
            self.refine = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), nn.ReLU(inplace=True))

    @staticmethod
    def gather(features: OrderedDict[str, torch.Tensor]) -> torch.Tensor:
        size = features["0"].shape[-2:]
        return torch.stack([F.interpolate(f, size=size, mode="nearest") for f in features.values()]).mean(0)

    def forward(self, target: OrderedDict[str, torch.Tensor],
                reference: OrderedDict[str, torch.Tensor] | None = None,
                flow: torch.Tensor | None = None) -> OrderedDict[str, torch.Tensor]:
        """The target's levels with the gathered map redistributed onto them, fused with the
        ``reference``'s (Fuse; without a reference, the parameter-free neck, as the disjoined
        track head reads). ``flow``: ``N×2×h×w`` at stride 4, target → reference."""
        g = self.gather(target)
        if self.fuse and reference is not None:
            assert flow is not None
            warped = warp(self.gather(reference), flow)
            warped = warp(warped, self.refine_flow(g, warped, flow))
            g = self.refine(self.attend(g, [g, warped]))
        return OrderedDict((k, f + F.adaptive_max_pool2d(g, f.shape[-2:])) for k, f in target.items())


# ---------------------------------------------------------------------------------------------
# semantic and panoptic heads


class _DeformConvGN(nn.Module):
    def __init__(self, cin: int, cout: int, deformable: bool) -> None:
        super().__init__()
        from torchvision.ops import DeformConv2d

        self.deformable = deformable
        if deformable:
            self.offset = nn.Conv2d(cin, 18, 3, 1, 1)
            nn.init.zeros_(self.offset.weight)
            assert self.offset.bias is not None
            nn.init.zeros_(self.offset.bias)
            self.conv: nn.Module = DeformConv2d(cin, cout, 3, 1, 1, bias=False)
        else:
            self.conv = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.norm = nn.GroupNorm(min(32, cout // 4), cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x, self.offset(x)) if self.deformable else self.conv(x)
        return F.relu(self.norm(y))


class SemanticHead(nn.Module):
    """UPSNet's: shared convs on P2–P5, upsampled to stride 4, concatenated, 1×1 to the classes."""

    def __init__(self, cin: int, widths: tuple[int, int, int], num_classes: int, deformable: bool) -> None:
        super().__init__()
        layers, c = [], cin
        for w in widths:
            layers.append(_DeformConvGN(c, w, deformable))
            c = w
        self.convs = nn.Sequential(*layers)
        self.score = nn.Conv2d(4 * c, num_classes, 1)

    def forward(self, features: OrderedDict[str, torch.Tensor]) -> torch.Tensor:
        size = features["0"].shape[-2:]
        maps = [F.interpolate(self.convs(features[k]), size=size, mode="bilinear", align_corners=False)
                if k != "0" else self.convs(features[k]) for k in ("0", "1", "2", "3")]
        return self.score(torch.cat(maps, 1))


def paste_mask(mask_logits: torch.Tensor, box: torch.Tensor, h: int, w: int,
               ) -> tuple[torch.Tensor, tuple[slice, slice]]:
    """An ``m×m`` mask logit map resized (bilinear) to its box — the box's corners truncated to
    integer pixels, as the official code — and placed on an ``h×w`` zero canvas. Returns the
    canvas and the box's (rows, columns) within it."""
    x1, y1, x2, y2 = (int(v) for v in box.tolist())
    x1, y1 = max(x1, 0), max(y1, 0)
    x2, y2 = min(max(x2, x1), w - 1), min(max(y2, y1), h - 1)
    canvas = mask_logits.new_zeros(h, w)
    if x1 >= w or y1 >= h:
        return canvas, (slice(0, 0), slice(0, 0))
    rows, cols = slice(y1, y2 + 1), slice(x1, x2 + 1)
    canvas[rows, cols] = F.interpolate(mask_logits[None, None], size=(y2 - y1 + 1, x2 - x1 + 1),
                                       mode="bilinear", align_corners=False)[0, 0]
    return canvas, (rows, cols)


def panoptic_logits(semantic: torch.Tensor, stuff: Sequence[int], boxes: torch.Tensor,
                    classes: Sequence[int], mask_logits: torch.Tensor, *, unknown: bool = False,
                    thing_classes: Sequence[int] = ()) -> torch.Tensor:
    """UPSNet's panoptic head (no parameters) for one image.

    ``semantic`` ``C×h×w`` semantic logits; ``stuff`` the stuff classes' channels; ``boxes``
    ``N×4`` (x1, y1, x2, y2) in the logits' pixels; ``classes`` each instance's semantic channel;
    ``mask_logits`` ``N×m×m`` its class's mask logits. Returns ``(len(stuff) + N [+ 1])×h×w``:
    the stuff logits, then per instance its mask logits resized into its box plus its class's
    semantic logits inside the box (both 0 outside), then with ``unknown`` the max over
    ``thing_classes``' semantic logits minus the max over the instance channels."""
    h, w = semantic.shape[-2:]
    channels = [semantic[list(stuff)]]
    for i in range(len(boxes)):
        mask, (rows, cols) = paste_mask(mask_logits[i].to(semantic.dtype), boxes[i], h, w)
        seg = torch.zeros_like(mask)
        seg[rows, cols] = semantic[classes[i], rows, cols]
        channels.append((mask + seg)[None])
    out = torch.cat(channels, 0)
    if unknown:
        thing_max = semantic[list(thing_classes)].amax(0) if len(thing_classes) else semantic.new_zeros(h, w)
        inst_max = out[len(stuff):].amax(0) if len(boxes) else semantic.new_zeros(h, w)
        out = torch.cat([out, (thing_max - inst_max)[None]], 0)
    return out


# ---------------------------------------------------------------------------------------------


class TrackHead(nn.Module):
    """MaskTrack R-CNN's head: RoI features → FC → ReLU → FC. ``forward`` returns the embeddings
    normalised and multiplied by √scale, so that their dot product is ``scale × cosine``: the
    paper's cosine affinity with a temperature. (The official code takes the raw dot product; with
    AdamW, the engine's optimiser, one step on its 12544-wide input layer made those products
    explode — the track loss of ``vpsnet-r50`` went from 2.1 to 14.7 in one step at lr 1e-4.)"""

    def __init__(self, cin: int, channels: int, scale: float = 10.0) -> None:
        super().__init__()
        self.scale = scale
        self.fc1 = nn.Linear(cin, channels)
        self.fc2 = nn.Linear(channels, channels)
        for fc in (self.fc1, self.fc2):
            nn.init.normal_(fc.weight, 0, 0.01)
            nn.init.zeros_(fc.bias)

    def forward(self, rois: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.fc2(F.relu(self.fc1(rois.flatten(1)))), dim=1) * self.scale ** 0.5

    @staticmethod
    def affinity(query: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """``Q×(1 + R)`` logits: a zero "new object" column, then the dot products of the
        embeddings (``scale × cosine`` for the head's)."""
        dots = query @ reference.T
        return torch.cat([dots.new_zeros(len(query), 1), dots], 1)


@dataclass
class FrameTargets:
    """One frame's ground truth for the detector: ``boxes`` ``N×4`` (x1, y1, x2, y2), ``labels``
    (class id + 1), ``masks`` ``N×H×W`` uint8, ``ids`` (panoptic ids, the
    track identity), ``semantic`` ``H×W`` (class, -100 void), ``panoptic`` ``H×W`` (stuff class
    channel index or ``len(stuff) + instance``; -100 ignored) at stride 4."""

    boxes: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    ids: torch.Tensor
    semantic: torch.Tensor
    panoptic: torch.Tensor


@dataclass
class Detections:
    """One frame at inference: ``boxes``, ``scores``, ``labels`` (class id + 1),
    ``mask_logits`` ``N×28×28`` (its class), ``embeddings`` (track head; None without Track),
    ``semantic`` ``C×H×W`` logits at the network input's resolution."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    mask_logits: torch.Tensor
    embeddings: torch.Tensor | None
    semantic: torch.Tensor


class VPSNet(nn.Module):
    """The detector predicts every class (label = class id + 1; only the label space's thing
    classes ever have boxes), so the network needs no label space; the thing / stuff split is
    given to the losses and the panoptic inference."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, config: VPSNetConfig, num_classes: int) -> None:
        super().__init__()
        from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
        from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
        from torchvision.models.detection.roi_heads import RoIHeads
        from torchvision.models.detection.rpn import AnchorGenerator, RegionProposalNetwork, RPNHead
        from torchvision.ops import MultiScaleRoIAlign

        self.config, self.num_classes = config, num_classes
        c = config.fpn_channels
        self.backbone = BackboneFPN(config)
        self.neck = Neck(config)
        anchors = AnchorGenerator(tuple((s,) for s in config.anchor_sizes), ((0.5, 1.0, 2.0),) * 5)
        self.rpn = RegionProposalNetwork(
            anchors, RPNHead(c, 3), 0.7, 0.3, 256, 0.5,
            dict(training=config.rpn_pre_nms[0], testing=config.rpn_pre_nms[1]),
            dict(training=config.rpn_post_nms[0], testing=config.rpn_post_nms[1]), 0.7)
        levels = ["0", "1", "2", "3"]
        box_pool = MultiScaleRoIAlign(levels, 7, 2)
        self.roi_heads = RoIHeads(
            box_pool, TwoMLPHead(c * 49, config.box_head_channels),
            FastRCNNPredictor(config.box_head_channels, num_classes + 1),
            0.5, 0.5, config.box_batch, 0.25, None,
            0.05, 0.5, config.max_detections,
            mask_roi_pool=MultiScaleRoIAlign(levels, 14, 2),
            mask_head=MaskRCNNHeads(c, (config.mask_channels,) * 4, 1),
            mask_predictor=MaskRCNNPredictor(config.mask_channels, config.mask_channels, num_classes + 1))
        self.semantic_head = SemanticHead(c, config.semantic_channels, num_classes, config.deformable)
        if config.track:
            self.track_head = TrackHead(c * 49, config.track_channels, config.track_scale)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    # -- shared pieces ---------------------------------------------------------------------

    def features(self, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """FPN levels of ``N×3×H×W`` RGB in [0, 1] (H, W multiples of 32)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be N×3×H×W, got {tuple(images.shape)}")
        if images.shape[-1] % 32 or images.shape[-2] % 32:
            raise ValueError(f"image sides must be divisible by 32, got {tuple(images.shape[-2:])}")
        return self.backbone((images - self.mean) / self.std)

    def fused(self, target: OrderedDict[str, torch.Tensor],
              reference: OrderedDict[str, torch.Tensor] | None, flow: torch.Tensor | None,
              ) -> OrderedDict[str, torch.Tensor]:
        return self.neck(target, reference, flow)

    def embed(self, features: OrderedDict[str, torch.Tensor], boxes: list[torch.Tensor],
              sizes: list[tuple[int, int]]) -> torch.Tensor:
        rois = self.roi_heads.box_roi_pool(features, boxes, sizes)
        return self.track_head(rois)

    def _image_list(self, images: torch.Tensor):  # noqa: ANN202 - torchvision's ImageList
        from torchvision.models.detection.image_list import ImageList

        return ImageList(images, [tuple(images.shape[-2:])] * len(images))

    # -- training ----------------------------------------------------------------------------

    def forward(self, images: torch.Tensor, references: torch.Tensor | None = None,
                flow: torch.Tensor | None = None, targets: Sequence[FrameTargets] | None = None,
                reference_targets: Sequence[FrameTargets] | None = None, *,
                stuff: Sequence[int] = (), things: Sequence[int] = ()) -> dict[str, torch.Tensor]:
        """Training losses (``targets`` given) for target ``images`` ``N×3×H×W`` with their
        reference frames (``references``, and ``flow`` ``N×2×H/4×W/4`` target → reference) and
        the reference frames' ground truth (for Track). Without targets: ``predict(images)``."""
        from torchvision.models.detection.roi_heads import fastrcnn_loss, maskrcnn_loss

        if targets is None:
            return self.predict(images)
        cfg = self.config
        sizes = [(int(images.shape[-2]), int(images.shape[-1]))] * len(images)
        raw = self.features(images)
        ref_raw = self.features(references) if references is not None and (cfg.fuse or cfg.track) else None
        feats = self.fused(raw, ref_raw, flow) if cfg.fuse else self.neck(raw)
        tv_targets = [{"boxes": t.boxes, "labels": t.labels, "masks": t.masks} for t in targets]
        proposals, rpn_losses = self.rpn(self._image_list(images), feats, tv_targets)
        heads = self.roi_heads
        proposals, matched, labels, regression = heads.select_training_samples(proposals, tv_targets)
        box_feats = heads.box_head(heads.box_roi_pool(feats, proposals, sizes))
        class_logits, box_regression = heads.box_predictor(box_feats)
        loss_cls, loss_box = fastrcnn_loss(class_logits, box_regression, labels, regression)
        positive = [torch.where(lab > 0)[0] for lab in labels]
        pos_boxes = [p[i] for p, i in zip(proposals, positive, strict=True)]
        pos_matched = [m[i] for m, i in zip(matched, positive, strict=True)]
        losses = dict(rpn_losses)
        losses.update(cls=loss_cls, box=loss_box)
        if sum(len(b) for b in pos_boxes):
            mask_logits = heads.mask_predictor(heads.mask_head(heads.mask_roi_pool(feats, pos_boxes, sizes)))
            losses["mask"] = maskrcnn_loss(mask_logits, pos_boxes, [t.masks for t in targets],
                                           [t.labels for t in targets], pos_matched)
        else:
            losses["mask"] = class_logits.sum() * 0.0
        semantic = self.semantic_head(feats)
        sem_target = torch.stack([t.semantic for t in targets])
        up = F.interpolate(semantic.float(), size=sem_target.shape[-2:], mode="bilinear", align_corners=False)
        losses["semantic"] = (F.cross_entropy(up, sem_target, ignore_index=-100)
                              if (sem_target >= 0).any() else up.sum() * 0.0)
        losses["panoptic"] = 0.5 * self._panoptic_loss(feats, semantic, targets, sizes, stuff, things)
        if cfg.track:
            assert ref_raw is not None and reference_targets is not None
            query_feats = self.neck(raw) if cfg.disjoined else feats
            losses["track"] = 0.5 * self._track_loss(query_feats, ref_raw, pos_boxes, pos_matched,
                                                     targets, reference_targets, sizes)
        return losses

    def _panoptic_loss(self, feats: OrderedDict[str, torch.Tensor], semantic: torch.Tensor,
                       targets: Sequence[FrameTargets], sizes: list, stuff: Sequence[int],
                       things: Sequence[int]) -> torch.Tensor:
        heads = self.roi_heads
        boxes = [t.boxes for t in targets]
        total = semantic.sum() * 0.0
        counted = 0
        mask_logits = None
        if sum(len(b) for b in boxes):
            mask_logits = heads.mask_predictor(heads.mask_head(heads.mask_roi_pool(feats, boxes, sizes)))
        start = 0
        for i, t in enumerate(targets):
            n = len(t.boxes)
            if n:
                assert mask_logits is not None
                own = mask_logits[start : start + n][torch.arange(n), t.labels]
            else:
                own = semantic.new_zeros(0, 28, 28)
            start += n
            boxes_i, labels_i, target = t.boxes, t.labels, t.panoptic
            if self.config.unknown and n:
                # UPSNet: 30 % of the boxes dropped at random, their pixels the unknown channel
                keep = torch.rand(n, device=own.device) < 0.7
                index = torch.cumsum(keep.long(), 0) - 1
                n_kept = int(keep.sum())
                remap = torch.where(keep, len(stuff) + index, torch.full_like(index, len(stuff) + n_kept))
                is_inst = target >= len(stuff)
                target = target.clone()
                target[is_inst] = remap[target[is_inst] - len(stuff)]
                boxes_i, labels_i, own = boxes_i[keep], labels_i[keep], own[keep]
            classes = (labels_i - 1).tolist()
            logits = panoptic_logits(semantic[i], stuff, boxes_i / 4.0, classes, own,
                                     unknown=self.config.unknown, thing_classes=things)
            if (target >= 0).any():
                total = total + F.cross_entropy(logits[None].float(), target[None], ignore_index=-100)
                counted += 1
        return total / max(counted, 1)

    def _track_loss(self, query_feats: OrderedDict[str, torch.Tensor],
                    ref_feats: OrderedDict[str, torch.Tensor], pos_boxes: list[torch.Tensor],
                    pos_matched: list[torch.Tensor], targets: Sequence[FrameTargets],
                    references: Sequence[FrameTargets], sizes: list) -> torch.Tensor:
        total, count = query_feats["0"].sum() * 0.0, 0
        for i, (boxes, matched) in enumerate(zip(pos_boxes, pos_matched, strict=True)):
            ref = references[i]
            if len(boxes) == 0 or len(ref.boxes) == 0:
                continue
            q = self.embed(OrderedDict((k, v[i : i + 1]) for k, v in query_feats.items()), [boxes], sizes[:1])
            r = self.embed(OrderedDict((k, v[i : i + 1]) for k, v in ref_feats.items()), [ref.boxes], sizes[:1])
            ids = targets[i].ids[matched]  # the identity of each positive proposal's object
            hit = ids[:, None] == ref.ids[None]  # Q×R
            label = torch.where(hit.any(1), hit.float().argmax(1) + 1, torch.zeros_like(ids))
            total = total + F.cross_entropy(TrackHead.affinity(q, r).float(), label)
            count += 1
        return total / max(count, 1)

    # -- inference ---------------------------------------------------------------------------

    @torch.no_grad()
    def predict(self, frames: torch.Tensor) -> dict[str, Any]:
        """``frames`` ``T×3×H×W``, consecutive frames of one video, each with the one before as
        its reference (the first with itself; no flow given: zero): per frame the detections'
        ``boxes``, ``scores``, ``labels`` and the ``semantic`` logits (for benchmarks and shape
        checks; ``vpseg segment`` goes through the family's segmenter, with optical flow)."""
        out: dict[str, Any] = {"boxes": [], "scores": [], "labels": [], "semantic": []}
        previous = None
        for t in range(len(frames)):
            x = frames[t : t + 1]
            raw = self.features(x)
            flow = x.new_zeros(1, 2, x.shape[-2] // 4, x.shape[-1] // 4) if self.config.fuse else None
            det = self.detect(x, raw, previous if previous is not None else raw, flow)
            previous = raw
            for key in ("boxes", "scores", "labels", "semantic"):
                out[key].append(getattr(det, key))
        return out

    @torch.no_grad()
    def detect(self, images: torch.Tensor, raw: OrderedDict[str, torch.Tensor],
               reference: OrderedDict[str, torch.Tensor] | None, flow: torch.Tensor | None,
               ) -> Detections:
        """One frame (``images`` ``1×3×H×W``, its FPN features ``raw``; the reference's and the
        flow for Fuse): detections after class-agnostic NMS and the score threshold, their mask
        logits and track embeddings, and the semantic logits."""
        from torchvision.ops import boxes as box_ops

        cfg = self.config
        sizes = [(int(images.shape[-2]), int(images.shape[-1]))]
        feats = self.fused(raw, reference, flow) if cfg.fuse else self.neck(raw)
        proposals, _ = self.rpn(self._image_list(images), feats)
        heads = self.roi_heads
        class_logits, box_regression = heads.box_predictor(
            heads.box_head(heads.box_roi_pool(feats, proposals, sizes)))
        boxes, scores, labels = heads.postprocess_detections(class_logits, box_regression, proposals, sizes)
        boxes, scores, labels = boxes[0], scores[0], labels[0]
        keep = scores > cfg.score_threshold
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = box_ops.nms(boxes, scores, cfg.nms_threshold)[: cfg.max_detections]  # class-agnostic
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        if len(boxes):
            logits = heads.mask_predictor(heads.mask_head(heads.mask_roi_pool(feats, [boxes], sizes)))
            mask_logits = logits[torch.arange(len(boxes)), labels]
        else:
            mask_logits = boxes.new_zeros(0, 28, 28)
        embeddings = None
        if cfg.track:
            track_feats = self.neck(raw) if cfg.disjoined else feats
            embeddings = self.embed(track_feats, [boxes], sizes)
        semantic = F.interpolate(self.semantic_head(feats), size=images.shape[-2:], mode="bilinear",
                                 align_corners=False)[0]
        return Detections(boxes, scores, labels, mask_logits, embeddings, semantic)

    def panoptic(self, det: Detections, stuff: Sequence[int], things: Sequence[int],
                 stuff_area: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """UPSNet's inference for one frame: ``(semantic class map, instance map (0 none, k =
        detection index k − 1), kept detection indices)`` at the network input's size."""
        cfg = self.config
        sem = det.semantic
        h, w = sem.shape[-2:]
        order = torch.argsort(det.scores, descending=True).tolist()
        kept: list[int] = []
        covered: dict[int, torch.Tensor] = {}
        thing_set = set(things)
        for i in order:  # mask removal: empty or mostly covered by kept masks of its class
            if int(det.labels[i]) - 1 not in thing_set:
                continue  # the detector knows every class; only things become instances
            m, _ = paste_mask(det.mask_logits[i].to(sem.dtype), det.boxes[i], h, w)
            mask = m > 0
            area = int(mask.sum())
            if area == 0:
                continue
            label = int(det.labels[i])
            if label in covered and int((mask & covered[label]).sum()) > cfg.overlap_threshold * area:
                continue
            covered[label] = covered.get(label, torch.zeros_like(mask)) | mask
            kept.append(i)
        classes = [int(det.labels[i]) - 1 for i in kept]
        logits = panoptic_logits(sem, stuff, det.boxes[kept], classes, det.mask_logits[kept],
                                 unknown=cfg.unknown, thing_classes=things)
        winner = logits.argmax(0)
        semantic_argmax = sem.argmax(0)
        out_sem = torch.full((h, w), -1, dtype=torch.long, device=sem.device)
        instance = torch.zeros(h, w, dtype=torch.long, device=sem.device)
        is_stuff = winner < len(stuff)
        stuff_t = torch.tensor(stuff, dtype=torch.long, device=sem.device)
        out_sem[is_stuff] = stuff_t[winner[is_stuff]] if len(stuff) else -1
        final_kept: list[int] = []
        for j, i in enumerate(kept):
            region = winner == len(stuff) + j
            n = int(region.sum())
            if n == 0:
                continue
            votes = torch.bincount(semantic_argmax[region], minlength=self.num_classes)
            major = int(votes.argmax())
            if major != classes[j] and major in stuff and int(votes[major]) >= 0.5 * n:
                out_sem[region] = major  # the semantic head says stuff: the instance becomes it
                continue
            out_sem[region] = classes[j]
            final_kept.append(i)
            instance[region] = len(final_kept)
        for cls in stuff:  # small stuff segments become void
            region = out_sem == cls
            if 0 < int(region.sum()) < stuff_area:
                out_sem[region] = -1
        return out_sem.cpu().numpy(), instance.cpu().numpy(), final_kept
