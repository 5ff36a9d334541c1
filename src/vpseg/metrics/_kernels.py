"""The per-pixel part of the pair-count table: one pass over a frame pair, no sort.

``pair_counts(gt, pred)`` lists every (ground-truth id, predicted id) pair that shares pixels
with its pixel count. The compiled loop keeps the pairs in an open-addressing hash table and
skips the lookup while a pixel repeats the previous pixel's pair (segments come in runs along a
row), so a frame costs one read of both arrays. The numpy version compacts the ids with a
bincount (a sort for very large ids) and counts combined keys.

``index_pair_counts`` does the same for frames given as small per-pixel indexes
(``vpseg.core.video.IndexedFrame``): a dense ``(G, P)`` table, one or two bytes read a pixel.
"""

from __future__ import annotations

import numpy as np

from vpseg._jit import Kernel

__all__ = ["pair_counts", "index_pair_counts"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX = np.uint64(0xC2B2AE3D27D4EB4F)


def _pairs_loop(gt: np.ndarray, pred: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    bits = 12
    while True:  # a table at most half full; a fuller one starts again four times larger
        size = 1 << bits
        shift = np.uint64(64 - bits)
        key_gt = np.empty(size, np.int64)
        key_pred = np.empty(size, np.int64)
        count = np.zeros(size, np.int64)
        used = np.zeros(size, np.bool_)
        n = 0
        last_gt = np.int64(-1)
        last_pred = np.int64(-1)
        slot = 0
        run = 0  # pixels of the current run, added to count[slot] when the run ends
        full = False
        for i in range(gt.size):
            g = np.int64(gt[i])
            p = np.int64(pred[i])
            if g == last_gt and p == last_pred:
                run += 1
                continue
            count[slot] += run
            run = 0
            if g < 0 or p < 0:
                empty = np.empty(0, np.int64)
                return empty, empty.copy(), empty.copy(), True
            s = np.int64((((np.uint64(g) * _MIX) ^ np.uint64(p)) * _GOLDEN) >> shift)
            while used[s] and (key_gt[s] != g or key_pred[s] != p):
                s = (s + 1) & (size - 1)
            if not used[s]:
                if 2 * (n + 1) > size:
                    full = True
                    break
                used[s] = True
                key_gt[s] = g
                key_pred[s] = p
                n += 1
            run = 1
            slot = s
            last_gt = g
            last_pred = p
        count[slot] += run
        if not full:
            break
        bits += 2
    out_gt = np.empty(n, np.int64)
    out_pred = np.empty(n, np.int64)
    out_count = np.empty(n, np.int64)
    k = 0
    for j in range(size):
        if used[j]:
            out_gt[k] = key_gt[j]
            out_pred[k] = key_pred[j]
            out_count[k] = count[j]
            k += 1
    return out_gt, out_pred, out_count, False


# Ids below this are compacted with a bincount + lookup table; larger ids with np.unique.
_DENSE_LIMIT = 1 << 22
# Pair keys use a dense bincount up to this many (gt x pred) cells, a sort beyond.
_DENSE_PAIRS = 1 << 24


def _compact(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat ids -> (unique ids, index of each pixel into them)."""
    top = int(ids.max()) if ids.size else 0
    if top < _DENSE_LIMIT:
        counts = np.bincount(ids, minlength=top + 1)
        unique = np.flatnonzero(counts)
        lut = np.zeros(top + 1, dtype=np.int64)
        lut[unique] = np.arange(len(unique))
        return unique.astype(np.int64), lut[ids]
    unique, index = np.unique(ids, return_inverse=True)
    return unique.astype(np.int64), index.astype(np.int64).ravel()


def _pairs_numpy(gt: np.ndarray, pred: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """(gt ids, pred ids, pixel counts) of the pairs that share pixels, in any order, and
    whether an id was negative (then the lists are empty). ``gt``, ``pred``: ``(N,)`` ints."""
    empty = np.zeros(0, np.int64)
    if gt.size and (int(gt.min()) < 0 or int(pred.min()) < 0):
        return empty, empty, empty, True
    gt_ids, gi = _compact(gt)
    pred_ids, pi = _compact(pred)
    n_pred = max(len(pred_ids), 1)
    key = gi * n_pred + pi
    if len(gt_ids) * n_pred <= _DENSE_PAIRS:
        counts = np.bincount(key, minlength=len(gt_ids) * n_pred)
        keys = np.flatnonzero(counts)
        pair_count = counts[keys]
    else:
        keys, pair_count = np.unique(key, return_counts=True)
    return (gt_ids[keys // n_pred], pred_ids[keys % n_pred], pair_count.astype(np.int64), False)


pair_counts = Kernel(_pairs_loop, _pairs_numpy)


def _index_pairs_loop(gt: np.ndarray, pred: np.ndarray, n_gt: int, n_pred: int) -> np.ndarray:
    counts = np.zeros(n_gt * n_pred, np.int64)
    last = np.int64(-1)
    run = 0
    for i in range(gt.size):
        key = np.int64(gt[i]) * n_pred + np.int64(pred[i])
        if key == last:
            run += 1
            continue
        if last >= 0:
            counts[last] += run
        last = key
        run = 1
    if last >= 0:
        counts[last] += run
    return counts


def _index_pairs_numpy(gt: np.ndarray, pred: np.ndarray, n_gt: int, n_pred: int) -> np.ndarray:
    """``(n_gt * n_pred,)`` int64 pixel counts of every (gt index, pred index) pair, row-major;
    ``gt`` and ``pred``: ``(N,)`` indexes below ``n_gt`` and ``n_pred``."""
    key = gt.astype(np.int64) * n_pred + pred
    return np.bincount(key, minlength=n_gt * n_pred).astype(np.int64)


index_pair_counts = Kernel(_index_pairs_loop, _index_pairs_numpy)
