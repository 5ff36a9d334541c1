"""What every model's video inference shares: frames brought to the network's scale and padded,
and per-frame thing segments + semantic maps turned into panoptic frames with track ids."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vpseg.core.labels import LabelSpace
from vpseg.tracking import FrameSegments, Tracker, make_tracker
from vpseg.tracking.segments import InstanceFitter, compose

__all__ = ["TrackedVideo", "to_network", "pad_to", "as_tracker", "resize_instances",
           "resize_labels"]


def as_tracker(tracker: str | Tracker) -> Tracker:
    """A ``vpseg.tracking`` tracker by name (its defaults), or the given one."""
    return make_tracker(tracker) if isinstance(tracker, str) else tracker


def pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad the last two axes (bottom, right) up to a multiple of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pw, 0, ph)) if ph or pw else x


def to_network(images: torch.Tensor, scale: float, multiple: int = 32) -> tuple[torch.Tensor, tuple[int, int]]:
    """``images`` ``N×C×H×W`` resized by ``scale`` (bilinear) and padded to ``multiple``; returns
    the padded tensor and the resized size (the valid top-left region of the padded one)."""
    h, w = images.shape[-2:]
    if scale != 1.0:
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        images = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
    sh, sw = images.shape[-2:]
    return pad_to(images, multiple), (int(sh), int(sw))


def resize_instances(index: np.ndarray, n: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """An instance map (0 none, k = instance k − 1 of n) at ``size`` (H, W) by nearest
    neighbour; instances that no longer cover a pixel are dropped and the rest renumbered.
    Returns the map and the kept instances' positions."""
    if index.shape == tuple(size):
        return index, np.arange(n)
    big = cv2.resize(index.astype(np.int32), (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    present = np.flatnonzero(np.bincount(big.ravel(), minlength=n + 1)[1 : n + 1])
    lut = np.zeros(n + 1, dtype=np.int32)
    lut[present + 1] = np.arange(1, len(present) + 1)
    return lut[big], present


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A label map (e.g. semantic classes) at ``size`` (H, W) by nearest neighbour."""
    if labels.shape == tuple(size):
        return labels
    return cv2.resize(labels.astype(np.int32), (size[1], size[0]), interpolation=cv2.INTER_NEAREST)


class TrackedVideo:
    """Feeds a tracker clip by clip and writes the panoptic frames: track ids become instance
    ids (renumbered within a class past the label divisor, ``InstanceFitter``), the semantic map
    fills stuff and uncovered pixels."""

    def __init__(self, tracker: Tracker, labels: LabelSpace) -> None:
        self.tracker, self.labels = tracker, labels
        tracker.reset()
        self.fit = InstanceFitter(labels.label_divisor)

    def update(self, things: Sequence[FrameSegments], semantic: Sequence[np.ndarray],
               rgb: Sequence[np.ndarray], overlap: int = 0) -> list[np.ndarray]:
        """Panoptic frames (int32) of the clip's frames after the first ``overlap`` (which the
        previous clip already produced)."""
        if self.tracker.accepts_overlap:
            ids = self.tracker.update(things, rgb=list(rgb), overlap=overlap)
        else:  # frame-by-frame trackers see each frame once
            ids = [np.zeros(0, np.int64)] * overlap + self.tracker.update(
                things[overlap:], rgb=list(rgb[overlap:]))
        return [self.panoptic(things[f], ids[f], semantic[f]) for f in range(overlap, len(things))]

    def panoptic(self, things: FrameSegments, track_ids: np.ndarray, semantic: np.ndarray) -> np.ndarray:
        instances = self.fit(things.category, np.asarray(track_ids))
        return compose(things, instances, semantic, self.labels).astype(np.int32)
