"""Dense optical flow between RGB frames, and warping label maps with it (OpenCV, no weights).

Backends: ``dis`` (OpenCV DIS, preset medium; the default), ``farneback``, and ``raft`` /
``raft-small`` (torchvision's RAFT large / small; need ``vpseg[torch]`` and a local weights file
with the matching state dict — nothing is downloaded). Flow is computed at a working resolution
(``max_side`` pixels on the longer side) and scaled back, which trades a little accuracy for speed
on large frames.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vpseg.errors import InputError

__all__ = ["FLOW_BACKENDS", "optical_flow", "warp_labels", "raft_model"]

FLOW_BACKENDS = ("dis", "farneback", "raft", "raft-small")


def _grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def optical_flow(
    first: np.ndarray, second: np.ndarray, *, backend: str = "dis", max_side: int | None = 640,
    weights: str | Path | None = None,
) -> np.ndarray:
    """Forward flow ``(H, W, 2)`` float32 (dx, dy) from ``first`` to ``second`` (``(H, W, 3)``
    uint8 RGB): pixel ``(x, y)`` of ``first`` moves to ``(x + dx, y + dy)`` in ``second``."""
    if backend not in FLOW_BACKENDS:
        raise ValueError(f"unknown flow backend {backend!r}; known: {', '.join(FLOW_BACKENDS)}")
    h, w = first.shape[:2]
    scale = 1.0 if max_side is None or max(h, w) <= max_side else max_side / max(h, w)
    if backend in ("raft", "raft-small"):
        return _raft(first, second, weights, scale, small=backend == "raft-small")
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


@functools.lru_cache(maxsize=2)
def raft_model(weights: str, small: bool = False) -> Any:
    """torchvision's RAFT (large, or small) with the state dict in the local file ``weights``."""
    try:
        import torch
        from torchvision.models.optical_flow import raft_large, raft_small
    except ImportError:
        raise RuntimeError("the raft flow backend needs torch: pip install 'vpseg[torch]'") from None
    path = Path(weights)
    if not path.is_file():
        raise InputError("RAFT weights file not found (nothing is downloaded)", path=path)
    model = (raft_small if small else raft_large)(weights=None, progress=False)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
    except (RuntimeError, KeyError, OSError) as exc:
        raise InputError(f"not a RAFT state dict: {str(exc).splitlines()[0]}", path=path) from None
    return model.eval()


def _raft(first: np.ndarray, second: np.ndarray, weights: str | Path | None,
          scale: float, *, small: bool) -> np.ndarray:
    if weights is None:
        raise InputError("the raft flow backend needs a local weights file (nothing is downloaded)")
    import torch

    model = raft_model(str(weights), small)
    h, w = first.shape[:2]
    # RAFT works on sizes divisible by 8 and at least 128 (its correlation pyramid)
    sh, sw = max(128, round(h * scale) // 8 * 8), max(128, round(w * scale) // 8 * 8)

    def prep(img: np.ndarray) -> Any:
        img = cv2.resize(np.ascontiguousarray(img), (sw, sh), interpolation=cv2.INTER_AREA)
        return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1.0

    with torch.inference_mode():
        flow = model(prep(first), prep(second))[-1][0].permute(1, 2, 0).numpy()
    flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
    flow[..., 0] *= w / sw
    flow[..., 1] *= h / sh
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
