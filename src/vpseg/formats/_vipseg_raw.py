"""VIPSeg's raw download, before the official COCO conversion (VIPSeg-Dataset README)::

    <root>/imgs/<video>/<frame>.jpg
    <root>/panomasks/<video>/<frame>.png   one integer per pixel: 0 void, 1..124 a stuff class,
                                           class * 100 + k a thing instance (classes 1-based)

vpseg reads it into the same ids as the converted layout: class ``c - 1`` (0..123), and for a
thing instance ``k + 1`` (raw instance numbers start at 0; 0 is vpseg's stuff/crowd instance).
A raw value names one object through its video, as the conversion script assumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vpseg.core.labels import LabelSpace
from vpseg.core.panoptic import PANOPTIC_DTYPE
from vpseg.core.video import Video
from vpseg.errors import InputError
from vpseg.formats._common import (
    frame_files,
    in_split,
    label_files,
    video_folders,
    video_from_files,
)
from vpseg.formats._kernels import lut_decode
from vpseg.formats._png import read_label_png

__all__ = ["is_raw", "list_videos", "read_video", "decode"]

_MODES = ("I;16", "L", "P")
_THING_FROM = 125  # raw values >= 125 are things (README: "larger than 124")


def is_raw(root: Path) -> bool:
    return (root / "panomasks").is_dir() and not (root / "panomasksRGB").is_dir()


def list_videos(root: Path, split: str | None) -> list[str]:
    videos = video_folders(root / "panomasks", lambda folder: bool(frame_files(folder, (".png",))))
    if split is not None:
        listed = root / f"{split}.txt"
        if not listed.is_file():
            raise InputError(f"no split file for split {split!r}", path=listed)
        videos = in_split(videos, listed)
    return videos


def _lut(labels: LabelSpace, size: int) -> np.ndarray:
    """Raw value (``0..size-1``) -> panoptic id (int32, -1 for a class not in ``labels``)."""
    raw = np.arange(size, dtype=np.int64)
    thing = raw >= _THING_FROM
    category = np.where(thing, raw // 100, raw) - 1
    instance = np.where(thing, raw % 100 + 1, 0)
    known = np.isin(category, np.asarray(labels.ids))
    lut = np.where(known, category * labels.label_divisor + instance, -1)
    lut[0] = labels.ignore_label * labels.label_divisor
    return lut.astype(np.int32)


def decode(raw: np.ndarray, labels: LabelSpace, path: Path, frame: str,
           lut: np.ndarray | None = None) -> np.ndarray:
    """``(H, W)`` uint8 or uint16 raw values -> ``(H, W)`` int32 panoptic ids (see module
    docstring), in one pass through ``lut = _lut(labels, 65536)`` (made once per video)."""
    out = np.empty(raw.shape, dtype=PANOPTIC_DTYPE)
    bad = lut_decode(raw, _lut(labels, 1 << 16) if lut is None else lut, out)
    if bad >= 0:
        cls = bad // 100 if bad >= _THING_FROM else bad
        raise InputError(f"raw value {bad} (class {cls}) is not in label space {labels.name!r}",
                         path=path, frame=frame)
    return out


def read_video(root: Path, video: str, labels: LabelSpace,
               frame_names: Sequence[str] | None) -> Video:
    files = label_files(root / "panomasks" / video, video, frame_names, _MODES, "raw panoptic mask")

    lut = _lut(labels, 1 << 16)

    def load(path: Path) -> np.ndarray:
        raw = read_label_png(path, modes=_MODES, frame=path.stem, what="raw panoptic mask")
        return decode(raw, labels, path, path.stem, lut)

    images = root / "imgs" / video
    return video_from_files(video, files, load, labels, images if images.is_dir() else None)
