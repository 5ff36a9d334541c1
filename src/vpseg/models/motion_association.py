"""Motion-DeepLab's association (STEP, Weber et al. 2021, baseline B4), on centres alone.

Each instance of frame t has a centre (the centre of mass of its predicted mask), a centre score
and the *previous-offset* the network regresses there (where the instance's centre was in frame
t − 1). In decreasing order of centre score, the centre shifted by its previous-offset is
compared with the nearest remaining centre of the same class among the tracked ones; it continues
that track when closer than that instance's radius r, the geometric mean of its mask's width and
height (CenterTrack's size gate, which B4 follows), and starts a new track otherwise. As the
official deeplab2 post-processor does: the nearest centre is taken first and then gated (not the
nearest within the gate), a matched centre is replaced by the current one, and a tracked centre
left unmatched stays a candidate, where it was last seen, until ``keep`` frames have passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vpseg.tracking.base import IdPool

__all__ = ["CentreTracker", "instance_radius"]


def instance_radius(index: np.ndarray, n: int) -> np.ndarray:
    """``(n,)`` geometric mean of the width and height of segments 1..n of ``index``, each the
    span between the extreme pixel coordinates (max − min, as deeplab2); 0 for an empty one."""
    from scipy import ndimage

    out = np.zeros(n)
    for k, sl in enumerate(ndimage.find_objects(index, max_label=n)):
        if sl is not None:
            out[k] = np.sqrt((sl[0].stop - sl[0].start - 1) * (sl[1].stop - sl[1].start - 1))
    return out


@dataclass
class CentreTracker:
    """Greedy centre matching over time; ``update`` once per frame, ``reset`` per video."""

    keep: int = 7  # frames a tracked centre stays a candidate (deeplab2's default)
    ids: IdPool = field(default_factory=IdPool)
    # tracked centres: (y, x), track id, class, radius, frames since last matched
    centres: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    tracks: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    categories: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    radius: np.ndarray = field(default_factory=lambda: np.zeros(0))
    age: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def reset(self) -> None:
        self.__init__(keep=self.keep)  # type: ignore[misc]

    def update(self, centres: np.ndarray, prev_offsets: np.ndarray, scores: np.ndarray,
               categories: np.ndarray, radius: np.ndarray) -> np.ndarray:
        """Track ids ``(K,)`` for this frame's K instances: ``centres`` ``(K, 2)`` (y, x),
        ``prev_offsets`` ``(K, 2)`` (dy, dx to the instance's centre in the previous frame),
        ``scores``, ``categories`` and ``radius`` ``(K,)``."""
        centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
        categories = np.asarray(categories, dtype=np.int64)
        shifted = centres + np.asarray(prev_offsets, dtype=np.float64).reshape(-1, 2)
        free = np.ones(len(self.centres), dtype=bool)
        out = np.zeros(len(centres), dtype=np.int64)
        for i in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"):
            candidates = np.flatnonzero(free & (self.categories == categories[i]))
            if len(candidates):
                dist = np.linalg.norm(self.centres[candidates] - shifted[i], axis=1)
                j = int(candidates[np.argmin(dist)])
                if dist.min() < self.radius[j]:
                    free[j] = False
                    out[i] = self.tracks[j]
                    continue
            out[i] = self.ids.new()
        # this frame's centres, then the tracked ones left unmatched; all one frame older
        age = np.concatenate([np.zeros(len(centres), np.int64), self.age[free]]) + 1
        alive = age < self.keep
        self.centres = np.concatenate([centres, self.centres[free]])[alive]
        self.tracks = np.concatenate([out, self.tracks[free]])[alive]
        self.categories = np.concatenate([categories, self.categories[free]])[alive]
        self.radius = np.concatenate([np.asarray(radius, np.float64), self.radius[free]])[alive]
        self.age = age[alive]
        return out
