"""Clip-PanoFCN's clip-level aggregation (VIPSeg, Miao et al., CVPR 2022, Sec. 4.2): the kernels
every frame of a clip produced, fused into one kernel per object of the clip.

* Things: per category, the cosine similarity of all the clip's kernels; in decreasing score, a
  kernel not similar (> ``threshold``) to a kernel already taken starts an object; every other
  kernel joins the first (highest-scoring) object it is similar to. An object's kernel is the
  mean of its members, its score the best member's (the one that started it).
* Stuff: one kernel per category, the mean of the clip's kernels of that category (average
  pooling over the frames), scored by the mean of their scores.

The fused kernels, applied to every frame's feature map, give one mask per object and frame:
one kernel is one identity through the clip (intra-clip association without matching).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["ClipKernels", "fuse_clip_kernels"]


@dataclass
class ClipKernels:
    """N fused kernels of a clip; ``members[n]`` lists the (frame, row) kernels fused into n."""

    kernels: torch.Tensor  # N × D
    classes: torch.Tensor  # N int64
    scores: torch.Tensor  # N float
    is_thing: torch.Tensor  # N bool
    members: list[list[tuple[int, int]]]

    def __len__(self) -> int:
        return len(self.classes)


def fuse_clip_kernels(kernels: Sequence[torch.Tensor], classes: Sequence[torch.Tensor],
                      scores: Sequence[torch.Tensor], is_thing: Sequence[torch.Tensor],
                      threshold: float = 0.9) -> ClipKernels:
    """Fuse the kernels of a clip's frames (``kernels[f]`` ``K_f × D`` with their ``classes``,
    ``scores`` and ``is_thing`` flags); see the module docstring."""
    d = kernels[0].shape[-1] if len(kernels) else 0
    where = [(f, r) for f, k in enumerate(kernels) for r in range(len(k))]
    if not where:
        empty = torch.zeros(0, dtype=torch.int64)
        return ClipKernels(torch.zeros(0, d), empty, torch.zeros(0), empty.bool(), [])
    k_all = torch.cat(list(kernels)).float()
    c_all = torch.cat(list(classes)).long()
    s_all = torch.cat(list(scores)).float()
    t_all = torch.cat(list(is_thing)).bool()
    unit = F.normalize(k_all, dim=1)
    groups: list[list[int]] = []
    # things: NMS-style grouping by cosine similarity within a category
    things = torch.nonzero(t_all).squeeze(1)
    order = things[torch.argsort(s_all[things], descending=True, stable=True)].tolist()
    heads: list[int] = []
    for i in order:
        similar = [g for g, h in enumerate(heads)
                   if c_all[h] == c_all[i] and float(unit[h] @ unit[i]) > threshold]
        if similar:
            groups[similar[0]].append(i)
        else:
            heads.append(i)
            groups.append([i])
    # stuff: one group per category
    stuff_classes = torch.unique(c_all[~t_all]).tolist()
    for c in stuff_classes:
        groups.append(torch.nonzero(~t_all & (c_all == c)).squeeze(1).tolist())
    fused = torch.stack([k_all[g].mean(0) for g in groups])
    out_scores = torch.stack([s_all[g[0]] if t_all[g[0]] else s_all[g].mean() for g in groups])
    return ClipKernels(
        kernels=fused, classes=torch.stack([c_all[g[0]] for g in groups]), scores=out_scores,
        is_thing=torch.stack([t_all[g[0]] for g in groups]),
        members=[[where[i] for i in g] for g in groups])
