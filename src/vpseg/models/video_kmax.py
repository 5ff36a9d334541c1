"""Video-kMaX's within-clip segmenter, clip-kMaX (Shin et al., WACV 2024, Sec. 3.1), on
kMaX-DeepLab (Yu et al., ECCV 2022).

A clip ``B×T×3×H×W`` goes through the backbone and the pixel decoder frame by frame (as the
official Video-kMaX code batches the frames); then the T frames' features are laid out as one
image of height T·H (``clip_to_image``, the paper's ``T×H×W → 1×TH×W``) for the k-means transformer
decoder and the heads, so every object query (cluster centre) groups the pixels of one object in
the whole clip — a *tube*. With T = 1 this is kMaX-DeepLab.

Layer by layer this follows the official kMaX-DeepLab code (widths, norms, initialisations); the
parameter counts of ``video-kmax-r50`` and ``video-kmax-convnext-l`` at inference match the
published kMaX-DeepLab figures (57M, 232M; ``docs/models.md``).

* pixel decoder: layer-normed backbone features; from stride 32 up to 4 each stage fuses the
  backbone feature of its stride with the upsampled previous stage and runs axial-attention
  blocks (strides 32, 16) or bottleneck blocks (8, 4);
* transformer decoder: kMaX layers at strides 32, 16, 8 (k-means cross-attention: the
  cluster-wise argmax of the current mask logits assigns pixels to queries, each query adds the
  sum of its pixels' values; then query self-attention and an FFN);
* heads (per layer, for deep supervision): class logits (C + 1, the last is "no object") and mask
  logits = the dot product of L2-normalised mask embeddings and pixel embeddings, scaled by a
  one-channel batch norm; an auxiliary semantic head on the backbone (training only).

``video-kmax-tiny`` alone adds a fifth decoder stage at stride 2 (``final_stride``): its final mask
logits come from stride-2 pixel embeddings, so that two touching objects of one class, a few
stride-4 cells wide at the demo's 128×256, do not share cells and merge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vpseg.models.backbones import build_backbone
from vpseg.models.kmax_ops import clip_to_image
from vpseg.models.layers import (
    AxialBlock,
    BottleneckBlock,
    ConvBN,
    ConvBN1d,
    DropPath,
    LayerNorm2d,
    count_parameters,
    trunc_normal_,
)

__all__ = ["KMaXConfig", "VideoKMaX", "MODEL_CONFIGS", "build_model"]


@dataclass(frozen=True)
class KMaXConfig:
    """Sizes of a (clip-)kMaX-DeepLab network; ``MODEL_CONFIGS`` holds the named ones. Defaults
    are kMaX-DeepLab's (COCO, ResNet-50): decoder stage widths ``4 × base``, 128 queries of 256
    channels, 6 transformer layers, FFN 2048, 128-d mask embeddings."""

    backbone: str = "resnet50"
    num_queries: int = 128
    query_dim: int = 256
    # pixel decoder, strides 32, 16, 8, 4 (stage output width = 4 × base)
    decoder_blocks: tuple[int, int, int, int] = (1, 5, 1, 1)
    decoder_base: tuple[int, int, int, int] = (512, 256, 128, 64)
    axial_heads: int = 8
    axial_span: int = 255  # relative positions ±(span − 1) (MaX-DeepLab's MAX_SPAN)
    # transformer decoder: layers at strides 32, 16, 8
    transformer_layers: tuple[int, int, int] = (2, 2, 2)
    transformer_heads: int = 8
    ffn_dim: int = 2048
    mask_dim: int = 128
    # auxiliary semantic head (training only): ASPP + two decoder stages
    aspp_channels: int = 256
    aspp_rates: tuple[int, int, int] = (6, 12, 18)
    semantic_skip: tuple[int, int] = (64, 32)  # stride 8, 4 projections
    drop_path: float = 0.2  # transformer decoder
    residual_bn_init: float = 0.0  # scale of the last BN of each transformer residual branch
    position_features: bool = False  # add Fourier features of (y, x) to the decoder outputs
    mask_scale_init: float = 0.1  # initial scale of the one-channel BN on the mask logits
    head_kernel: int = 5  # depthwise kernel of the pixel and semantic heads
    decoder_drop_path: float = 0.0
    backbone_drop_path: float = 0.0
    # 2: one more pixel-decoder stage (a bottleneck, width 4 × stride2_base) fuses the backbone's
    # stride-2 feature, and the final mask logits are at stride 2 (the transformer layers and the
    # auxiliary predictions stay at 32, 16, 8 and are supervised at stride 4)
    final_stride: int = 4
    stride2_base: int = 8
    # the final predictor's pixel-head width and embedding size (None: query_dim, mask_dim);
    # narrower at stride 2, where every channel costs 4 times as much
    final_head_dim: int | None = None
    final_mask_dim: int | None = None


MODEL_CONFIGS: dict[str, KMaXConfig] = {
    "video-kmax-r50": KMaXConfig(backbone="resnet50"),
    "video-kmax-convnext-l": KMaXConfig(backbone="convnext_large", backbone_drop_path=0.6),
    "video-kmax-tiny": KMaXConfig(
        backbone="tiny", num_queries=32, query_dim=128, decoder_blocks=(1, 1, 1, 1),
        decoder_base=(64, 32, 32, 16), axial_heads=4, axial_span=64,
        transformer_layers=(2, 2, 2), transformer_heads=4, ffn_dim=512, mask_dim=64,
        aspp_channels=32, aspp_rates=(2, 4, 6), semantic_skip=(32, 16), drop_path=0.0,
        residual_bn_init=1.0, position_features=True, mask_scale_init=1.0, head_kernel=3,
        final_stride=2, stride2_base=8, final_head_dim=32, final_mask_dim=32),
}


class ResizedFuse(nn.Module):
    """The lower-resolution stage (GELU, 1×1 conv + BN, bilinear upsampling) plus the backbone
    feature of this stride (GELU, 1×1 conv + BN)."""

    def __init__(self, low: int, high: int, out: int) -> None:
        super().__init__()
        self.low = ConvBN(low, out, act=None)
        self.high = ConvBN(high, out, act=None)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        size = high.shape[-2:]
        up = F.interpolate(self.low(F.gelu(low)), size=size, mode="bilinear",
                           align_corners=size[0] % 2 == 1 and size[1] % 2 == 1)
        return up + self.high(F.gelu(high))


class KMaXPixelDecoder(nn.Module):
    """Backbone features (strides 4..32) -> features at strides 32, 16, 8, 4 (widths 4 × base):
    axial-attention blocks at 32 and 16, bottlenecks at 8 and 4; with ``final_stride`` 2 (and the
    backbone's stride-2 feature, ``stride2_channels`` wide) a fifth stage at stride 2."""

    def __init__(self, in_channels: tuple[int, ...], cfg: KMaXConfig,
                 stride2_channels: int | None = None) -> None:
        super().__init__()
        if cfg.final_stride not in (2, 4):
            raise ValueError(f"final_stride must be 4 or 2, not {cfg.final_stride}")
        base = cfg.decoder_base
        self.norms = nn.ModuleList(LayerNorm2d(c, eps=1e-6) for c in in_channels)
        self.fuse = nn.ModuleList(ResizedFuse(4 * base[i - 1], in_channels[3 - i], base[i])
                                  for i in range(1, 4))
        stages = []
        for i in range(4):
            blocks: list[nn.Module] = []
            for j in range(cfg.decoder_blocks[i]):
                cin = (in_channels[3] if i == 0 else base[i]) if j == 0 else 4 * base[i]
                if i < 2:
                    blocks.append(AxialBlock(cin, 4 * base[i], inner=2 * base[i],
                                             heads=cfg.axial_heads, span=cfg.axial_span,
                                             drop_path=cfg.decoder_drop_path))
                else:
                    blocks.append(BottleneckBlock(cin, 4 * base[i], inner=base[i],
                                                  drop_path=cfg.decoder_drop_path))
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.channels = tuple(4 * b for b in base)
        self.stride2: nn.ModuleList | None = None
        if cfg.final_stride == 2:
            if stride2_channels is None:
                raise ValueError(f"backbone {cfg.backbone!r} has no stride-2 feature for final_stride 2")
            b2 = cfg.stride2_base  # as the stride-4 stage: fuse, one bottleneck block
            self.stride2 = nn.ModuleList([
                LayerNorm2d(stride2_channels, eps=1e-6), ResizedFuse(4 * base[3], stride2_channels, b2),
                BottleneckBlock(b2, 4 * b2, inner=b2, drop_path=cfg.decoder_drop_path)])
            self.channels += (4 * b2,)

    def forward(self, feats: list[torch.Tensor], stride2: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Strides 32, 16, 8, 4 (and 2, given the backbone's stride-2 feature)."""
        feats = [norm(f) for norm, f in zip(self.norms, feats, strict=True)]
        x = self.stages[0](feats[3])
        out = [x]
        for i in range(1, 4):
            x = self.stages[i](self.fuse[i - 1](x, feats[3 - i]))
            out.append(x)
        if self.stride2 is not None:
            if stride2 is None:
                raise ValueError("this pixel decoder needs the backbone's stride-2 feature")
            norm, fuse, block = self.stride2
            out.append(block(fuse(x, norm(stride2))))
        return out


class PositionFeatures(nn.Module):
    """Fourier features of the normalised pixel coordinates of a frame, projected to each decoder
    width and added to its output (``video-kmax-tiny`` only: a small network trained for minutes
    does not learn where things are from zero padding, as deep backbones do)."""

    def __init__(self, channels: tuple[int, ...], bands: int = 4) -> None:
        super().__init__()
        self.bands = bands
        convs = [nn.Conv2d(4 * bands, c, 1) for c in channels]
        for conv in convs:  # starts as a no-op
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)  # type: ignore[arg-type]
        self.proj = nn.ModuleList(convs)

    def encode(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        ys = torch.linspace(-1, 1, h, device=device)[:, None].expand(h, w)
        xs = torch.linspace(-1, 1, w, device=device)[None, :].expand(h, w)
        freq = math.pi * 2.0 ** torch.arange(self.bands, device=device).float()
        ang = torch.cat([ys[None] * freq[:, None, None], xs[None] * freq[:, None, None]])
        return torch.cat([ang.sin(), ang.cos()])[None]  # 1 × 4·bands × h × w

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return [f + proj(self.encode(f.shape[-2], f.shape[-1], f.device))
                for f, proj in zip(feats, self.proj, strict=True)]


class KMaXPredictor(nn.Module):
    """Class and mask logits from query features ``B×D×N`` and pixel features ``B×C×H×W``."""

    def __init__(self, pixel_channels: int, cfg: KMaXConfig, num_classes: int,
                 head_dim: int | None = None, mask_dim: int | None = None) -> None:
        super().__init__()
        d, hd, md = cfg.query_dim, head_dim or cfg.query_dim, mask_dim or cfg.mask_dim
        self.pixel_head = nn.Sequential(
            ConvBN(pixel_channels, pixel_channels, cfg.head_kernel, groups=pixel_channels),
            ConvBN(pixel_channels, hd), nn.Conv2d(hd, md, 1), nn.BatchNorm2d(md))
        self.mask_head = ConvBN1d(d, md, act=None)
        self.class_head = nn.Conv1d(d, num_classes + 1, 1)
        with torch.no_grad():  # "no object" starts at probability ~0.9
            self.class_head.bias[-1] = math.log(num_classes * 0.9 / 0.1)  # type: ignore[index]
        self.mask_bn = nn.BatchNorm2d(1)
        nn.init.constant_(self.mask_bn.weight, cfg.mask_scale_init)

    def forward(self, query_mask: torch.Tensor, query_class: torch.Tensor,
                pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        pixel_space = F.normalize(self.pixel_head(pixels), dim=1)
        mask_emb = F.normalize(self.mask_head(query_mask), dim=1)
        logits = torch.einsum("bchw,bcn->bnhw", pixel_space, mask_emb)
        b, n, h, w = logits.shape
        logits = self.mask_bn(logits.reshape(b, 1, n * h, w)).reshape(b, n, h, w)
        return {"class_logits": self.class_head(query_class).transpose(1, 2),
                "mask_logits": logits, "pixel_feature": pixel_space}


class KMaXLayer(nn.Module):
    """One kMaX transformer-decoder layer: k-means cross-attention, query self-attention, FFN."""

    def __init__(self, pixel_channels: int, cfg: KMaXConfig, num_classes: int) -> None:
        super().__init__()
        d = cfg.query_dim
        self.heads, self.key_dim = cfg.transformer_heads, d // 2
        self.pixel_in = ConvBN(pixel_channels, d)
        self.query_in = ConvBN1d(d, d)
        self.pixel_value = ConvBN(d, d, act=None)
        self.predictor = KMaXPredictor(d, cfg, num_classes)
        self.kmeans_bn = nn.BatchNorm1d(d)
        r = cfg.residual_bn_init
        self.kmeans_out = ConvBN1d(d, d, act=None, bn_init=r)
        self.qkv = ConvBN1d(d, 2 * self.key_dim + d, act=None)
        self.logit_bn = nn.BatchNorm2d(self.heads)
        self.attn_bn = nn.BatchNorm1d(d)
        self.attn_out = ConvBN1d(d, d, act=None, bn_init=r)
        self.ffn = nn.Sequential(ConvBN1d(d, cfg.ffn_dim), ConvBN1d(cfg.ffn_dim, d, act=None, bn_init=r))
        self.drop = DropPath(cfg.drop_path)

    def forward(self, pixels: torch.Tensor, query: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        b, n = query.shape[0], query.shape[-1]
        pixel_space = self.pixel_in(F.gelu(pixels))
        query_space = self.query_in(query)
        values = self.pixel_value(pixel_space).flatten(2)  # B × D × P
        pred = self.predictor(query_space, query_space, pixel_space)
        with torch.no_grad():  # cluster-wise argmax: each pixel to its highest-scoring query
            logits = pred["mask_logits"].flatten(2)
            assign = torch.zeros_like(logits).scatter_(1, logits.argmax(1, keepdim=True), 1.0)
        update = torch.einsum("bnp,bcp->bcn", assign, values)
        query = query + self.drop(self.kmeans_out(self.kmeans_bn(update)))
        # self-attention among the queries (projected from the features before the update)
        qkv = self.qkv(query_space)
        heads, kd = self.heads, self.key_dim
        q = qkv[:, :kd].reshape(b, heads, kd // heads, n)
        k = qkv[:, kd : 2 * kd].reshape(b, heads, kd // heads, n)
        v = qkv[:, 2 * kd :].reshape(b, heads, -1, n)
        attn = self.logit_bn(torch.einsum("bhdn,bhdm->bhnm", q, k)).softmax(-1)
        out = F.gelu(self.attn_bn(torch.einsum("bhnm,bhdm->bhdn", attn, v).reshape(b, -1, n)))
        query = F.gelu(query + self.drop(self.attn_out(out)))
        query = F.gelu(query + self.drop(self.ffn(query)))
        return query, pred


class SemanticHead(nn.Module):
    """Auxiliary semantic head (training only), Panoptic-DeepLab style: ASPP on the stride-32
    backbone feature, fused with projected stride-8 and stride-4 features, to class logits."""

    def __init__(self, in_channels: tuple[int, ...], cfg: KMaXConfig, num_classes: int) -> None:
        super().__init__()
        c, r = cfg.aspp_channels, cfg.aspp_rates
        self.aspp = nn.ModuleList([ConvBN(in_channels[3], c)] + [
            nn.Sequential(nn.Conv2d(in_channels[3], c, 3, padding=d, dilation=d, bias=False),
                          nn.BatchNorm2d(c), nn.GELU()) for d in r])
        self.pool = ConvBN(in_channels[3], c)
        self.project = nn.Sequential(ConvBN(5 * c, c), nn.Dropout(0.1))
        s8, s4 = cfg.semantic_skip
        self.skip8, self.skip4 = ConvBN(in_channels[1], s8), ConvBN(in_channels[0], s4)
        k = cfg.head_kernel
        self.fuse8 = nn.Sequential(ConvBN(c + s8, c + s8, k, groups=c + s8), ConvBN(c + s8, c))
        self.fuse4 = nn.Sequential(ConvBN(c + s4, c + s4, k, groups=c + s4), ConvBN(c + s4, c))
        self.head = nn.Sequential(ConvBN(c, c, k, groups=c), ConvBN(c, c),
                                  nn.Conv2d(c, num_classes, 1))

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[3]
        pooled = self.pool(x.mean((2, 3), keepdim=True)).expand(-1, -1, *x.shape[-2:])
        x = self.project(torch.cat([m(x) for m in self.aspp] + [pooled], 1))
        for skip, fuse, f in ((self.skip8, self.fuse8, feats[1]), (self.skip4, self.fuse4, feats[0])):
            x = F.interpolate(x, size=f.shape[-2:], mode="bilinear", align_corners=False)
            x = fuse(torch.cat([x, skip(f)], 1))
        return self.head(x)


class VideoKMaX(nn.Module):
    pixel_mean: torch.Tensor
    pixel_std: torch.Tensor

    """clip-kMaX: ``forward(images B×T×3×H×W)`` -> a dict of

    * ``class_logits`` ``B×N×(C+1)``, ``mask_logits`` ``B×N×(T·H/s)×(W/s)`` (the clip as one image,
      s = ``final_stride``, 4 as in kMaX-DeepLab or 2),
    * ``pixel_feature`` ``B×mask_dim×(T·H/s)×(W/s)`` (normalised pixel embeddings),
    * ``query_embedding`` ``B×N×D`` (the final object queries, the appearance cue of HiLA-MB),
    * ``semantic_logits`` ``B×C×(T·H/4)×(W/4)`` (training only),
    * ``aux`` — the per-layer class and mask logits for deep supervision (training only) and
      ``aux_size``, the stride-4 clip size they and the semantic logits are supervised at,
    * ``frames`` — T.
    """

    def __init__(self, cfg: KMaXConfig, num_classes: int) -> None:
        super().__init__()
        self.config, self.num_classes = cfg, num_classes
        self.backbone = build_backbone(cfg.backbone, drop_path=cfg.backbone_drop_path)
        chans = self.backbone.channels
        self.pixel_decoder = KMaXPixelDecoder(chans, cfg, self.backbone.stride2_channels)
        # the decoder outputs the network reads: strides 32, 16, 8 (transformer) and the last
        # (final prediction); with final_stride 2 the stride-4 one only feeds the stride-2 stage
        chans_out = self.pixel_decoder.channels
        self.read_stages = (0, 1, 2, len(chans_out) - 1)
        self.position = PositionFeatures(tuple(chans_out[i] for i in self.read_stages)) \
            if cfg.position_features else None
        self.cluster_centers = nn.Parameter(trunc_normal_(torch.empty(1, cfg.query_dim, cfg.num_queries)))
        layers = []
        for stage, count in enumerate(cfg.transformer_layers):
            layers += [KMaXLayer(self.pixel_decoder.channels[stage], cfg, num_classes)
                       for _ in range(count)]
        self.layers = nn.ModuleList(layers)
        self.layer_stage = [s for s, c in enumerate(cfg.transformer_layers) for _ in range(c)]
        d = cfg.query_dim
        self.class_proj = ConvBN1d(d, d)
        self.mask_proj = ConvBN1d(d, d)
        self.final = KMaXPredictor(self.pixel_decoder.channels[-1], cfg, num_classes,
                                   head_dim=cfg.final_head_dim, mask_dim=cfg.final_mask_dim)
        self.semantic = SemanticHead(chans, cfg, num_classes)
        self.register_buffer("pixel_mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("pixel_std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def inference_parameters(self) -> int:
        """Parameters used at inference (all but the training-only auxiliary semantic head),
        the count kMaX-DeepLab publishes."""
        return count_parameters(self) - count_parameters(self.semantic)

    def forward(self, images: torch.Tensor) -> dict[str, Any]:
        if images.ndim == 4:
            images = images[:, None]
        b, t, _, h, w = images.shape
        x = (images.flatten(0, 1) - self.pixel_mean) / self.pixel_std
        # frame by frame: (B·T) × C × h × w per stride
        feats, stride2 = self.backbone.extract(x, stride2=self.config.final_stride == 2)
        decoded = self.pixel_decoder(feats, stride2)
        if self.position is not None:
            placed = self.position([decoded[i] for i in self.read_stages])
            for i, f in zip(self.read_stages, placed, strict=True):
                decoded[i] = f
        # from here on the clip is one image of height T·h (clip-kMaX)
        clip = [clip_to_image(f.reshape(b, t, *f.shape[1:])) for f in decoded]
        query = self.cluster_centers.expand(b, -1, -1)
        aux: list[dict[str, torch.Tensor]] = []
        for layer, stage in zip(self.layers, self.layer_stage, strict=True):
            query, pred = layer(clip[stage], query)
            aux.append(pred)
        final = self.final(self.mask_proj(query), self.class_proj(query), clip[-1])
        out: dict[str, Any] = {
            "class_logits": final["class_logits"], "mask_logits": final["mask_logits"],
            "pixel_feature": final["pixel_feature"], "query_embedding": query.transpose(1, 2),
            "frames": t,
        }
        if self.training:
            sem = self.semantic(feats)  # per frame, (B·T) × C × h/4 × w/4
            out["semantic_logits"] = clip_to_image(sem.reshape(b, t, *sem.shape[1:]))
            out["aux"] = aux
            out["aux_size"] = tuple(clip[3].shape[-2:])  # stride 4: auxiliary supervision
        return out


def build_model(name: str | KMaXConfig, num_classes: int) -> VideoKMaX:
    """A named configuration (``MODEL_CONFIGS``) or a ``KMaXConfig``."""
    if isinstance(name, KMaXConfig):
        return VideoKMaX(name, num_classes)
    if name not in MODEL_CONFIGS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODEL_CONFIGS)}")
    return VideoKMaX(MODEL_CONFIGS[name], num_classes)
