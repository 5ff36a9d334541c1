"""COCO-panoptic layouts with one flat image list whose names carry the video: the VPSNet
reformattings (mcahny/vps) of Cityscapes-VPS and VIPER.

Per split ``S``::

    <root>/<S>/img/<image file_name>                 RGB of the annotated frames
    <root>/<S>/panoptic_video/<annotation file_name> RGB ids (R + 256 G + 256² B), 0 = void
    <root>/<json name for S>                         {"images": [{"id", "file_name", "width",
                                                      "height"}], "annotations": [{"image_id",
                                                      "file_name", "segments_info"}], "categories"}

Predictions (``tools/eval_vpq.py``): ``<pred>/pan_pred/<image id>.png`` and ``<pred>/pred.json``
= ``{"annotations": [{"segments_info"}]}`` in sorted image-id order, with no names: the k-th
annotation belongs to the k-th PNG. What differs between data sets (JSON name, how an image id
names its video and frame, the file-name suffixes) is a ``FlatNaming``.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from vpseg._atomic import write_json
from vpseg.core.labels import LabelSpace, get_label_space
from vpseg.core.video import LazyFrames, Video
from vpseg.errors import InputError
from vpseg.formats._coco import (
    SegmentIds,
    assign_tracks,
    categories_json,
    decode_frame,
    encode_frame,
    labels_from_categories,
    load_json,
    segments_of,
)
from vpseg.formats._common import (
    DatasetWriter,
    WriteQueue,
    check_frame_sizes,
    lazy_frames,
    saved_label_space,
    split_dir,
)
from vpseg.formats._png import read_image, write_image, write_png

__all__ = ["FlatNaming", "FlatCocoFormat"]


@dataclass(frozen=True)
class FlatNaming:
    """How one data set names things.

    ``json_name(split)``: the ground-truth JSON; ``video_of(image_id)`` / ``frame_of(image_id)``:
    the video name and frame number an image id encodes; ``image_id(video, k, frame, counter)``:
    the id a writer gives the k-th annotated frame; ``image_file`` / ``mask_file``: file names
    from an image id, for writing (readers take the names in the JSON).
    """

    json_name: Callable[[str], str]
    video_of: Callable[[str], str]
    frame_of: Callable[[str], int]
    image_id: Callable[[str, int, int, int], str]
    image_file: Callable[[str], str]
    mask_file: Callable[[str], str]
    video_digits: int = 4  # video names are zero-padded numbers of this width
    first_frame: int = 0  # frame index of the first annotated frame in its snippet
    all_rgb: Callable[[str, Sequence[int]], list[str]] | None = None


_Index = dict[str, list[tuple[str, str, str | None, list[Any]]]]


class _Opened(NamedTuple):
    videos: _Index  # video -> [(image id, mask file, image file, segments_info)]
    categories: Any
    masks: Path
    split_root: Path | None
    json_path: Path


@functools.lru_cache(maxsize=4)
def _index(path: Path, mtime_ns: int, naming: FlatNaming) -> tuple[_Index, Any]:
    """video -> [(image id, mask file, image file, segments_info)] by image id; categories."""
    data = load_json(path)
    try:
        image_files = {str(im["id"]): str(im["file_name"]) for im in data.get("images", [])}
        anns = sorted(data["annotations"], key=lambda a: str(a["image_id"]))
        videos: _Index = {}
        for a in anns:
            image_id = str(a["image_id"])
            videos.setdefault(naming.video_of(image_id), []).append(
                (image_id, str(a["file_name"]), image_files.get(image_id),
                 a.get("segments_info", [])))
    except (KeyError, TypeError):
        raise InputError("expected 'annotations' with 'image_id', 'file_name' and "
                         "'segments_info'", path=path) from None
    return videos, data.get("categories")


def _pred_index(folder: Path, json_path: Path, naming: FlatNaming) -> _Index:
    """Submission: pan_pred/<image id>.png paired by position with pred.json's annotations."""
    pngs = sorted(p.name for p in (folder / "pan_pred").glob("*.png"))
    data = load_json(json_path)
    anns = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(anns, list) or len(anns) != len(pngs):
        raise InputError(f"pred.json must list one annotation per pan_pred PNG ({len(pngs)})",
                         path=json_path)
    videos: _Index = {}
    for name, ann in zip(pngs, anns, strict=True):
        image_id = name[: -len(".png")]
        videos.setdefault(naming.video_of(image_id), []).append(
            (image_id, name, None, ann.get("segments_info", [])))
    return videos


