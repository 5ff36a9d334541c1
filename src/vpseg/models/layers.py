"""Layers of kMaX-DeepLab: conv + batch norm units, drop path, and the axial-attention block
(Axial-DeepLab's position-sensitive axial attention, as MaX-DeepLab's and kMaX-DeepLab's pixel
decoders use it at strides 32 and 16)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConvBN", "ConvBN1d", "DropPath", "AxialAttention", "AxialBlock", "BottleneckBlock",
           "LayerNorm2d", "trunc_normal_", "count_parameters"]


def _act(name: str | None) -> nn.Module:
    if name is None:
        return nn.Identity()
    return {"gelu": nn.GELU(), "relu": nn.ReLU(inplace=True)}[name]


class ConvBN(nn.Sequential):
    """2-D convolution (no bias) + batch norm (+ activation)."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, *, stride: int = 1, groups: int = 1,
                 act: str | None = "gelu", bn_init: float = 1.0) -> None:
        conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        bn = nn.BatchNorm2d(cout)
        nn.init.constant_(bn.weight, bn_init)
        super().__init__(conv, bn, _act(act))


class ConvBN1d(nn.Sequential):
    """1-D (per-query) linear map as a 1×1 convolution (no bias) + batch norm (+ activation)."""

    def __init__(self, cin: int, cout: int, *, act: str | None = "gelu",
                 bn_init: float = 1.0) -> None:
        conv = nn.Conv1d(cin, cout, 1, bias=False)
        bn = nn.BatchNorm1d(cout)
        nn.init.constant_(bn.weight, bn_init)
        super().__init__(conv, bn, _act(act))


class DropPath(nn.Module):
    """Stochastic depth: drops the residual branch per sample with probability ``p``."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device) >= self.p
        return x * keep.to(x.dtype) / (1 - self.p)


class AxialAttention(nn.Module):
    """Position-sensitive self-attention along one axis (Axial-DeepLab, Eq. 4):

    ``y_o = Σ_p softmax_p(q_oᵀk_p + q_oᵀr^q_{p−o} + k_pᵀr^k_{p−o}) (v_p + r^v_{p−o})``

    with learned relative embeddings for offsets up to ``span - 1`` (longer axes clamp the offset).
    ``axis`` 2 attends along the height, 3 along the width of ``B×C×H×W`` features.
    """

    def __init__(self, channels: int, *, axis: int, heads: int, key_dim: int, value_dim: int,
                 span: int) -> None:
        super().__init__()
        if key_dim % heads or value_dim % heads:
            raise ValueError("key and value channels must divide into the heads")
        self.axis, self.heads, self.span = axis, heads, span
        self.key_dim, self.value_dim = key_dim, value_dim
        self.qkv = ConvBN1d(channels, 2 * key_dim + value_dim, act=None)
        dk, dv = key_dim // heads, value_dim // heads
        self.rel_q = nn.Parameter(torch.randn(2 * span - 1, dk) * dk**-0.5)
        self.rel_k = nn.Parameter(torch.randn(2 * span - 1, dk) * dk**-0.5)
        self.rel_v = nn.Parameter(torch.randn(2 * span - 1, dv) * dv**-0.5)
        # batch norms on the three logit terms and the two output terms, as Axial-DeepLab
        self.logit_bn = nn.BatchNorm2d(3 * heads)
        self.out_bn = nn.BatchNorm1d(2 * value_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        if self.axis == 2:  # lines are columns: (B·W) × C × H
            lines = x.permute(0, 3, 1, 2).reshape(b * w, c, h)
        else:  # lines are rows: (B·H) × C × W
            lines = x.permute(0, 2, 1, 3).reshape(b * h, c, w)
        n, _, length = lines.shape
        heads, dk, dv = self.heads, self.key_dim // self.heads, self.value_dim // self.heads
        qkv = self.qkv(lines)
        q = qkv[:, : self.key_dim].reshape(n, heads, dk, length)
        k = qkv[:, self.key_dim : 2 * self.key_dim].reshape(n, heads, dk, length)
        v = qkv[:, 2 * self.key_dim :].reshape(n, heads, dv, length)
        pos = torch.arange(length, device=x.device)
        offset = (pos[None, :] - pos[:, None]).clamp(-(self.span - 1), self.span - 1) + self.span - 1
        rq, rk, rv = self.rel_q[offset], self.rel_k[offset], self.rel_v[offset]  # L×L×d (o, p)
        qk = torch.einsum("nhdo,nhdp->nhop", q, k)
        qr = torch.einsum("nhdo,opd->nhop", q, rq)
        kr = torch.einsum("nhdp,opd->nhop", k, rk)
        logits = self.logit_bn(torch.cat([qk, qr, kr], 1)).reshape(n, 3, heads, length, length)
        attn = logits.sum(1).softmax(-1)  # n × heads × o × p
        out_v = torch.einsum("nhop,nhdp->nhdo", attn, v).reshape(n, self.value_dim, length)
        out_r = torch.einsum("nhop,opd->nhdo", attn, rv).reshape(n, self.value_dim, length)
        out = self.out_bn(torch.cat([out_v, out_r], 1)).reshape(n, 2, self.value_dim, length).sum(1)
        if self.axis == 2:
            return out.reshape(b, w, self.value_dim, h).permute(0, 2, 3, 1)
        return out.reshape(b, h, self.value_dim, w).permute(0, 2, 1, 3)


class _DecoderBlock(nn.Module):
    """kMaX pixel-decoder block: GELU on the input (the shortcut is taken after it), 1×1 conv
    (``inner``), the middle, 1×1 conv to ``cout`` with its BN scale starting at 0, drop path,
    residual add (no activation after it); a 1×1 conv + BN shortcut when the width changes."""

    middle: nn.Module

    def __init__(self, cin: int, cout: int, inner: int, drop_path: float) -> None:
        super().__init__()
        self.conv1 = ConvBN(cin, inner)
        self.conv3 = ConvBN(inner, cout, act=None, bn_init=0.0)
        self.shortcut = nn.Identity() if cin == cout else ConvBN(cin, cout, act=None)
        self.drop = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(x)
        return self.shortcut(x) + self.drop(self.conv3(self.middle(self.conv1(x))))


class AxialBlock(_DecoderBlock):
    """Axial-attention block (MaX-DeepLab): 1×1 conv to ``inner``, height-axis then width-axis
    position-sensitive attention (key depth ``inner/2``, value depth ``inner``), GELU, 1×1 conv."""

    def __init__(self, cin: int, cout: int, *, inner: int, heads: int, span: int,
                 drop_path: float = 0.0) -> None:
        super().__init__(cin, cout, inner, drop_path)
        self.middle = nn.Sequential(
            AxialAttention(inner, axis=2, heads=heads, key_dim=inner // 2, value_dim=inner, span=span),
            AxialAttention(inner, axis=3, heads=heads, key_dim=inner // 2, value_dim=inner, span=span),
            nn.GELU())


class BottleneckBlock(_DecoderBlock):
    """ResNet bottleneck (1×1, 3×3, 1×1) with GELU, as kMaX's decoder uses at strides 8 and 4."""

    def __init__(self, cin: int, cout: int, *, inner: int, drop_path: float = 0.0) -> None:
        super().__init__(cin, cout, inner, drop_path)
        self.middle = ConvBN(inner, inner, 3)


class LayerNorm2d(nn.LayerNorm):
    """Layer norm over the channels of ``B×C×H×W`` features (each pixel on its own)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def trunc_normal_(t: torch.Tensor, std: float = 1.0) -> torch.Tensor:
    return nn.init.trunc_normal_(t, std=std, a=-2 * std, b=2 * std)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

