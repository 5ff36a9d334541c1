"""The kMaX-DeepLab training losses (MaX-DeepLab's PQ-style loss and its auxiliaries) as the
official code computes them (deeplab2 ``max_deeplab_loss.py`` and the PyTorch kMaX-DeepLab
``criterion.py`` agree), applied to clips laid out as one image: a ground-truth *tube* is one
mask over the T stacked frames. Everything is at stride 4 (kMaX-DeepLab's mask logits); a
stride-2 final prediction (``video-kmax-tiny``) is supervised at stride 2, its auxiliaries at 4.

Matching, once per clip on the *final* prediction (and reused for every auxiliary layer):
Hungarian on ``p_i(c_j) · Dice(m_i, g_j)``, ``m`` the pixel-wise softmax of the mask logits over
the N queries with void pixels zeroed, Dice without smoothing. Then, summed over the final and
every auxiliary prediction:

* PQ-style loss (weight 3.0), normalised by N per clip:
  - class term: cross-entropy over C + 1 classes, α = 0.75 for a matched query (target its
    segment's class, weighted by the constant Dice) and 1 − α for the others (target "no
    object", weighted by the constant share of the query's soft mask on void pixels); weights
    floored at 1e-5;
  - mask term: ``1 − Dice`` (smooth 1) of matched queries weighted by the constant class
    probability, times α;
* mask-ID cross-entropy (0.3): every non-void pixel classified among the N queries, the target
  being the query matched to its segment;
* pixel-wise instance discrimination (1.0; CMT-DeepLab's pixel-to-pixel contrast): K pixels
  sampled per clip (Gumbel top-k on ``1.5 · log(P / area of the pixel's segment)``, favouring
  small segments), soft-target cross-entropy of ``f_i · f_j / 0.3`` against "same segment";
* auxiliary semantic cross-entropy (1.0) on the semantic head (final output only).

Void pixels (ignore label) and crowd regions (thing class, instance 0) belong to no segment;
crowd pixels still count for the semantic loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vpseg.core.labels import LabelSpace
from vpseg.models.kmax_ops import clip_to_image, hungarian_match

__all__ = ["LossWeights", "ClipTargets", "make_targets", "features_at", "KMaXLoss"]


@dataclass(frozen=True)
class LossWeights:
    """Weights and settings of kMaX-DeepLab's COCO configs (``sample_pixels`` 4096 there; fewer
    make the K×K contrast cheaper on a CPU)."""

    pq_style: float = 3.0
    mask_id: float = 0.3
    instance_discrimination: float = 1.0
    semantic: float = 1.0
    class_alpha: float = 0.75
    temperature: float = 0.3
    sample_pixels: int = 4096
    min_weight: float = 1e-5


@dataclass
class ClipTargets:
    """Ground truth of one clip at the prediction resolution, flattened to P pixels."""

    masks: torch.Tensor  # M × P bool, one per segment (tube)
    classes: torch.Tensor  # M int64
    valid: torch.Tensor  # P bool: pixels in some segment
    semantic: torch.Tensor  # P int64, ignore_index = -1 for void
    segment: torch.Tensor  # P int64: the pixel's row of ``masks``, -1 where it is in none
    shape: tuple[int, int]  # the clip image's (T·h, w); P = T·h·w

    def to(self, device: str | torch.device) -> ClipTargets:
        return ClipTargets(self.masks.to(device), self.classes.to(device), self.valid.to(device),
                           self.semantic.to(device), self.segment.to(device), self.shape)

    def resized(self, shape: tuple[int, int]) -> ClipTargets:
        """The same segments (same order, so matches carry over) on a grid coarser by an
        integer factor: every factor-th pixel of each row and column. A segment too small to
        hit the coarser grid keeps an empty mask."""
        if tuple(shape) == self.shape:
            return self
        (h, w), (sh, sw) = self.shape, shape
        if h % sh or w % sw or h // sh != w // sw:
            raise ValueError(f"targets of {h}x{w} cannot be subsampled to {sh}x{sw}")
        f = h // sh

        def sub(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(*x.shape[:-1], h, w)[..., ::f, ::f].flatten(-2)

        return ClipTargets(sub(self.masks), self.classes, sub(self.valid), sub(self.semantic),
                           sub(self.segment), (sh, sw))


def make_targets(panoptic: torch.Tensor, labels: LabelSpace, size: tuple[int, int]) -> list[ClipTargets]:
    """``panoptic`` ``B×T×H×W`` ids -> per-clip targets at ``size`` (per frame, nearest)."""
    b, t, h, w = panoptic.shape
    sh, sw = size
    ys = (torch.arange(sh) * h // sh + h // (2 * sh)).clamp(max=h - 1)
    xs = (torch.arange(sw) * w // sw + w // (2 * sw)).clamp(max=w - 1)
    small = panoptic[:, :, ys][:, :, :, xs]  # B×T×sh×sw
    small = clip_to_image(small[:, :, None]).reshape(b, -1)  # B × (T·sh·sw)
    div, ignore = labels.label_divisor, labels.ignore_label
    things = torch.tensor(sorted(labels.thing_ids), dtype=torch.int64)
    out = []
    for i in range(b):
        ids = small[i]
        sem = ids // div
        inst = ids % div
        is_void = sem == ignore
        is_crowd = torch.isin(sem, things) & (inst == 0)
        seg_ids = torch.where(torch.isin(sem, things), ids, sem * div)  # stuff: one per class
        seg_ids = torch.where(is_void | is_crowd, torch.full_like(ids, -1), seg_ids)
        uniq = torch.unique(seg_ids)
        uniq = uniq[uniq >= 0]
        masks = seg_ids[None, :] == uniq[:, None]
        semantic = torch.where(is_void, torch.full_like(sem, -1), sem)
        segment = torch.where(seg_ids >= 0, torch.searchsorted(uniq, seg_ids), -1)
        out.append(ClipTargets(masks=masks, classes=uniq // div, valid=seg_ids >= 0,
                               semantic=semantic, segment=segment, shape=(t * sh, sw)))
    return out


def features_at(feature: torch.Tensor, pick: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """``feature`` ``D×h×w`` read at the flat positions ``pick`` of a ``shape`` grid: ``D×K``,
    the values bilinear upsampling to ``shape`` (``align_corners=False``) gives there, without
    upsampling the whole map."""
    if tuple(feature.shape[-2:]) == tuple(shape):
        return feature.flatten(1)[:, pick]
    h, w = shape
    ys, xs = (pick // w).to(feature.dtype), (pick % w).to(feature.dtype)
    grid = torch.stack([(xs + 0.5) / w * 2 - 1, (ys + 0.5) / h * 2 - 1], -1)[None, None]
    return F.grid_sample(feature[None], grid, mode="bilinear", padding_mode="border",
                         align_corners=False)[0, :, 0]


class KMaXLoss:
    """``loss(outputs, targets) -> (total, parts)``; ``outputs`` as ``VideoKMaX`` returns in
    training mode."""

    def __init__(self, num_classes: int, weights: LossWeights | None = None) -> None:
        self.num_classes = num_classes
        self.w = weights or LossWeights()

    # -- matching ---------------------------------------------------------------------------
    def match(self, class_logits: torch.Tensor, mask_logits: torch.Tensor,
              target: ClipTargets) -> tuple[torch.Tensor, torch.Tensor]:
        """(query index, segment index) pairs for one clip (``N×(C+1)``, ``N×P``)."""
        if target.masks.shape[0] == 0:
            empty = torch.zeros(0, dtype=torch.int64)
            return empty, empty
        with torch.no_grad():
            probs = mask_logits.float().softmax(0) * target.valid
            gt = target.masks.float()
            dice = (probs @ gt.T) / ((probs.sum(1)[:, None] + gt.sum(1)[None, :]) / 2 + 1e-5)
            cls = class_logits.float().softmax(-1)[:, target.classes]
            rows, cols = hungarian_match(cls * dice)
        return torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)

    # -- one prediction of one clip ------------------------------------------------------------
    @staticmethod
    def owners(target: ClipTargets, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Per pixel, the query matched to its segment (−1: void)."""
        owner = torch.full((target.valid.numel(),), -1, dtype=torch.int64)
        if target.masks.shape[0] == 0:
            return owner
        seg = target.segment
        query_of = torch.full((target.masks.shape[0],), -1, dtype=torch.int64)
        query_of[cols] = rows
        owner[target.valid] = query_of[seg[target.valid]]
        return owner

    def _pq_and_mask_id(self, class_logits: torch.Tensor, mask_logits: torch.Tensor,
                        target: ClipTargets, rows: torch.Tensor, cols: torch.Tensor,
                        owner: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """PQ-style loss and mask-ID cross-entropy of L predictions of one clip at once
        (``L×N×(C+1)``, ``L×N×P``; the matched pairs and the matched query of every pixel are
        shared by all L), each summed over the L predictions."""
        n_pred, n = class_logits.shape[:2]
        w = self.w
        log_p = class_logits.float().log_softmax(-1)
        logits = mask_logits.float()
        valid = target.valid
        soft = logits.softmax(1)
        probs = soft * valid
        gt = target.masks.float()
        # class term: matched -> their class (weight: Dice), others -> no object (weight: void share)
        with torch.no_grad():
            void_share = (soft.sum(-1) - probs.sum(-1)) / soft.sum(-1).clamp(min=1e-12)
            weight = (1 - w.class_alpha) * void_share.clamp(min=w.min_weight)  # L × N
            labels = torch.full((n,), self.num_classes, dtype=torch.int64)
        inter = (probs[:, rows] * gt[cols]).sum(-1)  # L × matched
        dice = (2 * inter + 1.0) / (probs[:, rows].sum(-1) + gt[cols].sum(-1) + 1.0)
        if len(rows):
            with torch.no_grad():
                weight[:, rows] = w.class_alpha * dice.clamp(min=w.min_weight)
                labels[rows] = target.classes[cols]
        ce = -log_p.gather(2, labels[None, :, None].expand(n_pred, n, 1)).squeeze(2)
        class_term = (weight * ce).sum() / n
        p_match = log_p[:, rows, target.classes[cols]].exp().detach().clamp(min=w.min_weight)
        mask_term = (p_match * (1 - dice)).sum() * w.class_alpha / n
        # mask-ID cross-entropy over the non-void pixels (each belongs to a matched segment);
        # every prediction has the same pixels, so L times the mean over all is the sum of means
        keep = owner >= 0
        if keep.any():
            picked = logits[:, :, keep].transpose(1, 2).reshape(-1, n)
            mask_id = F.cross_entropy(picked, owner[keep].repeat(n_pred)) * n_pred
        else:
            mask_id = logits.sum() * 0.0
        return class_term + mask_term, mask_id

    def sample_pixels(self, target: ClipTargets, generator: torch.Generator | None) -> torch.Tensor:
        """K pixel positions without replacement, favouring small segments (Gumbel top-k)."""
        area = target.masks.sum(1).float()
        seg_of = target.segment
        p = target.valid.numel()
        logit = torch.full((p,), -99999.0)
        valid = seg_of >= 0
        logit[valid] = 1.5 * torch.log(p / area[seg_of[valid]])
        u = torch.rand(p, generator=generator).clamp(1e-9, 1 - 1e-9)
        k = min(self.w.sample_pixels, int(valid.sum()))
        return torch.topk(logit - torch.log(-torch.log(u)), k).indices

    def _instance_discrimination(self, feats: torch.Tensor, target: ClipTargets,
                                 pick: torch.Tensor) -> torch.Tensor:
        """``feats`` ``L×D×K``: L predictions' pixel embeddings at the K sampled pixels
        ``pick``; summed over the L."""
        if pick.numel() == 0:
            return feats.sum() * 0.0
        feats = feats.float()
        same = target.masks[:, pick].float()  # M × K
        soft = same.T @ same  # K × K: 1 where two pixels share a segment
        soft = soft / soft.sum(1, keepdim=True).clamp(min=1)
        logits = feats.transpose(1, 2) @ feats / self.w.temperature  # L × K × K
        return -(soft * logits.log_softmax(-1)).sum(-1).mean(-1).sum()

    # -- all of it ----------------------------------------------------------------------------
    def __call__(self, outputs: dict, targets: list[ClipTargets],
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """``targets`` at the final prediction's size. The auxiliary predictions (and the
        semantic logits) are upsampled to ``outputs["aux_size"]`` (default: the final size; a
        stride-2 final prediction has stride-4 auxiliaries) and supervised there."""
        size = tuple(outputs["mask_logits"].shape[-2:])
        aux_size = tuple(outputs.get("aux_size", size))

        def up(x: torch.Tensor) -> torch.Tensor:
            return x if tuple(x.shape[-2:]) == aux_size else F.interpolate(
                x, size=aux_size, mode="bilinear", align_corners=False)

        # pixel features stay at their own resolution: the instance discrimination loss reads
        # them at its K sampled pixels only (``features_at``, the same values as upsampling)
        final = [(outputs["class_logits"], outputs["mask_logits"], outputs["pixel_feature"])]
        aux = [(a["class_logits"], up(a["mask_logits"]), a["pixel_feature"])
               for a in outputs.get("aux", [])]
        # predictions supervised on one grid are computed together: L × N × (C+1), L × N × P, ...
        same = aux_size == size and all(f.shape[1] == final[0][2].shape[1] for _, _, f in aux)
        groups = [(final + aux, targets)] if same else \
            [(final, targets), (aux, [t.resized(aux_size) for t in targets])]
        b = len(targets)
        # matched once per clip, on the final prediction; the matches hold for every grid
        final_cls, final_masks = outputs["class_logits"], outputs["mask_logits"]
        matches = [self.match(final_cls[i], final_masks[i].flatten(1), t)
                   for i, t in enumerate(targets)]
        pq_total = mid_total = idisc = torch.zeros(())
        for preds, tgts in groups:
            if not preds:
                continue
            cls_all = torch.stack([c for c, _, _ in preds], 1)
            masks_all = torch.stack([m.flatten(2) for _, m, _ in preds], 1)
            # unbind, not x[i]: indexing a batch element costs a full-size zero gradient each
            feats = list(zip(*(f.unbind(0) for _, _, f in preds), strict=True))  # per clip: L
            per_clip = zip(cls_all.unbind(0), masks_all.unbind(0), feats, tgts, matches, strict=True)
            for c_i, m_i, f_i, tgt, (rows, cols) in per_clip:
                owner = self.owners(tgt, rows, cols)
                pq, mid = self._pq_and_mask_id(c_i, m_i, tgt, rows, cols, owner)
                pq_total = pq_total + pq / b
                mid_total = mid_total + mid / b
                pick = self.sample_pixels(tgt, generator)
                sampled = torch.stack([features_at(f, pick, tgt.shape) for f in f_i])
                idisc = idisc + self._instance_discrimination(sampled, tgt, pick) / b
        sem = torch.zeros(())
        if "semantic_logits" in outputs:
            sem_t = torch.stack([t.resized(aux_size).semantic for t in targets])
            sem = F.cross_entropy(up(outputs["semantic_logits"]).float().flatten(2), sem_t,
                                  ignore_index=-1)
        w = self.w
        total = (w.pq_style * pq_total + w.mask_id * mid_total
                 + w.instance_discrimination * idisc + w.semantic * sem)
        parts = {"pq_style": float(pq_total.detach()), "mask_id": float(mid_total.detach()),
                 "instance_discrimination": float(idisc.detach()), "semantic": float(sem.detach())}
        return total, parts
