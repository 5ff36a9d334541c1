"""Clip-level association: video stitching, naive memory buffer, HiLA-MB (Video-kMaX Sec. 3.2),
and Clip-PanoFCN's inter-clip kernel matching (VIPSeg Sec. 4.2) — one tracker with switches.

An *object* is one identity inside a clip: the segments sharing a ``clip_id`` (a near-online
model's tube), or a single segment when a frame comes without clip ids (online). Per clip:

1. Stitching (``stitch``; needs ``overlap`` > 0): the first frame of the clip is the last frame
   of the previous one; its objects inherit the track ids of the previous output by Hungarian
   matching on mask IoU (> ``stitch_iou``).
2. Memory (``appearance`` and/or ``location``): the still unmatched objects are compared with the
   stored tracks not matched yet: ``f(i, j) = exp(−‖b_i − b̂_j‖² / T) · cos(q_i, q̂_j)`` (Eq. 5;
   one factor when only one cue is on); Hungarian on f, pairs above ``alpha`` matched.
3. Anything left is a new track.

Memory update per new frame (Eq. 3, 4): seen tracks take ``q̂ = (1 − λ) q̂ + λ q`` and their new
box; unseen ones move their box at constant velocity ``b̂ + (b̂ − b̂_prev)``; tracks not seen for
more than ``tau`` frames are dropped. Boxes are normalised ``[x0/w, y0/h, x1/w, y1/h]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vpseg.tracking.base import IdPool, assign
from vpseg.tracking.segments import FrameSegments, mask_iou

__all__ = ["MemoryTracker"]


@dataclass
class _Entry:
    id: int
    q: np.ndarray | None  # appearance (moving average)
    b: np.ndarray  # (4,) current (or predicted) box
    b_prev: np.ndarray
    last_seen: int


class MemoryTracker:
    """See the module docstring; the registry in ``vpseg.tracking`` names the paper settings."""

    accepts_overlap = True

    def __init__(self, *, stitch: bool = True, appearance: bool = True, location: bool = True,
                 alpha: float = 0.7, tau: int | None = 10, lam: float = 0.8,
                 temperature: float = 1.0, stitch_iou: float = 0.5) -> None:
        self.stitch, self.appearance, self.location = stitch, appearance, location
        self.alpha, self.tau, self.lam = alpha, tau, lam
        self.temperature, self.stitch_iou = temperature, stitch_iou
        self.reset()

    def reset(self) -> None:
        self.ids = IdPool()
        self.memory: dict[int, _Entry] = {}
        self.t = -1
        self.notes: list[str] = []
        self._last: tuple[FrameSegments, np.ndarray] | None = None  # last frame and its ids

    # -- helpers --------------------------------------------------------------------------------
    @staticmethod
    def _objects(clip: Sequence[FrameSegments]) -> list[list[tuple[int, int]]]:
        """Objects of the clip as lists of (frame, segment) pairs."""
        groups: dict[object, list[tuple[int, int]]] = {}
        for f, frame in enumerate(clip):
            for s in range(len(frame)):
                key = (int(frame.clip_id[s]),) if frame.clip_id is not None else (f, s)
                groups.setdefault(key, []).append((f, s))
        return list(groups.values())

    def _features(self, clip: Sequence[FrameSegments], obj: list[tuple[int, int]]) -> tuple[np.ndarray | None, np.ndarray]:
        f0, s0 = obj[0]
        box = clip[f0].box[s0]
        embs = [clip[f].embedding[s] for f, s in obj if clip[f].embedding is not None]  # type: ignore[index]
        q = np.mean(embs, axis=0) if embs else None
        return q, box

    def _similarity(self, feats: list[tuple[np.ndarray | None, np.ndarray]], entries: list[_Entry]) -> np.ndarray:
        score = np.ones((len(feats), len(entries)))
        use_app = self.appearance and all(q is not None for q, _ in feats) and all(
            e.q is not None for e in entries)
        if self.appearance and not use_app and feats and entries:
            note = "no embeddings: association uses location only"
            if note not in self.notes:
                self.notes.append(note)
        if use_app:
            q = np.stack([f[0] for f in feats])  # type: ignore[misc]
            m = np.stack([e.q for e in entries])  # type: ignore[misc]
            qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
            mn = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
            score *= qn @ mn.T
        if self.location or not use_app:
            b = np.stack([f[1] for f in feats])
            mb = np.stack([e.b for e in entries])
            dist = ((b[:, None, :] - mb[None, :, :]) ** 2).sum(-1)
            score *= np.exp(-dist / self.temperature)
        return score

    # -- the interface ------------------------------------------------------------------------------
    def update(self, clip: Sequence[FrameSegments], *, rgb: Sequence[np.ndarray] | None = None,
               overlap: int = 0) -> list[np.ndarray]:
        objects = self._objects(clip)
        track_of: dict[int, int] = {}  # object index -> track id

        if overlap and self.stitch and self._last is not None and len(clip):
            last_frame, last_ids = self._last
            first = clip[0]
            iou = mask_iou(last_frame, first)
            seg_obj = {s: o for o, obj in enumerate(objects) for f, s in obj if f == 0}
            for r, c in assign(iou, np.nextafter(self.stitch_iou, 1.0)):
                if c in seg_obj:
                    track_of[seg_obj[c]] = int(last_ids[r])

        memory_on = self.appearance or self.location
        tau = self.tau if self.tau is not None else max(len(clip) - overlap, 1)
        new_frames = range(overlap, len(clip))
        if memory_on:
            taken = set(track_of.values())
            free = [o for o in range(len(objects)) if o not in track_of
                    and any(f >= overlap for f, _ in objects[o])]
            entries = [e for e in self.memory.values() if e.id not in taken]
            if free and entries:
                feats = [self._features(clip, objects[o]) for o in free]
                for r, c in assign(self._similarity(feats, entries), np.nextafter(self.alpha, 1.0)):
                    track_of[free[r]] = entries[c].id
        for o in range(len(objects)):
            if o not in track_of:
                track_of[o] = self.ids.new()

        out = [np.zeros(len(frame), dtype=np.int64) for frame in clip]
        for o, obj in enumerate(objects):
            for f, s in obj:
                out[f][s] = track_of[o]

        for f in new_frames:  # memory update, frame by frame
            self.t += 1
            frame, ids = clip[f], out[f]
            seen = {}
            for s, tid in enumerate(ids.tolist()):
                seen[tid] = s
            for tid, s in seen.items():
                q = None if frame.embedding is None else frame.embedding[s].astype(np.float64)
                entry = self.memory.get(tid)
                if entry is None:
                    self.memory[tid] = _Entry(tid, q, frame.box[s].copy(), frame.box[s].copy(), self.t)
                else:
                    if q is not None:
                        entry.q = q if entry.q is None else (1 - self.lam) * entry.q + self.lam * q
                    entry.b_prev, entry.b = entry.b, frame.box[s].copy()
                    entry.last_seen = self.t
            for entry in self.memory.values():
                if entry.id not in seen:
                    step = entry.b - entry.b_prev
                    entry.b_prev, entry.b = entry.b, entry.b + step
            self.memory = {k: e for k, e in self.memory.items() if self.t - e.last_seen <= tau}
        if len(clip):
            self._last = (clip[-1], out[-1])
        return out
