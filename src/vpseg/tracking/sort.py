"""STEP baseline B2: SORT (Bewley et al. 2016) on the boxes that enclose the predicted masks.

A constant-velocity Kalman filter per track on ``[cx, cy, s, r]`` (centre, area, aspect ratio;
velocities for the first three), Hungarian matching of detections to the tracks' predicted boxes
on box IoU with threshold 0.3, tracks dropped after ``max_age`` frames without a detection — the
original SORT's settings. Every detection gets a track id (a segmentation needs one for each
mask), new tracks included.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vpseg.tracking.base import IdPool, assign
from vpseg.tracking.segments import FrameSegments

__all__ = ["SortTracker", "KalmanBox", "box_iou"]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(M, 4)`` x ``(N, 4)`` boxes (x0, y0, x1, y1) -> ``(M, N)`` IoU."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _to_z(box: np.ndarray) -> np.ndarray:
    w, h = box[2] - box[0], box[3] - box[1]
    return np.array([box[0] + w / 2, box[1] + h / 2, w * h, w / max(h, 1e-9)])


def _to_box(x: np.ndarray) -> np.ndarray:
    area, ratio = max(float(x[2]), 1e-9), float(x[3])
    w = np.sqrt(area * max(ratio, 1e-9))
    h = area / max(w, 1e-9)
    return np.array([x[0] - w / 2, x[1] - h / 2, x[0] + w / 2, x[1] + h / 2])


class KalmanBox:
    """SORT's constant-velocity Kalman filter over ``[cx, cy, s, r, vx, vy, vs]``."""

    F = np.eye(7) + np.eye(7, k=4)
    H = np.eye(4, 7)

    def __init__(self, box: np.ndarray, track_id: int) -> None:
        self.x = np.zeros(7)
        self.x[:4] = _to_z(box)
        self.P = np.diag([10.0, 10, 10, 10, 1e4, 1e4, 1e4])
        self.Q = np.diag([1.0, 1, 1, 1, 0.01, 0.01, 1e-4])
        self.R = np.diag([1.0, 1, 10, 10])
        self.id = track_id
        self.since_update = 0

    def predict(self) -> np.ndarray:
        if self.x[2] + self.x[6] <= 0:
            self.x[6] = 0.0
        self.x = self.F @ self.x
        self.P = self.F @ self.P @ self.F.T + self.Q
        self.since_update += 1
        return _to_box(self.x)

    def correct(self, box: np.ndarray) -> None:
        y = _to_z(box) - self.H @ self.x
        s = self.H @ self.P @ self.H.T + self.R
        k = self.P @ self.H.T @ np.linalg.inv(s)
        self.x = self.x + k @ y
        self.P = (np.eye(7) - k @ self.H) @ self.P
        self.since_update = 0


class SortTracker:
    """STEP B2: SORT on the boxes enclosing the masks (frame by frame)."""

    accepts_overlap = False

    def __init__(self, *, threshold: float = 0.3, max_age: int = 1) -> None:
        self.threshold, self.max_age = threshold, max_age
        self.reset()

    def reset(self) -> None:
        self.ids = IdPool()
        self.tracks: list[KalmanBox] = []
        self.notes: list[str] = []

    def update(self, clip: Sequence[FrameSegments], *, rgb: Sequence[np.ndarray] | None = None,
               overlap: int = 0) -> list[np.ndarray]:
        if overlap:
            raise ValueError("SORT associates frame by frame: give clips without overlap")
        return [self._step(frame) for frame in clip]

    def _step(self, frame: FrameSegments) -> np.ndarray:
        h, w = frame.index.shape
        dets = frame.box * np.array([w, h, w, h])
        predicted = np.array([t.predict() for t in self.tracks]).reshape(-1, 4)
        pairs = assign(box_iou(predicted, dets), self.threshold)
        ids = np.zeros(len(frame), dtype=np.int64)
        for r, c in pairs:
            self.tracks[r].correct(dets[c])
            ids[c] = self.tracks[r].id
        for c in np.flatnonzero(ids == 0).tolist():
            track = KalmanBox(dets[c], self.ids.new())
            self.tracks.append(track)
            ids[c] = track.id
        self.tracks = [t for t in self.tracks if t.since_update <= self.max_age]
        return ids
