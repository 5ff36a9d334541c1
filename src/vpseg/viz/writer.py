"""Writing rendered frames: a PNG per frame, or an H.264 MP4 through PyAV (a core dependency)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vpseg._atomic import atomic_path
from vpseg.errors import InputError
from vpseg.formats._png import write_png

__all__ = ["write_pngs", "write_mp4", "encode_frames"]


def write_pngs(folder: Path, names: Sequence[str], frames: Iterable[np.ndarray]) -> int:
    """Write ``frames`` as ``folder/<name>.png``; returns the number written."""
    count = 0
    for name, frame in zip(names, frames, strict=False):
        write_png(Path(folder) / f"{name}.png", frame)
        count += 1
    return count


def write_mp4(path: Path, frames: Iterable[np.ndarray], *, fps: float = 10.0, crf: int = 20) -> int:
    """Encode ``(H, W, 3)`` uint8 frames as H.264 (yuv420p) MP4, atomically; returns the count.

    Odd frame sizes are padded by one pixel (H.264 with 4:2:0 chroma needs even sizes).
    """
    try:
        import av
    except ImportError:  # PyAV is a core dependency; this is a broken installation
        raise InputError("writing MP4 needs PyAV, which is not importable here: "
                         "pip install av", path=path) from None
    if not 0 < fps <= 1000:
        raise InputError(f"frame rate must be in (0, 1000], got {fps:g}", path=path)
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        count = encode_frames(container, frames, codec="libx264", fps=round(fps),
                              options={"crf": str(crf), "preset": "veryfast"})
    return count


def encode_frames(container: Any, frames: Iterable[np.ndarray], *, codec: str, fps: int,
                  options: dict[str, str]) -> int:
    """Encode ``(H, W, 3)`` uint8 frames of one size into an open PyAV output ``container`` as
    one yuv420p video stream of ``codec``; odd sizes are padded by one pixel (4:2:0 chroma needs
    even sizes). Returns the number of frames."""
    import av

    count = 0
    stream: Any = None
    for frame in frames:
        if stream is None:
            h, w = frame.shape[0] + frame.shape[0] % 2, frame.shape[1] + frame.shape[1] % 2
            stream = container.add_stream(codec, rate=fps)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.options = options
        padded = np.zeros((stream.height, stream.width, 3), dtype=np.uint8)
        padded[: frame.shape[0], : frame.shape[1]] = frame
        for packet in stream.encode(av.VideoFrame.from_ndarray(padded, format="rgb24")):
            container.mux(packet)
        count += 1
    if stream is not None:
        for packet in stream.encode():
            container.mux(packet)
    return count
