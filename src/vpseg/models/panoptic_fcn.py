"""PanopticFCN (Li et al., CVPR 2021, "Fully Convolutional Networks for Panoptic Segmentation",
arXiv 2012.00720): network, training targets, losses and inference.

PanopticFCN represents every thing instance and every stuff class by a kernel (a D-vector) and
segments it by a 1×1 convolution of one shared high-resolution feature map with that kernel.
On each FPN level a *position head* predicts object-centre heatmaps (one channel per thing
class) and stuff-region maps (one channel per stuff class), and a *kernel head* predicts a
kernel at every position. Thing kernels are read at the centre peaks, stuff kernels are averaged
over the predicted stuff regions; the mask of a kernel is ``sigmoid(kernel · F)``, where ``F``
is the stride-4 *encoded feature*.

Layer by layer this follows the official code (github dvlab-research/PanopticFCN:
``panopticfcn/panoptic_seg.py``, ``head.py``, ``backbone_utils.py``, ``gt_generate.py``,
``loss.py``, defaults in ``config.py``, ``configs/PanopticFCN-R50-*.yaml``):

* backbone ResNet-50 and an FPN (256 channels; lateral 1×1 and output 3×3 convs with bias,
  nearest-neighbour top-down sum, no norm) giving P2–P5, plus P6 (3×3 stride-2 conv on P5) and
  P7 (the same on ReLU(P6)), as detectron2's RetinaNet ``LastLevelP6P7`` fed from P5;
* position and kernel heads are shared by the levels P3–P7 (``levels``). Position head: three
  3×3 convs (256, GroupNorm 32, ReLU; modulated deformable in the published model,
  ``position_deform``) and a 3×3 conv to one logit per class id, initialised N(0, 0.01) with
  bias −2.19. Kernel head: two coordinate channels (x, y in [−1, 1]) appended to the input,
  three 3×3 convs (256, GN, ReLU), a 3×3 output conv (256, N(0, 0.01)), then the official
  ``ThingGenerator`` / ``StuffGenerator`` 1×1 "embed extractors" (256 -> D = 64, N(0, 0.01)),
  applied here densely (a 1×1 conv commutes with reading a position), so ``forward`` returns
  D-dimensional thing and stuff kernel maps;
* encoded feature ``F``: the Panoptic-FPN semantic branch over P2–P5 (per level 1, 1, 2, 3 3×3
  convs of 256 with GN, ReLU and 2× bilinear upsampling, summed at stride 4), then coordinate
  channels and three 3×3 convs to D = 64 (bias, ReLU, no norm).

Conventions and deviations from the official code:

* one position logit per class id of the label space (``num_classes = max_id + 1``): thing
  channels are centre heatmaps, stuff channels region maps; which is which comes from the
  ``LabelSpace`` at loss and inference time. The official head has 80 thing and 54 stuff outputs
  (COCO's 53 stuff classes plus one "things" class); there is no "things" stuff channel here,
  so at inference a pixel that no thing mask takes joins the stuff class whose mask probability
  is highest (the official argmax over the stuff masks, without a threshold), where the official
  code leaves pixels whose argmax is its "things" channel void. (With the mask threshold applied
  to stuff too, 11 % of the demo's pixels stayed void: STQ 0.427 against 0.447, SQ 0.655
  against 0.718 on its val videos);
* the stuff kernel of a region is the kernel maps' *mean over the region* (training: the
  ground-truth region at the level; inference: the argmax region). The official code pools the
  masked map over the whole level (``adaptive_avg_pool2d``), i.e. scales the kernel's linear
  part by the region's area fraction;
* the modulated deformable convs use ``torchvision.ops.deform_conv2d``; their offset/mask conv
  starts at zero (a plain conv with mask 0.5);
* inputs are ``[0, 1]`` RGB normalised by the ImageNet mean and std inside ``forward``, as the
  other models here (the official configs subtract the mean in 0–255 units, std 1).

Targets (official ``gt_generate.py``), from panoptic ids ``class * label_divisor + instance``:

* thing instances (thing class, instance id > 0; crowd regions, instance 0, are no instance)
  are assigned to every level whose ``thing_scales`` range ``[lo, hi]`` holds the square root
  of their box area (input pixels); at each such level a Gaussian is drawn on their class's
  channel (maximum where several overlap) at the level cell that holds their centre of mass,
  radius CornerNet's ``gaussian_radius`` of the box at the level's scale (min overlap 0.7),
  sigma = diameter / 3;
* stuff maps per level: the one-hot map of each stuff class resized bilinearly to the level,
  values below 0.5 set to 0 (void and thing pixels are negatives of every stuff channel);
* mask targets at stride 4: each instance's and each stuff class's mask resized bilinearly
  (soft edges, as the official code).

Losses (official ``loss.py`` and ``PanopticFCN.losses``; weights position 1, segment 3):

* thing positions: sigmoid focal loss (alpha 0.25, gamma 2) of the thing channels against the
  Gaussian heatmaps, summed over pixels and levels, divided by the number of (instance, level)
  assignments. The official loss is this RetinaNet focal loss with soft targets, not CenterNet's
  penalty-reduced one; ``thing_focal="centernet"`` selects the latter (negatives weighted by
  ``(1 - y)^4``, normalised by the number of peaks);
* stuff positions: the same focal loss per (image, stuff class) averaged over the pixels, summed
  over classes and levels, divided by the batch size;
* thing masks: per assigned (instance, level), the ``k = 7`` (``positives``) positions of the
  level with the highest predicted centre score of the instance's class among those where the
  instance's mask (resized to the level) exceeds 0.1; each position's kernel gives a mask
  (``sigmoid(kernel · F)``), scored by dice ``1 − 2Σpt / (Σp² + Σt²)`` against the stride-4
  mask; the k losses are weighted by the centre scores normalised to sum 1 (not detached, as
  the official code); summed and divided by the number of assignments;
* stuff masks: per image, level and stuff class present at the level, one kernel (mean over the
  ground-truth region at the level), dice against the stride-4 mask, averaged over them.

Inference (official ``inference_single_level``, ``ThingGenerator``/``StuffGenerator``,
``process_inst``, ``combine_thing_and_stuff``): centre scores ``(p + avgpool(p)) / 2`` (pool 3
on P3–P5, 5 on P6–P7), 3×3 max-pool NMS, the top ``top_k / 2`` per level above
``center_threshold`` (0.05); stuff: the argmax over the stuff channels per level, a class kept
where its mean score over its region exceeds ``stuff_threshold`` (0.05), its kernel the mean over
the region, kernels and scores of one class averaged over the levels; thing kernels of one
class with cosine similarity >= 0.9 merged (``fuse_kernels``, the official greedy rule); masks
``sigmoid(kernel · F)`` upsampled bilinearly; thing scores rescored by the mean probability
inside the mask (> ``mask_threshold`` 0.4), those below ``instance_threshold`` (0.2) dropped,
pasted in decreasing score, a mask more than ``overlap_threshold`` (0.5) covered by better ones
dropped, otherwise only its free pixels taken; stuff regions smaller than ``stuff_area`` pixels
(official 4096 at COCO's ~800×1333; 64 here for ~128×256 frames) become void.

Parameter count. The published figure is 37.0M for Panoptic FCN R50 on COCO (Panoptic SegFormer,
Li et al., CVPR 2022, arXiv 2109.03814, Table 1, #P; the official README's model tables give
PQ, SQ, RQ, AP, mIoU and FPS only). ``panopticfcn-r50`` is also checked against the
count of the official architecture for COCO (80 + 54 position outputs) as its detectron2 modules
define them, 36,999,511 parameters (derivation in ``tests/test_panoptic_fcn.py``); ours has 37,052,631
(+0.14 %: torchvision's ResNet-50 batch norms have affine parameters, detectron2's frozen ones
buffers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vpseg.core.labels import LabelSpace
from vpseg.models.backbones import build_backbone
from vpseg.models.registry import total_and_parts

__all__ = [
    "PanopticFCNConfig",
    "CONFIGS",
    "PanopticFCN",
    "build_panoptic_fcn",
    "PanopticFCNTargets",
    "panoptic_fcn_targets",
    "PanopticFCNLossWeights",
    "PanopticFCNLoss",
    "PanopticFCNPost",
    "FrameKernels",
    "PanopticFCNPrediction",
    "frame_kernels",
    "fuse_kernels",
    "masks_from_kernels",
    "panoptic_from_masks",
    "postprocess",
]


@dataclass(frozen=True)
class PanopticFCNConfig:
    """Sizes of a PanopticFCN network; defaults are the published ResNet-50 ones (official
    ``config.py`` and ``configs/PanopticFCN-R50-3x.yaml``)."""

    backbone: str = "resnet50"
    fpn_channels: int = 256
    levels: tuple[int, ...] = (3, 4, 5, 6, 7)  # FPN levels of the position and kernel heads
    # sqrt(box area) range (input pixels) of the instances assigned to each level (official
    # KERNEL_HEAD.INSTANCE_SCALES)
    thing_scales: tuple[tuple[float, float], ...] = (
        (1, 64), (32, 128), (64, 256), (128, 512), (256, 2048))
    kernel_dim: int = 64  # D: channels of the encoded feature and of every kernel
    position_convs: int = 3
    position_channels: int = 256
    position_deform: bool = True  # modulated deformable convs in the position head
    kernel_convs: int = 3
    kernel_channels: int = 256
    semantic_channels: int = 256  # Panoptic-FPN semantic branch before the feature encoder
    encoder_convs: int = 3
    gn_groups: int = 32
    position_bias: float = -2.19
    # targets
    min_overlap: float = 0.7  # CornerNet Gaussian radius
    sigma_factor: float = 3.0  # sigma = diameter / sigma_factor

    def __post_init__(self) -> None:
        if len(self.thing_scales) != len(self.levels):
            raise ValueError("thing_scales needs one (lo, hi) range per level")
        if min(self.levels) < 2 or max(self.levels) > 7 or list(self.levels) != sorted(set(self.levels)):
            raise ValueError("levels must be increasing FPN levels among 2..7")


CONFIGS: dict[str, PanopticFCNConfig] = {
    "panopticfcn-r50": PanopticFCNConfig(),
    # CPU-sized: three levels, the last one taking every instance above 64 pixels
    "panopticfcn-tiny": PanopticFCNConfig(
        backbone="tiny", fpn_channels=64, levels=(3, 4, 5),
        thing_scales=((1, 48), (24, 96), (64, 4096)), kernel_dim=32, position_convs=2,
        position_channels=64, position_deform=False, kernel_convs=2, kernel_channels=64,
        semantic_channels=64, encoder_convs=3, gn_groups=16),
}


# -- network -------------------------------------------------------------------------------


def _with_coords(x: torch.Tensor) -> torch.Tensor:
    """Append two channels: the row and the column coordinate, each from −1 to 1."""
    b, _, h, w = x.shape
    ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype)
    xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.cat([x, gy.expand(b, 1, h, w), gx.expand(b, 1, h, w)], 1)


class _DeformConvGN(nn.Module):
    """Modulated deformable 3×3 conv (DCNv2, offsets and mask from a plain 3×3 conv) + GN + ReLU."""

    def __init__(self, cin: int, cout: int, groups: int) -> None:
        super().__init__()
        self.offset_mask = nn.Conv2d(cin, 27, 3, padding=1)
        nn.init.zeros_(self.offset_mask.weight)
        nn.init.zeros_(self.offset_mask.bias)  # type: ignore[arg-type]
        self.weight = nn.Parameter(torch.empty(cout, cin, 3, 3))
        nn.init.kaiming_uniform_(self.weight, a=1)
        self.norm = nn.GroupNorm(groups, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torchvision.ops import deform_conv2d

        o1, o2, m = self.offset_mask(x).chunk(3, 1)
        y = deform_conv2d(x, torch.cat([o1, o2], 1), self.weight, padding=(1, 1), mask=m.sigmoid())
        return F.relu(self.norm(y))


def _conv_gn(cin: int, cout: int, groups: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                         nn.GroupNorm(groups, cout), nn.ReLU(inplace=True))


class _FPN(nn.Module):
    """detectron2's FPN on C2–C5 (sum fusion, no norm) with P6/P7 from P5 when asked for."""

    def __init__(self, in_channels: tuple[int, ...], channels: int, top: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.output = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in in_channels)
        self.p6 = nn.Conv2d(channels, channels, 3, 2, 1) if top >= 6 else None
        self.p7 = nn.Conv2d(channels, channels, 3, 2, 1) if top >= 7 else None

    def forward(self, feats: list[torch.Tensor]) -> dict[int, torch.Tensor]:
        out: dict[int, torch.Tensor] = {}
        x: torch.Tensor | None = None
        for i in range(len(feats) - 1, -1, -1):
            lat = self.lateral[i](feats[i])
            x = lat if x is None else lat + F.interpolate(x, size=lat.shape[-2:], mode="nearest")
            out[i + 2] = self.output[i](x)
        if self.p6 is not None:
            out[6] = self.p6(out[5])
            if self.p7 is not None:
                out[7] = self.p7(F.relu(out[6]))
        return out


