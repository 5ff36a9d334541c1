"""STEP baselines B1 (IoU association) and B3 (mask propagation with optical flow).

B1: the thing segments of consecutive frames are matched by Hungarian matching on mask IoU with
a minimal IoU δ = 0.3; unmatched tracks are kept for σ = 10 frames (their last mask) so occluded
objects can come back. B3: the masks of frame t − 1 are first warped into frame t with optical
flow (frame t → t − 1, backward warping), pixels failing the forward-backward consistency check
are left out (occlusions: unknown on both sides of the IoU), then B1's matching. The STEP paper used RAFT; vpseg's default flow is
OpenCV DIS (``vpseg.flow``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vpseg.flow import optical_flow, warp_labels
from vpseg.tracking.base import CropMask, IdPool, assign, crop_iou, crop_masks
from vpseg.tracking.segments import FrameSegments, mask_iou

__all__ = ["IoUTracker", "consistent"]


@dataclass
class _Track:
    id: int
    mask: CropMask
    category: int
    last_seen: int


def consistent(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: where the flow ``forward`` (a → b, on a's grid) and ``backward`` (b → a,
    on b's grid) agree (Sundaram et al.: |f + b(x + f)|² < 0.01 (|f|² + |b(x + f)|²) + 0.5)."""
    h, w = forward.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    tx = np.clip(np.rint(xs + forward[..., 0]).astype(np.int64), 0, w - 1)
    ty = np.clip(np.rint(ys + forward[..., 1]).astype(np.int64), 0, h - 1)
    back = backward[ty, tx]
    err = ((forward + back) ** 2).sum(-1)
    return err < 0.01 * ((forward**2).sum(-1) + (back**2).sum(-1)) + 0.5


class IoUTracker:
    """B1 (``flow=None``) or B3 (``flow="dis"`` or ``"farneback"``; needs RGB frames)."""

    accepts_overlap = False

    def __init__(self, *, threshold: float = 0.3, keep: int = 10, match_class: bool = False,
                 flow: str | None = None, flow_max_side: int | None = 640,
                 fb_check: bool = True, flow_weights: str | None = None) -> None:
        self.threshold, self.keep, self.match_class = threshold, keep, match_class
        self.flow, self.flow_max_side, self.fb_check = flow, flow_max_side, fb_check
        self.flow_weights = flow_weights
        self.reset()

    def reset(self) -> None:
        self.ids = IdPool()
        self.tracks: list[_Track] = []
        self.t = -1
        self.notes: list[str] = []
        self._prev: tuple[np.ndarray, np.ndarray, list[int]] | None = None  # rgb, index, track ids

    def update(self, clip: Sequence[FrameSegments], *, rgb: Sequence[np.ndarray] | None = None,
               overlap: int = 0) -> list[np.ndarray]:
        if overlap:
            raise ValueError("this tracker associates frame by frame: give clips without overlap")
        if self.flow is not None and rgb is None:
            raise ValueError("the flow tracker needs the RGB frames")
        return [self._step(f, None if rgb is None else rgb[i]) for i, f in enumerate(clip)]

    def _scores(self, frame: FrameSegments, rgb: np.ndarray | None) -> np.ndarray:
        score = crop_iou([tr.mask for tr in self.tracks], frame)
        if self.flow is not None and rgb is not None and self._prev is not None:
            prev_rgb, prev_index, prev_ids = self._prev
            to_prev = optical_flow(rgb, prev_rgb, backend=self.flow, max_side=self.flow_max_side,
                                   weights=self.flow_weights)
            warped = warp_labels(prev_index, to_prev, fill=0)
            target = frame
            if self.fb_check:
                # occluded pixels (inconsistent flow) are unknown: left out on both sides
                to_next = optical_flow(prev_rgb, rgb, backend=self.flow,
                                       max_side=self.flow_max_side, weights=self.flow_weights)
                valid = consistent(to_prev, to_next)
                warped[~valid] = 0
                target = FrameSegments(np.where(valid, frame.index, 0), frame.category)
            propagated = mask_iou(warped, target)
            rows = {tid: r for r, tid in enumerate(prev_ids)}
            for i, tr in enumerate(self.tracks):
                if tr.id in rows and rows[tr.id] < len(propagated):
                    score[i] = propagated[rows[tr.id]]  # the warped mask replaces the last one
        if self.match_class and len(self.tracks):
            same = np.array([tr.category for tr in self.tracks])[:, None] == frame.category[None, :]
            score = np.where(same, score, 0.0)
        return score

    def _step(self, frame: FrameSegments, rgb: np.ndarray | None) -> np.ndarray:
        self.t += 1
        pairs = assign(self._scores(frame, rgb), self.threshold)
        ids = np.zeros(len(frame), dtype=np.int64)
        for r, c in pairs:
            ids[c] = self.tracks[r].id
        for c in np.flatnonzero(ids == 0).tolist():
            ids[c] = self.ids.new()
        masks = crop_masks(frame)
        by_id = {tr.id: tr for tr in self.tracks}
        for c, tid in enumerate(ids.tolist()):
            by_id[tid] = _Track(tid, masks[c], int(frame.category[c]), self.t)
        self.tracks = [tr for tr in by_id.values() if self.t - tr.last_seen <= self.keep]
        if self.flow is not None and rgb is not None:
            self._prev = (rgb, frame.index, ids.tolist())
        return ids
