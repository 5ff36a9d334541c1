"""The STEP benchmark's panoptic PNG layout, shared by KITTI-STEP and MOTChallenge-STEP.

Layout (google-research/deeplab2, STEP data preparation)::

    <root>/images/<split>/<seq>/<frame>.png          RGB frames
    <root>/panoptic_maps/<split>/<seq>/<frame>.png   RGB PNG: R = semantic, G*256 + B = instance

Void is semantic 255 (the ignore label); a thing pixel with instance 0 is crowd. A prediction
folder (the benchmark's submission) holds ``<seq>/<frame>.png`` with the same encoding; the
readers accept a dataset root, ``panoptic_maps/<split>/`` itself, or such a prediction folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np

from vpseg.core.labels import LabelSpace, get_label_space
from vpseg.core.panoptic import PANOPTIC_DTYPE
from vpseg.core.video import Video
from vpseg.errors import InputError
from vpseg.formats._common import (
    DatasetWriter,
    WriteQueue,
    frame_files,
    label_files,
    resolve_label_space,
    save_label_space,
    split_dir,
    video_from_files,
)
from vpseg.formats._png import read_image, write_png

_PNG = (".png",)


def label_dir(root: Path, split: str | None) -> Path:
    """The folder that holds one sub-folder per sequence of panoptic PNGs."""
    if (root / "panoptic_maps").is_dir():
        return split_dir(root / "panoptic_maps", split, "panoptic_maps")
    if not root.is_dir():
        raise InputError("not a folder", path=root)
    return root


def image_dir(root: Path, split: str | None) -> Path | None:
    if (root / "images").is_dir():
        return split_dir(root / "images", split, "images")
    if root.parent.name == "panoptic_maps":  # given panoptic_maps/<split>/ directly
        images = root.parent.parent / "images" / root.name
        return images if images.is_dir() else None
    return None


def decode(rgb: np.ndarray, labels: LabelSpace, path: Path, frame: str) -> np.ndarray:
    """``(H, W, 3)`` uint8 STEP PNG -> ``(H, W)`` int32 panoptic ids, validated."""
    red = rgb[..., 0]
    valid = labels.valid_lut()
    present = np.flatnonzero(np.bincount(red.ravel(), minlength=256))  # faster than unique
    bad = [int(s) for s in present if s >= valid.size or not valid[s]]
    if bad:
        raise InputError(
            f"class id {bad[0]} (red channel) is not in label space {labels.name!r}",
            path=path, frame=frame,
        )
    instance = (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    if instance.max(initial=0) >= labels.label_divisor:
        raise InputError(
            f"instance id {int(instance.max())} does not fit below the label divisor "
            f"{labels.label_divisor}",
            path=path, frame=frame,
        )
    semantic = red.astype(np.int32)
    return (semantic * labels.label_divisor + instance).astype(PANOPTIC_DTYPE)


def encode(pan: np.ndarray, labels: LabelSpace, name: str, frame: str) -> np.ndarray:
    """``(H, W)`` panoptic ids -> ``(H, W, 3)`` uint8 STEP PNG; raises if ids do not fit."""
    semantic = pan // labels.label_divisor
    instance = pan % labels.label_divisor
    if semantic.max(initial=0) > 255 or semantic.min(initial=0) < 0:
        raise InputError(
            f"class id {int(semantic.max())} does not fit the 8-bit red channel",
            path=name, frame=frame,
        )
    if instance.max(initial=0) > 65535:
        raise InputError(
            f"instance id {int(instance.max())} does not fit G*256+B (max 65535)",
            path=name, frame=frame,
        )
    out = np.empty(pan.shape + (3,), dtype=np.uint8)
    out[..., 0] = semantic
    out[..., 1] = instance // 256
    out[..., 2] = instance % 256
    return out


def _video_dir(images: Path | None, video: str) -> Path | None:
    return None if images is None else images / video


class StepFormat:
    """A STEP data set: its name, built-in label space and the functions every format has."""

    holds_instances = True
    annotation_stride = 1  # every frame is annotated

    def __init__(self, name: str, label_space: str) -> None:
        self.name = name
        self._label_space = label_space

    def default_label_space(self) -> LabelSpace:
        return get_label_space(self._label_space)

    def list_videos(self, root: str | Path, *, split: str | None = None) -> list[str]:
        """Sequence names (``0000`` …) under ``root``."""
        base = label_dir(Path(root), split)
        return sorted(p.name for p in base.iterdir() if p.is_dir() and frame_files(p, _PNG))

    def read_video(
        self,
        root: str | Path,
        video: str,
        *,
        split: str | None = None,
        label_space: LabelSpace | None = None,
        frame_names: Sequence[str] | None = None,
    ) -> Video:
        """One sequence, frames decoded lazily; ``frame_names`` demands exactly those frames."""
        root = Path(root)
        base = label_dir(root, split)
        labels = resolve_label_space(root, label_space, self.default_label_space())
        files = label_files(base / video, video, frame_names, ("RGB",), "panoptic map")

        def load(path: Path) -> np.ndarray:
            rgb = read_image(path, modes=("RGB",), frame=path.stem, what="panoptic map")
            return decode(rgb, labels, path, path.stem)

        return video_from_files(video, files, load, labels,
                                _video_dir(image_dir(root, split), video))

    def open_writer(
        self, root: str | Path, *, label_space: LabelSpace | None = None, split: str = "train"
    ) -> StepWriter:
        default = self.default_label_space()
        return StepWriter(Path(root), split, label_space or default, default)


class StepWriter(DatasetWriter):
    """Writes ``images/<split>/<seq>/`` and ``panoptic_maps/<split>/<seq>/``."""

    def __init__(self, root: Path, split: str, labels: LabelSpace, default: LabelSpace) -> None:
        self.root, self.split, self.labels, self.default = Path(root), split, labels, default
        self.root.mkdir(parents=True, exist_ok=True)
        save_label_space(self.root, labels, default)

    def write(self, video: Video) -> None:
        out = self.root / "panoptic_maps" / self.split / video.name
        images = self.root / "images" / self.split / video.name
        jobs = WriteQueue()
        for i, name in enumerate(video.frame_names):
            pan = np.asarray(video.panoptic[i])
            jobs.add(partial(write_png, out / f"{name}.png", encode(pan, self.labels, video.name, name)))
            if video.rgb is not None:
                jobs.add(partial(write_png, images / f"{name}.png", np.asarray(video.rgb[i])))
        jobs.flush()


#: KITTI-STEP: Cityscapes-19 classes; only pedestrians and cars carry track ids.
KITTI_STEP = StepFormat("kitti-step", "kitti-step")
#: MOTChallenge-STEP: 7 classes; pedestrians carry track ids.
MOTCHALLENGE_STEP = StepFormat("motchallenge-step", "motchallenge-step")
