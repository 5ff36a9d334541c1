"""Pieces shared by the COCO-panoptic-style video formats (VIPSeg, Cityscapes-VPS, VIPER, coco-video).

On disk a frame is an RGB PNG whose pixel id is ``R + 256 G + 256² B`` (cocodataset/panopticapi
``rgb2id``); id 0 is void. A JSON lists each frame's segments ``{id, category_id, iscrowd, area,
bbox}``. Segment ids are arbitrary colours (panopticapi's ``IdGenerator``) that stay the same for
one object through a video, so the track of a thing segment is its id within the video.

vpseg turns a segment into ``semantic * label_divisor + instance``: stuff and crowd get instance 0;
a thing gets its ``instance_id`` field when the JSON has one (vpseg writes it; official readers
ignore unknown fields), else its rank of first appearance in the video (1, 2, ...), so track ids
are unique per video. Ids that do not fit below the label divisor are renumbered within the video
(``vpseg.formats._renumber``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vpseg.core.labels import LabelSpace
from vpseg.core.panoptic import PANOPTIC_DTYPE, segment_boxes
from vpseg.core.video import IndexedFrame
from vpseg.errors import InputError
from vpseg.formats._common import read_json
from vpseg.formats._kernels import coco_decode
from vpseg.formats._png import id_to_rgb, read_label_png, rgb_to_id
from vpseg.formats._renumber import fit_instances

__all__ = [
    "Segment",
    "Tracks",
    "segments_of",
    "assign_tracks",
    "decode_frame",
    "decode_indexed",
    "encode_frame",
    "SegmentIds",
    "labels_from_categories",
    "categories_json",
    "load_json",
]


@dataclass(frozen=True)
class Segment:
    """One entry of ``segments_info``."""

    id: int
    category_id: int
    iscrowd: bool
    instance_id: int | None = None


def segments_of(info: object, where: Path, frame: str,
                labels: LabelSpace | None = None) -> list[Segment]:
    """Parse one frame's ``segments_info`` (a list of objects with integer ``id`` and
    ``category_id``, in ``labels`` when given); anything else, or a segment id listed twice, is
    an input error."""
    if not isinstance(info, list):
        raise InputError(f"'segments_info' must be a list, got {type(info).__name__}",
                         path=where, frame=frame)
    out = []
    seen: dict[int, int] = {}
    for seg in info:
        try:
            if not isinstance(seg, Mapping):
                raise TypeError
            inst = seg.get("instance_id")
            parsed = Segment(_integer(seg["id"]), _integer(seg["category_id"]),
                             bool(seg.get("iscrowd", 0)), None if inst is None else _integer(inst))
        except (KeyError, TypeError, ValueError):
            raise InputError(f"segment {seg!r} needs integer 'id' and 'category_id'",
                             path=where, frame=frame) from None
        if parsed.id in seen:
            raise InputError(f"segment id {parsed.id} is listed twice in segments_info "
                             f"(category {seen[parsed.id]} and {parsed.category_id})",
                             path=where, frame=frame)
        if not 0 < parsed.id < 1 << 24:
            raise InputError(f"segment id {parsed.id} is not an RGB id in 1..{(1 << 24) - 1}",
                             path=where, frame=frame)
        if labels is not None and parsed.category_id not in labels:
            raise InputError(f"segment {parsed.id} has category_id {parsed.category_id}, not in "
                             f"label space {labels.name!r}", path=where, frame=frame)
        seen[parsed.id] = parsed.category_id
        out.append(parsed)
    return out


def _integer(value: object) -> int:
    """An integer JSON value (``3`` or ``3.0``); booleans and other types are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ValueError(value)
    return int(value)


#: (segment id, category id) -> instance id of the thing segments of one video
Tracks = dict[tuple[int, int], int]


def assign_tracks(
    frames: Sequence[Sequence[Segment]], labels: LabelSpace, where: Path, video: str
) -> Tracks:
    """The instance id of every thing segment of one video (module docstring), renumbered within
    the video where it would not fit below the label divisor (``vpseg.formats._renumber``).

    Also checks every segment's category against ``labels``.
    """
    given = {s.id: s.instance_id for f in frames for s in f if s.instance_id}
    used = set(given.values())
    tracks: dict[int, int] = {}
    out: Tracks = {}
    next_track = 1
    for segments in frames:
        for seg in segments:
            if seg.category_id not in labels:
                raise InputError(
                    f"segment {seg.id} has category_id {seg.category_id}, not in label space "
                    f"{labels.name!r}", path=where,
                )
            if seg.iscrowd or not labels.is_thing(seg.category_id):
                continue
            track = given.get(seg.id) or tracks.get(seg.id)
            if track is None:
                while next_track in used:
                    next_track += 1
                track = tracks[seg.id] = next_track
                used.add(next_track)
            out[(seg.id, seg.category_id)] = track
    renumbered = fit_instances({(c, i) for (_, c), i in out.items()}, labels.label_divisor,
                               video=video, where=where)
    if renumbered:
        out = {key: renumbered.get((key[1], inst), inst) for key, inst in out.items()}
    return out


