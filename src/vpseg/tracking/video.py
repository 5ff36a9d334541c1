"""Tracking whole videos read by ``vpseg.formats``: per-frame panoptic predictions whose instance
ids are arbitrary per frame in, video-consistent track ids out (``vpseg track``).

Embeddings, when a model provides them, come from a side file per video,
``<predictions>/embeddings/<video>.npz``, holding for each frame name ``F`` the arrays
``"F:ids"`` ``(N,)`` int64 (the panoptic ids of the frame's thing segments) and ``"F:vectors"``
``(N, D)`` float32.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from vpseg.core.video import Video
from vpseg.errors import InputError, note
from vpseg.tracking.base import Tracker
from vpseg.tracking.segments import InstanceFitter, from_panoptic, to_panoptic

__all__ = ["track_video", "load_embeddings", "FramesInOrder"]


def load_embeddings(path: Path) -> Mapping[str, dict[int, np.ndarray]] | None:
    """frame name -> {panoptic id: vector}, or None when there is no side file. A frame's
    vectors are read when asked for, so a long video's embeddings are never all in memory."""
    if not path.is_file():
        return None
    try:
        data = np.load(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read embeddings: {exc}", path=path) from None
    return _Embeddings(data, path)


class _Embeddings(Mapping[str, dict[int, np.ndarray]]):
    """The frames of an embeddings ``.npz`` file (``load_embeddings``), read one at a time."""

    def __init__(self, data: Any, path: Path) -> None:
        self._data, self._path = data, path
        self._frames = {key[: -len(":ids")] for key in data.files if key.endswith(":ids")}

    def __len__(self) -> int:
        return len(self._frames)

    def __iter__(self) -> Iterator[str]:
        return iter(self._frames)

    def __getitem__(self, frame: str) -> dict[int, np.ndarray]:
        if frame not in self._frames:
            raise KeyError(frame)
        try:
            ids = self._data[f"{frame}:ids"]
            vectors = self._data[f"{frame}:vectors"] if f"{frame}:vectors" in self._data.files else None
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise InputError(f"cannot read embeddings: {exc}", path=self._path, frame=frame) from None
        if vectors is None or len(vectors) != len(ids):
            raise InputError(f"'{frame}:vectors' must have one row per id", path=self._path,
                             frame=frame)
        return {int(i): v for i, v in zip(ids, vectors, strict=True)}


class FramesInOrder(Sequence[np.ndarray]):
    """Frames produced by a generator and read once, in order (as the writers do)."""

    def __init__(self, frames: Iterator[np.ndarray], length: int) -> None:
        self._frames, self._length, self._next = frames, length, 0

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[np.ndarray]: ...

    def __getitem__(self, index: int | slice) -> np.ndarray | Sequence[np.ndarray]:
        if not isinstance(index, slice) and index >= self._length:
            raise IndexError(index)  # the end of a plain ``for`` loop over the frames
        if isinstance(index, slice) or index != self._next:
            raise IndexError("tracked frames are produced once, in order")
        self._next += 1
        return next(self._frames)


def track_video(
    video: Video,
    tracker: Tracker,
    *,
    rgb: Sequence[np.ndarray] | None = None,
    embeddings: Mapping[str, dict[int, np.ndarray]] | None = None,
) -> Video:
    """``video`` with its thing instance ids replaced by the tracker's track ids (lazily)."""
    labels = video.label_space
    tracker.reset()
    fit = InstanceFitter(labels.label_divisor)
    where = video.sources[0] if video.sources else video.name

    def frames() -> Iterator[np.ndarray]:
        for i, name in enumerate(video.frame_names):
            pan = np.asarray(video.panoptic[i])
            emb = None if embeddings is None else embeddings.get(name, {})
            segments, _ = from_panoptic(pan, labels, embeddings=emb)
            image = None if rgb is None else [np.asarray(rgb[i])]
            if image is not None and image[0].shape[:2] != pan.shape:
                raise InputError(f"RGB frame is {image[0].shape[0]}x{image[0].shape[1]}, the "
                                 f"prediction {pan.shape[0]}x{pan.shape[1]}", path=where, frame=name)
            ids = tracker.update([segments], rgb=image)[0]
            try:
                instances = fit(segments.category, ids)
            except ValueError as exc:
                raise InputError(str(exc), path=where, frame=name) from None
            if i == len(video) - 1 and fit.renumbered:  # said before the last frame is taken
                note(f"video {video.name!r}: {fit.renumbered} tracks past the label divisor "
                     f"{labels.label_divisor} renumbered within their class (metrics unchanged)")
            yield to_panoptic(pan, segments, instances, labels)

    return Video(name=video.name, panoptic=FramesInOrder(frames(), len(video)),
                 label_space=labels, frame_index=video.frame_index,
                 frame_names=video.frame_names, rgb=video.rgb)