class _SemanticFPN(nn.Module):
    """Panoptic-FPN's semantic branch: P2–P5 each brought to stride 4 by 3×3 conv + GN + ReLU
    (+ 2× bilinear upsampling) stages, summed."""

    def __init__(self, cin: int, channels: int, groups: int) -> None:
        super().__init__()
        heads = []
        for level in (2, 3, 4, 5):
            ops: list[nn.Module] = []
            for k in range(max(1, level - 2)):
                ops.append(_conv_gn(cin if k == 0 else channels, channels, groups))
                if level > 2:
                    ops.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            heads.append(nn.Sequential(*ops))
        self.heads = nn.ModuleList(heads)

    def forward(self, p: dict[int, torch.Tensor]) -> torch.Tensor:
        out = self.heads[0](p[2])
        for i, level in enumerate((3, 4, 5), start=1):
            out = out + self.heads[i](p[level])
        return out


class PanopticFCN(nn.Module):
    """``forward(images)`` (``B×3×H×W`` in [0, 1], H and W divisible by 32) -> dict:
    ``levels`` (the FPN levels, list of int), per level (lists in that order) ``position``
    (``B×C×h×w`` logits: thing channels centre heatmaps, stuff channels region maps),
    ``kernels`` (``B×D×h×w`` thing kernels) and ``stuff_kernels`` (``B×D×h×w``), and
    ``feature`` (``B×D×H/4×W/4``, the encoded feature ``F``). ``num_classes`` is
    ``labels.max_id + 1``."""

    pixel_mean: torch.Tensor
    pixel_std: torch.Tensor

    def __init__(self, cfg: PanopticFCNConfig, num_classes: int) -> None:
        super().__init__()
        self.config, self.num_classes = cfg, num_classes
        g = cfg.gn_groups
        self.backbone = build_backbone(cfg.backbone)
        self.fpn = _FPN(tuple(self.backbone.channels), cfg.fpn_channels, max(cfg.levels))
        self.semantic = _SemanticFPN(cfg.fpn_channels, cfg.semantic_channels, g)
        enc: list[nn.Module] = []
        for k in range(cfg.encoder_convs):
            cin = cfg.semantic_channels + 2 if k == 0 else cfg.kernel_dim
            enc += [nn.Conv2d(cin, cfg.kernel_dim, 3, padding=1), nn.ReLU(inplace=True)]
        self.encoder = nn.Sequential(*enc)
        pos: list[nn.Module] = []
        for k in range(cfg.position_convs):
            cin = cfg.fpn_channels if k == 0 else cfg.position_channels
            pos.append(_DeformConvGN(cin, cfg.position_channels, g) if cfg.position_deform
                       else _conv_gn(cin, cfg.position_channels, g))
        self.position_tower = nn.Sequential(*pos)
        self.position_out = nn.Conv2d(cfg.position_channels, num_classes, 3, padding=1)
        ker: list[nn.Module] = [
            _conv_gn(cfg.fpn_channels + 2 if k == 0 else cfg.kernel_channels, cfg.kernel_channels, g)
            for k in range(cfg.kernel_convs)]
        self.kernel_tower = nn.Sequential(*ker)
        self.kernel_out = nn.Conv2d(cfg.kernel_channels, cfg.kernel_channels, 3, padding=1)
        self.thing_embed = nn.Conv2d(cfg.kernel_channels, cfg.kernel_dim, 1)
        self.stuff_embed = nn.Conv2d(cfg.kernel_channels, cfg.kernel_dim, 1)
        for layer in (self.position_out, self.kernel_out, self.thing_embed, self.stuff_embed):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.constant_(layer.bias,  # type: ignore[arg-type]
                              cfg.position_bias if layer is self.position_out else 0.0)
        self.register_buffer("pixel_mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("pixel_std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> dict[str, Any]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected B×3×H×W images, got {tuple(images.shape)}")
        h, w = images.shape[-2:]
        if h % 32 or w % 32:
            raise ValueError(f"height and width must be divisible by 32, got {h}×{w}")
        p = self.fpn(self.backbone((images - self.pixel_mean) / self.pixel_std))
        feature = self.encoder(_with_coords(self.semantic(p)))
        position, kernels, stuff = [], [], []
        for level in self.config.levels:
            x = p[level]
            position.append(self.position_out(self.position_tower(x)))
            k = self.kernel_out(self.kernel_tower(_with_coords(x)))
            kernels.append(self.thing_embed(k))
            stuff.append(self.stuff_embed(k))
        return {"levels": list(self.config.levels), "position": position, "kernels": kernels,
                "stuff_kernels": stuff, "feature": feature}


def build_panoptic_fcn(name_or_config: str | PanopticFCNConfig, num_classes: int) -> PanopticFCN:
    """A named configuration (``CONFIGS``) or a ``PanopticFCNConfig``."""
    if isinstance(name_or_config, PanopticFCNConfig):
        return PanopticFCN(name_or_config, num_classes)
    if name_or_config not in CONFIGS:
        raise ValueError(f"unknown model {name_or_config!r}; known: {', '.join(CONFIGS)}")
    return PanopticFCN(CONFIGS[name_or_config], num_classes)


# -- targets -------------------------------------------------------------------------------


@dataclass
class PanopticFCNTargets:
    """Training targets of a batch (``panoptic_fcn_targets``).

    Per level (lists in ``levels`` order): ``center`` ``B×C×h×w`` Gaussian heatmaps on the
    thing channels, ``stuff`` ``B×C×h×w`` region maps on the stuff channels. Per image (lists
    of length B): ``masks`` ``N×H/4×W/4`` soft instance masks, ``classes`` (N,) int64,
    ``assigned`` ``N×L`` bool (instance on level), ``stuff_masks`` ``S×H/4×W/4``,
    ``stuff_classes`` (S,). ``thing_ids`` / ``stuff_ids``: the channels of each kind."""

    levels: list[int]
    center: list[torch.Tensor]
    stuff: list[torch.Tensor]
    masks: list[torch.Tensor]
    classes: list[torch.Tensor]
    assigned: list[torch.Tensor]
    stuff_masks: list[torch.Tensor]
    stuff_classes: list[torch.Tensor]
    thing_ids: torch.Tensor
    stuff_ids: torch.Tensor


def _gaussian_radius(h: float, w: float, min_overlap: float) -> float:
    """CornerNet's radius for a box of ``h × w`` (the official code's three cases, as written)."""
    o = min_overlap
    b1, c1 = h + w, w * h * (1 - o) / (1 + o)
    r1 = (b1 + math.sqrt(max(b1 * b1 - 4 * c1, 0.0))) / 2
    b2, c2 = 2 * (h + w), (1 - o) * w * h
    r2 = (b2 + math.sqrt(max(b2 * b2 - 16 * c2, 0.0))) / 2
    a3, b3, c3 = 4 * o, -2 * o * (h + w), (o - 1) * w * h
    r3 = (b3 + math.sqrt(max(b3 * b3 - 4 * a3 * c3, 0.0))) / 2
    return min(r1, r2, r3)


def _draw_gaussian(heat: torch.Tensor, cy: int, cx: int, radius: int, sigma_factor: float) -> None:
    """Maximum of ``heat`` (h×w) and a Gaussian of peak 1 and sigma (2r + 1) / sigma_factor."""
    sigma = (2 * radius + 1) / sigma_factor
    d = torch.arange(-radius, radius + 1, dtype=heat.dtype, device=heat.device)
    g = torch.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2 * sigma * sigma))
    g[g < torch.finfo(g.dtype).eps * g.max()] = 0
    h, w = heat.shape
    y0, y1, x0, x1 = max(cy - radius, 0), min(cy + radius + 1, h), max(cx - radius, 0), min(cx + radius + 1, w)
    if y0 >= y1 or x0 >= x1:
        return
    patch = g[y0 - cy + radius : y1 - cy + radius, x0 - cx + radius : x1 - cx + radius]
    heat[y0:y1, x0:x1] = torch.maximum(heat[y0:y1, x0:x1], patch)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of ``N×h×w`` maps (float)."""
    if x.shape[0] == 0:
        return x.new_zeros(0, *size)
    return F.interpolate(x[None].float(), size=size, mode="bilinear", align_corners=False)[0]


def _lut(ids: tuple[int, ...], size: int, device: torch.device) -> torch.Tensor:
    lut = torch.zeros(size, dtype=torch.bool, device=device)
    lut[[i for i in ids if i < size]] = True
    return lut


@torch.no_grad()
def panoptic_fcn_targets(panoptic: torch.Tensor, labels: LabelSpace,
                         cfg: PanopticFCNConfig) -> PanopticFCNTargets:
    """PanopticFCN targets of ``B×H×W`` panoptic ids (module docstring); H, W divisible by 32."""
    if panoptic.ndim != 3:
        raise ValueError(f"expected B×H×W panoptic ids, got {tuple(panoptic.shape)}")
    pan = panoptic.long()
    b, h, w = pan.shape
    dev = pan.device
    c = labels.max_id + 1
    div = labels.label_divisor
    h4, w4 = h // 4, w // 4
    # the levels' sizes as the network makes them: P6 and P7 are stride-2 convs, ceil(n / 2)
    sizes = [(-((-h) >> lv), -((-w) >> lv)) for lv in cfg.levels]
    thing_ids = torch.tensor(labels.thing_ids, dtype=torch.long, device=dev)
    stuff_ids = torch.tensor([i for i in labels.ids if not labels.is_thing(i)], dtype=torch.long,
                             device=dev)
    center = [torch.zeros(b, c, *s, device=dev) for s in sizes]
    stuff = [torch.zeros(b, c, *s, device=dev) for s in sizes]
    out_masks, out_classes, out_assigned, out_smasks, out_sclasses = [], [], [], [], []
    for i in range(b):
        cls, inst = pan[i] // div, pan[i] % div
        # stuff: one-hot of each stuff class present, resized
        present = [int(s) for s in stuff_ids.tolist() if bool((cls == s).any())]
        onehot = torch.stack([(cls == s).float() for s in present]) if present else \
            torch.zeros(0, h, w, device=dev)
        out_smasks.append(_resize(onehot, (h4, w4)))
        out_sclasses.append(torch.tensor(present, dtype=torch.long, device=dev))
        for li, size in enumerate(sizes):
            m = _resize(onehot, size).clamp(max=1.0)
            m[m < 0.5] = 0.0
            if present:
                stuff[li][i, out_sclasses[-1]] = m
        # things
        is_inst = _lut(labels.thing_ids, int(max(int(cls.max()) + 1, c)), dev)[cls.clamp(min=0)] & (inst > 0)
        ids = torch.unique(pan[i][is_inst])
        masks, classes, assigned = [], [], []
        for pid in ids.tolist():
            m = pan[i] == pid
            ys, xs = torch.nonzero(m, as_tuple=True)
            bh = float(ys.max() - ys.min() + 1)
            bw = float(xs.max() - xs.min() + 1)
            scale = math.sqrt(bh * bw)
            cy, cx = float(ys.double().mean()), float(xs.double().mean())
            k = pid // div
            on = []
            for li, (lv, size) in enumerate(zip(cfg.levels, sizes, strict=True)):
                lo, hi = cfg.thing_scales[li]
                ok = lo <= scale <= hi
                on.append(ok)
                if not ok:
                    continue
                s = 2**lv
                py = min(max(int(math.floor((cy + 0.5) / s)), 0), size[0] - 1)
                px = min(max(int(math.floor((cx + 0.5) / s)), 0), size[1] - 1)
                r = max(int(_gaussian_radius(bh / s, bw / s, cfg.min_overlap)), 0)
                _draw_gaussian(center[li][i, k], py, px, r, cfg.sigma_factor)
            if any(on):
                masks.append(m.float())
                classes.append(k)
                assigned.append(on)
        stack = torch.stack(masks) if masks else torch.zeros(0, h, w, device=dev)
        out_masks.append(_resize(stack, (h4, w4)))
        out_classes.append(torch.tensor(classes, dtype=torch.long, device=dev))
        out_assigned.append(torch.tensor(assigned, dtype=torch.bool, device=dev).reshape(
            len(classes), len(sizes)))
    return PanopticFCNTargets(list(cfg.levels), center, stuff, out_masks, out_classes,
                              out_assigned, out_smasks, out_sclasses, thing_ids, stuff_ids)


# -- loss ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PanopticFCNLossWeights:
    """Official loss settings (``config.py`` LOSS_WEIGHT, POSITION_HEAD.THING.POS_NUM)."""

    position: float = 1.0
    segment: float = 3.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    positives: int = 7  # k kernels per instance and level for the weighted dice loss
    thing_focal: str = "sigmoid"  # "sigmoid" (official) or "centernet" (penalty-reduced)

    def __post_init__(self) -> None:
        if self.thing_focal not in ("sigmoid", "centernet"):
            raise ValueError("thing_focal must be 'sigmoid' or 'centernet'")
        if self.positives < 1:
            raise ValueError("positives must be >= 1")


def _sigmoid_focal(logits: torch.Tensor, target: torch.Tensor, alpha: float,
                   gamma: float) -> torch.Tensor:
    """Element-wise RetinaNet focal loss with (possibly soft) targets."""
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss


def _centernet_focal(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, int]:
    """CenterNet's penalty-reduced focal loss, summed, and the number of peaks."""
    pos = target >= 1.0
    logp, log1mp = F.logsigmoid(logits), F.logsigmoid(-logits)
    p = logits.sigmoid()
    loss = torch.where(pos, -((1 - p) ** 2) * logp, -((1 - target) ** 4) * p**2 * log1mp)
    return loss.sum(), int(pos.sum())


