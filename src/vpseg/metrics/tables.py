"""The one kernel behind every metric: per-frame pair-count tables.

For a ground-truth and a predicted panoptic frame, a ``PairTable`` lists the segment ids present
on each side with their areas and, for every (gt, pred) pair that shares pixels, how many. It is
computed in one pass over the pixels (``vpseg.metrics._kernels``), and tables of several frames add up
(``sum_tables``), so a VPQ window, a whole sequence for STQ, or a confusion matrix for mIoU is a
sum of small tables, never a second pass over pixels. All counts are int64.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from vpseg.core.video import IndexedFrame
from vpseg.metrics._kernels import index_pair_counts, pair_counts

__all__ = ["PairTable", "pair_table", "pair_table_indexed", "sum_tables"]

@dataclass(frozen=True)
class PairTable:
    """Pixel counts of one frame (or a sum of frames).

    ``gt_ids`` (G,) and ``pred_ids`` (P,) are sorted unique int64 panoptic ids with their areas
    ``gt_area`` (G,) and ``pred_area`` (P,); pair ``k`` says that ``gt_ids[pair_gt[k]]`` and
    ``pred_ids[pair_pred[k]]`` share ``pair_count[k]`` pixels. Only pairs with pixels are listed.
    """

    gt_ids: np.ndarray
    gt_area: np.ndarray
    pred_ids: np.ndarray
    pred_area: np.ndarray
    pair_gt: np.ndarray
    pair_pred: np.ndarray
    pair_count: np.ndarray

    @property
    def pixels(self) -> int:
        return int(self.gt_area.sum())

    def pair_ids(self) -> tuple[np.ndarray, np.ndarray]:
        """(gt id, pred id) of every listed pair, ``(K,)`` int64 each."""
        return self.gt_ids[self.pair_gt], self.pred_ids[self.pair_pred]


def pair_table(gt: np.ndarray, pred: np.ndarray) -> PairTable:
    """Pair counts of one frame: ``gt`` and ``pred`` are ``(H, W)`` integer panoptic ids."""
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in size")
    if not (np.issubdtype(gt.dtype, np.integer) and np.issubdtype(pred.dtype, np.integer)):
        raise ValueError(f"panoptic ids must be integers, got {gt.dtype} and {pred.dtype}")
    pair_g, pair_p, count, negative = pair_counts(np.ascontiguousarray(gt).ravel(),
                                                  np.ascontiguousarray(pred).ravel())
    if negative:
        raise ValueError("panoptic ids must be non-negative")
    return _from_pairs(pair_g, pair_p, count)


#: Largest (G x P) index table counted densely; larger ones go through ``pair_table``.
_DENSE_INDEX = 1 << 22


def pair_table_indexed(gt: IndexedFrame, pred: IndexedFrame) -> PairTable:
    """``pair_table`` of two ``IndexedFrame`` s, counted on their indexes (same result)."""
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in size")
    n_gt, n_pred = len(gt.ids), len(pred.ids)
    if n_gt * n_pred > _DENSE_INDEX:
        return pair_table(np.asarray(gt), np.asarray(pred))
    if (gt.ids.size and gt.ids.min() < 0) or (pred.ids.size and pred.ids.min() < 0):
        raise ValueError("panoptic ids must be non-negative")
    counts = index_pair_counts(np.ascontiguousarray(gt.index).ravel(),
                               np.ascontiguousarray(pred.index).ravel(), n_gt, n_pred)
    keys = np.flatnonzero(counts)
    return _from_pairs(gt.ids[keys // n_pred].astype(np.int64),
                       pred.ids[keys % n_pred].astype(np.int64), counts[keys])


def _from_pairs(pair_g: np.ndarray, pair_p: np.ndarray, count: np.ndarray) -> PairTable:
    """The table of (gt id, pred id, pixels) triples in any order (an id pair may repeat)."""
    gt_ids, pair_gt = np.unique(pair_g, return_inverse=True)
    pred_ids, pair_pred = np.unique(pair_p, return_inverse=True)
    n_pred = max(len(pred_ids), 1)
    # pairs sorted by (gt, pred), as sum_tables gives them; a repeated pair is summed
    keys, inverse = np.unique(pair_gt.astype(np.int64) * n_pred + pair_pred, return_inverse=True)
    count = np.bincount(inverse.ravel(), weights=count, minlength=len(keys)).astype(np.int64)
    pair_gt, pair_pred = keys // n_pred, keys % n_pred
    gt_area = np.bincount(pair_gt, weights=count, minlength=len(gt_ids))
    pred_area = np.bincount(pair_pred, weights=count, minlength=len(pred_ids))
    # float64 sums of integer counts are exact below 2**53 pixels
    return PairTable(gt_ids.astype(np.int64), gt_area.astype(np.int64),
                     pred_ids.astype(np.int64), pred_area.astype(np.int64),
                     pair_gt.astype(np.int64), pair_pred.astype(np.int64), count)


def _union(parts: list[np.ndarray], areas: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    ids, inverse = np.unique(np.concatenate(parts), return_inverse=True)
    total = np.zeros(len(ids), dtype=np.int64)
    np.add.at(total, inverse, np.concatenate(areas))
    return ids, total


def sum_tables(tables: Iterable[PairTable]) -> PairTable:
    """One table whose counts are the sums of ``tables`` (ids matched by value)."""
    tables = list(tables)
    if not tables:
        empty = np.zeros(0, dtype=np.int64)
        return PairTable(empty, empty, empty, empty, empty, empty, empty)
    if len(tables) == 1:
        return tables[0]
    gt_ids, gt_area = _union([t.gt_ids for t in tables], [t.gt_area for t in tables])
    pred_ids, pred_area = _union([t.pred_ids for t in tables], [t.pred_area for t in tables])
    pg = np.concatenate([np.searchsorted(gt_ids, t.gt_ids[t.pair_gt]) for t in tables])
    pp = np.concatenate([np.searchsorted(pred_ids, t.pred_ids[t.pair_pred]) for t in tables])
    n_pred = len(pred_ids)
    keys, inverse = np.unique(pg * n_pred + pp, return_inverse=True)
    counts = np.zeros(len(keys), dtype=np.int64)
    np.add.at(counts, inverse, np.concatenate([t.pair_count for t in tables]))
    return PairTable(gt_ids, gt_area, pred_ids, pred_area, keys // n_pred, keys % n_pred, counts)
