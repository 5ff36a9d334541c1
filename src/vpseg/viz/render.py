"""Panoptic frames to pictures: one colour per stuff class, a stable distinct colour per track.

A thing segment's colour depends only on its track id (``instance``), so an identity switch shows
as a colour change; crowd regions (thing class, instance 0) and stuff take the class colour.
"""

from __future__ import annotations

import colorsys
from collections.abc import Iterator, Sequence

import cv2
import numpy as np

from vpseg.core.labels import LabelSpace
from vpseg.core.video import Video

__all__ = ["track_color", "colorize", "overlay", "render_frames", "side_by_side"]


def track_color(track: int) -> tuple[int, int, int]:
    """A bright colour for track id ``track``: hues spread by the golden ratio, fixed per id."""
    hue = (track * 0.6180339887 + 0.13) % 1.0
    sat = 0.75 + 0.25 * ((track * 5) % 3) / 2
    r, g, b = colorsys.hsv_to_rgb(hue, sat, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def colorize(pan: np.ndarray, labels: LabelSpace) -> np.ndarray:
    """``(H, W)`` panoptic ids -> ``(H, W, 3)`` uint8 colours; void is black."""
    pan = np.asarray(pan)
    ids, inverse = np.unique(pan, return_inverse=True)
    table = labels.color_table()
    colors = np.zeros((len(ids), 3), dtype=np.uint8)
    for i, seg in enumerate(ids):
        sem, inst = divmod(int(seg), labels.label_divisor)
        if sem == labels.ignore_label or sem >= len(table):
            continue
        colors[i] = track_color(inst) if inst > 0 and labels.is_thing(sem) else table[sem]
    return colors[inverse.reshape(pan.shape)]


def overlay(
    rgb: np.ndarray | None, pan: np.ndarray, labels: LabelSpace, *, alpha: float = 0.55
) -> np.ndarray:
    """Blend the colourised frame over ``rgb`` (when given) and draw segment boundaries."""
    color = colorize(pan, labels)
    if rgb is not None:
        if rgb.shape[:2] != pan.shape:
            rgb = cv2.resize(rgb, (pan.shape[1], pan.shape[0]), interpolation=cv2.INTER_AREA)
        out = (alpha * color + (1 - alpha) * rgb.astype(np.float32)).astype(np.uint8)
    else:
        out = color.copy()
    pan = np.asarray(pan)
    edge = np.zeros(pan.shape, dtype=bool)
    edge[:, 1:] |= pan[:, 1:] != pan[:, :-1]
    edge[1:, :] |= pan[1:, :] != pan[:-1, :]
    out[edge] = 255
    return out


def side_by_side(left: np.ndarray, right: np.ndarray, gap: int = 4) -> np.ndarray:
    """Two ``(H, W, 3)`` images next to each other with a black gap."""
    h = max(left.shape[0], right.shape[0])
    canvas = np.zeros((h, left.shape[1] + gap + right.shape[1], 3), dtype=np.uint8)
    canvas[: left.shape[0], : left.shape[1]] = left
    canvas[: right.shape[0], left.shape[1] + gap :] = right
    return canvas


def render_frames(
    video: Video, pred: Video | None = None, *, alpha: float = 0.55
) -> Iterator[np.ndarray]:
    """Overlay frames of ``video`` (and, side by side, of ``pred``), one at a time."""
    rgb: Sequence[np.ndarray | None] = video.rgb if video.rgb is not None else [None] * len(video)
    if pred is not None and len(pred) != len(video):
        raise ValueError(f"prediction has {len(pred)} frames, ground truth {len(video)}")
    for i, (pan, image) in enumerate(zip(video.panoptic, rgb, strict=True)):
        frame = overlay(image, pan, video.label_space, alpha=alpha)
        if pred is not None:
            frame = side_by_side(frame, overlay(image, pred.panoptic[i], pred.label_space, alpha=alpha))
        yield frame
