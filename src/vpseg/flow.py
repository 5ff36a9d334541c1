"""Dense optical flow between RGB frames, and warping label maps with it (OpenCV, no weights).

Backends: ``dis`` (OpenCV DIS, preset medium; the default) and ``farneback``. Flow is computed at
a working resolution (``max_side`` pixels on the longer side) and scaled back, which trades a
little accuracy for speed on large frames. A learned flow (RAFT, as VSPW's TC used) needs torch and
local weights and belongs to the tracking layer's optional backends.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["FLOW_BACKENDS", "optical_flow", "warp_labels"]

FLOW_BACKENDS = ("dis", "farneback")


def _grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def optical_flow(
    first: np.ndarray, second: np.ndarray, *, backend: str = "dis", max_side: int | None = 640
) -> np.ndarray:
    """Forward flow ``(H, W, 2)`` float32 (dx, dy) from ``first`` to ``second`` (``(H, W, 3)``
    uint8 RGB): pixel ``(x, y)`` of ``first`` moves to ``(x + dx, y + dy)`` in ``second``."""
    if backend not in FLOW_BACKENDS:
        raise ValueError(f"unknown flow backend {backend!r}; known: {', '.join(FLOW_BACKENDS)}")
    h, w = first.shape[:2]
    scale = 1.0 if max_side is None or max(h, w) <= max_side else max_side / max(h, w)
    a, b = _grey(first), _grey(second)
    if scale != 1.0:
        size = (max(8, round(w * scale)), max(8, round(h * scale)))
        a = cv2.resize(a, size, interpolation=cv2.INTER_AREA)
        b = cv2.resize(b, size, interpolation=cv2.INTER_AREA)
    if backend == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # type: ignore[attr-defined]
        flow = dis.calc(a, b, None)
    else:
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)  # type: ignore[call-overload]
    if scale != 1.0:
        flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR) / scale
    return flow.astype(np.float32)


def warp_labels(labels: np.ndarray, flow: np.ndarray, *, fill: int) -> np.ndarray:
    """Backward-warp ``labels`` of the second frame onto the first frame's grid:
    ``out(x) = labels(x + flow(x))``, nearest neighbour; samples outside the frame get ``fill``."""
    h, w = labels.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    sx = np.rint(xs + flow[..., 0]).astype(np.int64)
    sy = np.rint(ys + flow[..., 1]).astype(np.int64)
    inside = (sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)
    out = np.full(labels.shape, fill, dtype=labels.dtype)
    out[inside] = labels[sy[inside], sx[inside]]
    return out
