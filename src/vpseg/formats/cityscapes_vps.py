"""Cityscapes-VPS (mcahny/vps): 500 videos of 30 frames, every 5th frame annotated (the 5th, 10th,
…, 30th), Cityscapes-19 train ids as category ids, 8 thing classes.

Layout (``docs/DATASET.md``, ``prepare_data/create_panoptic_video_labels.py``, ``tools/eval_vpq.py``)::

    <root>/<split>/img/<id>_newImg8bit.png            annotated frames (the 20th: _leftImg8bit)
    <root>/<split>/img_all/<city>_<seq>_<frame>_leftImg8bit.png   all 30 frames
    <root>/<split>/panoptic_video/<id>_final_mask.png (the 20th: _gtFine_color.png)
    <root>/panoptic_gt_<split>_city_vps.json

Image ids are ``<video %04d>_<counter %04d>_<city>_<seq %06d>_<frame %06d>``, e.g.
``0005_0025_frankfurt_000000_001736``; the video is the first field. Frame indices are positions
in the 30-frame snippet (annotated: 4, 9, …, 29). Predictions: ``pan_pred/<id>.png`` + ``pred.json``
(see ``vpseg.formats._flat_coco``). The writer names frames of other data sets
``<video>_<counter>_vpseg_<video %06d>_<frame index %06d>``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from vpseg.formats._flat_coco import FlatCocoFormat, FlatNaming

__all__ = ["CITYSCAPES_VPS"]

_ID = re.compile(r"^(\d{4})_(\d+)_(.+)_(\d+)_(\d+)$")  # video_counter_city_seq_frame


def _image_id(video: str, k: int, frame: int, counter: int) -> str:
    return f"{video}_{counter:04d}_vpseg_{int(video):06d}_{frame:06d}"


def _video_of(image_id: str) -> str | None:
    match = _ID.match(image_id)
    return match.group(1) if match else None


def _frame_of(image_id: str) -> int | None:
    match = _ID.match(image_id)
    return int(match.group(5)) if match else None


def _all_rgb(first_id: str, frames: Sequence[int]) -> list[str] | None:
    match = _ID.match(first_id)
    if match is None:
        return None
    city, seq = match.group(3), match.group(4)
    return [f"{city}_{seq}_{n:06d}_leftImg8bit.png" for n in frames]


NAMING = FlatNaming(
    json_name=lambda split: f"panoptic_gt_{split}_city_vps.json",
    video_of=_video_of,
    frame_of=_frame_of,
    image_id=_image_id,
    image_file=lambda image_id: f"{image_id}_newImg8bit.png",
    mask_file=lambda image_id: f"{image_id}_final_mask.png",
    video_digits=4,
    first_frame=4,
    all_rgb=_all_rgb,
    id_form="<video %04d>_<counter>_<city>_<sequence>_<frame>",
    frames_per_video=6,  # tools/eval_vpq.py: np.array_split(frames, len(frames) // 6)
)

CITYSCAPES_VPS = FlatCocoFormat("cityscapes-vps", "cityscapes-vps", NAMING, annotation_stride=5)