def decode_indexed(
    path: Path,
    frame: str,
    segments: Sequence[Segment],
    tracks: Tracks,
    labels: LabelSpace,
) -> IndexedFrame:
    """Read one RGB-id PNG as an ``IndexedFrame``: per pixel, the position of its segment in
    this frame's list (0 = void), found in one pass (``vpseg.formats._kernels``); an id that the
    JSON does not list is an error.

    The class comes from this frame's ``segments_info`` (a track may change class), the
    instance from ``tracks``; crowd and stuff segments get instance 0 (stuff keeps an
    ``instance_id`` it was written with).
    """
    bgr = read_label_png(path, modes=("RGB",), frame=frame, what="panoptic PNG")
    div = labels.label_divisor
    keys = np.empty(len(segments) + 1, dtype=np.int64)
    ids = np.empty(len(segments) + 1, dtype=PANOPTIC_DTYPE)
    keys[0], ids[0] = 0, labels.ignore_label * div
    for j, seg in enumerate(segments, start=1):
        thing = labels.is_thing(seg.category_id) and not seg.iscrowd
        instance = tracks.get((seg.id, seg.category_id), 0) if thing else (seg.instance_id or 0)
        keys[j], ids[j] = seg.id, seg.category_id * div + instance
    dtype = np.uint8 if len(keys) <= 256 else np.uint16
    index = np.empty(bgr.shape[:2], dtype=dtype)
    unknown = coco_decode(bgr, keys, np.arange(len(keys), dtype=dtype), index)
    if unknown >= 0:
        raise InputError(f"segment id {unknown} is in the PNG but not in the JSON's "
                         "segments_info", path=path, frame=frame)
    return IndexedFrame(index, ids)


def decode_frame(
    path: Path,
    frame: str,
    segments: Sequence[Segment],
    tracks: Tracks,
    labels: LabelSpace,
) -> np.ndarray:
    """Read one RGB-id PNG as ``(H, W)`` int32 panoptic ids (``decode_indexed``)."""
    return np.asarray(decode_indexed(path, frame, segments, tracks, labels))


class SegmentIds:
    """Deterministic segment ids for writing, like panopticapi's ``IdGenerator``: a stuff segment
    gets its category colour, a thing track a jittered copy of it, never black and never a colour
    already used in the video. One instance per video."""

    def __init__(self, labels: LabelSpace) -> None:
        self.labels = labels
        self.by_panoptic: dict[int, int] = {}
        self.taken: set[int] = {0}

    def __call__(self, pan_id: int) -> int:
        seg = self.by_panoptic.get(pan_id)
        if seg is not None:
            return seg
        sem, inst = divmod(pan_id, self.labels.label_divisor)
        base = np.array(self.labels[sem].color, dtype=np.int64)
        rng = np.random.default_rng([sem, inst])
        color = base
        while int(rgb_to_id(color.astype(np.uint8)[None])[0]) in self.taken:
            color = np.clip(base + rng.integers(-30, 31, 3), 0, 255)
        seg = int(rgb_to_id(color.astype(np.uint8)[None])[0])
        self.taken.add(seg)
        self.by_panoptic[pan_id] = seg
        return seg


def encode_frame(
    pan: np.ndarray, ids: SegmentIds, labels: LabelSpace, where: str, frame: str
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """``(H, W)`` panoptic ids -> (``(H, W, 3)`` uint8 RGB-id PNG, ``segments_info``)."""
    pan = np.asarray(pan)
    values, inverse, areas = np.unique(pan, return_inverse=True, return_counts=True)
    div = labels.label_divisor
    unknown = [int(v) // div for v in values if int(v) // div not in labels
               and int(v) // div != labels.ignore_label]
    if unknown:
        raise InputError(f"class id {unknown[0]} is not in label space {labels.name!r}",
                         path=where, frame=frame)
    seg_ids = np.zeros(len(values), dtype=np.int64)
    info = []
    boxes = segment_boxes(pan)
    for i, (value, area) in enumerate(zip(values.tolist(), areas.tolist(), strict=True)):
        sem, inst = divmod(value, div)
        if sem == labels.ignore_label:
            continue
        seg_ids[i] = ids(value)
        x0, y0, x1, y1 = boxes[value]
        entry: dict[str, Any] = {
            "id": int(seg_ids[i]), "category_id": sem,
            "iscrowd": int(labels.is_thing(sem) and inst == 0), "area": int(area),
            "bbox": [x0, y0, x1 - x0, y1 - y0],
        }
        if inst:
            entry["instance_id"] = inst
        info.append(entry)
    return id_to_rgb(seg_ids[inverse.reshape(pan.shape)]), info


def labels_from_categories(
    categories: Any, where: Path, builtin: LabelSpace | None
) -> LabelSpace:
    """The label space of a JSON's ``categories``; the built-in one when they agree."""
    if not isinstance(categories, list):
        raise InputError("expected a 'categories' list", path=where)
    ignore = builtin.ignore_label if builtin else 255
    divisor = builtin.label_divisor if builtin else 1000
    labels = LabelSpace.from_json(
        {"name": where.stem, "categories": categories, "ignore_label": ignore,
         "label_divisor": divisor}, source=str(where),
    )
    if builtin is not None and [(c.id, c.name, c.isthing) for c in labels.categories] == [
        (c.id, c.name, c.isthing) for c in builtin.categories
    ]:
        return builtin
    return labels


def categories_json(labels: LabelSpace) -> list[dict[str, Any]]:
    return [{"id": c.id, "name": c.name, "isthing": int(c.isthing), "color": list(c.color)}
            for c in labels.categories]


def load_json(path: Path) -> Any:
    return read_json(path, "JSON")
