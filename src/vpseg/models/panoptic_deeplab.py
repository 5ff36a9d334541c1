"""Panoptic-DeepLab (Cheng et al., CVPR 2020, "Panoptic-DeepLab: A Simple, Strong, and Fast
Baseline for Bottom-Up Panoptic Segmentation") and Motion-DeepLab (Weber et al., NeurIPS 2021
Datasets and Benchmarks, "STEP: Segmenting and Tracking Every Pixel", baseline B4): network,
training targets, losses and post-processing.

Panoptic-DeepLab is bottom-up: one network predicts, per pixel, semantic logits, a class-agnostic
instance-centre heatmap and an offset from the pixel to the centre of its instance. Thing pixels
are grouped to the nearest detected centre after shifting them by their offset, and each group
takes the majority class of its pixels. Motion-DeepLab feeds the network the current frame, the
previous frame and the previous frame's centre heatmap (7 input channels) and adds a fourth head
that regresses, per pixel, the offset to its instance's centre *in the previous frame*, which
links instances across frames.

Layer by layer this follows the official deeplab2 code (``model/decoder/panoptic_deeplab.py``,
``model/decoder/aspp.py``, ``model/decoder/motion_deeplab_decoder.py``) and its configs
(``configs/cityscapes/panoptic_deeplab/resnet50_os32*``, ``configs/kitti/motion_deeplab/``):

* dual ASPP, dual decoder: a semantic and an instance branch, each with its own ASPP (1×1 conv,
  three 3×3 atrous convs, image pooling; 256 channels in both branches, as deeplab2's instance
  override keeps the ASPP width; concatenated, projected by a 1×1 conv, dropout 0.1) on the
  last backbone feature, and its own decoder, which fuses the stride-8 then the stride-4 backbone
  features (1×1 projections to 64, 32 channels for the semantic branch and 32, 16 for the
  instance branch; bilinear upsampling, concatenation, one 5×5 depthwise-separable conv to the
  decoder width, 256 semantic / 128 instance);
* heads: a 5×5 depthwise-separable conv (256 semantic, 32 instance) and a 1×1 conv: semantic
  logits, centre heatmap (1 channel, raw: regressed with MSE, no sigmoid), offsets (dy, dx) and,
  for Motion-DeepLab, previous-frame offsets (a fourth head on the instance decoder);
* every convolution but the heads' last is followed by batch norm and ReLU;
* predictions at stride 4 are upsampled bilinearly to the input size; offsets are multiplied
  by the upsampling factor so that they are in input pixels (deeplab2 ``resize_and_rescale_
  offsets``).

Output stride: the paper dilates the last ResNet stage (output stride 16, ASPP rates 6, 12, 18);
deeplab2's ResNet-50 Cityscapes and KITTI-STEP configs run at output stride 32 with rates 3, 6,
9. ``panoptic-deeplab-r50`` follows the paper (a torchvision ResNet-50 built in this file with
``replace_stride_with_dilation=[False, False, True]``); ``motion-deeplab-r50`` follows deeplab2's
KITTI-STEP Motion-DeepLab config (output stride 32). The output stride changes no parameter.

Parameter count. The Panoptic-DeepLab paper's own tables were not at hand; the published figure
for its ResNet-50 network is in Axial-DeepLab (Wang et al., ECCV 2020, arXiv 2003.07853), Table 6
(Cityscapes val): Panoptic-DeepLab with "ResNet-50 (our impl.)" and ASPP, output stride 16,
**30.0M** parameters (24.8M without ASPP). That difference, 5.2M for two ASPPs, is what two
256-wide ASPPs with depthwise-separable atrous convs cost (3.0M each on 2048 channels; plain
3×3 atrous convs would cost 15.5M each), so ``panoptic-deeplab-r50`` uses separable ones
(``aspp_separable``): 29,943,046 parameters with 19 classes, 0.2 % below the published figure
(``tests/test_panoptic_deeplab.py``). The tiny configurations keep plain atrous convs.

Targets (deeplab2 ``data/sample_generator.py``), per frame, from panoptic ids
``class * label_divisor + instance``:

* semantic: the class id; void (the ignore label, or any id not in the label space) is ``-1``
  (``IGNORE_INDEX``); crowd regions (thing class, instance 0) keep their class;
* semantic weight: 1, ``small_instance_weight`` (3) on the pixels of thing instances smaller
  than ``small_instance_area`` (4096) pixels, 0 on void;
* centre: per thing instance (instance id > 0), a Gaussian (sigma 8) at the rounded centre of
  mass of its pixels, cut off 3·sigma + 1 pixels from the centre; the maximum where several
  overlap; peak value 1;
* centre weight: 0 on void and crowd pixels, 1 elsewhere (stuff included);
* offset: centre minus pixel (dy, dx, whole pixels, as the centres are rounded) on the pixels of
  thing instances, 0 elsewhere; offset weight 1 there, 0 elsewhere (crowd, void, stuff);
* Motion-DeepLab (``previous``): the previous frame's centre heatmap (the 7th input channel) and,
  for each current instance whose panoptic id (class and track id) is also in the previous
  frame, the offset from each of its current pixels to its centre *in the previous frame*
  (rounded); instances absent from the previous frame get offset 0 and weight 0. In training
  deeplab2 jitters the previous centres (Gaussian noise of 5 % of the box size, plus a second,
  false-positive peak with probability 0.2); ``prev_noise`` (a ``torch.Generator``) does the
  same, the previous offsets then pointing to the jittered centres, as in deeplab2. deeplab2
  weights the previous offsets where they are non-zero; here every pixel of a matched instance
  has weight 1 (the pixel on the previous centre itself included).

Losses (deeplab2 ``model/loss/base_loss.py``, weights of its ResNet-50 configs): bootstrapped
cross-entropy on the semantic logits (per-pixel loss times weight, the top 20 % per image kept),
MSE on the centre heatmap, L1 on the offsets (mean of the two channels) and on the previous
offsets, all weighted per pixel. Each is normalised per image by the number of its non-zero
weighted per-pixel losses (among the top k for the cross-entropy; 0 when there are none), then
averaged over the batch; the weighted sum is the total (1, 200, 0.01, 0.01).

Post-processing (deeplab2 ``model/post_processor/panoptic_deeplab.py``): semantic argmax; centre
heatmap thresholded (> 0.1), keypoint NMS by max pooling (7×7, the paper's; deeplab2's Cityscapes
config uses 13), the ``top_k`` strongest peaks (200) kept; thing pixels (argmax a thing class)
grouped to the nearest centre after adding their offset; a group's class is the majority of its
pixels' argmax classes; groups without pixels are dropped; stuff classes covering fewer than
``stuff_area`` pixels outside instances become void (deeplab2's ``stuff_area_limit``: default 0,
2048 in its Cityscapes config at 1025×2049, 0 for KITTI-STEP; 64 here for ~128×256 frames). An
instance's score is its centre's heatmap value (deeplab2); ``semantic_score`` multiplies it by
the mean softmax probability of the instance's class over its pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vpseg.core.labels import LabelSpace
from vpseg.models.backbones import Backbone, ResNetBackbone, build_backbone
from vpseg.models.layers import ConvBN
from vpseg.models.registry import total_and_parts

__all__ = [
    "DeepLabConfig",
    "CONFIGS",
    "PanopticDeepLab",
    "build_deeplab",
    "deeplab_targets",
    "center_heatmap",
    "DeepLabLossWeights",
    "DeepLabLoss",
    "DeepLabPost",
    "DeepLabPrediction",
    "postprocess",
]

#: Semantic target of void pixels (``F.cross_entropy(ignore_index=-1)``).
IGNORE_INDEX = -1


@dataclass(frozen=True)
class DeepLabConfig:
    """Sizes of a Panoptic-DeepLab / Motion-DeepLab network; ``CONFIGS`` holds the named ones.
    Defaults are the published ResNet-50 ones (deeplab2 configs, the paper's output stride 16)."""

    backbone: str = "resnet50"
    motion: bool = False  # Motion-DeepLab: 7 input channels, previous-offset head
    output_stride: int = 16  # 16: last ResNet-50 stage dilated (the paper); 32: as built
    aspp_channels: int = 256  # both branches (deeplab2 keeps it for the instance branch)
    atrous_rates: tuple[int, int, int] = (6, 12, 18)
    aspp_dropout: float = 0.1
    # atrous convs of the ASPPs depthwise-separable (depthwise 3×3 dilated + pointwise, as
    # DeepLabv3+); what the published ResNet-50 parameter count implies (module docstring)
    aspp_separable: bool = False
    semantic_decoder: int = 256
    instance_decoder: int = 128
    semantic_low_level: tuple[int, int] = (64, 32)  # projections of the stride-8, stride-4 features
    instance_low_level: tuple[int, int] = (32, 16)
    semantic_head: int = 256
    instance_head: int = 32  # centre, offset and previous-offset heads
    kernel: int = 5  # depthwise kernel of the decoder fusions and the heads


CONFIGS: dict[str, DeepLabConfig] = {
    "panoptic-deeplab-r50": DeepLabConfig(aspp_separable=True),
    "panoptic-deeplab-tiny": DeepLabConfig(
        backbone="tiny", output_stride=32, aspp_channels=64, atrous_rates=(2, 4, 6),
        semantic_decoder=64, instance_decoder=48, semantic_low_level=(32, 16),
        instance_low_level=(16, 8), semantic_head=64, instance_head=32, kernel=5),
    # deeplab2 configs/kitti/motion_deeplab/resnet50_os32.textproto
    "motion-deeplab-r50": DeepLabConfig(motion=True, output_stride=32, atrous_rates=(3, 6, 9),
                                        aspp_separable=True),
}
CONFIGS["motion-deeplab-tiny"] = replace(CONFIGS["panoptic-deeplab-tiny"], motion=True)


# -- network -------------------------------------------------------------------------------


class _DilatedResNet50(ResNetBackbone):
    """torchvision ResNet-50 (``weights=None``) with its last stage dilated: output stride 16.
    Same module names as ``ResNetBackbone``, so ``load_backbone_weights`` fits it."""

    def __init__(self) -> None:
        Backbone.__init__(self)
        from torchvision.models import resnet50

        net = resnet50(weights=None, replace_stride_with_dilation=[False, False, True])
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.channels = (256, 512, 1024, 2048)
        self.stride2_channels = 64


def _build_backbone(cfg: DeepLabConfig) -> Backbone:
    if cfg.output_stride == 16:
        if cfg.backbone != "resnet50":
            raise ValueError(f"output stride 16 needs backbone 'resnet50', not {cfg.backbone!r}")
        return _DilatedResNet50()
    if cfg.output_stride != 32:
        raise ValueError(f"output_stride must be 16 or 32, not {cfg.output_stride}")
    return build_backbone(cfg.backbone)


def _widen_input(module: nn.Module, channels: int) -> None:
    """Replace the first convolution (3 input channels) by one with ``channels`` inputs. The
    first 3 keep the weights; the others start at 0, so that the network starts as the
    single-frame one (and an ImageNet initialisation stays meaningful)."""
    first = next(((n, m) for n, m in module.named_modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        raise ValueError("the backbone has no convolution")
    name, conv = first
    if conv.in_channels != 3 or conv.groups != 1:
        raise ValueError("the backbone's first convolution does not take an RGB image")
    wide = nn.Conv2d(channels, conv.out_channels, conv.kernel_size,  # type: ignore[arg-type]
                     conv.stride, conv.padding, conv.dilation,  # type: ignore[arg-type]
                     bias=conv.bias is not None)
    with torch.no_grad():
        wide.weight.zero_()
        wide.weight[:, :3] = conv.weight
        if conv.bias is not None and wide.bias is not None:
            wide.bias.copy_(conv.bias)
    parent, _, leaf = name.rpartition(".")
    setattr(module.get_submodule(parent) if parent else module, leaf, wide)


def _separable(cin: int, cout: int, kernel: int) -> nn.Sequential:
    """Depthwise ``kernel×kernel`` conv + BN + ReLU, then pointwise conv + BN + ReLU."""
    return nn.Sequential(ConvBN(cin, cin, kernel, groups=cin, act="relu"),
                         ConvBN(cin, cout, 1, act="relu"))


class _ASPP(nn.Module):
    """1×1 conv, three 3×3 atrous convs and image pooling (1×1 conv), concatenated, projected by
    a 1×1 conv, dropout; every conv with BN and ReLU."""

    def __init__(self, cin: int, channels: int, rates: tuple[int, int, int], dropout: float,
                 separable: bool = False) -> None:
        super().__init__()
        branches: list[nn.Module] = [ConvBN(cin, channels, 1, act="relu")]
        for r in rates:
            if separable:
                branches.append(nn.Sequential(
                    nn.Conv2d(cin, cin, 3, padding=r, dilation=r, groups=cin, bias=False),
                    nn.BatchNorm2d(cin), nn.ReLU(inplace=True), ConvBN(cin, channels, 1, act="relu")))
            else:
                branches.append(nn.Sequential(
                    nn.Conv2d(cin, channels, 3, padding=r, dilation=r, bias=False),
                    nn.BatchNorm2d(channels), nn.ReLU(inplace=True)))
        self.branches = nn.ModuleList(branches)
        self.pool = nn.Conv2d(cin, channels, 1, bias=False)
        self.pool_norm = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.project = ConvBN(5 * channels, channels, 1, act="relu")
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the pooled branch: conv on the 1×1 average, then BN + ReLU on the map it is tiled to
        # (the same statistics, and a batch of one still trains)
        pooled = self.pool(x.mean((2, 3), keepdim=True)).expand(-1, -1, *x.shape[-2:])
        out = [b(x) for b in self.branches] + [self.pool_norm(pooled)]
        return self.drop(self.project(torch.cat(out, 1)))


class _Decoder(nn.Module):
    """One branch: ASPP on the last backbone feature, then fusion with the projected stride-8
    and stride-4 features (upsample, concatenate, 5×5 depthwise-separable conv)."""

    def __init__(self, chans: tuple[int, ...], cfg: DeepLabConfig, width: int,
                 low: tuple[int, int]) -> None:
        super().__init__()
        self.aspp = _ASPP(chans[3], cfg.aspp_channels, cfg.atrous_rates, cfg.aspp_dropout,
                          cfg.aspp_separable)
        self.project8 = ConvBN(chans[1], low[0], 1, act="relu")
        self.fuse8 = _separable(cfg.aspp_channels + low[0], width, cfg.kernel)
        self.project4 = ConvBN(chans[0], low[1], 1, act="relu")
        self.fuse4 = _separable(width + low[1], width, cfg.kernel)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = self.aspp(feats[3])
        for project, fuse, f in ((self.project8, self.fuse8, feats[1]),
                                 (self.project4, self.fuse4, feats[0])):
            x = F.interpolate(x, size=f.shape[-2:], mode="bilinear", align_corners=False)
            x = fuse(torch.cat([x, project(f)], 1))
        return x


def _head(cin: int, mid: int, cout: int, kernel: int) -> nn.Sequential:
    final = nn.Conv2d(mid, cout, 1)
    nn.init.trunc_normal_(final.weight, std=0.01, a=-0.02, b=0.02)
    nn.init.zeros_(final.bias)  # type: ignore[arg-type]
    return nn.Sequential(_separable(cin, mid, kernel), final)


class PanopticDeepLab(nn.Module):
    """Panoptic-DeepLab, or Motion-DeepLab with ``cfg.motion``.

    ``forward(images)``: ``B×3×H×W`` RGB in [0, 1] (Motion-DeepLab: ``B×7×H×W``, the current
    RGB, the previous RGB and the previous frame's centre heatmap in [0, 1]; RGB is normalised
    inside, the heatmap is not), H and W divisible by 32. Returns, all at the input size:
    ``semantic`` ``B×C×H×W`` logits, ``center`` ``B×1×H×W`` heatmap (raw), ``offset``
    ``B×2×H×W`` (dy, dx) in input pixels and, for Motion-DeepLab, ``prev_offset`` ``B×2×H×W``.
    """

    pixel_mean: torch.Tensor
    pixel_std: torch.Tensor

    def __init__(self, cfg: DeepLabConfig, num_classes: int) -> None:
        super().__init__()
        self.config, self.num_classes = cfg, num_classes
        self.backbone = _build_backbone(cfg)
        if cfg.motion:
            _widen_input(self.backbone, 7)
        chans = self.backbone.channels
        k = cfg.kernel
        self.semantic_decoder = _Decoder(chans, cfg, cfg.semantic_decoder, cfg.semantic_low_level)
        self.instance_decoder = _Decoder(chans, cfg, cfg.instance_decoder, cfg.instance_low_level)
        self.semantic_head = _head(cfg.semantic_decoder, cfg.semantic_head, num_classes, k)
        self.center_head = _head(cfg.instance_decoder, cfg.instance_head, 1, k)
        self.offset_head = _head(cfg.instance_decoder, cfg.instance_head, 2, k)
        self.prev_offset_head = (_head(cfg.instance_decoder, cfg.instance_head, 2, k)
                                 if cfg.motion else None)
        self.register_buffer("pixel_mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("pixel_std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    @property
    def input_channels(self) -> int:
        """3 (an RGB frame) or 7 (Motion-DeepLab: frame, previous frame, previous heatmap)."""
        return 7 if self.config.motion else 3

    def _normalise(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != self.input_channels:
            raise ValueError(f"expected B×{self.input_channels}×H×W images, got "
                             f"{tuple(images.shape)}")
        h, w = images.shape[-2:]
        if h % 32 or w % 32:
            raise ValueError(f"height and width must be divisible by 32, got {h}×{w}")
        norm = (images[:, :3] - self.pixel_mean) / self.pixel_std
        if not self.config.motion:
            return norm
        prev = (images[:, 3:6] - self.pixel_mean) / self.pixel_std
        return torch.cat([norm, prev, images[:, 6:7]], 1)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        h, w = images.shape[-2:]
        feats = self.backbone(self._normalise(images))
        sem = self.semantic_decoder(feats)
        inst = self.instance_decoder(feats)

        def up(x: torch.Tensor) -> torch.Tensor:
            return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)

        def up_offset(x: torch.Tensor) -> torch.Tensor:
            scale = x.new_tensor([h / x.shape[-2], w / x.shape[-1]]).view(1, 2, 1, 1)
            return up(x * scale)

        out = {"semantic": up(self.semantic_head(sem)), "center": up(self.center_head(inst)),
               "offset": up_offset(self.offset_head(inst))}
        if self.prev_offset_head is not None:
            out["prev_offset"] = up_offset(self.prev_offset_head(inst))
        return out


def build_deeplab(name_or_config: str | DeepLabConfig, num_classes: int) -> PanopticDeepLab:
    """A named configuration (``CONFIGS``) or a ``DeepLabConfig``; ``num_classes`` is
    ``label_space.max_id + 1``."""
    if isinstance(name_or_config, DeepLabConfig):
        return PanopticDeepLab(name_or_config, num_classes)
    if name_or_config not in CONFIGS:
        raise ValueError(f"unknown model {name_or_config!r}; known: {', '.join(CONFIGS)}")
    return PanopticDeepLab(CONFIGS[name_or_config], num_classes)


# -- targets -------------------------------------------------------------------------------


def _lut(ids: tuple[int, ...], size: int, device: torch.device) -> torch.Tensor:
    lut = torch.zeros(size, dtype=torch.bool, device=device)
    lut[[i for i in ids if i < size]] = True
    return lut


@dataclass
class _Instances:
    """The thing instances of one frame."""

    index: torch.Tensor  # H×W int64: the pixel's row below, -1 outside thing instances
    ids: torch.Tensor  # K panoptic ids, ascending
    center: torch.Tensor  # K×2 int64 (y, x): rounded centre of mass
    area: torch.Tensor  # K
    extent: torch.Tensor  # K×2 float: bounding-box height − 1, width − 1 (deeplab2's "size")


def _instances(pan: torch.Tensor, labels: LabelSpace) -> _Instances:
    div = labels.label_divisor
    cls, inst = pan // div, pan % div
    size = int(max(int(cls.max()) + 1, labels.max_id + 1))
    is_inst = _lut(labels.thing_ids, size, pan.device)[cls.clamp(min=0)] & (inst > 0)
    ids, inverse = torch.unique(pan[is_inst], return_inverse=True)
    index = torch.full_like(pan, -1)
    index[is_inst] = inverse
    k = len(ids)
    ys, xs = torch.nonzero(is_inst, as_tuple=True)
    area = torch.bincount(inverse, minlength=k)
    coords = torch.stack([ys, xs], 1).double()
    sums = torch.zeros(k, 2, dtype=torch.float64, device=pan.device).index_add_(0, inverse, coords)
    center = torch.round(sums / area.clamp(min=1)[:, None]).long()
    lo = torch.full((k, 2), float("inf"), dtype=torch.float64, device=pan.device)
    hi = torch.full((k, 2), -float("inf"), dtype=torch.float64, device=pan.device)
    lo = lo.scatter_reduce(0, inverse[:, None].expand(-1, 2), coords, "amin")
    hi = hi.scatter_reduce(0, inverse[:, None].expand(-1, 2), coords, "amax")
    return _Instances(index, ids, center, area, (hi - lo).float())


def _render(centers: torch.Tensor, shape: tuple[int, int], sigma: float,
            device: torch.device) -> torch.Tensor:
    """H×W heatmap: the maximum of Gaussians (peak 1) at ``centers`` (N×2, y, x), each cut off
    ``3·sigma + 1`` pixels from its centre (deeplab2's 6·sigma + 3 window)."""
    h, w = shape
    heat = torch.zeros(h, w, device=device)
    r = int(3 * sigma + 1)
    d = torch.arange(-r, r + 1, device=device, dtype=torch.float32)
    patch = torch.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2 * sigma**2))
    for cy, cx in centers.tolist():  # one window per instance (not per pixel)
        y0, y1, x0, x1 = max(cy - r, 0), min(cy + r + 1, h), max(cx - r, 0), min(cx + r + 1, w)
        if y0 >= y1 or x0 >= x1:
            continue
        window = patch[y0 - cy + r : y1 - cy + r, x0 - cx + r : x1 - cx + r]
        heat[y0:y1, x0:x1] = torch.maximum(heat[y0:y1, x0:x1], window)
    return heat


def center_heatmap(panoptic: torch.Tensor, labels: LabelSpace, sigma: float = 8.0) -> torch.Tensor:
    """``H×W`` centre heatmap of one frame's panoptic ids: the ``center`` target of
    ``deeplab_targets`` alone (Motion-DeepLab renders its previous prediction so at inference)."""
    found = _instances(panoptic.long(), labels)
    return _render(found.center, tuple(panoptic.shape[-2:]), sigma, panoptic.device)  # type: ignore[arg-type]


def _noisy_centers(found: _Instances, shape: tuple[int, int], gen: torch.Generator,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """deeplab2's previous-frame centres for training: each centre moved by N(0, 1) · 5 % of the
    instance's box size, and with probability 0.2 a false-positive peak moved as much again.
    Returns the jittered centres (K×2) and all peaks to render."""
    k = len(found.ids)
    limit = torch.tensor(shape, device=device) - 1

    def jitter(c: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(k, 2, generator=gen).to(device) * 0.05 * found.extent
        return torch.round(c.float() + noise).long().clamp(min=torch.zeros_like(limit), max=limit)

    moved = jitter(found.center)
    extra = jitter(moved)[(torch.rand(k, generator=gen) < 0.2).to(device)]
    return moved, torch.cat([moved, extra])


def deeplab_targets(panoptic: torch.Tensor, labels: LabelSpace, *, sigma: float = 8.0,
                    previous: torch.Tensor | None = None, small_instance_area: int = 4096,
                    small_instance_weight: float = 3.0,
                    prev_noise: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Panoptic-DeepLab training targets of ``B×H×W`` panoptic ids (module docstring):
    ``semantic`` (``B×H×W`` int64, void ``-1``), ``semantic_weight``, ``center``,
    ``center_weight``, ``offset`` (``B×2×H×W``, dy, dx), ``offset_weight`` (``B×1×H×W``) and,
    given the previous frame's ids ``previous``, ``prev_center`` (``B×1×H×W``, Motion-DeepLab's
    7th input channel), ``prev_offset`` and ``prev_offset_weight``. ``prev_noise`` jitters the
    previous centres as deeplab2 does in training."""
    if panoptic.ndim != 3:
        raise ValueError(f"expected B×H×W panoptic ids, got {tuple(panoptic.shape)}")
    if previous is not None and previous.shape != panoptic.shape:
        raise ValueError("previous must have the shape of panoptic")
    pan = panoptic.long()
    b, h, w = pan.shape
    dev = pan.device
    div = labels.label_divisor
    cls = pan // div
    size = int(max(int(cls.max()) + 1 if pan.numel() else 1, labels.max_id + 1))
    cls_c = cls.clamp(min=0)
    valid = _lut(labels.ids, size, dev)[cls_c] & (cls >= 0)
    crowd = _lut(labels.thing_ids, size, dev)[cls_c] & (pan % div == 0)
    semantic = torch.where(valid, cls, torch.full_like(cls, IGNORE_INDEX))
    sem_weight = valid.float()
    center = torch.zeros(b, 1, h, w, device=dev)
    offset = torch.zeros(b, 2, h, w, device=dev)
    offset_weight = torch.zeros(b, 1, h, w, device=dev)
    prev_center = torch.zeros(b, 1, h, w, device=dev)
    prev_offset = torch.zeros(b, 2, h, w, device=dev)
    prev_weight = torch.zeros(b, 1, h, w, device=dev)
    yx = torch.stack(torch.meshgrid(torch.arange(h, device=dev), torch.arange(w, device=dev),
                                    indexing="ij"))  # 2×H×W
    for i in range(b):
        found = _instances(pan[i], labels)
        inside = found.index >= 0
        idx = found.index[inside]
        small = (found.area < small_instance_area)[idx]
        sem_weight[i][inside] = torch.where(small, small_instance_weight, 1.0)
        center[i, 0] = _render(found.center, (h, w), sigma, dev)
        offset[i][:, inside] = (found.center[idx].T - yx[:, inside]).float()
        offset_weight[i, 0][inside] = 1.0
        if previous is None:
            continue
        before = _instances(previous[i].long(), labels)
        prev_centers, peaks = before.center, before.center
        if prev_noise is not None and len(before.ids):
            prev_centers, peaks = _noisy_centers(before, (h, w), prev_noise, dev)
        prev_center[i, 0] = _render(peaks, (h, w), sigma, dev)
        if len(before.ids) and len(found.ids):
            pos = torch.searchsorted(before.ids, found.ids).clamp(max=len(before.ids) - 1)
            matched = before.ids[pos] == found.ids  # K: the track is in the previous frame
            has = inside.clone()
            has[inside] = matched[idx]
            target = prev_centers[pos[found.index[has]]]
            prev_offset[i][:, has] = (target.T - yx[:, has]).float()
            prev_weight[i, 0][has] = 1.0
    out = {"semantic": semantic, "semantic_weight": sem_weight, "center": center,
           "center_weight": (valid & ~crowd).float()[:, None], "offset": offset,
           "offset_weight": offset_weight}
    if previous is not None:
        out.update(prev_center=prev_center, prev_offset=prev_offset, prev_offset_weight=prev_weight)
    return out


# -- loss ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeepLabLossWeights:
    """Loss weights of deeplab2's Panoptic-DeepLab / Motion-DeepLab ResNet-50 configs
    (Cityscapes, KITTI-STEP): cross-entropy 1 on the hardest 20 % of the pixels, centre MSE 200,
    offset L1 0.01, previous-offset L1 0.01."""

    semantic: float = 1.0
    center: float = 200.0
    offset: float = 0.01
    prev_offset: float = 0.01
    top_k_percent: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 < self.top_k_percent <= 1.0:
            raise ValueError("top_k_percent must lie in (0, 1]")


def _per_image_mean(loss: torch.Tensor, top_k: float = 1.0) -> torch.Tensor:
    """deeplab2's normalisation: per image, the top ``top_k`` share of the per-pixel losses (all
    of them for 1), summed and divided by how many of those are non-zero; batch mean."""
    flat = loss.flatten(1)
    if top_k < 1.0:
        k = max(int(round(top_k * flat.shape[1])), 1)
        flat = flat.topk(k, dim=1, sorted=False).values
    count = (flat != 0).sum(1).clamp(min=1)
    return (flat.sum(1) / count).mean()


class DeepLabLoss:
    """``loss(outputs, targets)`` -> (total, named weighted parts as floats, and ``total``):
    bootstrapped cross-entropy, centre MSE, offset L1 and, when both sides have them,
    previous-offset L1 (module docstring)."""

    def __init__(self, weights: DeepLabLossWeights | None = None) -> None:
        self.weights = weights or DeepLabLossWeights()

    def __call__(self, outputs: dict[str, Any], targets: dict[str, torch.Tensor]
                 ) -> tuple[torch.Tensor, dict[str, float]]:
        wt = self.weights
        ce = F.cross_entropy(outputs["semantic"], targets["semantic"], ignore_index=IGNORE_INDEX,
                             reduction="none")
        parts = {
            "semantic": wt.semantic * _per_image_mean(ce * targets["semantic_weight"],
                                                      wt.top_k_percent),
            "center": wt.center * _per_image_mean(
                (outputs["center"] - targets["center"]) ** 2 * targets["center_weight"]),
            "offset": wt.offset * _per_image_mean(
                (outputs["offset"] - targets["offset"]).abs().mean(1, keepdim=True)
                * targets["offset_weight"]),
        }
        if "prev_offset" in outputs and "prev_offset" in targets:
            parts["prev_offset"] = wt.prev_offset * _per_image_mean(
                (outputs["prev_offset"] - targets["prev_offset"]).abs().mean(1, keepdim=True)
                * targets["prev_offset_weight"])
        return total_and_parts(parts)


# -- post-processing -----------------------------------------------------------------------


@dataclass(frozen=True)
class DeepLabPost:
    """Post-processing settings: the paper's centre threshold 0.1, 7×7 NMS and top 200 centres;
    ``stuff_area`` scaled down for ~128×256 frames (deeplab2: 2048 at Cityscapes' 1025×2049, 0
    for KITTI-STEP and by default); ``semantic_score`` multiplies each instance's centre score by
    its mean class probability (deeplab2: centre score only)."""

    center_threshold: float = 0.1
    nms_kernel: int = 7
    top_k: int = 200
    stuff_area: int = 64
    semantic_score: bool = False

    def __post_init__(self) -> None:
        if self.nms_kernel < 1 or self.nms_kernel % 2 == 0:
            raise ValueError("nms_kernel must be a positive odd number")
        if self.top_k < 1:
            raise ValueError("top_k must be >= 1")


@dataclass
class DeepLabPrediction:
    """One frame's panoptic prediction.

    ``semantic`` ``H×W`` int64: the argmax class, stuff classes covering fewer than
    ``stuff_area`` pixels outside instances set to the ignore label; ``instance`` ``H×W`` int32:
    0 outside thing instances, k on the pixels of the k-th instance (ordered by score); per
    instance (K): ``category`` (majority class), ``score`` (centre heatmap value) and ``center``
    (K×2, y, x of the detected centre)."""

    semantic: np.ndarray
    instance: np.ndarray
    category: np.ndarray
    score: np.ndarray
    center: np.ndarray

    def panoptic(self, labels: LabelSpace) -> np.ndarray:
        """``H×W`` int64 panoptic ids: instance k is ``category[k-1] · divisor + k``; stuff
        ``class · divisor``; thing pixels outside instances and small stuff regions are void."""
        div = labels.label_divisor
        out = self.semantic.astype(np.int64) * div
        out[labels.thing_lut(max(int(self.semantic.max()) + 1, labels.max_id + 1))[self.semantic]
            & (self.instance == 0)] = labels.ignore_label * div
        inside = self.instance > 0
        k = self.instance[inside].astype(np.int64)
        out[inside] = self.category[k - 1] * div + k
        return out


def _nearest_center(points: torch.Tensor, centers: torch.Tensor,
                    chunk: int = 1 << 22) -> torch.Tensor:
    """Index of the nearest of ``centers`` (K×2) for each of ``points`` (N×2), in chunks of
    about ``chunk`` distances."""
    step = max(chunk // max(len(centers), 1), 1)
    return torch.cat([torch.cdist(points[i : i + step], centers).argmin(1)
                      for i in range(0, len(points), step)]) if len(points) else \
        torch.zeros(0, dtype=torch.long, device=points.device)


@torch.no_grad()
def postprocess(semantic_logits: torch.Tensor, center: torch.Tensor, offset: torch.Tensor,
                labels: LabelSpace, post: DeepLabPost = DeepLabPost()) -> DeepLabPrediction:  # noqa: B008
    """Panoptic-DeepLab's grouping of one frame's ``C×H×W`` semantic logits, ``1×H×W`` centre
    heatmap and ``2×H×W`` offsets (module docstring)."""
    logits, heat, off = semantic_logits.float(), center.float()[0], offset.float()
    c, h, w = logits.shape
    dev = logits.device
    sem = logits.argmax(0)
    thing = _lut(labels.thing_ids, c, dev)[sem]
    # keypoint NMS: keep the local maxima (max pooling) above the threshold, the top k of them
    heat = torch.where(heat > post.center_threshold, heat, torch.zeros_like(heat))
    pooled = F.max_pool2d(heat[None, None], post.nms_kernel, 1, post.nms_kernel // 2)[0, 0]
    peaks = (heat == pooled) & (heat > 0)
    cy, cx = torch.nonzero(peaks, as_tuple=True)
    scores = heat[cy, cx]
    order = torch.argsort(scores, descending=True, stable=True)[: post.top_k]
    centers = torch.stack([cy[order], cx[order]], 1)
    scores = scores[order]
    instance = torch.zeros(h, w, dtype=torch.long, device=dev)
    if len(centers) and bool(thing.any()):
        ys, xs = torch.nonzero(thing, as_tuple=True)
        moved = torch.stack([ys + off[0, ys, xs], xs + off[1, ys, xs]], 1)
        instance[ys, xs] = _nearest_center(moved, centers.float()) + 1
    # drop centres without pixels, renumber 1..K in score order
    counts = torch.bincount(instance.flatten(), minlength=len(centers) + 1)[1:]
    kept = torch.nonzero(counts > 0).flatten()
    renumber = torch.zeros(len(centers) + 1, dtype=torch.long, device=dev)
    renumber[kept + 1] = torch.arange(1, len(kept) + 1, device=dev)
    instance = renumber[instance]
    centers, scores = centers[kept], scores[kept]
    k = len(kept)
    inside = instance > 0
    votes = torch.bincount((instance[inside] - 1) * c + sem[inside], minlength=k * c).view(k, c)
    category = votes.argmax(1)
    if post.semantic_score and k:
        iy, ix = torch.nonzero(inside, as_tuple=True)
        member = instance[iy, ix] - 1
        prob = logits.softmax(0)[category[member], iy, ix]
        mean = torch.zeros(k, device=dev).index_add_(0, member, prob) / counts[kept].float()
        scores = scores * mean
    # stuff classes covering fewer than stuff_area pixels outside instances become void
    semantic = sem.clone()
    rest = ~inside
    area = torch.bincount(sem[rest], minlength=c)
    small = (area < post.stuff_area) & ~_lut(labels.thing_ids, c, dev)
    semantic[rest & small[sem]] = labels.ignore_label
    return DeepLabPrediction(
        semantic=semantic.cpu().numpy().astype(np.int64),
        instance=instance.cpu().numpy().astype(np.int32),
        category=category.cpu().numpy().astype(np.int64),
        score=scores.double().cpu().numpy(),
        center=centers.double().cpu().numpy().reshape(k, 2),
    )