class FlatCocoFormat:
    holds_instances = True

    def __init__(self, name: str, label_space: str, naming: FlatNaming, *,
                 annotation_stride: int = 1) -> None:
        self.name = name
        self._label_space = label_space
        self.naming = naming
        self.annotation_stride = annotation_stride
        self.json_override: Path | None = None

    def with_json(self, path: str | Path) -> FlatCocoFormat:
        """The same format reading its JSON from ``path`` instead of looking for it by name."""
        if not Path(path).is_file():
            raise InputError("JSON file not found", path=path)
        other = copy.copy(self)
        other.json_override = Path(path)
        return other

    def default_label_space(self) -> LabelSpace:
        return get_label_space(self._label_space)

    def _open(self, root: Path, split: str | None) -> _Opened:
        pred_json = self.json_override or root / "pred.json"
        if (root / "pan_pred").is_dir() and pred_json.is_file():
            return _Opened(_pred_index(root, pred_json, self.naming), None, root / "pan_pred",
                           None, pred_json)
        if root.name == "panoptic_video" and self.json_override is not None:
            split_root = root.parent
            videos, categories = _index(self.json_override, self.json_override.stat().st_mtime_ns,
                                        self.naming)
            return _Opened(videos, categories, root, split_root, self.json_override)
        if (root / "panoptic_video").is_dir():  # given the split folder itself
            split, split_root, root = root.name, root, root.parent
        else:
            if not root.is_dir():
                raise InputError("not a folder", path=root)
            split_root = split_dir(root, split, "dataset root") if split is None else root / split
            split = split_root.name
        json_path = self.json_override or root / self.naming.json_name(split)
        if not json_path.is_file():
            raise InputError(f"ground-truth JSON for split {split!r} not found", path=json_path)
        videos, categories = _index(json_path, json_path.stat().st_mtime_ns, self.naming)
        return _Opened(videos, categories, split_root / "panoptic_video", split_root, json_path)

    def list_videos(self, root: str | Path, *, split: str | None = None) -> list[str]:
        return sorted(self._open(Path(root), split)[0])

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
        videos, categories, masks, split_root, json_path = self._open(root, split)
        if video not in videos:
            raise InputError(f"missing video {video!r}", path=json_path)
        if label_space is None and categories is not None:
            label_space = labels_from_categories(categories, json_path, self.default_label_space())
        labels = label_space or saved_label_space(root) or self.default_label_space()
        frames = videos[video]
        if frame_names is not None:
            by_id = {f[0]: f for f in frames}
            missing = [n for n in frame_names if n not in by_id]
            if missing:
                raise InputError("missing frame that the ground truth has", path=masks / f"{missing[0]}.png",
                                 frame=missing[0])
            frames = [by_id[n] for n in frame_names]
        parsed = [(image_id, masks / file, segments_of(info, json_path, image_id))
                  for image_id, file, _, info in frames]
        image_files = [image or self.naming.image_file(i) for i, _, image, _ in frames]
        check_frame_sizes([p for _, p, _ in parsed], ("RGB",), "panoptic PNG")
        to_panoptic = assign_tracks([s for _, _, s in parsed], labels, json_path, video)
        numbers = [self.naming.frame_of(i) for i, _, _ in parsed]
        base = numbers[0] - self.naming.first_frame
        return Video(
            name=video,
            panoptic=LazyFrames([partial(decode_frame, p, i, s, to_panoptic, labels)
                                 for i, p, s in parsed]),
            label_space=labels,
            frame_index=tuple(n - base for n in numbers),
            frame_names=tuple(i for i, _, _ in parsed),
            rgb=self._images(split_root, "img", image_files),
            sources=tuple(str(p) for _, p, _ in parsed),
            **self._all_rgb(split_root, parsed[0][0], base, numbers[-1]),
        )

    def _images(self, split_root: Path | None, sub: str, names: Sequence[str]) -> LazyFrames | None:
        if split_root is None or not all((split_root / sub / n).is_file() for n in names):
            return None
        return lazy_frames([split_root / sub / n for n in names], _read_rgb)

    def _all_rgb(self, split_root: Path | None, first_id: str, base: int, last: int) -> dict[str, Any]:
        if self.naming.all_rgb is None or split_root is None:
            return {}
        names = self.naming.all_rgb(first_id, range(base, last + 1))
        frames = self._images(split_root, "img_all", names)
        if frames is None:
            return {}
        return {"all_rgb": frames, "all_rgb_names": tuple(n.rsplit(".", 1)[0] for n in names)}

    def open_writer(
        self, root: str | Path, *, label_space: LabelSpace | None = None, split: str = "train"
    ) -> FlatCocoWriter:
        return FlatCocoWriter(self, Path(root), split, label_space or self.default_label_space())


