"""Helpers on panoptic frames: ``pan = semantic * label_divisor + instance``.

Frames are 2-D integer arrays (``(H, W)``); vpseg's canonical dtype is int32, which holds every
id of the built-in label spaces (``255 * 1000 + 999``). ``instance == 0`` is stuff, or a thing
region without an individual id (crowd).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from vpseg.core.labels import LabelSpace
from vpseg.errors import InputError

__all__ = [
    "PANOPTIC_DTYPE",
    "merge",
    "split",
    "relabel",
    "segment_areas",
    "segment_boxes",
    "validate_panoptic",
    "void_frame",
]

PANOPTIC_DTYPE = np.int32


def merge(semantic: np.ndarray, instance: np.ndarray, label_divisor: int) -> np.ndarray:
    """``(H, W)`` semantic and instance ids -> ``(H, W)`` int32 panoptic ids.

    Raises ``ValueError`` if an instance id does not fit below ``label_divisor``.
    """
    semantic = np.asarray(semantic)
    instance = np.asarray(instance)
    if semantic.shape != instance.shape:
        raise ValueError(f"semantic {semantic.shape} and instance {instance.shape} differ")
    if instance.size and (instance.min() < 0 or instance.max() >= label_divisor):
        raise ValueError(
            f"instance ids must lie in [0, {label_divisor}); got "
            f"[{instance.min()}, {instance.max()}]"
        )
    pan = semantic.astype(np.int64) * label_divisor + instance
    if pan.size and pan.max() > np.iinfo(PANOPTIC_DTYPE).max:
        raise ValueError("panoptic ids overflow int32")
    return pan.astype(PANOPTIC_DTYPE)


def split(pan: np.ndarray, label_divisor: int) -> tuple[np.ndarray, np.ndarray]:
    """``(H, W)`` panoptic ids -> (semantic, instance), both int32."""
    pan = np.asarray(pan)
    return (pan // label_divisor).astype(np.int32), (pan % label_divisor).astype(np.int32)


def void_frame(shape: tuple[int, int], labels: LabelSpace) -> np.ndarray:
    """A frame whose every pixel is void (the ignore label, instance 0)."""
    return np.full(shape, labels.ignore_label * labels.label_divisor, dtype=PANOPTIC_DTYPE)


def relabel(pan: np.ndarray, mapping: Mapping[int, int]) -> np.ndarray:
    """Replace panoptic ids by ``mapping[id]``; ids not in ``mapping`` stay as they are."""
    pan = np.asarray(pan)
    if not mapping:
        return pan.copy()
    ids, inverse = np.unique(pan, return_inverse=True)
    new_ids = np.array([mapping.get(int(i), int(i)) for i in ids], dtype=np.int64)
    return new_ids[inverse.reshape(pan.shape)].astype(pan.dtype)


def segment_areas(pan: np.ndarray) -> dict[int, int]:
    """Pixel count of every panoptic id present in ``pan``."""
    ids, counts = np.unique(np.asarray(pan), return_counts=True)
    return {int(i): int(c) for i, c in zip(ids, counts, strict=True)}


def segment_boxes(pan: np.ndarray) -> dict[int, tuple[int, int, int, int]]:
    """Tight box ``(x0, y0, x1, y1)`` (exclusive ends) of every panoptic id in ``pan``."""
    from scipy import ndimage  # imported here: scipy costs ~0.1 s, and most commands never box

    pan = np.asarray(pan)
    ids, inverse = np.unique(pan, return_inverse=True)
    # find_objects labels from 1; one pass over the pixels for all segments.
    slices = ndimage.find_objects(inverse.reshape(pan.shape).astype(np.int32) + 1)
    boxes: dict[int, tuple[int, int, int, int]] = {}
    for seg_id, sl in zip(ids, slices, strict=True):
        if sl is not None:
            boxes[int(seg_id)] = (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
    return boxes


def validate_panoptic(
    pan: np.ndarray,
    labels: LabelSpace,
    *,
    path: str | None = None,
    frame: str | int | None = None,
) -> None:
    """Raise ``InputError`` naming ``path``/``frame`` unless every id is in ``labels``.

    Checks: 2-D integer array; every semantic id is a category or the ignore label.
    """
    if pan.ndim != 2 or not np.issubdtype(pan.dtype, np.integer):
        raise InputError(
            f"expected a 2-D integer panoptic map, got {pan.dtype} {pan.shape}", path=path,
            frame=frame,
        )
    if pan.size == 0:
        return
    if pan.min() < 0:
        raise InputError(f"negative panoptic id {int(pan.min())}", path=path, frame=frame)
    semantic = pan // labels.label_divisor
    valid = labels.valid_lut()
    present = np.unique(semantic)
    bad = [int(s) for s in present if s >= valid.size or not valid[s]]
    if bad:
        raise InputError(
            f"class id {bad[0]} is not in label space {labels.name!r} "
            f"(valid: {min(labels.ids)}..{labels.max_id} and ignore {labels.ignore_label})",
            path=path,
            frame=frame,
        )
