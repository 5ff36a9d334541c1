"""COCO-style video panoptic layouts with one JSON for all videos: ``vipseg`` and ``coco-video``.

VIPSeg (VIPSeg-Dataset/VIPSeg-Dataset: ``create_panoptic_video_labels.py``, ``splitjson.py``,
``ClipPanoFCN/eval_vpq_vspw.py``)::

    <root>/images/<video>/<frame>.jpg
    <root>/panomasksRGB/<video>/<frame>.png        RGB ids (R + 256 G + 256² B), 0 = void
    <root>/panoptic_gt_VIPSeg.json                 (or panoptic_gt_VIPSeg_<split>.json)
    <root>/{train,val,test}.txt                    video names of each split

    {"videos": [{"video_id", "images": [{"id", "width", "height", "file_name"}]}],
     "annotations": [{"video_id", "annotations": [{"image_id", "file_name",
                                                   "segments_info": [{"id", "category_id",
                                                                      "iscrowd", "area"}]}]}],
     "categories": [{"id": 0..123, "name", "isthing", "color"}]}

Predictions (the official submission): ``<pred>/pan_pred/<video>/<frame>.png`` and
``<pred>/pred.json`` = ``{"annotations": [{"video_id", "annotations": [{"file_name",
"segments_info"}]}]}``; frames are matched to the ground truth by name, or by position (as the
official script does) when the names do not match. The ``vipseg`` reader also reads the raw
download (``imgs/``, ``panomasks/``; see ``_vipseg_raw``), so ``vpseg convert`` can replace the
official conversion scripts. ``coco-video`` is the same schema with the
generic names ``panoptic/`` and ``panoptic.json`` and any label space (from the JSON).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from vpseg._atomic import write_json
from vpseg.core.labels import LabelSpace, get_label_space
from vpseg.core.video import IndexedFrames, Video
from vpseg.errors import InputError, note
from vpseg.formats import _vipseg_raw
from vpseg.formats._coco import (
    Segment,
    SegmentIds,
    Tracks,
    assign_tracks,
    categories_json,
    decode_indexed,
    encode_frame,
    labels_from_categories,
    load_json,
    segments_of,
)
from vpseg.formats._common import (
    DatasetWriter,
    WriteQueue,
    check_frame_sizes,
    frame_files,
    frame_number,
    in_split,
    match_frames,
    rgb_frames,
    saved_label_space,
    write_split_file,
)
from vpseg.formats._png import write_jpeg, write_png

__all__ = ["NestedCocoFormat", "VIPSEG", "COCO_VIDEO"]

_Frames = list[tuple[str, list[Segment]]]


class _Index(NamedTuple):
    videos: dict[str, list[tuple[str, Any]]]  # video_id -> [(frame stem, segments_info)]
    categories: Any  # None for pred.json
    sizes: dict[str, dict[str, tuple[int, int]]]  # video_id -> frame stem -> (height, width)


_SHAPE = ("expected {\"annotations\": [{\"video_id\", \"annotations\": [{\"file_name\", "
          "\"segments_info\": [...]}]}]}")


@functools.lru_cache(maxsize=4)
def _index(path: Path, mtime_ns: int) -> _Index:
    """The JSON's videos, frames, categories and (where listed) frame sizes, its shape checked."""
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise InputError(f"not a video panoptic JSON: {_SHAPE}", path=path)
    videos: dict[str, list[tuple[str, Any]]] = {}
    for entry in data["annotations"]:
        try:
            frames = [(Path(str(a["file_name"])).stem, a.get("segments_info", []))
                      for a in entry["annotations"]]
            video = str(entry["video_id"])
        except (KeyError, TypeError, AttributeError):
            raise InputError(f"annotation {str(entry)[:80]!r}: {_SHAPE}", path=path) from None
        if video in videos:
            raise InputError(f"video {video!r} is annotated twice", path=path)
        seen: set[str] = set()
        for stem, _ in frames:
            if stem in seen:
                raise InputError(f"frame of video {video!r} is annotated twice", path=path,
                                 frame=stem)
            seen.add(stem)
        videos[video] = frames
    sizes: dict[str, dict[str, tuple[int, int]]] = {}
    listed = data.get("videos", [])
    for entry in listed if isinstance(listed, list) else []:
        try:
            sizes[str(entry["video_id"])] = {
                Path(str(im["file_name"])).stem: (int(im["height"]), int(im["width"]))
                for im in entry.get("images", []) if "height" in im and "width" in im}
        except (KeyError, TypeError, ValueError, AttributeError):
            raise InputError(f"video {str(entry)[:80]!r}: expected {{\"video_id\", \"images\": "
                             "[{\"file_name\", \"height\", \"width\"}]}", path=path) from None
    return _Index(videos, data.get("categories"), sizes)