def _dice(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``1 − 2Σpt / (Σp² + Σt²)`` over the last dimension."""
    den = (pred**2).sum(-1) + (target**2).sum(-1)
    return 1 - 2 * (pred * target).sum(-1) / den.clamp(min=eps)


class PanopticFCNLoss:
    """``loss(outputs, targets)`` -> (total, named weighted parts as floats and ``total``):
    ``pos_thing``, ``pos_stuff``, ``seg_thing``, ``seg_stuff`` (module docstring)."""

    def __init__(self, weights: PanopticFCNLossWeights | None = None) -> None:
        self.weights = weights or PanopticFCNLossWeights()

    def __call__(self, outputs: dict[str, Any], targets: PanopticFCNTargets
                 ) -> tuple[torch.Tensor, dict[str, float]]:
        wt = self.weights
        feat = outputs["feature"]
        b, d = feat.shape[:2]
        flat = feat.flatten(2)  # B×D×(h4·w4)
        tid, sid = targets.thing_ids, targets.stuff_ids
        zero = feat.sum() * 0.0
        pos_th, pos_st, seg_th, seg_st = zero, zero, zero, zero
        n_assigned, n_peaks, n_stuff = 0, 0, 0
        for li, (pos, ker, sker) in enumerate(zip(outputs["position"], outputs["kernels"],
                                                  outputs["stuff_kernels"], strict=True)):
            size = pos.shape[-2:]
            th_logits, th_target = pos[:, tid], targets.center[li][:, tid].to(pos.dtype)
            if wt.thing_focal == "sigmoid":
                pos_th = pos_th + _sigmoid_focal(th_logits, th_target, wt.focal_alpha,
                                                 wt.focal_gamma).sum()
            else:
                s, n = _centernet_focal(th_logits, th_target)
                pos_th, n_peaks = pos_th + s, n_peaks + n
            st = _sigmoid_focal(pos[:, sid], targets.stuff[li][:, sid].to(pos.dtype),
                                wt.focal_alpha, wt.focal_gamma)
            pos_st = pos_st + st.flatten(2).mean(-1).sum()
            for i in range(b):
                # things: k best-scored positions inside each assigned instance
                on = targets.assigned[i][:, li] if len(targets.classes[i]) else \
                    torch.zeros(0, dtype=torch.bool, device=feat.device)
                if bool(on.any()):
                    gt = targets.masks[i][on].to(feat.dtype)  # n×h4×w4
                    cls = targets.classes[i][on]
                    guide = _resize(gt, (int(size[0]), int(size[1]))) > 0.1
                    scores = pos[i, cls].sigmoid() * guide  # n×h×w (0 outside)
                    k = min(wt.positives, scores[0].numel())
                    val, idx = scores.flatten(1).topk(k, dim=1)  # n×k
                    kern = ker[i].flatten(1)[:, idx.flatten()].T  # (n·k)×D
                    pred = (kern @ flat[i]).sigmoid().view(len(cls), k, -1)
                    dice = _dice(pred, gt.flatten(1)[:, None])  # n×k
                    weight = val / val.sum(1, keepdim=True).clamp(min=1e-8)
                    seg_th = seg_th + (dice * weight).sum()
                    n_assigned += len(cls)
                # stuff: one kernel per class present at the level (mean over its region)
                scls = targets.stuff_classes[i]
                if len(scls):
                    region = targets.stuff[li][i, scls] > 0  # S×h×w
                    has = region.flatten(1).any(1)
                    if bool(has.any()):
                        reg = region[has].to(feat.dtype)
                        kern = torch.einsum("shw,dhw->sd", reg, sker[i]) / \
                            reg.flatten(1).sum(1, keepdim=True)
                        pred = (kern @ flat[i]).sigmoid()
                        gt = targets.stuff_masks[i][has].flatten(1).to(feat.dtype)
                        seg_st = seg_st + _dice(pred, gt).sum()
                        n_stuff += int(has.sum())
        norm_th = n_peaks if wt.thing_focal == "centernet" else n_assigned
        parts = {
            "pos_thing": wt.position * pos_th / max(norm_th, 1),
            "pos_stuff": wt.position * pos_st / max(b, 1),
            "seg_thing": wt.segment * seg_th / max(n_assigned, 1),
            "seg_stuff": wt.segment * seg_st / max(n_stuff, 1),
        }
        return total_and_parts(parts)


# -- inference -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PanopticFCNPost:
    """Inference settings, the official defaults (``config.py``: POSITION_HEAD.THING.THRES,
    TOP_NUM, STUFF.THRES, INFERENCE.INST_THRES, SIMILAR_THRES, COMBINE.*) but ``stuff_area``
    (4096 at COCO's ~800×1333; 64 for ~128×256 frames). ``center_pool``: the score-smoothing
    average pool of P3..P7 (official ``pool_size``)."""

    center_threshold: float = 0.05
    top_k: int = 100  # top_k // 2 centres per level, top_k things in all
    stuff_threshold: float = 0.05
    similarity_threshold: float = 0.9
    mask_threshold: float = 0.4
    instance_threshold: float = 0.2
    overlap_threshold: float = 0.5
    stuff_area: int = 64
    center_pool: tuple[int, ...] = (3, 3, 3, 5, 5)

    def __post_init__(self) -> None:
        if self.top_k < 2:
            raise ValueError("top_k must be >= 2")
        if any(p < 1 or p % 2 == 0 for p in self.center_pool):
            raise ValueError("center_pool sizes must be positive odd numbers")


@dataclass
class FrameKernels:
    """The kernels of one frame: things first (decreasing score), then one per stuff class.
    ``kernels`` K×D, ``classes`` (K,) int64, ``scores`` (K,), ``is_thing`` (K,) bool,
    ``feature`` D×h×w (the frame's encoded feature)."""

    kernels: torch.Tensor
    classes: torch.Tensor
    scores: torch.Tensor
    is_thing: torch.Tensor
    feature: torch.Tensor

    def select(self, keep: torch.Tensor) -> FrameKernels:
        return FrameKernels(self.kernels[keep], self.classes[keep], self.scores[keep],
                            self.is_thing[keep], self.feature)


@dataclass
class PanopticFCNPrediction:
    """One frame's panoptic prediction. ``semantic`` ``H×W`` int64 (the ignore label where
    nothing); ``instance`` ``H×W`` int32 (0 outside things, j on thing j, ordered by score);
    per thing (J): ``category`` int64, ``score`` float64 (class score × mean mask probability
    inside the mask) and ``kernel_index`` int64 (its row of the ``FrameKernels`` it came from)."""

    semantic: np.ndarray
    instance: np.ndarray
    category: np.ndarray
    score: np.ndarray
    kernel_index: np.ndarray

    def panoptic(self, labels: LabelSpace) -> np.ndarray:
        """``H×W`` int64 panoptic ids: thing j is ``category[j-1] · divisor + j``; stuff
        ``class · divisor``; void ``ignore_label · divisor``."""
        div = labels.label_divisor
        out = self.semantic.astype(np.int64) * div
        inside = self.instance > 0
        j = self.instance[inside].astype(np.int64)
        out[inside] = self.category[j - 1] * div + j
        return out


@torch.no_grad()
def frame_kernels(outputs: dict[str, Any], index: int, labels: LabelSpace,
                  post: PanopticFCNPost = PanopticFCNPost()) -> FrameKernels:  # noqa: B008
    """The thing and stuff kernels of batch element ``index`` (module docstring)."""
    feature = outputs["feature"][index].float()
    dev = feature.device
    c = outputs["position"][0].shape[1]
    thing = torch.tensor([i for i in labels.thing_ids if i < c], dtype=torch.long, device=dev)
    stuff = torch.tensor([i for i in labels.ids if not labels.is_thing(i) and i < c],
                         dtype=torch.long, device=dev)
    th_k, th_c, th_s = [], [], []
    st_k, st_c, st_s = [], [], []
    for level, pos, ker, sker in zip(outputs["levels"], outputs["position"], outputs["kernels"],
                                     outputs["stuff_kernels"], strict=True):
        pos, ker, sker = pos[index].float(), ker[index].float(), sker[index].float()
        h, w = pos.shape[-2:]
        if len(thing):
            p = pos[thing].sigmoid()[None]
            ps = post.center_pool[min(max(level - 3, 0), len(post.center_pool) - 1)]
            p = (p + F.avg_pool2d(p, ps, 1, ps // 2, count_include_pad=True)) / 2
            p = (p * (F.max_pool2d(p, 3, 1, 1) == p))[0]  # T×h×w
            k = min(h * w, post.top_k // 2)
            score, flat = p.flatten().topk(k)
            keep = score > post.center_threshold
            score, flat = score[keep], flat[keep]
            cls, where = flat // (h * w), flat % (h * w)
            th_k.append(ker.flatten(1)[:, where].T)
            th_c.append(thing[cls])
            th_s.append(score)
        if len(stuff):
            prob = pos[stuff].sigmoid()
            arg = prob.argmax(0)
            for j in torch.unique(arg).tolist():
                region = arg == j
                score = prob[j][region].mean()
                if score > post.stuff_threshold:
                    st_k.append(sker[:, region].mean(1))
                    st_c.append(int(stuff[j]))
                    st_s.append(score)
    d = feature.shape[0]
    if th_k:
        tk, tc, ts = torch.cat(th_k), torch.cat(th_c), torch.cat(th_s)
        order = torch.argsort(ts, descending=True, stable=True)
        tk, tc, ts = tk[order], tc[order], ts[order]
    else:
        tk, tc, ts = feature.new_zeros(0, d), torch.zeros(0, dtype=torch.long, device=dev), \
            feature.new_zeros(0)
    # stuff: kernels and scores of one class averaged over the levels
    uniq = sorted(set(st_c))
    sk = torch.stack([torch.stack([k for k, cc in zip(st_k, st_c, strict=True) if cc == u]).mean(0)
                      for u in uniq]) if uniq else feature.new_zeros(0, d)
    ss = torch.stack([torch.stack([s for s, cc in zip(st_s, st_c, strict=True) if cc == u]).mean()
                      for u in uniq]) if uniq else feature.new_zeros(0)
    sc = torch.tensor(uniq, dtype=torch.long, device=dev)
    is_thing = torch.cat([torch.ones(len(tc), dtype=torch.bool, device=dev),
                          torch.zeros(len(sc), dtype=torch.bool, device=dev)])
    return FrameKernels(torch.cat([tk, sk]), torch.cat([tc, sc]), torch.cat([ts, ss]),
                        is_thing, feature)


def fuse_kernels(k: FrameKernels, threshold: float) -> FrameKernels:
    """PanopticFCN's kernel fusion of the thing kernels (official ``ThingGenerator.
    kernel_fusion``): in decreasing score, a kernel is kept unless an earlier one of its class
    has cosine similarity >= ``threshold`` with it; each kept kernel becomes the mean of the
    kernels it is the first similar one for, and keeps its class and score. Stuff rows pass."""
    th = torch.nonzero(k.is_thing).flatten()
    st = torch.nonzero(~k.is_thing).flatten()
    if len(th) == 0:
        return k
    th = th[torch.argsort(k.scores[th], descending=True, stable=True)]
    w, cls = k.kernels[th], k.classes[th]
    unit = w / w.norm(dim=1, keepdim=True).clamp(min=1e-8)
    similar = (unit @ unit.T >= threshold).triu() & (cls[:, None] == cls[None, :])
    first = torch.cumsum(similar.float(), 0) < 2  # no earlier row claims column j
    keep = first.diagonal()
    member = (similar & first)[keep].to(w.dtype)  # kept × n
    fused = member @ w / member.sum(1, keepdim=True)
    rows = th[keep]
    return FrameKernels(torch.cat([fused, k.kernels[st]]), torch.cat([k.classes[rows], k.classes[st]]),
                        torch.cat([k.scores[rows], k.scores[st]]),
                        torch.cat([k.is_thing[rows], k.is_thing[st]]), k.feature)


def masks_from_kernels(kernels: torch.Tensor, feature: torch.Tensor,
                       size: tuple[int, int]) -> torch.Tensor:
    """``K×H×W`` mask probabilities: ``sigmoid(kernel · F)`` at the feature's resolution,
    upsampled bilinearly to ``size``."""
    d, h, w = feature.shape
    probs = (kernels.to(feature.dtype) @ feature.reshape(d, h * w)).sigmoid().view(-1, h, w)
    if (h, w) == tuple(size):
        return probs
    return _resize(probs, (int(size[0]), int(size[1])))


@torch.no_grad()
def panoptic_from_masks(k: FrameKernels, probs: torch.Tensor, labels: LabelSpace,
                        post: PanopticFCNPost = PanopticFCNPost()) -> PanopticFCNPrediction:  # noqa: B008
    """Paste the thing masks (rescored, decreasing score, overlap rule) then the stuff masks
    (module docstring) into one frame's prediction."""
    hh, ww = probs.shape[-2:]
    dev = probs.device
    instance = torch.zeros(hh, ww, dtype=torch.long, device=dev)
    semantic = torch.full((hh, ww), labels.ignore_label, dtype=torch.long, device=dev)
    th = torch.nonzero(k.is_thing).flatten()
    cats, scores, rows = [], [], []
    if len(th):
        p = probs[th]
        masks = p > post.mask_threshold
        area = masks.flatten(1).sum(1).float()
        seg = (p * masks).flatten(1).sum(1) / (area + 1e-6)
        score = k.scores[th].to(p.dtype) * seg
        order = torch.argsort(score, descending=True, stable=True)[: post.top_k]
        for j in order.tolist():
            if float(score[j]) < post.instance_threshold:
                break
            m = masks[j]
            a = float(area[j])
            taken = m & (instance > 0)
            if a == 0 or float(taken.sum()) / a > post.overlap_threshold:
                continue
            free = m & (instance == 0)
            rows.append(int(th[j]))
            cats.append(int(k.classes[th[j]]))
            scores.append(float(score[j]))
            instance[free] = len(rows)
            semantic[free] = cats[-1]
    st = torch.nonzero(~k.is_thing).flatten()
    if len(st):
        arg = probs[st].argmax(0)
        ok = instance == 0  # the official argmax over the stuff masks, without a threshold
        for j in range(len(st)):
            region = ok & (arg == j)
            if int(region.sum()) >= max(post.stuff_area, 1):
                semantic[region] = int(k.classes[st[j]])
    return PanopticFCNPrediction(
        semantic=semantic.cpu().numpy().astype(np.int64),
        instance=instance.cpu().numpy().astype(np.int32),
        category=np.asarray(cats, dtype=np.int64),
        score=np.asarray(scores, dtype=np.float64),
        kernel_index=np.asarray(rows, dtype=np.int64),
    )


@torch.no_grad()
def postprocess(outputs: dict[str, Any], index: int, labels: LabelSpace,
                post: PanopticFCNPost = PanopticFCNPost(),  # noqa: B008
                size: tuple[int, int] | None = None) -> PanopticFCNPrediction:
    """``frame_kernels`` -> ``fuse_kernels`` -> ``masks_from_kernels`` -> ``panoptic_from_masks``
    for image ``index``; ``size`` defaults to 4× the encoded feature (the input size)."""
    k = fuse_kernels(frame_kernels(outputs, index, labels, post), post.similarity_threshold)
    h, w = k.feature.shape[-2:]
    probs = masks_from_kernels(k.kernels, k.feature, size or (4 * h, 4 * w))
    return panoptic_from_masks(k, probs, labels, post)
