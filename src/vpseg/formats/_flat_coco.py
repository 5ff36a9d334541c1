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
from vpseg.core.video import IndexedFrames, LazyFrames, Video
from vpseg.errors import InputError, note
from vpseg.formats._coco import (
    SegmentIds,
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
    match_frames,
    rgb_files,
    saved_label_space,
    split_dir,
)
from vpseg.formats._png import write_image, write_png

__all__ = ["FlatNaming", "FlatCocoFormat"]


@dataclass(frozen=True)
class FlatNaming:
    """How one data set names things.

    ``json_name(split)``: the ground-truth JSON; ``video_of(image_id)`` / ``frame_of(image_id)``:
    the video name and frame number an image id encodes (``None`` when the id does not have
    the data set's form); ``image_id(video, k, frame, counter)``:
    the id a writer gives the k-th annotated frame; ``image_file`` / ``mask_file``: file names
    from an image id, for writing (readers take the names in the JSON).
    """

    json_name: Callable[[str], str]
    video_of: Callable[[str], str | None]
    frame_of: Callable[[str], int | None]
    image_id: Callable[[str, int, int, int], str]
    image_file: Callable[[str], str]
    mask_file: Callable[[str], str]
    video_digits: int = 4  # video names are zero-padded numbers of this width
    first_frame: int = 0  # frame index of the first annotated frame in its snippet
    all_rgb: Callable[[str, Sequence[int]], list[str] | None] | None = None
    id_form: str = ""  # the form of an image id, for messages
    #: When some image id does not name its video: the frames per video of the official
    #: evaluation, which cuts the sorted frames into videos by position; None: an error.
    frames_per_video: int | None = None

    def videos(self, image_ids: Sequence[str], where: Path | Sequence[Path]) -> list[str]:
        """The video of each image id (``image_ids`` sorted); ``where``: the JSON, or the file
        of each id, for messages."""
        named = [self.video_of(i) for i in image_ids]
        if all(v is not None for v in named):
            return [str(v) for v in named]
        odd = image_ids[named.index(None)]
        if self.frames_per_video is None:
            path = where if isinstance(where, Path) else where[named.index(None)]
            raise InputError(f"image id {odd!r} does not have the form {self.id_form}, which "
                             "names its video", path=path, frame=odd)
        where = where if isinstance(where, Path) else where[0].parent
        groups = np.array_split(np.arange(len(image_ids)),
                                max(len(image_ids) // self.frames_per_video, 1))
        note(f"image id {odd!r} does not have the form {self.id_form}; frames cut into "
             f"{len(groups)} videos of {self.frames_per_video} by position (sorted ids), as the "
             "official evaluation does", path=where)
        out = [""] * len(image_ids)
        for k, group in enumerate(groups):
            for i in group.tolist():
                out[i] = f"{k + 1:0{self.video_digits}d}"
        return out


_Index = dict[str, list[tuple[str, str, str | None, list[Any]]]]
_Sizes = dict[str, tuple[int, int]]


class _Opened(NamedTuple):
    videos: _Index  # video -> [(image id, mask file, image file, segments_info)]
    categories: Any
    masks: Path
    split_root: Path | None
    json_path: Path
    sizes: _Sizes  # image id -> (height, width) stated in the JSON


_SHAPE = ('expected {"images": [{"id", "file_name", "height", "width"}], "annotations": '
          '[{"image_id", "file_name", "segments_info": [...]}], "categories": [...]}')


@functools.lru_cache(maxsize=4)
def _index(path: Path, mtime_ns: int, naming: FlatNaming) -> tuple[_Index, Any, _Sizes]:
    """video -> [(image id, mask file, image file, segments_info)] by image id; categories;
    image id -> (height, width) where the JSON lists one. The JSON's shape is checked."""
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise InputError(f"not a COCO panoptic JSON: {_SHAPE}", path=path)
    images = data.get("images", [])
    try:
        image_files = {str(im["id"]): str(im["file_name"]) for im in images}
        sizes = {str(im["id"]): (int(im["height"]), int(im["width"])) for im in images
                 if "height" in im and "width" in im}
        anns = sorted(data["annotations"], key=lambda a: str(a["image_id"]))
        entries = [(str(a["image_id"]), str(a["file_name"]), a.get("segments_info", []))
                   for a in anns]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise InputError(_SHAPE, path=path) from None
    seen: set[str] = set()
    for image_id, _, _ in entries:
        if image_id in seen:
            raise InputError("image is annotated twice", path=path, frame=image_id)
        seen.add(image_id)
    videos: _Index = {}
    for video, (image_id, file, info) in zip(naming.videos([e[0] for e in entries], path),
                                             entries, strict=True):
        videos.setdefault(video, []).append((image_id, file, image_files.get(image_id), info))
    return _in_time_order(videos, naming), data.get("categories"), sizes


def _in_time_order(videos: _Index, naming: FlatNaming) -> _Index:
    """Each video's frames by the frame number their ids name (``10`` after ``9``), where
    every id names one; else in the sorted order the official evaluation takes."""
    out: _Index = {}
    for video, frames in videos.items():
        numbers = [naming.frame_of(f[0]) for f in frames]
        if all(n is not None for n in numbers):
            frames = [f for _, f in sorted(zip(numbers, frames, strict=True),
                                           key=lambda pair: (pair[0], pair[1][0]))]
        out[video] = frames
    return out


def _pred_index(folder: Path, json_path: Path, naming: FlatNaming) -> _Index:
    """Submission: pan_pred/<image id>.png paired by position with pred.json's annotations."""
    pngs = sorted(p.name for p in (folder / "pan_pred").glob("*.png"))
    data = load_json(json_path)
    anns = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(anns, list) or len(anns) != len(pngs):
        raise InputError(f"pred.json must be {{\"annotations\": [...]}} with one annotation per "
                         f"pan_pred PNG ({len(pngs)})", path=json_path)
    videos: _Index = {}
    image_ids = [name[: -len(".png")] for name in pngs]
    for video, image_id, name, ann in zip(naming.videos(image_ids, [folder / "pan_pred" / n
                                                                    for n in pngs]),
                                          image_ids, pngs, anns, strict=True):
        if not isinstance(ann, dict):
            raise InputError(f"annotation {str(ann)[:80]!r} is not an object", path=json_path)
        videos.setdefault(video, []).append((image_id, name, None, ann.get("segments_info", [])))
    return _in_time_order(videos, naming)


@functools.lru_cache(maxsize=8)
def _unlisted(folder: Path, mtime_ns: int, listed: frozenset[str]) -> int:
    return sum(1 for p in folder.glob("*.png") if p.name not in listed) if folder.is_dir() else 0


def _note_unlisted(folder: Path, videos: _Index) -> None:
    """Say so when the mask folder holds PNGs that the JSON does not list (they are not read)."""
    if not folder.is_dir():
        return
    listed = frozenset(file for frames in videos.values() for _, file, _, _ in frames)
    count = _unlisted(folder, folder.stat().st_mtime_ns, listed)
    if count:
        note(f"{count} PNG(s) here are not listed in the JSON and are not read", path=folder)


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
                           None, pred_json, {})
        if root.name == "panoptic_video" and self.json_override is not None:
            split_root = root.parent
            videos, categories, sizes = _index(
                self.json_override, self.json_override.stat().st_mtime_ns, self.naming)
            return _Opened(videos, categories, root, split_root, self.json_override, sizes)
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
        videos, categories, sizes = _index(json_path, json_path.stat().st_mtime_ns, self.naming)
        _note_unlisted(split_root / "panoptic_video", videos)
        return _Opened(videos, categories, split_root / "panoptic_video", split_root, json_path,
                       sizes)

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
        videos, categories, masks, split_root, json_path, sizes = self._open(root, split)
        if video not in videos:
            raise InputError(f"missing video {video!r}", path=json_path)
        if label_space is None and categories is not None:
            label_space = labels_from_categories(categories, json_path, self.default_label_space())
        labels = label_space or saved_label_space(root) or self.default_label_space()
        frames = videos[video]
        if frame_names is not None:
            frames = [frames[i] for i in match_frames([f[0] for f in frames], frame_names,
                                                      masks, ".png")]
        parsed = [(image_id, masks / file, segments_of(info, json_path, image_id, labels))
                  for image_id, file, _, info in frames]
        image_files = [image or self.naming.image_file(i) for i, _, image, _ in frames]
        size = check_frame_sizes([p for _, p, _ in parsed], ("RGB",), "panoptic PNG",
                                 stated=[sizes.get(i) for i, _, _ in parsed],
                                 frames=[i for i, _, _ in parsed])
        to_panoptic = assign_tracks([s for _, _, s in parsed], labels, json_path, video)
        in_ids = [self.naming.frame_of(i) for i, _, _ in parsed]
        numbers = [n for n in in_ids if n is not None]
        if len(numbers) < len(in_ids) or numbers != sorted(set(numbers)):
            numbers = [self.naming.first_frame + k * self.annotation_stride
                       for k in range(len(parsed))]  # positions, as the official script sorts
        base = numbers[0] - self.naming.first_frame
        return Video(
            name=video,
            panoptic=IndexedFrames([partial(decode_indexed, p, i, s, to_panoptic, labels)
                                 for i, p, s in parsed]),
            label_space=labels,
            frame_index=tuple(n - base for n in numbers),
            frame_names=tuple(i for i, _, _ in parsed),
            rgb=self._images(split_root, "img", image_files, size),
            sources=tuple(str(p) for _, p, _ in parsed),
            **self._all_rgb(split_root, parsed[0][0], base, numbers[-1], size),
        )

    def _images(self, split_root: Path | None, sub: str, names: Sequence[str],
                size: tuple[int, int]) -> LazyFrames | None:
        if split_root is None or not all((split_root / sub / n).is_file() for n in names):
            return None
        return rgb_files([split_root / sub / n for n in names], size)

    def _all_rgb(self, split_root: Path | None, first_id: str, base: int, last: int,
                 size: tuple[int, int]) -> dict[str, Any]:
        if self.naming.all_rgb is None or split_root is None:
            return {}
        names = self.naming.all_rgb(first_id, range(base, last + 1))
        if names is None:
            return {}
        frames = self._images(split_root, "img_all", names, size)
        if frames is None:
            return {}
        return {"all_rgb": frames, "all_rgb_names": tuple(n.rsplit(".", 1)[0] for n in names)}

    def open_writer(
        self, root: str | Path, *, label_space: LabelSpace | None = None, split: str = "train",
        submission: bool = False,
    ) -> DatasetWriter:
        labels = label_space or self.default_label_space()
        if submission:
            return FlatSubmissionWriter(self, Path(root), labels)
        return FlatCocoWriter(self, Path(root), split, labels)


def _free_video_name(name: str, digits: int, used: set[str | None]) -> str:
    """``name`` when it is an unused number of ``digits`` digits, else the next free one."""
    if name.isdigit() and len(name) == digits and name not in used:
        return name
    return next(f"{n:0{digits}d}" for n in range(1, 10**digits) if f"{n:0{digits}d}" not in used)


class FlatCocoWriter(DatasetWriter):
    """Writes ``<split>/{img,img_all,panoptic_video}/``; the JSON (merged) on close."""

    def __init__(self, fmt: FlatCocoFormat, root: Path, split: str, labels: LabelSpace) -> None:
        self.fmt, self.root, self.split, self.labels = fmt, root, split, labels
        self.json_path = root / fmt.naming.json_name(split)
        old = load_json(self.json_path) if self.json_path.is_file() else {}
        if not isinstance(old, dict):
            raise InputError("the JSON already there is not a JSON object", path=self.json_path)
        self.old: dict[str, Any] = old
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        self.counter = len(self.old.get("images", []))
        self.used = {fmt.naming.video_of(str(im.get("id"))) for im in self.old.get("images", [])}
        root.mkdir(parents=True, exist_ok=True)

    def _video_name(self, name: str) -> str:
        name = _free_video_name(name, self.fmt.naming.video_digits, self.used)
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
            for name, frame in zip(naming.all_rgb(first, range(len(video.all_rgb))) or [],
                                   video.all_rgb, strict=False):
                jobs.add(partial(write_png, out / "img_all" / name, np.asarray(frame)))
        jobs.flush()

    def close(self) -> None:
        new = {im["id"] for im in self.images}
        old_images = [im for im in self.old.get("images", []) if im.get("id") not in new]
        old_anns = [a for a in self.old.get("annotations", []) if a.get("image_id") not in new]
        write_json(self.json_path, {"images": old_images + self.images,
                                    "annotations": old_anns + self.annotations,
                                    "categories": categories_json(self.labels)})


class FlatSubmissionWriter(DatasetWriter):
    """The submission of mcahny/vps (``tools/test_vpq.py``, read by ``tools/eval_vpq.py``):
    ``pan_pred/<image id>.png`` and ``pred.json`` = ``{"annotations": [{"segments_info"}]}`` in
    sorted image-id order, paired with the PNGs by position. Frames keep their names when they
    are image ids of the data set (predictions of its videos), else get ids as the data set
    writer names them. Each annotation also carries its ``image_id`` (official readers ignore
    it), which lets a later run add videos to the same submission."""

    def __init__(self, fmt: FlatCocoFormat, root: Path, labels: LabelSpace) -> None:
        self.fmt, self.root, self.labels = fmt, root, labels
        self.json_path = root / "pred.json"
        self.entries: dict[str, list[Any]] = {}
        if self.json_path.is_file():
            old = load_json(self.json_path)
            anns = old.get("annotations") if isinstance(old, dict) else None
            if not isinstance(anns, list) or not all(
                    isinstance(a, dict) and "image_id" in a for a in anns):
                raise InputError("the pred.json already there does not name its images "
                                 "(image_id); write the submission into an empty folder",
                                 path=self.json_path)
            self.entries = {str(a["image_id"]): a.get("segments_info", []) for a in anns}
        self.counter = len(self.entries)
        self.used = {fmt.naming.video_of(i) for i in self.entries}
        root.mkdir(parents=True, exist_ok=True)

    def write(self, video: Video) -> None:
        naming, jobs, ids = self.fmt.naming, WriteQueue(), SegmentIds(self.labels)
        own = all(naming.video_of(n) == video.name for n in video.frame_names)
        vname = video.name if own else _free_video_name(video.name, naming.video_digits, self.used)
        self.used.add(vname)
        for k, (name, index) in enumerate(zip(video.frame_names, video.frame_index, strict=True)):
            self.counter += 1
            image_id = name if own else naming.image_id(vname, k, index, self.counter)
            rgb_ids, info = encode_frame(np.asarray(video.panoptic[k]), ids, self.labels,
                                         video.name, name)
            jobs.add(partial(write_png, self.root / "pan_pred" / f"{image_id}.png", rgb_ids))
            self.entries[image_id] = info
        jobs.flush()

    def close(self) -> None:
        write_json(self.json_path, {"annotations": [
            {"image_id": i, "segments_info": self.entries[i]} for i in sorted(self.entries)]})
