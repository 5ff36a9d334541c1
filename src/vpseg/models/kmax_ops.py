"""Building blocks of kMaX-DeepLab (Yu et al., ECCV 2022) and clip-kMaX (Video-kMaX Sec. 3.1).

* k-means cross-attention: object queries are cluster centres; each pixel is assigned to the
  centre with the highest affinity (argmax over the *cluster* axis, not softmax over pixels), and
  every centre is updated by the sum of the values of its pixels:
  ``C ← C + argmax_N(Q_c K_pᵀ) V_p`` with one-hot assignments.
* clip reshaping: clip features ``T × H × W`` are laid out as one ``1 × TH × W`` image, so the
  image decoder attends over the whole clip; the inverse puts them back.
* PQ-style matching: ``sim(i, j) = p_i(c_j) · Dice(m_i, g_j)`` between predictions and ground
  truth masks, Hungarian matching maximising it.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

__all__ = ["kmeans_cross_attention", "clip_to_image", "image_to_clip", "dice_similarity",
           "pq_similarity", "hungarian_match"]


def kmeans_cross_attention(centers: torch.Tensor, keys: torch.Tensor,
                           values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``centers`` ``B×N×D``, ``keys`` and ``values`` ``B×P×D`` (P pixels) ->
    (updated centers ``B×N×D``, one-hot assignment ``B×N×P``).

    The assignment is the argmax over the N clusters of ``centers @ keysᵀ`` (a hard k-means
    E-step); the update adds each cluster's summed pixel values (the M-step as a residual).
    """
    logits = torch.einsum("bnd,bpd->bnp", centers, keys)
    assignment = torch.nn.functional.one_hot(logits.argmax(dim=1), centers.shape[1])
    assignment = assignment.permute(0, 2, 1).to(values.dtype)  # B x N x P
    return centers + torch.einsum("bnp,bpd->bnd", assignment, values), assignment


def clip_to_image(x: torch.Tensor) -> torch.Tensor:
    """``B×T×C×H×W`` -> ``B×C×(T·H)×W``: the T frames stacked along the height."""
    b, t, c, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b, c, t * h, w)


def image_to_clip(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Inverse of ``clip_to_image``: ``B×C×(T·H)×W`` -> ``B×T×C×H×W``."""
    b, c, th, w = x.shape
    if th % frames:
        raise ValueError(f"height {th} is not a multiple of {frames} frames")
    return x.reshape(b, c, frames, th // frames, w).permute(0, 2, 1, 3, 4)


def dice_similarity(pred: torch.Tensor, gt: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """``N×P`` soft masks and ``M×P`` binary masks -> ``N×M`` Dice coefficients."""
    inter = pred @ gt.T
    return (2 * inter + eps) / (pred.sum(1)[:, None] + gt.sum(1)[None, :] + eps)


def pq_similarity(class_probs: torch.Tensor, masks: torch.Tensor, gt_classes: torch.Tensor,
                  gt_masks: torch.Tensor) -> torch.Tensor:
    """``N×(C+1)`` class probabilities, ``N×P`` masks, ``M`` classes, ``M×P`` masks -> ``N×M``
    PQ-style similarity ``p_i(c_j) · Dice(m_i, g_j)`` (the mask-transformer matching score)."""
    return class_probs[:, gt_classes] * dice_similarity(masks, gt_masks)


def hungarian_match(similarity: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(prediction indices, ground-truth indices) maximising the total ``N×M`` similarity."""
    rows, cols = linear_sum_assignment(-similarity.detach().float().cpu().numpy())
    return rows, cols
