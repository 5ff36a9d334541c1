"""Overlay clips for the report: ground truth | prediction, encoded in memory as WebM.

WebM (VP9, else VP8) through PyAV's libvpx, because every Chromium and Firefox build plays it:
Debian's and other open-source Chromium builds may lack the H.264 decoder that ``vpseg viz``'s
MP4s need. Clips are capped in frames and width so that a page with several stays a few MB.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vpseg.core.labels import LabelSpace
from vpseg.core.video import Video
from vpseg.errors import InputError
from vpseg.evaluation import prediction_split
from vpseg.formats import Format
from vpseg.viz import render_frames
from vpseg.viz.writer import encode_frames

__all__ = ["Clip", "MAX_FRAMES", "MAX_WIDTH", "FPS", "render_clip", "read_prediction", "count_tracks"]

MAX_FRAMES = 150  # frames per clip (15 s at FPS)
MAX_WIDTH = 640  # px, both panels and the gap; narrower clips are enlarged (nearest) to >= half
FPS = 10  # as vpseg viz --mp4


@dataclass(frozen=True)
class Clip:
    """One encoded clip and what the page says about it."""

    name: str
    data: bytes  # the WebM file
    mime: str  # "video/webm"
    codec: str  # "VP9" or "VP8"
    width: int  # encoded size, px
    height: int
    source_width: int  # rendered side-by-side size before scaling, px
    source_height: int
    frames: int  # frames in the clip
    total_frames: int  # annotated frames of the video


def _encoder() -> tuple[str, str]:
    """(PyAV encoder name, display name) of the first WebM video encoder this PyAV has."""
    import av

    for name, shown in (("libvpx-vp9", "VP9"), ("libvpx", "VP8")):
        try:
            av.codec.Codec(name, "w")
        except Exception:  # PyAV raises UnknownCodecError (or ValueError in older releases)
            continue
        return name, shown
    raise InputError("embedding clips needs PyAV with the libvpx (VP8/VP9) encoder, which this "
                     "installation lacks; run without --pred, or with --clips 0")


def _scale(frame: np.ndarray, max_width: int) -> np.ndarray:
    """Shrink to ``max_width`` (area averaging) or enlarge small frames by an integer factor
    (nearest, so that segment edges stay sharp); even sizes, as 4:2:0 chroma needs."""
    h, w = frame.shape[:2]
    if w > max_width:
        size = (max_width, max(2, round(h * max_width / w)))
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    elif 2 * w <= max_width:
        factor = max_width // w
        frame = cv2.resize(frame, (w * factor, h * factor), interpolation=cv2.INTER_NEAREST)
    h, w = frame.shape[:2]
    if h % 2 or w % 2:
        padded = np.zeros((h + h % 2, w + w % 2, 3), dtype=np.uint8)
        padded[:h, :w] = frame
        frame = padded
    return np.ascontiguousarray(frame)


def encode_webm(frames: Iterable[np.ndarray], *, fps: int = FPS) -> tuple[bytes, str, int]:
    """Encode ``(H, W, 3)`` uint8 frames of one size into a WebM in memory.

    Returns ``(file bytes, codec shown, frame count)``. Constant quality (crf) with the fastest
    libvpx settings: overlays are flat colour regions, which compress well at any speed.
    """
    import av

    codec, shown = _encoder()
    buffer = io.BytesIO()
    options = {"deadline": "realtime", "cpu-used": "8", "crf": "30",
               "b": "0" if codec == "libvpx-vp9" else "2M"}
    with av.open(buffer, mode="w", format="webm") as container:
        count = encode_frames(container, frames, codec=codec, fps=fps, options=options)
    return buffer.getvalue(), shown, count


def render_clip(gt: Video, pred: Video, *, max_frames: int = MAX_FRAMES,
                max_width: int = MAX_WIDTH, fps: int = FPS) -> Clip:
    """The first ``max_frames`` frames of ``gt | pred`` overlays (``vpseg.viz.render_frames``,
    as ``vpseg viz --side-by-side`` draws them), scaled to at most ``max_width`` px."""
    if len(pred) != len(gt):
        raise InputError(f"prediction of video {gt.name!r} has {len(pred)} frames, the ground "
                         f"truth {len(gt)}")
    frames = itertools.islice(render_frames(gt, pred), max_frames)
    first = next(frames, None)
    if first is None:
        raise InputError(f"video {gt.name!r} has no frames to show")
    shown = _scale(first, max_width)
    rest = (_scale(frame, max_width) for frame in frames)
    data, codec, count = encode_webm(itertools.chain([shown], rest), fps=fps)
    height, width = shown.shape[:2]
    return Clip(gt.name, data, "video/webm", codec, width, height, first.shape[1],
                first.shape[0], count, len(gt))


def read_prediction(fmt: Format, pred_root: Path, gt: Video, *, split: str | None,
                    labels: LabelSpace | None) -> Video:
    """The prediction of ground-truth video ``gt``, read as ``vpseg eval`` reads it."""
    pred_split = prediction_split(fmt, pred_root, split)
    if gt.name not in fmt.list_videos(pred_root, split=pred_split):
        raise InputError(f"missing video {gt.name!r} that the ground truth has", path=pred_root)
    return fmt.read_video(pred_root, gt.name, split=pred_split,
                          label_space=labels or gt.label_space, frame_names=gt.frame_names)


def count_tracks(video: Video) -> int:
    """Distinct thing tracks (thing class, instance > 0) in ``video``'s frames, as ``vpseg eval``
    records them per video (``"instances"``) for results that lack the count."""
    labels = video.label_space
    ids = np.unique(np.concatenate([np.unique(np.asarray(f)) for f in video.panoptic]
                                   or [np.zeros(0, np.int64)]))
    sem, inst = np.divmod(ids, labels.label_divisor)
    return int(np.count_nonzero(np.isin(sem, labels.thing_ids) & (inst > 0)))
