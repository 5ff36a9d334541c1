"""The one kernel behind every metric: per-frame pair-count tables.

For a ground-truth and a predicted panoptic frame, a ``PairTable`` lists the segment ids present
on each side with their areas and, for every (gt, pred) pair that shares pixels, how many. It is
computed with one int64 ``bincount`` over a combined key, and tables of several frames add up
(``sum_tables``), so a VPQ window, a whole sequence for STQ, or a confusion matrix for mIoU is a
sum of small tables, never a second pass over pixels. All counts are int64.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["PairTable", "pair_table", "sum_tables"]

# Ids below this are compacted with a bincount + lookup table (fast); larger ids use np.unique.
_DENSE_LIMIT = 1 << 22
# Pair keys use a dense bincount up to this many (gt x pred) cells, a sort beyond.
_DENSE_PAIRS = 1 << 24


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


def _compact(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat int ids -> (unique ids, their areas, index of each pixel into the unique ids)."""
    top = int(ids.max()) if ids.size else 0
    if ids.size and int(ids.min()) < 0:
        raise ValueError("panoptic ids must be non-negative")
    if top < _DENSE_LIMIT:
        counts = np.bincount(ids, minlength=top + 1)
        unique = np.flatnonzero(counts)
        lut = np.zeros(top + 1, dtype=np.int64)
        lut[unique] = np.arange(len(unique))
        return unique.astype(np.int64), counts[unique].astype(np.int64), lut[ids]
    unique, index, counts = np.unique(ids, return_inverse=True, return_counts=True)
    return unique.astype(np.int64), counts.astype(np.int64), index.astype(np.int64)


def pair_table(gt: np.ndarray, pred: np.ndarray) -> PairTable:
    """Pair counts of one frame: ``gt`` and ``pred`` are ``(H, W)`` integer panoptic ids."""
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in size")
    gt_ids, gt_area, gi = _compact(gt.ravel())
    pred_ids, pred_area, pi = _compact(pred.ravel())
    n_pred = len(pred_ids)
    key = gi * n_pred + pi
    if len(gt_ids) * n_pred <= _DENSE_PAIRS:
        counts = np.bincount(key, minlength=len(gt_ids) * n_pred)
        keys = np.flatnonzero(counts)
        pair_count = counts[keys].astype(np.int64)
    else:
        keys, pair_count = np.unique(key, return_counts=True)
    return PairTable(gt_ids, gt_area, pred_ids, pred_area,
                     keys // max(n_pred, 1), keys % max(n_pred, 1), pair_count.astype(np.int64))


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
