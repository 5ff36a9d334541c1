"""Association of per-frame or per-clip segments into video-consistent tracks (numpy, scipy,
OpenCV; no torch). Trackers are chosen by name with their papers' defaults; keyword arguments
override them (``make_tracker("hila", alpha=0.8)``).

| name | what | paper defaults |
|---|---|---|
| ``iou`` | STEP B1: Hungarian on mask IoU of consecutive frames | δ = 0.3, kept σ = 10 frames |
| ``sort`` | STEP B2: SORT on the boxes enclosing masks, Kalman filter | IoU 0.3, max_age 1 |
| ``flow`` | STEP B3: masks warped by optical flow + forward-backward check, then B1 | DIS flow |
| ``stitch`` | video stitching: mask IoU in the overlapping frame of consecutive clips | IoU > 0.5 |
| ``memory`` | naive-MB: appearance-only memory buffer | λ = 0.8, τ = 1, α = 0.8 |
| ``hila`` | HiLA-MB: stitching, then appearance × location memory | λ = 0.8, τ = 10, α = 0.7, T = 1 |
| ``kernel`` | Clip-PanoFCN: cosine similarity of clip-fused kernels of adjacent clips | threshold 0.5 |
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vpseg.tracking.base import Tracker
from vpseg.tracking.iou import IoUTracker
from vpseg.tracking.memory import MemoryTracker
from vpseg.tracking.segments import FrameSegments, Segment, from_panoptic, paste, to_panoptic
from vpseg.tracking.sort import SortTracker

__all__ = ["TRACKERS", "Tracker", "make_tracker", "FrameSegments", "Segment", "paste",
           "from_panoptic", "to_panoptic"]

#: name -> (builder, default keyword arguments)
TRACKERS: dict[str, tuple[Callable[..., Tracker], dict[str, Any]]] = {
    "iou": (IoUTracker, {"threshold": 0.3, "keep": 10}),
    "sort": (SortTracker, {"threshold": 0.3, "max_age": 1}),
    "flow": (IoUTracker, {"threshold": 0.3, "keep": 10, "flow": "dis"}),
    "stitch": (MemoryTracker, {"stitch": True, "appearance": False, "location": False}),
    "memory": (MemoryTracker, {"stitch": False, "appearance": True, "location": False,
                               "alpha": 0.8, "tau": 1, "lam": 0.8}),
    "hila": (MemoryTracker, {"stitch": True, "appearance": True, "location": True,
                             "alpha": 0.7, "tau": 10, "lam": 0.8, "temperature": 1.0}),
    "kernel": (MemoryTracker, {"stitch": False, "appearance": True, "location": False,
                               "alpha": 0.5, "tau": None, "lam": 1.0}),
}


def make_tracker(name: str, **params: Any) -> Tracker:
    """A tracker by name; ``params`` override the defaults (unknown names raise ``KeyError``,
    unknown parameters ``TypeError``)."""
    try:
        builder, defaults = TRACKERS[name]
    except KeyError:
        raise KeyError(f"unknown tracker {name!r}; known: {', '.join(TRACKERS)}") from None
    return builder(**{**defaults, **params})
