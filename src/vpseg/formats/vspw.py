"""VSPW: video semantic segmentation, per-frame class-index PNGs (no instance ids).

Layout (VSPW-dataset/VSPW-dataset-download README; VSPW-dataset/VSPW_code)::

    <root>/data/<video>/origin/<frame>.jpg   RGB frames
    <root>/data/<video>/mask/<frame>.png     single-channel PNG (mode P or L), one value per pixel
    <root>/{train,val,test}.txt              video names of each split, one per line

Mask values: 1..124 are the classes, 0 ("others") and 255 are void. vpseg's ``vspw`` label space
uses the official evaluation ids, value - 1 (0..123), so reading maps ``v -> v - 1`` and 0, 255 to
the ignore label; writing maps back and writes void as 255.

Predictions in the submission layout (what VSPW_code's ``evaluator_test.py``, ``VC_perclip.py``
and ``TC_cal.py`` read, frames paired by name) are ``<pred>/<video>/<frame>.png`` holding the
evaluation ids themselves, 0..123, and 255 for void (the dataset README's conversion; methods
such as DVIS write this). A prediction folder that mirrors ``data/<video>/mask/`` (or
``<video>/mask/``) is read with the dataset's encoding instead.
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
    in_split,
    label_files,
    resolve_label_space,
    save_label_space,
    video_folders,
    video_from_files,
    write_split_file,
)
from vpseg.formats._kernels import lut_decode
from vpseg.formats._png import read_label_png, write_jpeg, write_png

__all__ = ["VSPW", "VspwFormat"]

_MODES = ("P", "L")
_VOID_ON_DISK = 255
_OTHERS = 0


def _mask_dir(root: Path, video: str) -> tuple[Path, bool]:
    """(``data/<video>/mask`` in a dataset root, ``<video>/mask`` or ``<video>`` elsewhere;
    whether it holds the submission encoding: only the last does)."""
    for folder in (root / "data" / video / "mask", root / video / "mask"):
        if folder.is_dir():
            return folder, False
    return root / video, True


def _lut(labels: LabelSpace, submission: bool = False) -> np.ndarray:
    """Mask value -> panoptic id (int32, -1 for a value that is no class); the submission
    encoding holds class ids (void 255), the dataset's class id + 1 (void 0 and 255)."""
    shift = 0 if submission else 1
    lut = np.full(256, -1, dtype=np.int32)
    lut[_VOID_ON_DISK] = labels.ignore_label * labels.label_divisor
    if not submission:
        lut[_OTHERS] = labels.ignore_label * labels.label_divisor
    for cid in labels.ids:
        if cid + shift < 255:
            lut[cid + shift] = cid * labels.label_divisor
    return lut


def decode(values: np.ndarray, labels: LabelSpace, path: Path, frame: str,
           lut: np.ndarray | None = None) -> np.ndarray:
    """``(H, W)`` uint8 mask values -> ``(H, W)`` int32 panoptic ids (instance always 0), in
    one pass; ``lut`` is ``_lut(labels)``, computed once per video by the reader."""
    out = np.empty(values.shape, dtype=PANOPTIC_DTYPE)
    table = _lut(labels) if lut is None else lut
    bad = lut_decode(values, table, out)
    if bad >= 0:
        expected = (f"1..{labels.max_id + 1}, 0 or 255 for void" if table[0] == table[255]
                    else f"0..{labels.max_id} (submission layout: class ids), 255 for void")
        raise InputError(f"mask value {bad} is not a class of label space {labels.name!r} "
                         f"(expected {expected})", path=path, frame=frame)
    return out