class NestedCocoFormat:
    """A layout of per-video folders of RGB-id PNGs plus one nested video-panoptic JSON."""

    holds_instances = True
    annotation_stride = 1

    def __init__(self, name: str, *, mask_dir: str, json_stem: str,
                 label_space: str | None, raw: bool = False) -> None:
        self.name = name
        self.raw = raw  # also read VIPSeg's raw download (``vpseg.formats._vipseg_raw``)
        self.json_override: Path | None = None
        self.mask_dir = mask_dir
        self.json_stem = json_stem
        self._label_space = label_space

    def default_label_space(self) -> LabelSpace:
        if self._label_space is None:
            raise InputError(f"{self.name} has no built-in label space: its categories come "
                             "from the JSON (give --label-space FILE)")
        return get_label_space(self._label_space)

    def _builtin(self) -> LabelSpace | None:
        return None if self._label_space is None else get_label_space(self._label_space)

    def with_json(self, path: str | Path) -> NestedCocoFormat:
        """The same format reading its JSON from ``path`` instead of looking for it by name."""
        if not Path(path).is_file():
            raise InputError("JSON file not found", path=path)
        other = copy.copy(self)
        other.json_override = Path(path)
        return other

    # -- locating files ---------------------------------------------------------------------
    def _locate(self, root: Path, split: str | None) -> tuple[Path, Path, Path]:
        """(folder of per-video PNG folders, JSON, dataset root)."""
        if self.json_override is not None:
            for masks in (root / "pan_pred", root / self.mask_dir, root):
                if masks.is_dir():
                    return masks, self.json_override, root
            raise InputError("not a folder", path=root)
        if (root / "pan_pred").is_dir() and (root / "pred.json").is_file():
            return root / "pan_pred", root / "pred.json", root
        if (root / self.mask_dir).is_dir():
            return root / self.mask_dir, self._pick_json(root, split), root
        if root.is_dir() and any(root.parent.glob(f"{self.json_stem}*.json")):
            return root, self._pick_json(root.parent, split), root.parent  # the mask folder itself
        raise InputError(f"expected {self.mask_dir}/ and {self.json_stem}.json (ground truth) or "
                         "pan_pred/ and pred.json (predictions)", path=root)

    def _pick_json(self, folder: Path, split: str | None) -> Path:
        names = [f"{self.json_stem}_{split}.json"] if split else []
        names.append(f"{self.json_stem}.json")
        for name in names:
            if (folder / name).is_file():
                return folder / name
        per_split = sorted(folder.glob(f"{self.json_stem}_*.json"))
        if split is None and len(per_split) == 1:
            return per_split[0]
        raise InputError(f"no {' or '.join(names)} here"
                         + (f" (found {[p.name for p in per_split]}; choose with --split)"
                            if per_split else ""), path=folder)

    def _videos(self, root: Path, split: str | None) -> tuple[
            dict[str, list[tuple[str, Any]]], Any, Path, Path, dict[str, dict[str, tuple[int, int]]]]:
        masks, json_path, base = self._locate(root, split)
        videos, categories, sizes = _index(json_path, json_path.stat().st_mtime_ns)
        listed = base / f"{split}.txt"
        if split and json_path.name in (f"{self.json_stem}.json", "pred.json") and listed.is_file():
            wanted = set(in_split(list(videos), listed))
            videos = {k: v for k, v in videos.items() if k in wanted}
        return videos, categories, masks, json_path, sizes

    # -- the format interface -----------------------------------------------------------------
    def list_videos(self, root: str | Path, *, split: str | None = None) -> list[str]:
        if self.raw and _vipseg_raw.is_raw(Path(root)):
            return _vipseg_raw.list_videos(Path(root), split)
        return sorted(self._videos(Path(root), split)[0])

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
        if self.raw and _vipseg_raw.is_raw(root):
            raw_labels = label_space or saved_label_space(root) or self.default_label_space()
            return _vipseg_raw.read_video(root, video, raw_labels, frame_names)
        videos, categories, masks, json_path, sizes = self._videos(root, split)
        if video not in videos:
            raise InputError(f"missing video {video!r}", path=json_path)
        if label_space is None and categories is not None:
            label_space = labels_from_categories(categories, json_path, self._builtin())
        labels = label_space or saved_label_space(root) or self._builtin()
        if labels is None:
            raise InputError("no categories in this JSON: give --label-space", path=json_path)
        frames = _pick(videos[video], frame_names, masks / video)
        parsed: _Frames = [(stem, segments_of(info, json_path, stem, labels))
                           for stem, info in frames]
        files = [masks / video / f"{stem}.png" for stem, _ in parsed]
        if frame_names is None:
            unlisted = len(frame_files(masks / video, (".png",))) - len(files)
            if unlisted > 0:
                note(f"{unlisted} PNG(s) of video {video!r} are not listed in {json_path.name} "
                     "and are not read", path=masks / video)
        stated = sizes.get(video, {})
        size = check_frame_sizes(files, ("RGB",), "panoptic PNG",
                                 stated=[stated.get(stem) for stem, _ in parsed])
        to_panoptic = assign_tracks([segs for _, segs in parsed], labels, json_path, video)
        loaders = [partial(decode_indexed, f, stem, segs, to_panoptic, labels)
                   for f, (stem, segs) in zip(files, parsed, strict=True)]
        images = root / "images" / video
        return Video(
            name=video,
            panoptic=IndexedFrames(loaders),
            label_space=labels,
            frame_index=tuple(frame_number(stem, i) for i, (stem, _) in enumerate(parsed)),
            frame_names=tuple(stem for stem, _ in parsed),
            rgb=rgb_frames(images if images.is_dir() else None, files, size),
            sources=tuple(str(f) for f in files),
            meta={"first_listed": _first_listed(parsed, to_panoptic, labels)},
        )

    def open_writer(
        self, root: str | Path, *, label_space: LabelSpace | None = None, split: str = "train",
        submission: bool = False,
    ) -> NestedCocoWriter:
        labels = label_space or self.default_label_space()
        return NestedCocoWriter(self, Path(root), split, labels, submission)


