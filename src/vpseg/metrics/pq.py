"""Panoptic quality of one (summed) pair table, as cocodataset/panopticapi ``pq_compute`` does.

Segments are panoptic ids ``semantic * label_divisor + instance``. Ground truth: ids whose class is
the ignore label are void; a thing class with instance 0 is that class's crowd region. Matching:
same class, ground truth not crowd, IoU > 0.5 strictly, with
``IoU = |g ∩ p| / (|g| + |p| - |g ∩ p| - |p ∩ void|)``. Unmatched non-crowd ground truth is a
false negative; an unmatched prediction is a false positive unless more than half of it lies on
void plus the crowd region of its own class. Predicted void pixels belong to no segment.

``PQStats`` holds per-class int64 TP/FP/FN and the IoU sum; ``PQStats.result`` averages over
classes with TP + FP + FN > 0 (all, things, stuff), like ``pq_average``. The IoU sum is kept in
int64 fixed point (units of 2^-40): sums are then exact and independent of order, so merging
accumulators of any split of a data set gives identical numbers; the rounding (< 1e-12 per match)
is far below the 1e-9 at which vpseg agrees with the official scripts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vpseg.core.labels import LabelSpace
from vpseg.metrics.tables import PairTable

__all__ = ["PQStats", "match_table", "IOU_SCALE"]

#: Fixed-point scale of accumulated IoU sums.
IOU_SCALE = float(1 << 40)


@dataclass
class PQStats:
    """Per-class sufficient statistics of PQ, indexed by class id (``(C,)`` arrays)."""

    num_classes: int
    tp: np.ndarray = field(init=False)
    fp: np.ndarray = field(init=False)
    fn: np.ndarray = field(init=False)
    iou_fixed: np.ndarray = field(init=False)  # IoU sums in units of 1 / IOU_SCALE

    def __post_init__(self) -> None:
        self.tp = np.zeros(self.num_classes, dtype=np.int64)
        self.fp = np.zeros(self.num_classes, dtype=np.int64)
        self.fn = np.zeros(self.num_classes, dtype=np.int64)
        self.iou_fixed = np.zeros(self.num_classes, dtype=np.int64)

    def merge(self, other: PQStats) -> PQStats:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.iou_fixed += other.iou_fixed
        return self

    @property
    def iou(self) -> np.ndarray:
        """Per-class IoU sums, float64."""
        return self.iou_fixed / IOU_SCALE

    def per_class(self) -> dict[str, np.ndarray]:
        """PQ, SQ, RQ per class (0 where a class has no TP/FP/FN; see ``present``)."""
        denom = self.tp + 0.5 * self.fp + 0.5 * self.fn
        iou = self.iou
        with np.errstate(divide="ignore", invalid="ignore"):
            pq = np.where(denom > 0, iou / np.where(denom > 0, denom, 1), 0.0)
            sq = np.where(self.tp > 0, iou / np.maximum(self.tp, 1), 0.0)
            rq = np.where(denom > 0, self.tp / np.where(denom > 0, denom, 1), 0.0)
        return {"PQ": pq, "SQ": sq, "RQ": rq}

    def present(self) -> np.ndarray:
        return (self.tp + self.fp + self.fn) > 0

    def result(self, labels: LabelSpace) -> dict[str, float | None]:
        """Averages over present classes: PQ/SQ/RQ for all, ``_th`` things, ``_st`` stuff.

        A group with no present class is ``None`` (panopticapi would divide by zero).
        """
        scores = self.per_class()
        present = self.present()
        out: dict[str, float | None] = {}
        groups = {"": labels.ids, "_th": labels.thing_ids, "_st": labels.stuff_ids}
        for suffix, ids in groups.items():
            sel = np.zeros(self.num_classes, dtype=bool)
            sel[list(ids)] = True
            sel &= present
            n = int(sel.sum())
            for name in ("PQ", "SQ", "RQ"):
                out[name + suffix] = float(scores[name][sel].sum() / n) if n else None
        return out


def match_table(table: PairTable, labels: LabelSpace, stats: PQStats) -> None:
    """Add one image's (or one tube window's) TP/FP/FN/IoU to ``stats``."""
    div, ignore = labels.label_divisor, labels.ignore_label
    gt_class, gt_inst = np.divmod(table.gt_ids, div)
    pred_class = table.pred_ids // div
    gt_void = gt_class == ignore
    gt_crowd = np.isin(gt_class, labels.thing_ids) & (gt_inst == 0)
    pred_void = pred_class == ignore

    # |p ∩ void| and |p ∩ crowd of p's class| per predicted segment
    on_void = np.zeros(len(table.pred_ids), dtype=np.int64)
    on_crowd = np.zeros(len(table.pred_ids), dtype=np.int64)
    pg, pp, cnt = table.pair_gt, table.pair_pred, table.pair_count
    np.add.at(on_void, pp[gt_void[pg]], cnt[gt_void[pg]])
    own_crowd = gt_crowd[pg] & (gt_class[pg] == pred_class[pp])
    np.add.at(on_crowd, pp[own_crowd], cnt[own_crowd])

    # candidates: same class, gt neither void nor crowd, prediction not void
    cand = (gt_class[pg] == pred_class[pp]) & ~gt_void[pg] & ~gt_crowd[pg] & ~pred_void[pp]
    inter = cnt[cand].astype(np.float64)
    union = table.gt_area[pg[cand]] + table.pred_area[pp[cand]] - cnt[cand] - on_void[pp[cand]]
    iou = inter / union
    hit = iou > 0.5  # at most one match per gt and per pred (IoU > 0.5 is unique)
    gt_matched = np.zeros(len(table.gt_ids), dtype=bool)
    pred_matched = np.zeros(len(table.pred_ids), dtype=bool)
    gt_matched[pg[cand][hit]] = True
    pred_matched[pp[cand][hit]] = True
    np.add.at(stats.tp, gt_class[pg[cand][hit]], 1)
    np.add.at(stats.iou_fixed, gt_class[pg[cand][hit]], np.rint(iou[hit] * IOU_SCALE).astype(np.int64))

    fn = ~gt_matched & ~gt_void & ~gt_crowd
    np.add.at(stats.fn, gt_class[fn], 1)
    ignored = (on_void + on_crowd) / np.maximum(table.pred_area, 1) > 0.5
    fp = ~pred_matched & ~pred_void & ~ignored
    np.add.at(stats.fp, pred_class[fp], 1)
