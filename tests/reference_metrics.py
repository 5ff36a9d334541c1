"""Straightforward reference implementations, written from the official scripts' descriptions
(panopticapi ``pq_compute_single_core``; VIPSeg ``eval_vpq_vspw.py``): per window, concatenate
the k frames and recompute every segment's area and every intersection from pixels with Python
dictionaries. Slow and obvious on purpose; vpseg's table-based metrics must agree with them.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

OFFSET = 1 << 32


def pq_stats_reference(gt: np.ndarray, pred: np.ndarray, labels) -> dict[int, list[float]]:
    """``{class: [iou_sum, tp, fp, fn]}`` for one (possibly concatenated) image."""
    div, ignore = labels.label_divisor, labels.ignore_label
    things = set(labels.thing_ids)
    gt_area = Counter(gt.ravel().tolist())
    pred_area = Counter(pred.ravel().tolist())
    pairs = Counter((gt.astype(np.int64) * OFFSET + pred).ravel().tolist())
    stats: dict[int, list[float]] = defaultdict(lambda: [0.0, 0, 0, 0])

    def is_void(seg):
        return seg // div == ignore

    def is_crowd(seg):
        return seg // div in things and seg % div == 0

    void_with = Counter()
    for key, n in pairs.items():
        g, p = divmod(key, OFFSET)
        if is_void(g):
            void_with[p] += n
    gt_matched, pred_matched = set(), set()
    for key, inter in pairs.items():
        g, p = divmod(key, OFFSET)
        if is_void(g) or is_void(p) or is_crowd(g) or g // div != p // div:
            continue
        union = pred_area[p] + gt_area[g] - inter - void_with[p]
        iou = inter / union
        if iou > 0.5:
            stats[g // div][0] += iou
            stats[g // div][1] += 1
            gt_matched.add(g)
            pred_matched.add(p)
    crowd_of = {}
    for g in gt_area:
        if g in gt_matched or is_void(g):
            continue
        if is_crowd(g):
            crowd_of[g // div] = g
            continue
        stats[g // div][3] += 1
    for p in pred_area:
        if p in pred_matched or is_void(p):
            continue
        inter = void_with[p]
        if p // div in crowd_of:
            inter += pairs.get(crowd_of[p // div] * OFFSET + p, 0)
        if inter / pred_area[p] > 0.5:
            continue
        stats[p // div][2] += 1
    return dict(stats)


def vpq_reference(videos, labels, ks) -> dict[int, dict[int, list[float]]]:
    """``{k: {class: [iou, tp, fp, fn]}}`` over windows of k frames of each (gt, pred) video."""
    out = {}
    for k in ks:
        total: dict[int, list[float]] = defaultdict(lambda: [0.0, 0, 0, 0])
        for gt_frames, pred_frames in videos:
            for i in range(len(gt_frames) - k + 1):
                gt = np.concatenate(gt_frames[i : i + k], axis=1)
                pred = np.concatenate(pred_frames[i : i + k], axis=1)
                for c, v in pq_stats_reference(gt, pred, labels).items():
                    total[c] = [a + b for a, b in zip(total[c], v, strict=True)]
        out[k] = dict(total)
    return out


def vc_reference(videos, n, official=True) -> float | None:
    """VSPW VC_N: per window of n frames (T - n windows per video officially), the share of
    ground-truth-consistent pixels whose prediction is consistent too; mean over windows."""
    values = []
    for gt, pred in videos:
        count = len(gt) - n if official else len(gt) - n + 1
        for i in range(max(count, 0)):
            gt_ok = np.all([gt[j] == gt[i] for j in range(i, i + n)], axis=0)
            pred_ok = np.all([pred[j] == pred[i] for j in range(i, i + n)], axis=0)
            if gt_ok.sum() == 0:
                continue
            values.append((gt_ok & pred_ok).sum() / gt_ok.sum())
    return float(np.mean(values)) if values else None


def stq_reference(videos, labels) -> dict[str, float]:
    """STQ the way deeplab2's numpy ``STQuality`` computes it: dictionaries of tube areas and
    intersections per sequence, a (C+1)² confusion matrix with a void row and column."""
    div, ignore = labels.label_divisor, labels.ignore_label
    things = list(labels.thing_ids)
    index = {c: i for i, c in enumerate(labels.ids)}
    n = len(labels) + 1
    total_conf = np.zeros((n, n), dtype=np.int64)
    aq_sum, tubes = 0.0, 0
    for gt_frames, pred_frames in videos:
        gts, preds, inter = Counter(), Counter(), Counter()
        for gt, pred in zip(gt_frames, pred_frames, strict=True):
            sem_gt, sem_pred = gt // div, pred // div
            for g, p in zip(sem_gt.ravel().tolist(), sem_pred.ravel().tolist(), strict=True):
                total_conf[index.get(g, n - 1), index.get(p, n - 1)] += 1
            label_mask = np.isin(sem_gt, things)
            crowd = label_mask & (gt % div == 0)
            label_mask &= ~crowd
            pred_mask = np.isin(sem_pred, things) & ~crowd
            gts.update(gt[label_mask].tolist())
            preds.update(pred[pred_mask].tolist())
            both = label_mask & pred_mask
            inter.update(zip(gt[both].tolist(), pred[both].tolist(), strict=True))
        for g, g_size in gts.items():
            inner = 0.0
            for p, p_size in preds.items():
                tpa = inter.get((g, p), 0)
                if tpa:
                    inner += tpa * (tpa / (p_size + g_size - tpa))
            aq_sum += inner / g_size
        tubes += len(gts)
    aq = aq_sum / tubes if tubes else 0.0
    total_conf[n - 1, :] = 0
    tp = np.diag(total_conf).astype(float)
    union = total_conf.sum(0) + total_conf.sum(1) - tp
    iou = float(np.sum(tp[union > 0] / union[union > 0]) / np.count_nonzero(union))
    del ignore
    return {"STQ": float(np.sqrt(aq * iou)), "AQ": aq, "IoU": iou}