def _first_listed(parsed: _Frames, tracks: Tracks, labels: LabelSpace) -> int | None:
    """Panoptic id of a video's first-listed segment when it is a tracked thing (VIPSeg's STQ
    wrapper numbers segments from 0 in listing order, so that one becomes crowd there)."""
    for _, segments in parsed:
        if segments:
            seg = segments[0]
            track = tracks.get((seg.id, seg.category_id))
            if track is not None:
                return seg.category_id * labels.label_divisor + track
            return None
    return None


def _pick(
    frames: list[tuple[str, list[Any]]], names: Sequence[str] | None, folder: Path
) -> list[tuple[str, list[Any]]]:
    """The JSON's frames, or those that pair with ``names`` (by name, else by position)."""
    if names is None:
        return frames
    return [frames[i] for i in match_frames([stem for stem, _ in frames], names, folder, ".png")]


class NestedCocoWriter(DatasetWriter):
    """Writes PNGs and images per video; the JSON (merged with one already there) on close.

    With ``submission``: ``pan_pred/<video>/<frame>.png`` and ``pred.json`` (ClipPanoFCN's
    ``eval_net_video.py`` output, read by ``eval_vpq_vspw.py`` and ``eval_stq_vspw.py``: PNGs
    by the ground truth's file names, each video's frame entries by position), no images."""

    def __init__(self, fmt: NestedCocoFormat, root: Path, split: str, labels: LabelSpace,
                 submission: bool = False) -> None:
        self.fmt, self.root, self.split, self.labels = fmt, root, split, labels
        self.submission = submission
        self.root.mkdir(parents=True, exist_ok=True)
        self.videos: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []

    def write(self, video: Video) -> None:
        ids = SegmentIds(self.labels)
        images, annotations, jobs = [], [], WriteQueue()
        masks = self.root / ("pan_pred" if self.submission else self.fmt.mask_dir) / video.name
        for i, name in enumerate(video.frame_names):
            pan = np.asarray(video.panoptic[i])
            rgb_ids, info = encode_frame(pan, ids, self.labels, video.name, name)
            jobs.add(partial(write_png, masks / f"{name}.png", rgb_ids))
            if video.rgb is not None and not self.submission:
                jobs.add(partial(write_jpeg, self.root / "images" / video.name / f"{name}.jpg",
                                    np.asarray(video.rgb[i])))
            images.append({"id": name, "width": pan.shape[1], "height": pan.shape[0],
                           "file_name": f"{name}.png"})
            annotations.append({"image_id": name, "file_name": f"{name}.png", "segments_info": info})
        jobs.flush()
        self.videos.append({"video_id": video.name, "images": images})
        self.annotations.append({"video_id": video.name, "annotations": annotations})

    def close(self) -> None:
        path = self.root / ("pred.json" if self.submission else f"{self.fmt.json_stem}.json")
        new = {v["video_id"] for v in self.videos}
        old = load_json(path) if path.is_file() else {}
        if not isinstance(old, dict):
            raise InputError("the JSON already there is not a JSON object", path=path)
        if old.get("categories") is not None and labels_from_categories(
                old.get("categories"), path, None).ids != self.labels.ids:
            raise InputError("the JSON already there has other categories", path=path)
        keep_ann = [a for a in old.get("annotations", []) if a.get("video_id") not in new]
        if self.submission:  # official readers take "annotations"; vpseg also the categories
            write_json(path, {"annotations": keep_ann + self.annotations,
                              "categories": categories_json(self.labels)})
            return
        keep = [v for v in old.get("videos", []) if v.get("video_id") not in new]
        write_json(path, {"videos": keep + self.videos, "annotations": keep_ann + self.annotations,
                          "categories": categories_json(self.labels)})
        write_split_file(self.root / f"{self.split}.txt", [v["video_id"] for v in self.videos])


#: VIPSeg (124 classes, 58 things), the layout of its official conversion scripts.
VIPSEG = NestedCocoFormat("vipseg", mask_dir="panomasksRGB", json_stem="panoptic_gt_VIPSeg",
                          label_space="vipseg", raw=True)
#: Generic COCO video panoptic: any label space, categories in ``panoptic.json``.
COCO_VIDEO = NestedCocoFormat("coco-video", mask_dir="panoptic", json_stem="panoptic",
                              label_space=None)
