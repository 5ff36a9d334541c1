"""On-disk dataset formats. Nothing outside this package knows a file layout.

Every format object has the same small interface (``Format``): ``name``, ``holds_instances``,
``default_label_space()``, ``list_videos(root, split=)``, ``read_video(root, video, split=,
label_space=, frame_names=)`` (frames decoded lazily; predictions are read with the same call,
from the benchmark's submission layout or a folder that mirrors the ground truth's) and
``open_writer(root, label_space=, split=, submission=)`` -> a writer with ``write(video)`` used
in a ``with`` block; ``submission=True`` writes the layout the official evaluation reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from vpseg.core.labels import LabelSpace
from vpseg.core.video import Video
from vpseg.formats._common import DatasetWriter
from vpseg.formats.cityscapes_vps import CITYSCAPES_VPS
from vpseg.formats.coco_video import COCO_VIDEO, VIPSEG
from vpseg.formats.step import KITTI_STEP, MOTCHALLENGE_STEP
from vpseg.formats.viper import VIPER
from vpseg.formats.vspw import VSPW

__all__ = ["Format", "FORMATS", "get_format", "DatasetWriter"]


class Format(Protocol):
    name: str
    holds_instances: bool
    annotation_stride: int

    def default_label_space(self) -> LabelSpace: ...

    def list_videos(self, root: str | Path, *, split: str | None = None) -> list[str]: ...

    def read_video(
        self,
        root: str | Path,
        video: str,
        *,
        split: str | None = None,
        label_space: LabelSpace | None = None,
        frame_names: Sequence[str] | None = None,
    ) -> Video: ...

    def open_writer(
        self, root: str | Path, *, label_space: LabelSpace | None = None, split: str = "train",
        submission: bool = False,
    ) -> DatasetWriter: ...


#: Format name -> format object.
FORMATS: dict[str, Format] = {
    KITTI_STEP.name: KITTI_STEP,
    MOTCHALLENGE_STEP.name: MOTCHALLENGE_STEP,
    VSPW.name: VSPW,
    VIPSEG.name: VIPSEG,
    CITYSCAPES_VPS.name: CITYSCAPES_VPS,
    VIPER.name: VIPER,
    COCO_VIDEO.name: COCO_VIDEO,
}


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise KeyError(f"unknown format {name!r}; known: {', '.join(FORMATS)}") from None
