"""Temporal consistency TC (VSPW): mIoU between the prediction of frame t and the prediction of
frame t + 1 warped onto frame t by optical flow of the RGB frames.

The metric takes the already warped maps (flow is the evaluator's business, ``vpseg.flow``).
Official aggregation (VSPW_code ``TC_cal.py``): one confusion matrix over all frame pairs of all
videos, mIoU over the classes present in the unwarped predictions; the paper's per-video mean is
``per_video=True``. Numbers depend on the flow: the official code used RAFT on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vpseg.core.labels import LabelSpace

__all__ = ["TCAccumulator"]


@dataclass
class TCAccumulator:
    labels: LabelSpace
    confusion: dict[str, np.ndarray] = field(default_factory=dict)

    def update(self, pred: np.ndarray, warped_next: np.ndarray, video: str) -> None:
        """``(H, W)`` semantic class maps: frame t's prediction and frame t+1's, warped to t.
        Void in ``pred`` is dropped; void in ``warped_next`` (e.g. outside the frame) is a miss."""
        n = len(self.labels)
        lut = np.full(max(self.labels.max_id, self.labels.ignore_label) + 2, n, dtype=np.int64)
        lut[list(self.labels.ids)] = np.arange(n)
        a = lut[np.minimum(pred.ravel(), len(lut) - 1)]
        b = lut[np.minimum(warped_next.ravel(), len(lut) - 1)]
        keep = a < n
        counts = np.bincount(a[keep] * (n + 1) + b[keep], minlength=n * (n + 1))
        conf = self.confusion.setdefault(video, np.zeros((n, n + 1), dtype=np.int64))
        conf += counts.reshape(n, n + 1)

    def merge(self, other: TCAccumulator) -> TCAccumulator:
        for video, conf in other.confusion.items():
            if video in self.confusion:
                self.confusion[video] = self.confusion[video] + conf
            else:
                self.confusion[video] = conf.copy()
        return self

    @staticmethod
    def _miou(conf: np.ndarray) -> float | None:
        n = conf.shape[0]
        diag = np.diag(conf[:, :n]).astype(np.float64)
        rows = conf.sum(axis=1)
        union = rows + conf[:, :n].sum(axis=0) - diag
        present = rows > 0
        return float(np.mean(diag[present] / union[present])) if present.any() else None

    def result(self, *, per_video: bool = False) -> float | None:
        if not self.confusion:
            return None
        if per_video:
            values = [v for v in (self._miou(c) for _, c in sorted(self.confusion.items())) if v is not None]
            return float(np.mean(values)) if values else None
        return self._miou(sum(self.confusion.values()))  # type: ignore[arg-type]
