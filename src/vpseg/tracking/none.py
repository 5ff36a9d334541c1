"""No association: the image baseline of VIPSeg's Table 2 ("PanopticFCN") and its "+Clip" row.

Every object of every clip gets a new track id; the segments of one clip that share a
``clip_id`` (a clip model's one object) share one. Frame by frame (clips of one frame, or no
clip ids) every segment is new in every frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vpseg.tracking.base import IdPool
from vpseg.tracking.segments import FrameSegments

__all__ = ["NoTracker"]


class NoTracker:
    accepts_overlap = False

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.ids = IdPool()
        self.notes: list[str] = []

    def update(self, clip: Sequence[FrameSegments], *, rgb: Sequence[np.ndarray] | None = None,
               overlap: int = 0) -> list[np.ndarray]:
        if overlap:
            raise ValueError("this tracker takes clips without overlap")
        of_clip_id: dict[int, int] = {}
        out = []
        for frame in clip:
            ids = np.zeros(len(frame), dtype=np.int64)
            for k in range(len(frame)):
                if frame.clip_id is None:
                    ids[k] = self.ids.new()
                    continue
                key = int(frame.clip_id[k])
                if key not in of_clip_id:
                    of_clip_id[key] = self.ids.new()
                ids[k] = of_clip_id[key]
            out.append(ids)
        return out
