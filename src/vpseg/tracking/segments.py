"""Per-frame segments as trackers see them, and the panoptic post-processing shared with models.

A frame's segments live in one ``(H, W)`` int32 *index map* (pixel value k > 0: segment k - 1;
0: no segment) plus per-segment arrays (class, score, optional embedding, optional clip-local
id). Masks never overlap, so the mask IoU of every pair of segments in two frames comes from one
pair-count table of their index maps, and memory stays at one map per kept frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vpseg.core.labels import LabelSpace

__all__ = ["InstanceFitter", "Segment", "FrameSegments", "paste", "from_panoptic", "to_panoptic",
           "compose", "mask_iou", "boxes"]


@dataclass
class Segment:
    """One predicted segment: ``mask`` ``(H, W)`` bool (or float in [0, 1], thresholded at 0.5),
    ``category`` class id, ``score`` confidence, optional ``embedding`` ``(D,)`` and ``clip_id``
    (the identity a near-online model gives it inside its clip)."""

    mask: np.ndarray
    category: int
    score: float = 1.0
    embedding: np.ndarray | None = None
    clip_id: int | None = None


@dataclass
class FrameSegments:
    """Non-overlapping segments of one frame (see module docstring)."""

    index: np.ndarray  # (H, W) int32, 0 = none, k = segment k - 1
    category: np.ndarray  # (N,) int64
    score: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (N,) float64
    embedding: np.ndarray | None = None  # (N, D) float32
    clip_id: np.ndarray | None = None  # (N,) int64
    area: np.ndarray = field(init=False)  # (N,) int64
    box: np.ndarray = field(init=False)  # (N, 4) float64 normalised x0, y0, x1, y1

    def __post_init__(self) -> None:
        n = len(self.category)
        if len(self.score) != n:
            self.score = np.ones(n)
        counts = np.bincount(self.index.ravel(), minlength=n + 1)
        self.area = counts[1 : n + 1].astype(np.int64)
        self.box = boxes(self.index, n)

    def __len__(self) -> int:
        return len(self.category)


def boxes(index: np.ndarray, n: int) -> np.ndarray:
    """Normalised boxes ``(n, 4)`` [x0/w, y0/h, x1/w, y1/h] of segments 1..n in ``index``
    (exclusive ends; zeros for an empty segment)."""
    from scipy import ndimage

    h, w = index.shape
    out = np.zeros((n, 4))
    for k, sl in enumerate(ndimage.find_objects(index, max_label=n)):
        if sl is not None:
            out[k] = (sl[1].start / w, sl[0].start / h, sl[1].stop / w, sl[0].stop / h)
    return out


def paste(
    segments: Sequence[Segment],
    shape: tuple[int, int],
    *,
    min_area: int = 0,
    overlap: float = 0.5,
) -> tuple[FrameSegments, list[int]]:
    """Panoptic post-processing: paste segments by descending score; a segment keeps only pixels
    not taken yet, and is dropped when what it keeps is under ``min_area`` pixels or under
    ``overlap`` of its own mask (mostly hidden by better segments). Returns the frame and, per
    kept segment, its position in ``segments``."""
    index = np.zeros(shape, dtype=np.int32)
    kept: list[int] = []
    for i in sorted(range(len(segments)), key=lambda i: -segments[i].score):
        mask = np.asarray(segments[i].mask)
        mask = mask > 0.5 if mask.dtype != bool else mask
        total = int(mask.sum())
        free = mask & (index == 0)
        area = int(free.sum())
        if total == 0 or area < max(min_area, 1) or area < overlap * total:
            continue
        kept.append(i)
        index[free] = len(kept)
    embeddings = [e for e in (segments[i].embedding for i in kept) if e is not None]
    clip_ids = [segments[i].clip_id for i in kept]
    return FrameSegments(
        index=index,
        category=np.array([segments[i].category for i in kept], dtype=np.int64),
        score=np.array([segments[i].score for i in kept], dtype=np.float64),
        embedding=np.stack(embeddings).astype(np.float32)
        if kept and len(embeddings) == len(kept) else None,
        clip_id=np.array(clip_ids, dtype=np.int64)
        if kept and all(c is not None for c in clip_ids) else None,
    ), kept


def from_panoptic(
    pan: np.ndarray,
    labels: LabelSpace,
    *,
    embeddings: dict[int, np.ndarray] | None = None,
) -> tuple[FrameSegments, np.ndarray]:
    """Thing segments (instance > 0) of a panoptic frame whose ids mean nothing across frames.

    Returns the segments and their panoptic ids ``(N,)``; ``embeddings`` maps a panoptic id to its
    vector (from a model's side file)."""
    div = labels.label_divisor
    ids, inverse = np.unique(pan, return_inverse=True)
    is_thing = np.isin(ids // div, labels.thing_ids) & (ids % div > 0)
    segment_of = np.zeros(len(ids), dtype=np.int32)
    segment_of[is_thing] = np.arange(1, int(is_thing.sum()) + 1)
    index = segment_of[inverse.reshape(pan.shape)]
    things = ids[is_thing]
    emb = None
    if embeddings is not None and len(things) and all(int(t) in embeddings for t in things):
        emb = np.stack([embeddings[int(t)] for t in things]).astype(np.float32)
    return FrameSegments(index=index, category=(things // div).astype(np.int64), embedding=emb), things


class InstanceFitter:
    """Track ids -> instance ids below the label divisor, for one video produced in order.

    Trackers number tracks 1, 2, 3, ... per video, so a long video can pass the label divisor
    (999 tracks with the built-in label spaces). A track keeps its id while it fits and no other
    track of its class holds that number; otherwise it gets the smallest number free in its class,
    for the rest of the video. Panoptic ids stay distinct (``class * divisor + instance``), so the
    metrics are unchanged; only a class with ``divisor`` tracks in one video is an error.
    """

    def __init__(self, divisor: int) -> None:
        self.divisor = divisor
        self.mapping: dict[tuple[int, int], int] = {}
        self.taken: dict[int, set[int]] = {}
        self.renumbered = 0

    def __call__(self, categories: np.ndarray, tracks: np.ndarray) -> np.ndarray:
        """``(N,)`` categories and track ids -> ``(N,)`` int64 instance ids."""
        out = np.empty(len(tracks), dtype=np.int64)
        for i, (cls, track) in enumerate(zip(categories.tolist(), tracks.tolist(), strict=True)):
            inst = self.mapping.get((cls, track))
            if inst is None:
                taken = self.taken.setdefault(cls, set())
                if track < self.divisor and track not in taken:
                    inst = track
                else:
                    inst = next((n for n in range(1, self.divisor) if n not in taken), None)
                    if inst is None:
                        raise ValueError(f"more than {self.divisor - 1} tracks of class {cls} in "
                                         f"one video: they do not fit below the label divisor")
                    self.renumbered += 1
                taken.add(inst)
                self.mapping[(cls, track)] = inst
            out[i] = inst
        return out


def to_panoptic(
    pan: np.ndarray, frame: FrameSegments, track_ids: Sequence[int] | np.ndarray,
    labels: LabelSpace,
) -> np.ndarray:
    """Write track ids into the thing segments of ``pan`` (stuff, crowd and void stay)."""
    div = labels.label_divisor
    out = np.asarray(pan).copy()
    if len(frame) == 0:
        return out
    tracks = np.asarray(track_ids, dtype=np.int64)
    if tracks.size and (tracks.min() < 1 or tracks.max() >= div):
        raise ValueError(f"track ids must lie in [1, {div})")
    lut = np.concatenate([[0], frame.category * div + tracks])
    sel = frame.index > 0
    out[sel] = lut[frame.index[sel]]
    return out.astype(pan.dtype)


def compose(
    frame: FrameSegments, track_ids: Sequence[int] | np.ndarray, semantic: np.ndarray,
    labels: LabelSpace,
) -> np.ndarray:
    """A panoptic frame from tracked thing segments and an ``(H, W)`` semantic map that fills the
    rest (stuff; a thing class there without a segment becomes crowd, instance 0)."""
    base = np.asarray(semantic).astype(np.int64) * labels.label_divisor
    return to_panoptic(base.astype(np.int32), frame, track_ids, labels)


def mask_iou(a: FrameSegments | np.ndarray, b: FrameSegments) -> np.ndarray:
    """``(len(a), len(b))`` mask IoU, from one pair count of the two index maps.

    ``a`` may be a bare index map (e.g. warped by optical flow) with ``a.max()`` segments."""
    index_a = a.index if isinstance(a, FrameSegments) else a
    n_a = len(a) if isinstance(a, FrameSegments) else int(index_a.max(initial=0))
    n_b = len(b)
    key = index_a.ravel().astype(np.int64) * (n_b + 1) + b.index.ravel()
    counts = np.bincount(key, minlength=(n_a + 1) * (n_b + 1)).reshape(n_a + 1, n_b + 1)
    inter = counts[1:, 1:].astype(np.float64)
    area_a = counts[1:, :].sum(axis=1)[:, None]
    area_b = counts[:, 1:].sum(axis=0)[None, :]
    union = area_a + area_b - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)
