"""In-memory (and lazily loaded) videos.

A ``Video`` is an ordered list of panoptic frames (annotated frames only, for sparsely annotated
data) with their frame indices in the full video, frame names as stored on disk, the video name,
its label space and, optionally, the RGB frames aligned with the panoptic frames. Frames may be
plain arrays or ``LazyFrames`` that read a file on each access, so a long video is never held in
memory as a whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import overload

import numpy as np

from vpseg.core.labels import LabelSpace

__all__ = ["LazyFrames", "IndexedFrame", "IndexedFrames", "Video", "FrameSequence"]


class LazyFrames(Sequence[np.ndarray]):
    """A sequence of frames produced on access by ``loaders[i]()``; nothing is cached."""

    def __init__(self, loaders: Sequence[Callable[[], np.ndarray]]) -> None:
        self._loaders = list(loaders)

    def __len__(self) -> int:
        return len(self._loaders)

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, index: slice) -> LazyFrames: ...

    def __getitem__(self, index: int | slice) -> np.ndarray | LazyFrames:
        if isinstance(index, slice):
            return LazyFrames(self._loaders[index])
        return self._loaders[index]()

    def __iter__(self) -> Iterator[np.ndarray]:
        for load in self._loaders:
            yield load()


@dataclass(frozen=True)
class IndexedFrame:
    """A panoptic frame as a small table of ids and, per pixel, an index into it, the way
    COCO-style PNGs store frames: ``np.asarray(frame)`` is ``ids[index]``, ``(H, W)`` int32.

    ``index``: ``(H, W)`` uint8 or uint16; ``ids``: ``(K,)`` int32 panoptic ids (an id may be
    listed more than once). The metrics count pairs on the index directly (1-2 bytes a pixel
    instead of 4 and no hashing), which is what lets ``vpseg eval`` run at the speed of decoding.
    """

    index: np.ndarray
    ids: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.index.shape)

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        out = self.ids[self.index]
        return out if dtype is None else out.astype(dtype)


class IndexedFrames(LazyFrames):
    """Lazy frames whose loaders give ``IndexedFrame`` s: indexing yields plain int32 arrays like
    any frame sequence, ``indexed(i)`` the indexed form. Replacing a video's ``panoptic`` drops
    the indexed form with it, so it can never disagree with the frames."""

    def __init__(self, loaders: Sequence[Callable[[], IndexedFrame]]) -> None:
        super().__init__(loaders)  # type: ignore[arg-type]

    def __getitem__(self, index: int | slice) -> np.ndarray | LazyFrames:  # type: ignore[override]
        if isinstance(index, slice):
            return IndexedFrames(self._loaders[index])  # type: ignore[arg-type]
        return np.asarray(self._loaders[index]())

    def __iter__(self) -> Iterator[np.ndarray]:
        for load in self._loaders:
            yield np.asarray(load())

    def indexed(self, index: int) -> IndexedFrame:
        frame = self._loaders[index]()
        assert isinstance(frame, IndexedFrame)
        return frame


FrameSequence = Sequence[np.ndarray]


@dataclass(frozen=True)
class Video:
    """One video's panoptic frames (``(H, W)`` int32 ids each) and what belongs to them.

    ``frame_index[i]`` is the position of ``panoptic[i]`` in the full video (0-based) and
    ``frame_names[i]`` its on-disk name without extension; ``rgb[i]``, when present, is the
    ``(H, W, 3)`` uint8 image of the same frame; ``sources[i]`` the file it was read from. ``all_rgb`` optionally holds every RGB frame of
    the video (for sparsely annotated data sets), with ``all_rgb_names``.
    """

    name: str
    panoptic: FrameSequence
    label_space: LabelSpace
    frame_index: tuple[int, ...] = ()
    frame_names: tuple[str, ...] = ()
    rgb: FrameSequence | None = None
    all_rgb: FrameSequence | None = None
    all_rgb_names: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()  # the file each panoptic frame was read from, for messages
    meta: dict[str, object] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        n = len(self.panoptic)
        if not self.frame_index:
            object.__setattr__(self, "frame_index", tuple(range(n)))
        if not self.frame_names:
            object.__setattr__(self, "frame_names", tuple(f"{i:06d}" for i in self.frame_index))
        if len(self.frame_index) != n or len(self.frame_names) != n:
            raise ValueError(
                f"video {self.name!r}: {n} frames but {len(self.frame_index)} indices and "
                f"{len(self.frame_names)} names"
            )
        if self.sources and len(self.sources) != n:
            raise ValueError(f"video {self.name!r}: {n} frames but {len(self.sources)} sources")
        if self.rgb is not None and len(self.rgb) != n:
            raise ValueError(f"video {self.name!r}: {n} panoptic frames but {len(self.rgb)} RGB")
        if self.all_rgb is not None and len(self.all_rgb_names) != len(self.all_rgb):
            raise ValueError(f"video {self.name!r}: all_rgb and all_rgb_names differ in length")

    def __len__(self) -> int:
        return len(self.panoptic)

    def materialize(self) -> Video:
        """A copy with every frame loaded into memory (for small videos and tests)."""
        return replace(
            self,
            panoptic=[np.asarray(p) for p in self.panoptic],
            rgb=None if self.rgb is None else [np.asarray(r) for r in self.rgb],
            all_rgb=None if self.all_rgb is None else [np.asarray(r) for r in self.all_rgb],
        )
