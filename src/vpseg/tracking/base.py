"""What the trackers share: the tracker interface, track id allocation, thresholded Hungarian
assignment, and cropped masks of tracks that are kept while unmatched."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from vpseg.tracking.segments import FrameSegments

__all__ = ["Tracker", "IdPool", "assign", "CropMask", "crop_masks", "crop_iou"]


class Tracker(Protocol):
    """Feed clips of frames in order (a clip of one frame online); get video-unique track ids.

    ``update(clip, rgb=None, overlap=0)`` returns, per frame of ``clip``, an ``(N,)`` int64 array
    of track ids for that frame's segments. With ``overlap`` > 0 the first ``overlap`` frames of
    the clip are the last ones of the previous clip (near-online stitching). ``reset()`` starts a
    new video. ``notes`` lists what the tracker had to do without (e.g. no embeddings).
    ``accepts_overlap`` says whether it takes overlapping clips; the frame-by-frame trackers
    (iou, sort, flow) do not: a near-online caller gives them only each clip's new frames.
    """

    notes: list[str]
    accepts_overlap: bool

    def reset(self) -> None: ...

    def update(
        self, clip: Sequence[FrameSegments], *, rgb: Sequence[np.ndarray] | None = None,
        overlap: int = 0,
    ) -> list[np.ndarray]: ...


class IdPool:
    """Video-unique track ids 1, 2, 3, ..."""

    def __init__(self) -> None:
        self.next = 1

    def new(self) -> int:
        self.next += 1
        return self.next - 1


def assign(score: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Hungarian matching maximising ``score`` ``(M, N)``; pairs scoring below ``threshold`` are
    dropped (so a pair is kept only if ``score >= threshold``)."""
    if score.size == 0:
        return []
    rows, cols = linear_sum_assignment(-score)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if score[r, c] >= threshold]


@dataclass(frozen=True)
class CropMask:
    """A mask stored as its bounding box and the boolean crop inside it."""

    y0: int
    x0: int
    crop: np.ndarray  # (h, w) bool

    @property
    def area(self) -> int:
        return int(self.crop.sum())


def crop_masks(frame: FrameSegments) -> list[CropMask]:
    """The segments of ``frame`` as cropped masks (memory proportional to their boxes)."""
    out = []
    for k, sl in enumerate(ndimage.find_objects(frame.index, max_label=len(frame))):
        if sl is None:
            out.append(CropMask(0, 0, np.zeros((0, 0), dtype=bool)))
        else:
            out.append(CropMask(sl[0].start, sl[1].start, frame.index[sl] == k + 1))
    return out


def crop_iou(masks: Sequence[CropMask], frame: FrameSegments) -> np.ndarray:
    """``(len(masks), len(frame))`` IoU of stored masks with the segments of ``frame``."""
    n = len(frame)
    out = np.zeros((len(masks), n))
    for i, m in enumerate(masks):
        if m.area == 0:
            continue
        h, w = m.crop.shape
        window = frame.index[m.y0 : m.y0 + h, m.x0 : m.x0 + w]
        crop = m.crop[: window.shape[0], : window.shape[1]]
        inter = np.bincount(window[crop], minlength=n + 1)[1:]
        out[i] = inter / np.maximum(m.area + frame.area - inter, 1)
    return out
