"""The STEP benchmark's panoptic PNG layout, shared by KITTI-STEP and MOTChallenge-STEP.

Layout (google-research/deeplab2, STEP data preparation)::

    <root>/images/<split>/<seq>/<frame>.png          RGB frames
    <root>/panoptic_maps/<split>/<seq>/<frame>.png   RGB PNG: R = semantic, G*256 + B = instance

Void is semantic 255 (the ignore label); a thing pixel with instance 0 is crowd. Instance ids
that do not fit below the label divisor are renumbered within the sequence (``StepVideoDecoder``). A prediction
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
    video_folders,
    video_from_files,
)
from vpseg.formats._kernels import step_decode
from vpseg.formats._png import read_label_png, write_png
from vpseg.formats._renumber import fit_instances

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


def decode(bgr: np.ndarray, labels: LabelSpace, path: Path, frame: str) -> np.ndarray:
    """``(H, W, 3)`` uint8 STEP PNG in B, G, R order -> ``(H, W)`` int32 panoptic ids, validated,
    in one pass (``vpseg.formats._kernels``). Instance ids must fit below the label divisor
    (``StepVideoDecoder`` renumbers those that do not)."""
    out, top = _decode(bgr, labels, path, frame)
    if top >= labels.label_divisor:
        raise InputError(f"instance id {top} does not fit below the label divisor "
                         f"{labels.label_divisor}", path=path, frame=frame)
    return out


def _valid_classes(labels: LabelSpace) -> np.ndarray:
    """Bool over the 256 red values: True for category ids and the ignore label."""
    valid = np.zeros(256, dtype=bool)
    lut = labels.valid_lut()[:256]
    valid[: lut.size] = lut
    return valid


def _decode(bgr: np.ndarray, labels: LabelSpace, path: Path, frame: str) -> tuple[np.ndarray, int]:
    """(panoptic ids, largest instance id); the ids are meaningless where instances overflow."""
    out = np.empty(bgr.shape[:2], dtype=PANOPTIC_DTYPE)
    bad, top = step_decode(bgr, _valid_classes(labels), labels.label_divisor, out)
    if bad >= 0:
        raise InputError(f"class id {bad} (red channel) is not in label space {labels.name!r}",
                         path=path, frame=frame)
    return out, int(top)


def _pairs(bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct ``class << 16 | instance`` keys of a frame, index of each pixel into them)."""
    key = (bgr[..., 2].astype(np.int64) << 16) | (bgr[..., 1].astype(np.int64) << 8) | bgr[..., 0]
    keys, inverse = np.unique(key, return_inverse=True)
    return keys, inverse.reshape(key.shape)


class StepVideoDecoder:
    """Decodes the frames of one sequence. Instance ids of 1000 and more (the encoding holds up
    to 65535) are renumbered within the sequence (``vpseg.formats._renumber``): the first frame
    that has one makes the decoder read every frame's ids once, so the numbering is the same
    whatever order frames are read in."""

    def __init__(self, files: Sequence[Path], labels: LabelSpace, video: str) -> None:
        self.files, self.labels, self.video = list(files), labels, video
        self._renumbered: dict[tuple[int, int], int] | None = None

    def __call__(self, path: Path) -> np.ndarray:
        bgr = read_label_png(path, modes=("RGB",), frame=path.stem, what="panoptic map")
        out, top = _decode(bgr, self.labels, path, path.stem)
        if top < self.labels.label_divisor:
            return out
        if self._renumbered is None:
            self._renumbered = fit_instances(self._scan(), self.labels.label_divisor,
                                             video=self.video, where=path.parent)
        keys, inverse = _pairs(bgr)
        div = self.labels.label_divisor
        values = np.array([(k >> 16) * div + self._renumbered.get((k >> 16, k & 0xFFFF), k & 0xFFFF)
                           for k in keys.tolist()], dtype=PANOPTIC_DTYPE)
        return values[inverse]

    def _scan(self) -> set[tuple[int, int]]:
        pairs: set[tuple[int, int]] = set()
        for path in self.files:
            bgr = read_label_png(path, modes=("RGB",), frame=path.stem, what="panoptic map")
            _decode(bgr, self.labels, path, path.stem)  # validates the classes
            pairs.update((k >> 16, k & 0xFFFF) for k in _pairs(bgr)[0].tolist())
        return pairs


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
        return video_folders(base, lambda folder: bool(frame_files(folder, _PNG)))

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
        load = StepVideoDecoder(frame_files(base / video, _PNG), labels, video)
        return video_from_files(video, files, load, labels,
                                _video_dir(image_dir(root, split), video))

    def open_writer(
        self, root: str | Path, *, label_space: LabelSpace | None = None, split: str = "train",
        submission: bool = False,
    ) -> StepWriter:
        default = self.default_label_space()
        return StepWriter(Path(root), split, label_space or default, default, submission)


class StepWriter(DatasetWriter):
    """Writes ``images/<split>/<seq>/`` and ``panoptic_maps/<split>/<seq>/``; with
    ``submission``, only ``<seq>/<frame>.png`` (what deeplab2's STEP tools read and write)."""

    def __init__(self, root: Path, split: str, labels: LabelSpace, default: LabelSpace,
                 submission: bool = False) -> None:
        self.root, self.split, self.labels, self.default = Path(root), split, labels, default
        self.submission = submission
        self.root.mkdir(parents=True, exist_ok=True)
        save_label_space(self.root, labels, default)

    def write(self, video: Video) -> None:
        if self.submission:
            out, images = self.root / video.name, None
        else:
            out = self.root / "panoptic_maps" / self.split / video.name
            images = self.root / "images" / self.split / video.name
        jobs = WriteQueue()
        for i, name in enumerate(video.frame_names):
            pan = np.asarray(video.panoptic[i])
            jobs.add(partial(write_png, out / f"{name}.png", encode(pan, self.labels, video.name, name)))
            if video.rgb is not None and images is not None:
                jobs.add(partial(write_png, images / f"{name}.png", np.asarray(video.rgb[i])))
        jobs.flush()


#: KITTI-STEP: Cityscapes-19 classes; only pedestrians and cars carry track ids.
KITTI_STEP = StepFormat("kitti-step", "kitti-step")
#: MOTChallenge-STEP: 7 classes; pedestrians carry track ids.
MOTCHALLENGE_STEP = StepFormat("motchallenge-step", "motchallenge-step")
