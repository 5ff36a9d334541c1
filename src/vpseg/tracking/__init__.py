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
| ``none`` | no association: new ids every clip (shared within a clip by clip id) | |
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from vpseg.tracking.base import Tracker
from vpseg.tracking.iou import IoUTracker
from vpseg.tracking.memory import MemoryTracker
from vpseg.tracking.none import NoTracker
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
    "none": (NoTracker, {}),
}


#: parameter -> (kind, smallest, largest) for the checks of ``make_tracker``; kind "int?" and
#: "str?" admit None.
_PARAMETERS: dict[str, tuple[str, float | None, float | None]] = {
    "threshold": ("float", 0.0, 1.0), "alpha": ("float", 0.0, 1.0), "lam": ("float", 0.0, 1.0),
    "stitch_iou": ("float", 0.0, 1.0), "temperature": ("float", 1e-9, None),
    "keep": ("int", 0, None), "max_age": ("int", 0, None), "tau": ("int?", 0, None),
    "flow_max_side": ("int?", 1, None), "fb_check": ("bool", None, None),
    "match_class": ("bool", None, None), "stitch": ("bool", None, None),
    "appearance": ("bool", None, None), "location": ("bool", None, None),
    "flow": ("str?", None, None), "flow_weights": ("str?", None, None),
}
_FLOWS = ("dis", "farneback", "raft", "raft-small")
_KINDS = {"float": "a number", "int": "an integer", "bool": "true or false", "str": "a string"}


def _check(name: str, key: str, value: Any, allowed: Sequence[str]) -> Any:
    if key not in allowed:
        raise TypeError(f"tracker {name!r} has no parameter {key!r}; it takes: "
                        f"{', '.join(sorted(allowed))}")
    kind, low, high = _PARAMETERS[key]
    if value is None and kind.endswith("?"):
        return None
    kind = kind.rstrip("?")
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = {"float": number, "int": number and isinstance(value, int),
          "bool": isinstance(value, bool), "str": isinstance(value, str)}[kind]
    if not ok:
        raise ValueError(f"tracker parameter {key} must be {_KINDS[kind]}, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"tracker parameter {key} must be {span}, got {value!r}")
    if key == "flow" and value not in _FLOWS:
        raise ValueError(f"tracker parameter flow must be one of {', '.join(_FLOWS)}, got {value!r}")
    return value


def make_tracker(name: str, **params: Any) -> Tracker:
    """A tracker by name; ``params`` override the defaults. Unknown names raise ``KeyError``,
    unknown parameters ``TypeError``, values of the wrong type or out of range ``ValueError``."""
    try:
        builder, defaults = TRACKERS[name]
    except KeyError:
        raise KeyError(f"unknown tracker {name!r}; known: {', '.join(TRACKERS)}") from None
    allowed = list(inspect.signature(builder).parameters)
    checked = {key: _check(name, key, value, allowed) for key, value in params.items()}
    return builder(**{**defaults, **checked})
