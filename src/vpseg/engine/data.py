"""Training data: clips of T frames from any ``vpseg.formats`` data set or, generated on the fly,
from the synthetic world, with one augmentation drawn per clip and applied to all its frames
(scale jitter, crop, horizontal flip), as clip-level models need.

A sample is ``{"images": T×3×H×W float32 in [0, 1], "panoptic": T×H×W int64}``; a batch stacks
samples along a new first axis. Random choices come from a generator seeded by (seed, index), so
a sample is a pure function of its index — the data order of a resumed run is the same.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from vpseg.core.labels import LabelSpace
from vpseg.core.synthetic import SynthConfig, generate_video
from vpseg.formats import Format

__all__ = ["ClipAugment", "augment_clip", "SyntheticClips", "FormatClips", "collate"]


@dataclass(frozen=True)
class ClipAugment:
    """Output ``crop`` (H, W); scale factor drawn log-uniformly from ``scale``; flip with p=0.5."""

    crop: tuple[int, int]
    scale: tuple[float, float] = (0.5, 2.0)
    flip: bool = True


def augment_clip(
    images: Sequence[np.ndarray], panoptic: Sequence[np.ndarray], aug: ClipAugment,
    rng: np.random.Generator, void: int,
) -> tuple[np.ndarray, np.ndarray]:
    """One scale, one crop window and one flip for every frame of the clip.

    ``images``: T × ``(H, W, 3)`` uint8; ``panoptic``: T × ``(H, W)`` ids (nearest-neighbour
    resized, so no new ids appear); regions outside the image are black / ``void``.
    Returns ``(T, h, w, 3)`` uint8 and ``(T, h, w)`` int64.
    """
    h, w = panoptic[0].shape
    lo, hi = np.log(aug.scale[0]), np.log(aug.scale[1])
    s = float(np.exp(rng.uniform(lo, hi)))
    sh, sw = max(1, round(h * s)), max(1, round(w * s))
    ch, cw = aug.crop
    y0 = int(rng.integers(0, max(sh - ch, 0) + 1))
    x0 = int(rng.integers(0, max(sw - cw, 0) + 1))
    flip = aug.flip and bool(rng.random() < 0.5)
    out_img = np.zeros((len(images), ch, cw, 3), np.uint8)
    out_pan = np.full((len(images), ch, cw), void, np.int64)
    for t, (img, pan) in enumerate(zip(images, panoptic, strict=True)):
        img = cv2.resize(np.asarray(img), (sw, sh), interpolation=cv2.INTER_LINEAR)
        pan = cv2.resize(np.asarray(pan).astype(np.int32), (sw, sh), interpolation=cv2.INTER_NEAREST)
        img, pan = img[y0 : y0 + ch, x0 : x0 + cw], pan[y0 : y0 + ch, x0 : x0 + cw]
        if flip:
            img, pan = img[:, ::-1], pan[:, ::-1]
        out_img[t, : img.shape[0], : img.shape[1]] = img
        out_pan[t, : pan.shape[0], : pan.shape[1]] = pan
    return out_img, out_pan


def _sample(images: np.ndarray, panoptic: np.ndarray) -> dict[str, torch.Tensor]:
    return {"images": torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0,
            "panoptic": torch.from_numpy(panoptic)}


class SyntheticClips(Dataset[dict[str, torch.Tensor]]):
    """``length`` clips of ``frames`` frames from freshly generated synthetic videos (so a model
    sees hundreds of different scenes, not a fixed set it can memorise).

    Rendering a scene costs more than rendering its frames, so each video of
    ``clips_per_video × frames`` frames gives that many consecutive, non-overlapping clips, each
    with its own augmentation. ``interleave`` m spreads them: samples ``i`` and ``i + 1`` come from
    different videos and a video's clips sit ``m`` samples apart (with m = the batch size, every
    batch holds m different scenes and the next ``clips_per_video − 1`` batches reuse them; the
    last m videos are cached). Sample i is still a pure function of (seed, i).
    """

    def __init__(self, labels: LabelSpace, *, length: int, frames: int = 2,
                 config: SynthConfig | None = None, augment: ClipAugment | None = None,
                 seed: int = 0, clips_per_video: int = 1, interleave: int = 1) -> None:
        if clips_per_video < 1 or interleave < 1:
            raise ValueError("clips_per_video and interleave must be >= 1")
        self.labels, self.length, self.frames = labels, length, frames
        self.config = config or SynthConfig(height=128, width=256, frames=frames)
        self.augment, self.seed = augment, seed
        self.clips_per_video, self.interleave = clips_per_video, interleave
        self._cache: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.length

    def locate(self, index: int) -> tuple[int, int]:
        """(video index, clip index within the video) of sample ``index``."""
        k, m = self.clips_per_video, self.interleave
        group, offset = divmod(index, k * m)
        return group * m + offset % m, offset // m

    def _video(self, v: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        with self._lock:
            if v in self._cache:
                return self._cache[v]
        cfg = SynthConfig(**{**self.config.__dict__, "frames": self.frames * self.clips_per_video})
        video = generate_video(cfg, self.labels, seed=self.seed, index=v)
        assert video.rgb is not None
        frames = (list(video.rgb), [np.asarray(p) for p in video.panoptic])
        with self._lock:
            self._cache[v] = frames
            while len(self._cache) > 2 * self.interleave:  # oldest first (insertion order)
                del self._cache[next(iter(self._cache))]
        return frames

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        v, c = self.locate(index)
        rgb, pan = self._video(v)
        window = slice(c * self.frames, (c + 1) * self.frames)
        images, panoptic = rgb[window], pan[window]
        if self.augment is None:
            return _sample(np.stack(images), np.stack(panoptic).astype(np.int64))
        rng = np.random.default_rng([self.seed, index, 1])
        void = self.labels.ignore_label * self.labels.label_divisor
        return _sample(*augment_clip(images, panoptic, self.augment, rng, void))


class FormatClips(Dataset[dict[str, torch.Tensor]]):
    """Clips of ``frames`` consecutive annotated frames (stride ``step``) of a data set on disk."""

    def __init__(self, fmt: Format, root: str | Path, *, split: str | None = None,
                 frames: int = 2, step: int = 1, augment: ClipAugment | None = None,
                 seed: int = 0, label_space: LabelSpace | None = None) -> None:
        self.fmt, self.root, self.split, self.frames = fmt, Path(root), split, frames
        self.augment, self.seed, self.label_space = augment, seed, label_space
        self.index: list[tuple[str, int]] = []
        for name in fmt.list_videos(root, split=split):
            video = fmt.read_video(root, name, split=split, label_space=label_space)
            if video.rgb is None:
                raise ValueError(f"video {name!r} has no RGB frames to train on")
            self.index += [(name, s) for s in range(0, len(video) - frames + 1, step)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        name, start = self.index[index]
        video = self.fmt.read_video(self.root, name, split=self.split, label_space=self.label_space)
        assert video.rgb is not None
        rgb = [np.asarray(video.rgb[start + t]) for t in range(self.frames)]
        pan = [np.asarray(video.panoptic[start + t]) for t in range(self.frames)]
        labels = video.label_space
        if self.augment is None:
            return _sample(np.stack(rgb), np.stack(pan).astype(np.int64))
        rng = np.random.default_rng([self.seed, index, 2])
        void = labels.ignore_label * labels.label_divisor
        return _sample(*augment_clip(rgb, pan, self.augment, rng, void))


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack samples: ``images`` B×T×3×H×W, ``panoptic`` B×T×H×W."""
    return {key: torch.stack([s[key] for s in samples]) for key in samples[0]}
