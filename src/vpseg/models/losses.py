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

__all__ = ["LossWeights", "ClipTargets", "BatchTargets", "make_targets", "features_at", "KMaXLoss"]


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
    """``feature`` ``B×D×h×w`` read at the flat positions ``pick`` (``B×K``) of a ``shape`` grid:
    ``B×D×K``, the values bilinear upsampling to ``shape`` (``align_corners=False``) gives there,
    without upsampling the whole map."""
    if tuple(feature.shape[-2:]) == tuple(shape):
        return feature.flatten(2).gather(2, pick[:, None, :].expand(-1, feature.shape[1], -1))
    h, w = shape
    ys, xs = (pick // w).double(), (pick % w).double()
    grid = torch.stack([(xs + 0.5) / w * 2 - 1, (ys + 0.5) / h * 2 - 1], -1)[:, None]
    grid = grid.to(feature.dtype)
    return F.grid_sample(feature, grid, mode="bilinear", padding_mode="border",
                         align_corners=False)[:, :, 0]


@dataclass
class BatchTargets:
    """The ``ClipTargets`` of a batch on one grid, padded to the same number M of segments (the
    losses run on all clips at once)."""

    masks: torch.Tensor  # B × M × P bool (padding rows empty)
    classes: torch.Tensor  # B × M int64 (padding: 0)
    area: torch.Tensor  # B × M float: pixels per segment (padding: 0)
    valid: torch.Tensor  # B × P bool
    semantic: torch.Tensor  # B × P int64, -1 for void
    segment: torch.Tensor  # B × P int64, -1 in no segment
    counts: list[int]  # real segments per clip
    shape: tuple[int, int]

    @classmethod
    def stack(cls, targets: list[ClipTargets]) -> BatchTargets:
        shape = targets[0].shape
        if any(t.shape != shape for t in targets):
            raise ValueError("the clips of a batch must share one grid")
        counts = [int(t.masks.shape[0]) for t in targets]
        b, m, p = len(targets), max(counts + [1]), targets[0].valid.numel()
        device = targets[0].valid.device
        masks = torch.zeros(b, m, p, dtype=torch.bool, device=device)
        classes = torch.zeros(b, m, dtype=torch.int64, device=device)
        for i, t in enumerate(targets):
            masks[i, : counts[i]] = t.masks
            classes[i, : counts[i]] = t.classes
        return cls(masks, classes, masks.sum(-1).float(), torch.stack([t.valid for t in targets]),
                   torch.stack([t.semantic for t in targets]),
                   torch.stack([t.segment for t in targets]), counts, shape)


def _full(x: torch.Tensor) -> torch.Tensor:
    """Half-precision outputs (AMP) to float32; float32 and float64 as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


class KMaXLoss:
    """``loss(outputs, targets) -> (total, parts)``; ``outputs`` as ``VideoKMaX`` returns in
    training mode. Every term runs on the whole batch at once (segments padded per clip); the
    Hungarian matching alone runs clip by clip."""

    def __init__(self, num_classes: int, weights: LossWeights | None = None) -> None:
        self.num_classes = num_classes
        self.w = weights or LossWeights()

    # -- matching ---------------------------------------------------------------------------
    def match(self, class_logits: torch.Tensor, mask_logits: torch.Tensor,
              targets: BatchTargets) -> torch.Tensor:
        """``B×N×(C+1)``, ``B×N×P`` -> ``B×N``: the segment matched to each query (−1: none)."""
        b, n = class_logits.shape[:2]
        matched = torch.full((b, n), -1, dtype=torch.int64, device=class_logits.device)
        with torch.no_grad():
            probs = _full(mask_logits).softmax(1) * targets.valid[:, None]
            gt = targets.masks.to(probs.dtype)
            inter = torch.bmm(probs, gt.transpose(1, 2))  # B × N × M
            dice = inter / ((probs.sum(-1)[:, :, None] + targets.area[:, None, :]) / 2 + 1e-5)
            cls = _full(class_logits).softmax(-1).gather(
                2, targets.classes[:, None, :].expand(-1, n, -1))
            sim = (cls * dice).cpu()
        for i, m in enumerate(targets.counts):
            if m:
                rows, cols = hungarian_match(sim[i, :, :m])
                matched[i, torch.as_tensor(rows)] = torch.as_tensor(cols, device=matched.device)
        return matched

    @staticmethod
    def owners(targets: BatchTargets, matched: torch.Tensor) -> torch.Tensor:
        """``B×P``: per pixel, the query matched to its segment (−1: void, or its segment was
        left unmatched)."""
        b, n = matched.shape
        query_of = torch.full((b, targets.masks.shape[1] + 1), -1, dtype=torch.int64,
                              device=matched.device)  # last column: "no segment"
        rows = torch.nonzero(matched >= 0)
        query_of[rows[:, 0], matched[rows[:, 0], rows[:, 1]]] = rows[:, 1]
        seg = torch.where(targets.segment >= 0, targets.segment, targets.masks.shape[1])
        return query_of.gather(1, seg)

    # -- the PQ-style loss and mask-ID cross-entropy ----------------------------------------
    def _pq_and_mask_id(self, class_logits: torch.Tensor, mask_logits: torch.Tensor,
                        targets: BatchTargets, matched: torch.Tensor,
                        owner: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """PQ-style loss and mask-ID cross-entropy of L predictions of a batch (``B×L×N×(C+1)``,
        ``B×L×N×P``; the matching is shared by all L), each summed over the L predictions and
        averaged over the clips."""
        b, n_pred, n = class_logits.shape[:3]
        w = self.w
        log_p = _full(class_logits).log_softmax(-1)
        logits = _full(mask_logits)
        soft = logits.softmax(2)
        probs = soft * targets.valid[:, None, None]
        is_matched = matched >= 0  # B × N
        # Dice of each query with its matched segment: the query's probability on the pixels
        # it owns (owner == query), against its soft area and the segment's area
        own = owner.clamp(min=0)[:, None, None, :].expand(-1, n_pred, 1, -1)  # B × L × 1 × P
        on_own = probs.gather(2, own).squeeze(2) * (owner >= 0)[:, None]  # B × L × P
        inter = torch.zeros(b, n_pred, n, dtype=logits.dtype, device=logits.device).scatter_add_(2, own.squeeze(2), on_own)
        gt_area = targets.area.gather(1, matched.clamp(min=0)) * is_matched  # B × N
        dice = (2 * inter + 1.0) / (probs.sum(-1) + gt_area[:, None] + 1.0)  # B × L × N
        # class term: matched -> their class (weight: Dice), others -> no object (weight: void share)
        with torch.no_grad():
            void_share = (soft.sum(-1) - probs.sum(-1)) / soft.sum(-1).clamp(min=1e-12)
            weight = torch.where(is_matched[:, None], w.class_alpha * dice.clamp(min=w.min_weight),
                                 (1 - w.class_alpha) * void_share.clamp(min=w.min_weight))
            labels = torch.where(is_matched, targets.classes.gather(1, matched.clamp(min=0)),
                                 self.num_classes)  # B × N
        log_target = log_p.gather(3, labels[:, None, :, None].expand(-1, n_pred, -1, 1)).squeeze(3)
        class_term = (weight * -log_target).sum() / n
        p_match = log_target.exp().detach().clamp(min=w.min_weight)
        mask_term = (p_match * (1 - dice) * is_matched[:, None]).sum() * w.class_alpha / n
        # mask-ID cross-entropy: every pixel of a matched segment among the N queries; per clip
        # the mean over its pixels, summed over the L predictions
        kept = (owner >= 0).sum(-1)  # B
        ce = F.cross_entropy(logits.flatten(0, 1), owner.repeat_interleave(n_pred, 0),
                             ignore_index=-1, reduction="none").reshape(b, n_pred, -1)
        mask_id = (ce.sum((1, 2)) / kept.clamp(min=1)).sum()
        return (class_term + mask_term) / b, mask_id / b

    # -- pixel-wise instance discrimination --------------------------------------------------
    def sample_pixels(self, targets: BatchTargets,
                      generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``B×K`` pixel positions per clip without replacement, favouring small segments
        (Gumbel top-k), and ``B×K`` whether each is a real sample (a clip with fewer than K
        pixels in segments has fewer)."""
        b, p = targets.valid.shape
        seg = targets.segment
        inside = seg >= 0
        area = targets.area.gather(1, seg.clamp(min=0)).clamp(min=1)
        logit = torch.where(inside, 1.5 * torch.log(p / area), torch.full_like(area, -99999.0))
        u = torch.rand(b, p, generator=generator).to(logit.device).clamp(1e-9, 1 - 1e-9)
        k = min(self.w.sample_pixels, p)
        pick = torch.topk(logit - torch.log(-torch.log(u)), k, dim=1).indices
        return pick, inside.gather(1, pick)

    def _instance_discrimination(self, feats: torch.Tensor, targets: BatchTargets,
                                 pick: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """``feats`` ``B×L×D×K``: L predictions' pixel embeddings at the K sampled pixels
        ``pick``; the soft-target contrast summed over the L and averaged over the clips."""
        b = feats.shape[0]
        if not bool(real.any()):
            return feats.sum() * 0.0
        feats = _full(feats)
        seg = targets.segment.gather(1, pick)  # B × K
        same = ((seg[:, :, None] == seg[:, None, :]) & real[:, :, None] & real[:, None, :]).to(feats.dtype)
        soft = same / same.sum(-1, keepdim=True).clamp(min=1)  # rows sum to 1 (real rows)
        # −Σ_j soft_ij log softmax_j(f_i·f_j / τ) = logsumexp_j(f_i·f_j / τ) − f_i·Σ_j soft_ij f_j / τ:
        # the K×K logits are needed only for the logsumexp
        scaled = feats / self.w.temperature
        logits = scaled.transpose(2, 3) @ feats  # B × L × K × K
        if not bool(real.all()):
            logits = logits.masked_fill(~real[:, None, None, :], float("-inf"))
        b_, n_pred, d, k = feats.shape
        mean_same = torch.bmm(scaled.reshape(b_, n_pred * d, k), soft.transpose(1, 2))
        pulled = (mean_same.reshape(b_, n_pred, d, k) * feats).sum(2)  # B × L × K
        per_row = (logits.logsumexp(-1) - pulled) * real[:, None]
        rows = real.sum(-1).clamp(min=1)  # B
        return (per_row.sum(-1) / rows[:, None]).sum() / b

    # -- all of it ----------------------------------------------------------------------------
    def __call__(self, outputs: dict, targets: list[ClipTargets],
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """``targets`` at the final prediction's size. The auxiliary predictions (and the
        semantic logits) are upsampled to ``outputs["aux_size"]`` (default: the final size; a
        stride-2 final prediction has stride-4 auxiliaries) and supervised there. The losses
        run in full precision, also inside an AMP region."""
        with torch.autocast(outputs["mask_logits"].device.type, enabled=False):
            return self._losses(outputs, targets, generator)

    def _losses(self, outputs: dict, targets: list[ClipTargets],
                generator: torch.Generator | None) -> tuple[torch.Tensor, dict[str, float]]:
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
        fine = BatchTargets.stack(targets)
        # predictions supervised on one grid are computed together: B × L × N × (C+1), ...
        groups = [(final + aux, fine)] if aux_size == size else \
            [(final, fine), (aux, BatchTargets.stack([t.resized(aux_size) for t in targets]))]
        # matched once per clip, on the final prediction; the matches hold for every grid
        matched = self.match(outputs["class_logits"], outputs["mask_logits"].flatten(2), fine)
        pq_total = mid_total = idisc = torch.zeros(())
        for preds, tgt in groups:
            if not preds:
                continue
            cls_all = torch.stack([c for c, _, _ in preds], 1)
            masks_all = torch.stack([m.flatten(2) for _, m, _ in preds], 1)
            pq, mid = self._pq_and_mask_id(cls_all, masks_all, tgt, matched,
                                           self.owners(tgt, matched))
            pick, real = self.sample_pixels(tgt, generator)
            sampled = torch.stack([features_at(_full(f), pick, tgt.shape) for _, _, f in preds], 1)
            pq_total = pq_total + pq
            mid_total = mid_total + mid
            idisc = idisc + self._instance_discrimination(sampled, tgt, pick, real)
        sem = torch.zeros(())
        if "semantic_logits" in outputs:
            sem_t = torch.stack([t.resized(aux_size).semantic for t in targets])
            sem = F.cross_entropy(_full(up(outputs["semantic_logits"])).flatten(2), sem_t,
                                  ignore_index=-1)
        w = self.w
        total = (w.pq_style * pq_total + w.mask_id * mid_total
                 + w.instance_discrimination * idisc + w.semantic * sem)
        parts = {"pq_style": float(pq_total.detach()), "mask_id": float(mid_total.detach()),
                 "instance_discrimination": float(idisc.detach()), "semantic": float(sem.detach())}
        return total, parts