def _read_rgb(path: Path) -> np.ndarray:
    return read_image(path, modes=("RGB",), frame=path.stem, what="RGB frame")


class FlatCocoWriter(DatasetWriter):
    """Writes ``<split>/{img,img_all,panoptic_video}/``; the JSON (merged) on close."""

    def __init__(self, fmt: FlatCocoFormat, root: Path, split: str, labels: LabelSpace) -> None:
        self.fmt, self.root, self.split, self.labels = fmt, root, split, labels
        self.json_path = root / fmt.naming.json_name(split)
        self.old: dict[str, Any] = load_json(self.json_path) if self.json_path.is_file() else {}
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        self.counter = len(self.old.get("images", []))
        self.used = {fmt.naming.video_of(str(im.get("id"))) for im in self.old.get("images", [])}
        root.mkdir(parents=True, exist_ok=True)

    def _video_name(self, name: str) -> str:
        """The video's own name when it is a number of the right width, else the next free one."""
        digits = self.fmt.naming.video_digits
        if not (name.isdigit() and len(name) == digits) or name in self.used:
            name = next(f"{n:0{digits}d}" for n in range(1, 10**digits)
                        if f"{n:0{digits}d}" not in self.used)
        self.used.add(name)
        return name

    def write(self, video: Video) -> None:
        naming, out = self.fmt.naming, self.root / self.split
        ids, jobs = SegmentIds(self.labels), WriteQueue()
        vname = self._video_name(video.name)
        for k, (name, index) in enumerate(zip(video.frame_names, video.frame_index, strict=True)):
            self.counter += 1
            image_id = naming.image_id(vname, k, index, self.counter)
            pan = np.asarray(video.panoptic[k])
            rgb_ids, info = encode_frame(pan, ids, self.labels, video.name, name)
            mask_file = naming.mask_file(image_id)
            jobs.add(partial(write_png, out / "panoptic_video" / mask_file, rgb_ids))
            if video.rgb is not None:
                jobs.add(partial(write_image, out / "img" / naming.image_file(image_id),
                                    np.asarray(video.rgb[k])))
            self.images.append({"id": image_id, "file_name": naming.image_file(image_id),
                                "width": pan.shape[1], "height": pan.shape[0]})
            self.annotations.append({"image_id": image_id, "file_name": mask_file,
                                     "segments_info": info})
        if video.all_rgb is not None and naming.all_rgb is not None and self.images:
            first = naming.image_id(vname, 0, 0, 0)
            for name, frame in zip(naming.all_rgb(first, range(len(video.all_rgb))), video.all_rgb,
                                   strict=True):
                jobs.add(partial(write_png, out / "img_all" / name, np.asarray(frame)))
        jobs.flush()

    def close(self) -> None:
        new = {im["id"] for im in self.images}
        old_images = [im for im in self.old.get("images", []) if im.get("id") not in new]
        old_anns = [a for a in self.old.get("annotations", []) if a.get("image_id") not in new]
        write_json(self.json_path, {"images": old_images + self.images,
                                    "annotations": old_anns + self.annotations,
                                    "categories": categories_json(self.labels)})
