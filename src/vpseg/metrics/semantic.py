"""Semantic metrics as VSPW reports them: mIoU, frequency-weighted IoU, pixel accuracy, mean class
accuracy (one confusion matrix over all frames of all videos), and video consistency VC_N.

Confusion: rows are ground-truth classes (void rows dropped), columns predicted classes plus one
"no class" column; mIoU and mean accuracy average over the classes present in the ground truth: a void or unknown prediction on a labelled pixel is a miss of the ground-truth
class (the official code lets such pixels land in a wrong cell; see docs/metrics.md).

VC_N: for a window of N consecutive frames, a pixel is ground-truth consistent when its label
(void included) is the same in all N frames, prediction consistent likewise; the window's VC is
``|pred-consistent ∧ gt-consistent| / |gt-consistent|`` and VC_N is the mean over all windows of
all videos. vpseg keeps per pixel the length of the current run of one label, so a window ending
at frame t is consistent where the run is >= N: one pass, any N, memory of two frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vpseg.core.labels import LabelSpace
from vpseg.metrics.tables import PairTable

__all__ = ["ConfusionAccumulator", "VCAccumulator"]

_SCALE = float(1 << 40)  # fixed point for exact, order-independent sums of ratios


def _dense_index(labels: LabelSpace, classes: np.ndarray, missing: int) -> np.ndarray:
    lut = np.full(max(labels.max_id, labels.ignore_label) + 2, missing, dtype=np.int64)
    lut[list(labels.ids)] = np.arange(len(labels))
    return lut[np.minimum(classes, len(lut) - 1)]


@dataclass
class ConfusionAccumulator:
    """``confusion[g, p]``: pixels of ground-truth class index g predicted as p (int64, ``(C, C+1)``;
    indices follow ``labels.ids``; column C is "void or unknown prediction")."""

    labels: LabelSpace
    confusion: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.labels)
        self.confusion = np.zeros((n, n + 1), dtype=np.int64)

    def update(self, table: PairTable) -> None:
        div, n = self.labels.label_divisor, len(self.labels)
        gt_class = table.gt_ids[table.pair_gt] // div
        pred_class = table.pred_ids[table.pair_pred] // div
        keep = gt_class != self.labels.ignore_label
        g = _dense_index(self.labels, gt_class[keep], -1)
        p = _dense_index(self.labels, pred_class[keep], n)
        if (g < 0).any():
            raise ValueError("ground-truth class outside the label space")
        np.add.at(self.confusion, (g, p), table.pair_count[keep])

    def merge(self, other: ConfusionAccumulator) -> ConfusionAccumulator:
        self.confusion += other.confusion
        return self

    def per_class_iou(self) -> np.ndarray:
        """IoU per class (NaN where the class is in neither ground truth nor prediction)."""
        cm = self.confusion
        diag = np.diag(cm[:, : len(self.labels)]).astype(np.float64)
        gt = cm.sum(axis=1)
        pred = cm[:, : len(self.labels)].sum(axis=0)
        union = gt + pred - diag
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(union > 0, diag / union, np.nan)

    def result(self) -> dict[str, float | None]:
        cm = self.confusion
        diag = np.diag(cm[:, : len(self.labels)]).astype(np.float64)
        gt = cm.sum(axis=1)
        total = gt.sum()
        iou = self.per_class_iou()
        with np.errstate(divide="ignore", invalid="ignore"):
            acc = np.where(gt > 0, diag / gt, np.nan)
        in_gt = gt > 0  # VSPW averages over classes present in the ground truth
        freq = gt / total if total else np.zeros_like(diag)
        return {
            "mIoU": float(iou[in_gt].mean()) if in_gt.any() else None,
            "fwIoU": float((freq[freq > 0] * iou[freq > 0]).sum()) if total else None,
            "pixel_acc": float(diag.sum() / total) if total else None,
            "mean_acc": float(np.nanmean(acc)) if (gt > 0).any() else None,
        }


_EMPTY = -1  # a window without ground-truth-consistent pixels (skipped, as officially)


@dataclass
class VCAccumulator:
    """Video consistency VC_N for every N in ``ns`` from one pass over the frames.

    ``official_windows=True`` (default) reproduces VSPW's ``VC_perclip.py``, which makes T - N
    windows per video of T frames (it never evaluates the last one); ``False`` uses all
    T - N + 1 windows. Feed the frames of one video in order, then the next video; call
    ``result`` (or ``finish``) after the last frame.
    """

    ns: Sequence[int] = (8, 16)
    official_windows: bool = True
    sums: dict[int, int] = field(init=False)  # fixed-point sums of per-window VC
    windows: dict[int, int] = field(init=False)
    _video: str | None = field(default=None, init=False, repr=False)
    _frames: int = field(default=0, init=False, repr=False)
    _prev: tuple[np.ndarray, np.ndarray] | None = field(default=None, init=False, repr=False)
    _runs: tuple[np.ndarray, np.ndarray] | None = field(default=None, init=False, repr=False)
    _pending: dict[int, int | None] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.ns or min(self.ns) < 1:
            raise ValueError("VC window lengths must be >= 1")
        self.sums = dict.fromkeys(self.ns, 0)
        self.windows = dict.fromkeys(self.ns, 0)
        self._pending = dict.fromkeys(self.ns, None)

    def update(self, gt_semantic: np.ndarray, pred_semantic: np.ndarray, video: str) -> None:
        """Next frame of ``video``: ``(H, W)`` semantic class maps (void included as a label)."""
        if video != self._video:
            self.finish()
            self._video = video
        if self._prev is None or self._runs is None:
            ones = np.ones(gt_semantic.shape, np.int32)
            runs = (ones, ones.copy())
        else:
            runs = (np.where(gt_semantic == self._prev[0], self._runs[0] + 1, 1),
                    np.where(pred_semantic == self._prev[1], self._runs[1] + 1, 1))
        self._prev, self._runs = (gt_semantic, pred_semantic), runs
        self._frames += 1
        for n in self.ns:
            if self._frames < n:
                continue
            self._commit(n)  # a later window exists, so the pending one was not the last
            gt_ok = runs[0] >= n
            denom = int(gt_ok.sum())
            both = int((gt_ok & (runs[1] >= n)).sum())
            self._pending[n] = _EMPTY if denom == 0 else int(round(both / denom * _SCALE))

    def _commit(self, n: int) -> None:
        value = self._pending[n]
        if value is not None and value != _EMPTY:
            self.sums[n] += value
            self.windows[n] += 1
        self._pending[n] = None

    def finish(self) -> None:
        """Close the current video: its last window counts only with ``official_windows=False``."""
        for n in self.ns:
            if not self.official_windows:
                self._commit(n)
            self._pending[n] = None
        self._video, self._frames, self._prev, self._runs = None, 0, None, None

    def merge(self, other: VCAccumulator) -> VCAccumulator:
        self.finish()
        other.finish()
        for n in self.ns:
            self.sums[n] += other.sums[n]
            self.windows[n] += other.windows[n]
        return self

    def result(self) -> dict[str, float | None]:
        """VC_N keyed by ``str(N)``; ``None`` where no video had a window of N frames."""
        self.finish()
        return {str(n): (self.sums[n] / _SCALE / self.windows[n]) if self.windows[n] else None
                for n in self.ns}
