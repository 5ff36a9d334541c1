"""The tracking figures the STEP paper reports next to STQ: PTQ, sPTQ, IDS, sIDS, MOTSA,
sMOTSA, MOTSP — frame-by-frame matching as the official Panoptic-Tracking evaluation
(robot-learning-freiburg/Panoptic-Tracking ``evaluation/evaluate.py``) and MOTS
(VisualComputingInstitute/mots_tools) define them.

Per frame, segments are matched like PQ (same class, IoU > 0.5, predicted pixels on ground-truth
void left out of the union); crowd regions (thing class, instance 0) count as void on both sides,
as in those codes, which know no crowd. An unmatched prediction is a false positive unless more
than half of it lies on void. An ID switch is counted when a ground-truth track is matched to a
different predicted track than at its last match (gaps bridged, so a recovery A→B→A counts
twice); a soft switch adds the IoU of the current match.

``PTQ_c = (ΣIoU_c − IDS_c) / (TP_c + FP_c/2 + FN_c/2)``, ``sPTQ`` with sIDS; PTQ averages over
the classes with TP + FP + FN > 0, like PQ (the official code averages over every class index, so
classes absent from a data set pull it down; see docs/metrics.md); MOTSA =
(TP − FP − IDS)/(TP + FN), sMOTSA = (ΣIoU − FP − IDS)/(TP + FN), MOTSP = ΣIoU/TP, averaged over
thing (tracked) classes. Matching per frame from the pair table; per video only the last matched
prediction of each track is kept, so memory is flat in video length.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vpseg.core.labels import LabelSpace
from vpseg.metrics.pq import IOU_SCALE
from vpseg.metrics.tables import PairTable

__all__ = ["TrackingAccumulator"]


@dataclass
class TrackingAccumulator:
    labels: LabelSpace
    tp: np.ndarray = field(init=False)
    fp: np.ndarray = field(init=False)
    fn: np.ndarray = field(init=False)
    ids: np.ndarray = field(init=False)
    iou_fixed: np.ndarray = field(init=False)  # ΣIoU of matches, units of 1/IOU_SCALE
    sids_fixed: np.ndarray = field(init=False)  # soft ID switches, same units
    _video: str | None = field(default=None, init=False, repr=False)
    _last: dict[int, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        size = max(self.labels.max_id, self.labels.ignore_label) + 1
        for name in ("tp", "fp", "fn", "ids", "iou_fixed", "sids_fixed"):
            setattr(self, name, np.zeros(size, dtype=np.int64))

    def update(self, table: PairTable, video: str) -> None:
        """Add the next frame of ``video`` (frames in temporal order)."""
        if video != self._video:
            self._video, self._last = video, {}
        div, ignore = self.labels.label_divisor, self.labels.ignore_label
        things = np.asarray(self.labels.thing_ids)
        gt_class, gt_inst = np.divmod(table.gt_ids, div)
        pred_class, pred_inst = np.divmod(table.pred_ids, div)
        gt_void = (gt_class == ignore) | (np.isin(gt_class, things) & (gt_inst == 0))
        pred_void = (pred_class == ignore) | (np.isin(pred_class, things) & (pred_inst == 0))
        pg, pp, cnt = table.pair_gt, table.pair_pred, table.pair_count

        on_void = np.zeros(len(table.pred_ids), dtype=np.int64)
        np.add.at(on_void, pp[gt_void[pg]], cnt[gt_void[pg]])
        cand = (gt_class[pg] == pred_class[pp]) & ~gt_void[pg] & ~pred_void[pp]
        inter = cnt[cand]
        union = table.pred_area[pp[cand]] - on_void[pp[cand]] + table.gt_area[pg[cand]] - inter
        iou = inter / union
        hit = iou > 0.5
        g_hit, p_hit, iou_hit = pg[cand][hit], pp[cand][hit], iou[hit]
        iou_q = np.rint(iou_hit * IOU_SCALE).astype(np.int64)
        np.add.at(self.tp, gt_class[g_hit], 1)
        np.add.at(self.iou_fixed, gt_class[g_hit], iou_q)
        gt_matched = np.zeros(len(table.gt_ids), dtype=bool)
        pred_matched = np.zeros(len(table.pred_ids), dtype=bool)
        gt_matched[g_hit], pred_matched[p_hit] = True, True
        fn = ~gt_matched & ~gt_void
        np.add.at(self.fn, gt_class[fn], 1)
        fp = ~pred_matched & ~pred_void & (on_void * 2 <= table.pred_area)
        np.add.at(self.fp, pred_class[fp], 1)

        # ID switches against each track's last matched prediction (class-agnostic ids)
        for g, p, q in zip(g_hit.tolist(), p_hit.tolist(), iou_q.tolist(), strict=True):
            track = int(gt_inst[g])
            if track == 0:
                continue  # stuff
            pred_track = int(pred_inst[p])
            last = self._last.get(track)
            if last is not None and last != pred_track:
                self.ids[gt_class[g]] += 1
                self.sids_fixed[gt_class[g]] += q
            self._last[track] = pred_track

    def merge(self, other: TrackingAccumulator) -> TrackingAccumulator:
        for name in ("tp", "fp", "fn", "ids", "iou_fixed", "sids_fixed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def result(self) -> dict[str, float | int | None]:
        iou = self.iou_fixed / IOU_SCALE
        sids = self.sids_fixed / IOU_SCALE
        denom = self.tp + 0.5 * self.fp + 0.5 * self.fn
        safe = np.where(denom > 0, denom, 1)
        ptq = (iou - self.ids) / safe
        sptq = (iou - sids) / safe
        classes = list(self.labels.ids)
        things = list(self.labels.thing_ids)
        gt_count = self.tp + self.fn
        with np.errstate(divide="ignore", invalid="ignore"):
            motsa = (self.tp - self.fp - self.ids) / gt_count
            smotsa = (iou - self.fp - self.ids) / gt_count
            motsp = iou / self.tp
        tracked = [c for c in things if gt_count[c] > 0]
        matched = [c for c in things if self.tp[c] > 0]
        present = [c for c in classes if denom[c] > 0]
        return {
            "PTQ": float(ptq[present].mean()) if present else None,
            "sPTQ": float(sptq[present].mean()) if present else None,
            "IDS": int(self.ids[things].sum()),
            "sIDS": float(sids[things].sum()),
            "MOTSA": float(np.mean(motsa[tracked])) if tracked else None,
            "sMOTSA": float(np.mean(smotsa[tracked])) if tracked else None,
            "MOTSP": float(np.mean(motsp[matched])) if matched else None,
        }

    def per_class(self) -> dict[str, np.ndarray]:
        """PTQ and sPTQ per class id."""
        iou = self.iou_fixed / IOU_SCALE
        denom = self.tp + 0.5 * self.fp + 0.5 * self.fn
        safe = np.where(denom > 0, denom, 1)
        return {"PTQ": (iou - self.ids) / safe, "sPTQ": (iou - self.sids_fixed / IOU_SCALE) / safe}