def encode(pan: np.ndarray, labels: LabelSpace, where: str, frame: str,
           submission: bool = False) -> np.ndarray:
    """``(H, W)`` panoptic ids -> ``(H, W)`` uint8 mask values (class id + 1, or the class id
    itself in the submission encoding; void 255); instance ids must be 0."""
    semantic, instance = np.divmod(np.asarray(pan), labels.label_divisor)
    if instance.any():
        raise InputError("VSPW holds no instance ids (drop them with --semantic-only)",
                         path=where, frame=frame)
    void = semantic == labels.ignore_label
    values = semantic if submission else semantic + 1
    if (values[~void] >= _VOID_ON_DISK).any():
        raise InputError(f"class id {int(semantic[~void].max())} does not fit a VSPW mask "
                         f"(max {254 if submission else 253})", path=where, frame=frame)
    values[void] = _VOID_ON_DISK
    return values.astype(np.uint8)


class VspwFormat:
    """The VSPW layout; semantic only."""

    name = "vspw"
    holds_instances = False
    annotation_stride = 1

    def default_label_space(self) -> LabelSpace:
        return get_label_space("vspw")

    def list_videos(self, root: str | Path, *, split: str | None = None) -> list[str]:
        root = Path(root)
        if not root.is_dir():
            raise InputError("not a folder", path=root)
        base = root / "data" if (root / "data").is_dir() else root
        videos = video_folders(
            base, lambda folder: bool(frame_files(_mask_dir(root, folder.name)[0], (".png",))))
        if split is not None:
            listed = root / f"{split}.txt"
            if not listed.is_file():
                raise InputError(f"no split file for split {split!r}", path=listed)
            videos = in_split(videos, listed)
        return videos

    def read_video(
        self,
        root: str | Path,
        video: str,
        *,
        split: str | None = None,
        label_space: LabelSpace | None = None,
        frame_names: Sequence[str] | None = None,
    ) -> Video:
        root = Path(root)
        labels = resolve_label_space(root, label_space, self.default_label_space())
        folder, submission = _mask_dir(root, video)
        files = label_files(folder, video, frame_names, _MODES, "mask")

        lut = _lut(labels, submission)

        def load(path: Path) -> np.ndarray:
            values = read_label_png(path, modes=_MODES, frame=path.stem, what="mask")
            return decode(values, labels, path, path.stem, lut)

        images = root / "data" / video / "origin"
        return video_from_files(video, files, load, labels, images if images.is_dir() else None)

    def open_writer(
        self, root: str | Path, *, label_space: LabelSpace | None = None, split: str = "train",
        submission: bool = False,
    ) -> VspwWriter:
        default = self.default_label_space()
        return VspwWriter(Path(root), split, label_space or default, default, submission)


class VspwWriter(DatasetWriter):
    """Writes ``data/<video>/{mask,origin}/`` and adds the videos to ``<split>.txt`` on close;
    with ``submission``, only ``<video>/<frame>.png`` in the submission encoding."""

    def __init__(self, root: Path, split: str, labels: LabelSpace, default: LabelSpace,
                 submission: bool = False) -> None:
        self.root, self.split, self.labels, self.submission = root, split, labels, submission
        self.root.mkdir(parents=True, exist_ok=True)
        save_label_space(root, labels, default)
        self.names: list[str] = []
        palette = np.zeros((256, 3), dtype=np.uint8)
        for cat in labels.categories:
            if cat.id + 1 < 255:
                palette[cat.id + 1] = cat.color
        self.palette = palette

    def write(self, video: Video) -> None:
        base = self.root / "data" / video.name
        masks = self.root / video.name if self.submission else base / "mask"
        jobs = WriteQueue()
        for i, name in enumerate(video.frame_names):
            values = encode(np.asarray(video.panoptic[i]), self.labels, video.name, name,
                            self.submission)
            palette = None if self.submission else self.palette
            jobs.add(partial(write_png, masks / f"{name}.png", values, palette=palette))
            if video.rgb is not None and not self.submission:
                jobs.add(partial(write_jpeg, base / "origin" / f"{name}.jpg", np.asarray(video.rgb[i])))
        jobs.flush()
        self.names.append(video.name)

    def close(self) -> None:
        if not self.submission:
            write_split_file(self.root / f"{self.split}.txt", self.names)


VSPW = VspwFormat()
