"""Segmentation and Tracking Quality, STQ = sqrt(AQ * IoU), as deeplab2's numpy ``STQuality``.

Association (AQ), per sequence: ground-truth tubes are the panoptic ids of thing pixels with an
instance id (a thing pixel with instance 0 is crowd and left out on both sides); predicted tubes
are the full panoptic ids of pixels predicted as a thing class, except on ground-truth crowd
(so a class change starts a new tube, and predictions on void or stuff enlarge their tube).
``AQ_seq = Σ_g (1/|g|) Σ_{p∩g≠∅} |p∩g| · IoU(p, g)``; overall AQ divides the sum over
sequences by the number of ground-truth tubes of all sequences (tube-weighted; 0 without tubes).

Segmentation (IoU): one confusion matrix with a void row and column; void ground-truth rows are
dropped, the void column stays (predicting void on labelled pixels is a miss, and makes the void
column a class with IoU 0); mean over classes whose union is not empty.

Everything comes from the per-frame pair tables; per-sequence sums are kept until ``result``,
so accumulators of different videos (or different parts of one) merge exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vpseg.core.labels import LabelSpace
from vpseg.metrics.tables import PairTable, sum_tables

__all__ = ["STQAccumulator"]


@dataclass
class STQAccumulator:
    labels: LabelSpace
    tubes: dict[str, list[PairTable]] = field(default_factory=dict)
    confusion: dict[str, np.ndarray] = field(default_factory=dict)
    frames: dict[str, int] = field(default_factory=dict)

    def _classes(self, ids: np.ndarray) -> np.ndarray:
        """Panoptic ids -> confusion index (label space order; void and unknown -> last)."""
        lut = np.full(max(self.labels.max_id, self.labels.ignore_label) + 2, len(self.labels),
                      dtype=np.int64)
        lut[list(self.labels.ids)] = np.arange(len(self.labels))
        return lut[np.minimum(ids // self.labels.label_divisor, len(lut) - 1)]

    def update(self, table: PairTable, sequence: str) -> None:
        """Add one frame of ``sequence``."""
        labels = self.labels
        div, n = labels.label_divisor, len(labels) + 1
        things = np.asarray(labels.thing_ids)
        pg, pp, cnt = table.pair_gt, table.pair_pred, table.pair_count

        # segmentation term
        conf = self.confusion.get(sequence)
        if conf is None:
            conf = self.confusion[sequence] = np.zeros((n, n), dtype=np.int64)
        g, p = self._classes(table.gt_ids)[pg], self._classes(table.pred_ids)[pp]
        np.add.at(conf, (g, p), cnt)
        self.frames[sequence] = self.frames.get(sequence, 0) + 1

        # association term: restrict the table to tubes
        gt_class, gt_inst = np.divmod(table.gt_ids, div)
        gt_thing = np.isin(gt_class, things)
        gt_tube = gt_thing & (gt_inst > 0)
        gt_crowd = gt_thing & (gt_inst == 0)
        pred_tube = np.isin(table.pred_ids // div, things)
        on_crowd = np.zeros(len(table.pred_ids), dtype=np.int64)
        np.add.at(on_crowd, pp[gt_crowd[pg]], cnt[gt_crowd[pg]])
        pred_area = table.pred_area - on_crowd
        keep_pred = pred_tube & (pred_area > 0)
        pair = gt_tube[pg] & keep_pred[pp]
        gt_index = np.cumsum(gt_tube) - 1
        pred_index = np.cumsum(keep_pred) - 1
        restricted = PairTable(
            table.gt_ids[gt_tube], table.gt_area[gt_tube],
            table.pred_ids[keep_pred], pred_area[keep_pred],
            gt_index[pg[pair]], pred_index[pp[pair]], cnt[pair],
        )
        parts = self.tubes.setdefault(sequence, [])
        parts.append(restricted)
        if len(parts) >= 32:  # keep memory flat in sequence length
            self.tubes[sequence] = [sum_tables(parts)]

    def merge(self, other: STQAccumulator) -> STQAccumulator:
        for seq, parts in other.tubes.items():
            self.tubes.setdefault(seq, []).extend(parts)
        for seq, conf in other.confusion.items():
            if seq in self.confusion:
                self.confusion[seq] = self.confusion[seq] + conf
            else:
                self.confusion[seq] = conf.copy()
        for seq, count in other.frames.items():
            self.frames[seq] = self.frames.get(seq, 0) + count
        return self

    @staticmethod
    def _association(tubes: PairTable) -> tuple[float, int]:
        """(Σ_g (1/|g|) Σ_p |p∩g| IoU(p, g), number of ground-truth tubes) of one sequence."""
        inter = tubes.pair_count.astype(np.float64)
        gt_size = tubes.gt_area[tubes.pair_gt]
        pred_size = tubes.pred_area[tubes.pair_pred]
        iou = inter / (gt_size + pred_size - inter)
        return float(np.sum(inter * iou / gt_size)), len(tubes.gt_ids)

    def _iou(self, conf: np.ndarray) -> float:
        conf = conf.copy()
        conf[-1, :] = 0  # void ground truth is not evaluated; the void column stays
        tp = np.diag(conf).astype(np.float64)
        union = conf.sum(axis=0) + conf.sum(axis=1) - tp
        present = union > 0
        return float(np.sum(tp[present] / union[present]) / max(int(present.sum()), 1))

    def result(self) -> dict[str, object]:
        """``STQ``, ``AQ``, ``IoU`` overall and per sequence (sequences in sorted order)."""
        seqs = sorted(self.confusion)
        aq_sum = {s: self._association(sum_tables(self.tubes.get(s, []))) for s in seqs}
        total_tubes = sum(n for _, n in aq_sum.values())
        aq = sum(aq_sum[s][0] for s in seqs) / total_tubes if total_tubes else 0.0
        total = np.zeros_like(self.confusion[seqs[0]]) if seqs else np.zeros((1, 1), np.int64)
        for s in seqs:
            total += self.confusion[s]
        iou = self._iou(total) if seqs else 0.0
        per_seq = {}
        for s in seqs:
            a, n = aq_sum[s]
            seq_aq = a / n if n else 0.0
            seq_iou = self._iou(self.confusion[s])
            per_seq[s] = {"STQ": float(np.sqrt(seq_aq * seq_iou)), "AQ": seq_aq, "IoU": seq_iou,
                          "frames": self.frames.get(s, 0), "tubes": n}
        return {"STQ": float(np.sqrt(aq * iou)), "AQ": aq, "IoU": iou, "per_sequence": per_seq}
