"""VIPER as reformatted for VPS by mcahny/vps (``tools/dataset/viper.py``): 23 classes (13 stuff,
10 things), COCO-style like Cityscapes-VPS.

Layout (paths from that file; the preparation scripts are not public, so file naming follows the
original VIPER ``<seq %03d>_<frame %05d>`` convention — see docs/formats.md)::

    <root>/<split>/img/<seq>_<frame>.jpg
    <root>/<split>/panoptic_video/<seq>_<frame>.png   RGB ids, 0 = void
    <root>/viper_panoptic_<split>_video.json          images / annotations / categories

Every frame is annotated. The official evaluation leaves out class 11 (mobilebarrier) and ground
truth segments under 32x32 pixels; that is the metrics' business, not the reader's.
"""

from __future__ import annotations

import re

from vpseg.formats._flat_coco import FlatCocoFormat, FlatNaming

_ID = re.compile(r"^(\d+)_(\d+)$")  # <sequence>_<frame>

__all__ = ["VIPER"]

NAMING = FlatNaming(
    json_name=lambda split: f"viper_panoptic_{split}_video.json",
    video_of=lambda image_id: match.group(1) if (match := _ID.match(image_id)) else None,
    frame_of=lambda image_id: int(match.group(2)) if (match := _ID.match(image_id)) else None,
    image_id=lambda video, k, frame, counter: f"{video}_{frame:05d}",
    image_file=lambda image_id: f"{image_id}.jpg",
    mask_file=lambda image_id: f"{image_id}.png",
    video_digits=3,
    id_form="<sequence>_<frame>",
)

VIPER = FlatCocoFormat("viper", "viper", NAMING)
