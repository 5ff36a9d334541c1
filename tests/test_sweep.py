"""The corruption sweep: every command, fed a data set with one thing wrong, fails cleanly.

For each format a small valid data set and its benchmark submission are written once (``vpseg
synth``, ``vpseg convert --submission``). Each case copies one of them, breaks one thing (the
table ``CORRUPTIONS``) and runs the commands that read it. Failing cleanly means: exit code 2;
on stderr exactly one ``vpseg <command>: error:`` line besides ``note:`` lines, naming the broken
file (and, for a broken frame, the frame); no traceback; nothing on stdout that reads as a
finished result; no output left behind; and every input tree exactly as it was.

``test_every_corruption`` runs each corruption on every format, layout and role it applies to,
through every command of that role; ``test_sweep`` lets hypothesis combine formats, corruptions,
frames, commands and their options (``VPSEG_SWEEP_EXAMPLES`` sets how many; 200 by default).
Cases the tool gets wrong today are ``xfail(strict=True)`` with the reason (``KNOWN_BUGS``) and
left out of the hypothesis sweep. At the end: every command and option succeeds on the valid
inputs (so an exit code 2 comes from the corruption), and two checks of valid inputs that the
sweep brought up (viz of a submission with --split; frame numbers without zero padding).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from vpseg.cli.main import main
from vpseg.errors import InputError
from vpseg.formats import get_format

# -- the formats and where their files are ------------------------------------------------------

FORMATS = ("kitti-step", "motchallenge-step", "vspw", "vipseg", "coco-video", "cityscapes-vps",
           "viper")
ALL = frozenset(FORMATS)
JSON_FORMATS = frozenset({"vipseg", "coco-video", "cityscapes-vps", "viper"})
FLAT_FORMATS = frozenset({"cityscapes-vps", "viper"})  # one image list; ids name video and frame
NESTED_FORMATS = JSON_FORMATS - FLAT_FORMATS  # a folder of PNGs per video and one video JSON
PNG_FORMATS = ALL - JSON_FORMATS  # no JSON: the PNG files are the data set
LAYOUTS = frozenset({"dataset", "submission"})  # a data set as downloaded / a benchmark submission

#: a label space for coco-video, which has none built in (the synthetic world matches by name)
COCO_LABELS = {"categories": [{"id": 0, "name": "road", "isthing": 0},
                              {"id": 1, "name": "sky", "isthing": 0},
                              {"id": 2, "name": "building", "isthing": 0},
                              {"id": 3, "name": "person", "isthing": 1},
                              {"id": 4, "name": "car", "isthing": 1}],
               "ignore_label": 255, "label_divisor": 1000}


@dataclass(frozen=True)
class Files:
    """Globs (relative to the root) of one format's files, in the data set and the submission."""

    labels: str  # label PNGs (panoptic maps, masks) of the data set
    rgb: str  # RGB frames of the data set
    json: str | None  # the data set's index JSON
    sub_labels: str  # label PNGs of the submission
    sub_json: str | None  # the submission's JSON
    suffix: str = ""  # a label PNG of the data set is named <frame><suffix>.png
    rgb_suffix: str = ""  # an RGB frame is named <frame><rgb_suffix>.<ext>


FILES = {
    "kitti-step": Files("panoptic_maps/val/*/*.png", "images/val/*/*.png", None, "*/*.png", None),
    "motchallenge-step": Files("panoptic_maps/val/*/*.png", "images/val/*/*.png", None,
                               "*/*.png", None),
    "vspw": Files("data/*/mask/*.png", "data/*/origin/*.jpg", None, "*/*.png", None),
    "vipseg": Files("panomasksRGB/*/*.png", "images/*/*.jpg", "panoptic_gt_VIPSeg.json",
                    "pan_pred/*/*.png", "pred.json"),
    "coco-video": Files("panoptic/*/*.png", "images/*/*.jpg", "panoptic.json",
                        "pan_pred/*/*.png", "pred.json"),
    "cityscapes-vps": Files("val/panoptic_video/*.png", "val/img/*.png",
                            "panoptic_gt_val_city_vps.json", "pan_pred/*.png", "pred.json",
                            suffix="_final_mask", rgb_suffix="_newImg8bit"),
    "viper": Files("val/panoptic_video/*.png", "val/img/*.jpg", "viper_panoptic_val_video.json",
                   "pan_pred/*.png", "pred.json"),
}


@dataclass(frozen=True)
class Frame:
    """One annotated frame of a data set: its video, name, label PNG and RGB frame."""

    video: str
    name: str
    label: Path
    rgb: Path | None


@dataclass(frozen=True)
class Dataset:
    """A data set (``layout`` "dataset") or a submission ("submission") of ``fmt`` at ``root``."""

    fmt: str
    layout: str
    root: Path

    @property
    def files(self) -> Files:
        return FILES[self.fmt]

    @property
    def json_path(self) -> Path | None:
        name = self.files.json if self.layout == "dataset" else self.files.sub_json
        return None if name is None else self.root / name

    @property
    def suffix(self) -> str:
        """A label PNG is ``<frame><suffix>.png`` (submissions name PNGs by the frame alone)."""
        return self.files.suffix if self.layout == "dataset" else ""

    def frames(self) -> list[Frame]:
        """Every annotated frame, by video then name."""
        if self.layout == "dataset":
            labels, rgb = self.root.glob(self.files.labels), self.root.glob(self.files.rgb)
        else:
            labels, rgb = self.root.glob(self.files.sub_labels), iter(())
        rgb_of = {self._key(p, self.files.rgb_suffix): p for p in rgb}
        out = [Frame(*self._key(p, self.suffix), p, rgb_of.get(self._key(p, self.suffix)))
               for p in labels]
        return sorted(out, key=lambda f: (f.video, f.name))

    def _key(self, path: Path, suffix: str) -> tuple[str, str]:
        """(video, frame name) of a label PNG or RGB frame."""
        name = path.stem.removesuffix(suffix)
        if self.fmt in FLAT_FORMATS:
            return name.split("_", 1)[0], name
        if self.fmt == "vspw" and self.layout == "dataset":
            return path.parent.parent.name, name  # data/<video>/{mask,origin}/<frame>
        return path.parent.name, name

    def split_args(self) -> list[str]:
        """``--split val`` for the data set layout (a submission has no split)."""
        return ["--split", "val"] if self.layout == "dataset" else []


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Path]:
    """``bases(fmt, layout)``: the root of a valid data set or submission, made on first use:
    2 videos of 4 annotated 48x64 frames (Cityscapes-VPS: 2 of 10 frames, every 5th annotated)."""
    top = tmp_path_factory.mktemp("sweep-bases")
    labels = top / "coco_labels.json"
    labels.write_text(json.dumps(COCO_LABELS))
    made: dict[tuple[str, str], Path] = {}

    def get(fmt: str, layout: str) -> Path:
        if (fmt, layout) not in made:
            dataset, submission = top / fmt / "dataset", top / fmt / "submission"
            frames = "10" if fmt == "cityscapes-vps" else "4"
            extra = ["--label-space", str(labels)] if fmt == "coco-video" else []
            assert main(["synth", str(dataset), "--format", fmt, "--videos", "2", "--frames",
                         frames, "--height", "48", "--width", "64", "--split", "val",
                         *extra]) == 0
            assert main(["convert", str(dataset), str(submission), "--from", fmt, "--to", fmt,
                         "--split", "val", "--submission"]) == 0
            made[fmt, "dataset"], made[fmt, "submission"] = dataset, submission
        return made[fmt, layout]

    return get


_copies = itertools.count()


def fresh_copy(base: Path, top: Path, fmt: str, layout: str) -> Dataset:
    """A copy of ``base`` in a folder that no earlier case used (readers cache by path)."""
    root = top / f"case{next(_copies)}" / f"{fmt}-{layout}"
    shutil.copytree(base, root, symlinks=True)
    return Dataset(fmt, layout, root)


# -- file helpers -------------------------------------------------------------------------------


def read_png(path: Path) -> Image.Image:
    with Image.open(path) as img:
        img.load()
        return img


def save(img: Image.Image, path: Path) -> None:
    img.save(path, format="JPEG" if path.suffix == ".jpg" else "PNG")


def resize(path: Path, size: tuple[int, int]) -> None:
    """Resize an image file in place to ``size`` (height, width), keeping its mode."""
    save(read_png(path).resize(size[::-1], Image.Resampling.NEAREST), path)


def truncate(path: Path) -> None:
    """Cut a file in half (a PNG keeps its header, a JSON its first half)."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def load_json(path: Path) -> dict:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def dump_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data))


def frame_annotation(ds: Dataset, frame: Frame) -> tuple[dict, dict]:
    """(the JSON, the annotation of ``frame`` in it: the dict that holds its segments_info)."""
    assert ds.json_path is not None
    data = load_json(ds.json_path)
    for entry in data["annotations"]:
        if ds.fmt in FLAT_FORMATS and str(entry["image_id"]) == frame.name:
            return data, entry
        if ds.fmt in NESTED_FORMATS and entry["video_id"] == frame.video:
            for ann in entry["annotations"]:
                if Path(ann["file_name"]).stem == frame.name:
                    return data, ann
    raise AssertionError(f"no annotation of {frame} in {ds.json_path}")


def segment_in_png(frame: Frame, ann: dict) -> dict:
    """A segment of ``ann`` whose id the frame's PNG holds."""
    rgb = np.asarray(read_png(frame.label)).astype(np.int64)
    present = set(np.unique(rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]).tolist())
    return next(s for s in ann["segments_info"] if s["id"] in present)


# -- the corruptions ----------------------------------------------------------------------------
# Each breaks ``frame`` of ``ds`` (or a file or folder around it) and returns what the error
# line must name.


@dataclass(frozen=True)
class Blame:
    """The error line must name one of ``paths`` and, when given, ``frame``."""

    paths: tuple[Path, ...]
    frame: str | None = None


def truncated_png(ds: Dataset, frame: Frame) -> Blame:
    truncate(frame.label)
    return Blame((frame.label,), frame.name)


def not_a_png(ds: Dataset, frame: Frame) -> Blame:
    frame.label.write_text("this is not a PNG\n")
    return Blame((frame.label,), frame.name)


def mode(new_mode: str) -> Callable[[Dataset, Frame], Blame]:
    def corrupt(ds: Dataset, frame: Frame) -> Blame:
        img = read_png(frame.label)
        if new_mode == "RGB;16":  # 16-bit colour, which Pillow does not write
            bgr = np.asarray(img.convert("RGB"))[..., ::-1].astype(np.uint16) * 257
            assert cv2.imwrite(str(frame.label), bgr)
        elif new_mode == "I;16":
            assert cv2.imwrite(str(frame.label), np.asarray(img).astype(np.uint16))
        else:
            save(img.convert(new_mode), frame.label)
        return Blame((frame.label,), frame.name)

    return corrupt


def folder_for_file(ds: Dataset, frame: Frame) -> Blame:
    frame.label.unlink()
    frame.label.mkdir()
    return Blame((frame.label,), frame.name)


def symlink_loop(ds: Dataset, frame: Frame) -> Blame:
    frame.label.unlink()
    frame.label.symlink_to(frame.label.name)
    return Blame((frame.label,), frame.name)


def no_permission(ds: Dataset, frame: Frame) -> Blame:
    frame.label.chmod(0)
    return Blame((frame.label,), frame.name)


def video_folder_no_permission(ds: Dataset, frame: Frame) -> Blame:
    folder = frame.label.parent
    folder.chmod(0)
    return Blame((folder, *(f.label for f in ds.frames() if f.label.parent == folder)))


def _smaller(frame: Frame) -> Blame:
    resize(frame.label, (40, 56))
    return Blame((frame.label,), frame.name)


def smaller_frame(ds: Dataset, frame: Frame) -> Blame:
    video = [f for f in ds.frames() if f.video == frame.video]
    return _smaller(frame if frame != video[0] else video[1])  # the first: smaller_first_frame


def smaller_first_frame(ds: Dataset, frame: Frame) -> Blame:
    return _smaller(next(f for f in ds.frames() if f.video == frame.video))


def smaller_video(ds: Dataset, frame: Frame) -> Blame:
    video = [f for f in ds.frames() if f.video == frame.video]
    for f in video:
        resize(f.label, (40, 56))
    return Blame(tuple(f.label for f in video))


def unknown_class(ds: Dataset, frame: Frame) -> Blame:
    if ds.json_path is not None:
        data, ann = frame_annotation(ds, frame)
        ann["segments_info"][0]["category_id"] = 200
        dump_json(ds.json_path, data)
        return Blame((ds.json_path, frame.label), frame.name)
    img = read_png(frame.label)
    pixels = np.array(img)
    pixels[10:20, 10:20, ...] = 200  # STEP: red (class) 200; VSPW: mask value 200
    out = Image.fromarray(pixels, mode=img.mode)
    if img.mode == "P":
        out.putpalette(img.getpalette())
    save(out, frame.label)
    return Blame((frame.label,), frame.name)


def unlisted_segment(ds: Dataset, frame: Frame) -> Blame:
    data, ann = frame_annotation(ds, frame)
    ann["segments_info"].remove(segment_in_png(frame, ann))
    assert ds.json_path is not None
    dump_json(ds.json_path, data)
    return Blame((frame.label, ds.json_path), frame.name)


def annotation(edit: Callable[[dict], object]) -> Callable[[Dataset, Frame], Blame]:
    """A corruption that changes the JSON annotation of one frame in place."""

    def corrupt(ds: Dataset, frame: Frame) -> Blame:
        data, ann = frame_annotation(ds, frame)
        edit(ann)
        assert ds.json_path is not None
        dump_json(ds.json_path, data)
        return Blame((ds.json_path,), frame.name)

    return corrupt


def json_edit(edit: Callable[[dict], object]) -> Callable[[Dataset, Frame], Blame]:
    """A corruption that changes the index JSON in place."""

    def corrupt(ds: Dataset, frame: Frame) -> Blame:
        assert ds.json_path is not None
        data = load_json(ds.json_path)
        edit(data)
        dump_json(ds.json_path, data)
        return Blame((ds.json_path,))

    return corrupt


def json_is_list(ds: Dataset, frame: Frame) -> Blame:
    assert ds.json_path is not None
    dump_json(ds.json_path, [load_json(ds.json_path)])
    return Blame((ds.json_path,))


def first_annotation(data: dict) -> dict:
    """The first frame annotation of a nested or flat JSON."""
    first = data["annotations"][0]
    return first["annotations"][0] if "annotations" in first else first


def frame_listed_twice(ds: Dataset, frame: Frame) -> Blame:
    data, ann = frame_annotation(ds, frame)
    for entries in ([data["annotations"]] if ds.fmt in FLAT_FORMATS else
                    [v["annotations"] for v in data["annotations"] if ann in v["annotations"]]):
        entries.insert(entries.index(ann) + 1, json.loads(json.dumps(ann)))
    assert ds.json_path is not None
    dump_json(ds.json_path, data)
    return Blame((ds.json_path,), frame.name)


def video_listed_twice(ds: Dataset, frame: Frame) -> Blame:
    assert ds.json_path is not None
    data = load_json(ds.json_path)
    video = next(v for v in data["annotations"] if v["video_id"] == frame.video)
    data["annotations"].append({**video, "annotations": video["annotations"][:2]})
    dump_json(ds.json_path, data)
    return Blame((ds.json_path,))


def truncated_json(ds: Dataset, frame: Frame) -> Blame:
    assert ds.json_path is not None
    truncate(ds.json_path)
    return Blame((ds.json_path,))


def json_not_utf8(ds: Dataset, frame: Frame) -> Blame:
    assert ds.json_path is not None
    ds.json_path.write_bytes(b"\xff\xfe{}")
    return Blame((ds.json_path,))


def json_no_permission(ds: Dataset, frame: Frame) -> Blame:
    assert ds.json_path is not None
    ds.json_path.chmod(0)
    return Blame((ds.json_path,))


def json_is_folder(ds: Dataset, frame: Frame) -> Blame:
    assert ds.json_path is not None
    ds.json_path.unlink()
    ds.json_path.mkdir()
    return Blame((ds.json_path,))


def missing_frame(ds: Dataset, frame: Frame) -> Blame:
    frame.label.unlink()
    if ds.fmt in FLAT_FORMATS and ds.layout == "submission":
        # pred.json pairs its annotations with the sorted PNGs by position: the count is off
        return Blame((frame.label, ds.root / "pred.json"))
    return Blame((frame.label,), frame.name)


def empty_video_folder(ds: Dataset, frame: Frame) -> Blame:
    folder = frame.label.parent
    for f in folder.iterdir():
        f.unlink()
    blame = (folder, ds.root / frame.video, *(f.label for f in ds.frames()))
    if ds.fmt in FLAT_FORMATS and ds.layout == "submission":
        blame += (ds.root / "pred.json",)  # the PNG count is off (see missing_frame)
    return Blame(blame)


def empty_root(ds: Dataset, frame: Frame) -> Blame:
    shutil.rmtree(ds.root)
    ds.root.mkdir()
    return Blame((ds.root,))


def video_folder_loop(ds: Dataset, frame: Frame) -> Blame:
    folder = frame.label.parent
    shutil.rmtree(folder)
    folder.symlink_to(folder.name)
    return Blame((folder, ds.root / frame.video, *(f.label for f in ds.frames())))


def rename_frame(ds: Dataset, frame: Frame, new: str) -> None:
    """Rename ``frame`` to ``new``: its label PNG, RGB frame and JSON entries."""
    frame.label.rename(frame.label.with_name(f"{new}{ds.suffix}.png"))
    if frame.rgb is not None:
        frame.rgb.rename(frame.rgb.with_name(f"{new}{ds.files.rgb_suffix}{frame.rgb.suffix}"))
    if ds.json_path is None:
        return
    data = load_json(ds.json_path)
    stems = (frame.name, f"{frame.name}{ds.suffix}", f"{frame.name}{ds.files.rgb_suffix}")

    def rename(entries: list[dict]) -> None:
        for entry in entries:
            for key in ("id", "image_id", "file_name"):
                value = str(entry.get(key, ""))
                if Path(value).stem in stems:
                    entry[key] = value.replace(frame.name, new)

    if ds.fmt in FLAT_FORMATS:
        rename(data.get("images", []))
        rename(data["annotations"])
        if ds.layout == "submission":  # pred.json is paired with the sorted PNGs by position
            data["annotations"].sort(key=lambda a: a["image_id"])
    else:
        for video in data.get("videos", []) + data["annotations"]:
            if video["video_id"] == frame.video:
                rename(video.get("images", []) + video.get("annotations", []))
    dump_json(ds.json_path, data)


def frame_name_without_number(ds: Dataset, frame: Frame) -> Blame:
    new = "last" if ds.fmt not in FLAT_FORMATS else f"{frame.video}_last"
    rename_frame(ds, frame, new)
    # read as a data set, the renamed file is to blame (or, where the JSON names the frames, the
    # JSON entry); as a prediction, the frame it lacks
    in_json = (ds.json_path,) if ds.fmt in FLAT_FORMATS and ds.json_path is not None else ()
    return Blame((frame.label.with_name(f"{new}{ds.suffix}.png"), frame.label, *in_json))


def rgb_corruption(corrupt: Callable[[Path], None]) -> Callable[[Dataset, Frame], Blame]:
    def apply(ds: Dataset, frame: Frame) -> Blame:
        assert frame.rgb is not None
        corrupt(frame.rgb)
        return Blame((frame.rgb,), frame.name)

    return apply


def label_space_file(content: Callable[[dict], object]) -> Callable[[Dataset, Frame], Blame]:
    """A corruption that writes the data set's own label space, as ``vpseg convert`` records a
    non-default one (``vpseg_label_space.json``), changed by ``content`` (bytes: written as is)."""

    def corrupt(ds: Dataset, frame: Frame) -> Blame:
        path = ds.root / "vpseg_label_space.json"
        new = content(get_format(ds.fmt).default_label_space().to_json())
        path.write_bytes(new if isinstance(new, bytes) else json.dumps(new).encode())
        return Blame((path,))

    return corrupt


def first_category(**changes: object) -> Callable[[dict], dict]:
    return lambda labels: {**labels, "categories": [{**labels["categories"][0], **changes},
                                                    *labels["categories"][1:]]}


def category_color(ds: Dataset, frame: Frame) -> Blame:
    assert ds.json_path is not None
    data = load_json(ds.json_path)
    data["categories"][0]["color"] = "red"
    dump_json(ds.json_path, data)
    return Blame((ds.json_path,))


def split_file(content: bytes) -> Callable[[Dataset, Frame], Blame]:
    def corrupt(ds: Dataset, frame: Frame) -> Blame:
        path = ds.root / "val.txt"
        path.write_bytes(content)
        return Blame((path,))

    return corrupt


INPUT, PRED = "input", "pred"  # read as the data set a command works on / as eval's prediction
ROLES = frozenset({INPUT, PRED})


@dataclass(frozen=True)
class Corruption:
    """One kind of broken input, and the formats, layouts and roles where it applies."""

    name: str
    doc: str
    apply: Callable[[Dataset, Frame], Blame]
    formats: frozenset[str] = ALL
    layouts: frozenset[str] = LAYOUTS
    roles: frozenset[str] = ROLES
    rgb: bool = False  # breaks an RGB frame: only the commands that read RGB frames must fail
    commands: tuple[str, ...] = ()  # the commands that must fail, where not all of the role's


DATASET, PRED_ONLY, INPUT_ONLY = frozenset({"dataset"}), frozenset({PRED}), frozenset({INPUT})

CORRUPTIONS = [
    # -- label PNGs (panoptic maps, masks) --------------------------------------------------
    Corruption("truncated-png", "A label PNG cut in half (its header still reads PNG).",
               truncated_png),
    Corruption("not-a-png", "A file named .png that holds text.", not_a_png),
    Corruption("mode-L", "A grey label PNG where an RGB one is expected.", mode("L"),
               formats=ALL - {"vspw"}),
    Corruption("mode-RGB", "An RGB mask where VSPW expects one channel (P or L).", mode("RGB"),
               formats=frozenset({"vspw"})),
    Corruption("mode-RGBA", "A label PNG with an alpha channel.", mode("RGBA")),
    Corruption("mode-RGB16", "A 16-bit colour label PNG.", mode("RGB;16")),
    Corruption("mode-I16", "A 16-bit grey VSPW mask.", mode("I;16"), formats=frozenset({"vspw"})),
    Corruption("folder-for-file", "An unreadable label file: a folder in its place.",
               folder_for_file),
    Corruption("symlink-loop", "An unreadable label file: a link to itself (ELOOP, even for "
               "root).", symlink_loop),
    Corruption("no-permission", "An unreadable label file: mode 000 (not for root).",
               no_permission),
    Corruption("video-folder-loop", "An unreadable video folder: a link to itself.",
               video_folder_loop, formats=ALL - FLAT_FORMATS),
    Corruption("video-folder-no-permission", "An unreadable folder of label PNGs: mode 000 (not "
               "for root).", video_folder_no_permission),
    Corruption("smaller-frame", "A label PNG, not the first of its video, smaller than its "
               "neighbours (and than its JSON entry and RGB frame say).", smaller_frame),
    Corruption("smaller-first-frame", "The first label PNG of a video smaller than the others.",
               smaller_first_frame),
    Corruption("smaller-video", "Every label PNG of a video smaller than its JSON entries say.",
               smaller_video, formats=JSON_FORMATS, layouts=DATASET),
    Corruption("smaller-pred-video", "Every frame of a prediction video smaller than the ground "
               "truth (viz shows such frames side by side on purpose).", smaller_video,
               roles=PRED_ONLY, commands=("eval-pred",)),
    Corruption("unknown-class", "A class not in the label space: a red channel (STEP), mask "
               "value (VSPW) or JSON category_id of 200.", unknown_class),
    Corruption("missing-frame", "A label PNG that the JSON lists deleted.", missing_frame,
               formats=JSON_FORMATS),
    Corruption("missing-pred-frame", "A prediction PNG deleted that the ground truth has.",
               missing_frame, formats=PNG_FORMATS, roles=PRED_ONLY),
    Corruption("empty-video-folder", "The label folder of one video emptied (flat layouts: the "
               "one folder of all frames).", empty_video_folder),
    Corruption("empty-root", "The whole data set an empty folder.", empty_root),
    Corruption("frame-name-without-number", "A frame renamed so that its name holds no number "
               "(the JSON gives the order in nested layouts; Cityscapes-VPS cuts ids it cannot "
               "parse into videos by position, with a note, as the official script does).",
               frame_name_without_number, formats=ALL - NESTED_FORMATS - {"cityscapes-vps"}),
    # -- the index JSON -------------------------------------------------------------------------
    Corruption("segments-info-object", "A frame's segments_info that is an object, not a list.",
               annotation(lambda ann: ann.update(segments_info=ann["segments_info"][0])),
               formats=JSON_FORMATS),
    Corruption("duplicate-segment", "A segment id listed twice in one frame, with two classes.",
               annotation(lambda ann: ann["segments_info"].append(
                   {**ann["segments_info"][0], "category_id": ann["segments_info"][1][
                       "category_id"]})), formats=JSON_FORMATS),
    Corruption("segment-without-id", "A segment without 'id'.",
               annotation(lambda ann: ann["segments_info"][0].pop("id")), formats=JSON_FORMATS),
    Corruption("segment-without-category", "A segment without 'category_id'.",
               annotation(lambda ann: ann["segments_info"][0].pop("category_id")),
               formats=JSON_FORMATS),
    Corruption("unlisted-segment", "A segment id in the PNG that segments_info does not list.",
               unlisted_segment, formats=JSON_FORMATS),
    Corruption("frame-listed-twice", "A frame annotated twice in the JSON.", frame_listed_twice,
               formats=JSON_FORMATS, layouts=DATASET, roles=INPUT_ONLY),
    Corruption("nested-frame-listed-twice", "A frame annotated twice in a submission's "
               "pred.json (flat submissions pair by position: the count is off).",
               frame_listed_twice, formats=NESTED_FORMATS, layouts=frozenset({"submission"}),
               roles=INPUT_ONLY),
    Corruption("video-listed-twice", "A video annotated twice, the second time with only two of "
               "its frames.", video_listed_twice, formats=NESTED_FORMATS, roles=INPUT_ONLY),
    Corruption("json-is-list", "An index JSON that is a list, not an object.",
               json_is_list, formats=JSON_FORMATS),
    Corruption("truncated-json", "An index JSON cut in half.", truncated_json,
               formats=JSON_FORMATS),
    Corruption("json-no-permission", "An unreadable index JSON: mode 000 (not for root).",
               json_no_permission, formats=JSON_FORMATS),
    Corruption("json-is-folder", "An unreadable index JSON: a folder in its place.",
               json_is_folder, formats=JSON_FORMATS),
    Corruption("json-without-annotations", "An index JSON without 'annotations'.",
               json_edit(lambda data: data.pop("annotations")), formats=JSON_FORMATS),
    Corruption("annotation-without-file-name", "A frame annotation without 'file_name'.",
               json_edit(lambda data: first_annotation(data).pop("file_name")),
               formats=NESTED_FORMATS),
    Corruption("flat-annotation-without-file-name", "A flat annotation without 'file_name' "
               "(flat submissions have none: they pair with the PNGs by position).",
               json_edit(lambda data: first_annotation(data).pop("file_name")),
               formats=FLAT_FORMATS, layouts=DATASET),
    Corruption("annotation-without-image-id", "A flat annotation without 'image_id'.",
               json_edit(lambda data: first_annotation(data).pop("image_id")),
               formats=FLAT_FORMATS, layouts=DATASET),
    Corruption("video-without-id", "A video annotation without 'video_id'.",
               json_edit(lambda data: data["annotations"][0].pop("video_id")),
               formats=NESTED_FORMATS),
    Corruption("image-without-file-name", "An 'images' entry without 'file_name'.",
               json_edit(lambda data: data["images"][0].pop("file_name")),
               formats=FLAT_FORMATS, layouts=DATASET),
    Corruption("json-without-categories", "A coco-video JSON without 'categories' (and no "
               "--label-space): no label space at all.",
               json_edit(lambda data: data.pop("categories")),
               formats=frozenset({"coco-video"}), layouts=DATASET, roles=INPUT_ONLY),
    Corruption("json-not-utf8", "An index JSON of bytes that are not UTF-8.", json_not_utf8,
               formats=JSON_FORMATS),
    Corruption("category-color", "A category whose 'color' is not three numbers (read where the "
               "JSON's categories make the label space).", category_color,
               formats=JSON_FORMATS, roles=INPUT_ONLY, layouts=DATASET),
    Corruption("submission-category-color", "The same in a submission's pred.json (nested "
               "layouts carry the categories there; flat ones carry none).", category_color,
               formats=NESTED_FORMATS, roles=INPUT_ONLY, layouts=frozenset({"submission"})),
    # -- files beside the frames: the recorded label space and split lists ---------------------
    Corruption("label-space-truncated", "A recorded label space cut short.",
               label_space_file(lambda labels: json.dumps(labels)[:40].encode()),
               formats=PNG_FORMATS, roles=INPUT_ONLY),
    Corruption("label-space-not-utf8", "A recorded label space of bytes that are not UTF-8.",
               label_space_file(lambda labels: b"\xff\xfe{}"), formats=PNG_FORMATS,
               roles=INPUT_ONLY),
    Corruption("label-space-color", "A recorded label space with a 'color' that is not three "
               "numbers.", label_space_file(first_category(color="red")), formats=PNG_FORMATS,
               roles=INPUT_ONLY),
    Corruption("label-space-ignore-null", "A recorded label space with 'ignore_label': null.",
               label_space_file(lambda labels: {**labels, "ignore_label": None}),
               formats=PNG_FORMATS, roles=INPUT_ONLY),
    Corruption("label-space-without-id", "A recorded label space with a category without 'id'.",
               label_space_file(lambda labels: {**labels, "categories": [
                   {k: v for k, v in labels["categories"][0].items() if k != "id"},
                   *labels["categories"][1:]]}), formats=PNG_FORMATS, roles=INPUT_ONLY),
    Corruption("split-file-not-utf8", "A split list (val.txt) of bytes that are not UTF-8.",
               split_file(b"\xff\xfe0000\n"), formats=frozenset({"vspw"}) | NESTED_FORMATS,
               layouts=DATASET, roles=INPUT_ONLY),
    Corruption("split-file-names-missing-video", "A split list naming a video that the data set "
               "does not have.", split_file(b"0000\n0001\n0005\n"),
               formats=frozenset({"vspw"}) | NESTED_FORMATS, layouts=DATASET, roles=INPUT_ONLY),
    # -- RGB frames (read by viz, convert, track and eval's TC) --------------------------------
    Corruption("truncated-rgb", "An RGB frame cut in half.", rgb_corruption(truncate),
               layouts=DATASET, roles=INPUT_ONLY, rgb=True),
    Corruption("rgb-not-an-image", "An RGB frame that holds text.",
               rgb_corruption(lambda p: p.write_text("not an image\n")),
               layouts=DATASET, roles=INPUT_ONLY, rgb=True),
    Corruption("grey-rgb", "An RGB frame stored grey (mode L).",
               rgb_corruption(lambda p: save(Image.open(p).convert("L"), p)),
               layouts=DATASET, roles=INPUT_ONLY, rgb=True),
    Corruption("smaller-rgb", "An RGB frame smaller than its panoptic frame.",
               rgb_corruption(lambda p: resize(p, (40, 56))),
               layouts=DATASET, roles=INPUT_ONLY, rgb=True),
]
BY_NAME = {c.name: c for c in CORRUPTIONS}


@dataclass(frozen=True)
class Case:
    """A corruption of one format's data set or submission, read in one role."""

    fmt: str
    corruption: str
    layout: str
    role: str

    @property
    def id(self) -> str:
        return f"{self.fmt}-{self.corruption}-{self.layout}-{self.role}"


@dataclass(frozen=True)
class Bug:
    """Corruption cases the tool gets wrong today, and how."""

    corruption: str
    formats: frozenset[str]
    roles: frozenset[str]
    layouts: frozenset[str]
    reason: str


KNOWN_BUGS: list[Bug] = []  # every bug the sweep found is fixed; add new ones here


def known_bug(case: Case) -> str | None:
    for bug in KNOWN_BUGS:
        if (case.corruption == bug.corruption and case.fmt in bug.formats
                and case.role in bug.roles and case.layout in bug.layouts):
            return bug.reason
    return None


# -- the commands -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """A command line and the outputs that it must not leave behind when it fails."""

    argv: list[str]
    outputs: list[Path]


INPUT_COMMANDS = ("info", "viz", "convert", "track", "eval-gt")  # read the input as a data set
RGB_COMMANDS = ("viz", "convert", "track", "eval-tc")  # ... and its RGB frames
PRED_COMMANDS = ("eval-pred", "viz-pred")  # read the input as a prediction

#: options that hypothesis adds to a command (the deterministic table uses the first)
OPTIONS: dict[str, list[tuple[str, ...]]] = {
    "info": [(), ("--json", "-")],
    "viz": [("--mp4",), (), ("--mp4", "--no-png"), ("--video", "VIDEO")],
    "convert": [(), ("--submission",)],
    "track": [(), ("--submission",), ("--tracker", "sort"), ("--tracker", "memory")],
    "eval-gt": [(), ("--metrics", "pq,tracking,vc"), ("--workers", "2")],
    "eval-tc": [()],
    "eval-pred": [(), ("--metrics", "stq,vpq,pq"), ("--workers", "2")],
    "viz-pred": [(), ("--mp4", "--no-png")],
}


def command_line(command: str, ds: Dataset, clean: dict[str, Path], out: Path, video: str,
                 target: str | None = None, options: tuple[str, ...] = ()) -> Run:
    """``command`` reading ``ds``; ``clean`` holds the valid data set and submission of the
    format, the counterpart eval and viz-pred need; ``video`` is the broken one (for viz
    --video); convert writes format ``target``."""
    fmt, split, root = ds.fmt, ds.split_args(), str(ds.root)
    if command == "info":
        json_out = [] if "--json" in options else ["--json", str(out / "info.json")]
        return Run(["info", root, "--format", fmt, *split, *json_out, *options],
                   [out / "info.json"])
    if command == "viz":
        options = tuple(video if o == "VIDEO" else o for o in options)
        return Run(["viz", root, "--format", fmt, *split, "--out", str(out / "viz"), *options],
                   [out / "viz"])
    if command == "convert":
        return Run(["convert", root, str(out / "conv"), "--from", fmt, "--to", target or fmt,
                    *split, "--semantic-only", *options], [out / "conv"])
    if command == "track":
        return Run(["track", root, str(out / "track"), "--format", fmt, *split, *options],
                   [out / "track"])
    if command in ("eval-gt", "eval-tc"):  # the broken input is the ground truth
        metrics = ["--metrics", "semantic,tc"] if command == "eval-tc" else []
        return Run(["eval", root, str(clean["submission"]), "--format", fmt, *split, *metrics,
                    "--json", str(out / "eval.json"), *options], [out / "eval.json"])
    if command == "eval-pred":  # the broken input is the prediction
        return Run(["eval", str(clean["dataset"]), root, "--format", fmt, "--split", "val",
                    "--json", str(out / "eval.json"), *options], [out / "eval.json"])
    if command == "viz-pred":
        return Run(["viz", str(clean["dataset"]), "--format", fmt, "--out", str(out / "viz"),
                    "--side-by-side", root, *options], [out / "viz"])
    raise AssertionError(command)


def options_for(command: str, corruption: Corruption) -> list[tuple[str, ...]]:
    if corruption.rgb and command == "convert":
        return [()]  # a submission holds no RGB frames: convert --submission reads none
    return OPTIONS[command]


def commands_for(corruption: Corruption, role: str) -> tuple[str, ...]:
    if corruption.commands:
        return corruption.commands
    if role == PRED:
        return PRED_COMMANDS
    return RGB_COMMANDS if corruption.rgb else INPUT_COMMANDS


# -- running a case -----------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (links not followed): kind, mode, size, mtime, content hash."""
    out: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                out[str(path)] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                out[str(path)] = ("dir", info.st_mode, info.st_mtime_ns)
            else:
                readable = os.access(path, os.R_OK)
                digest = hashlib.sha256(path.read_bytes()).hexdigest() if readable else None
                out[str(path)] = ("file", info.st_mode, info.st_size, info.st_mtime_ns, digest)
    return out


def names(line: str, path: Path) -> bool:
    """Whether an error line names ``path``: in full, or its folder and its name."""
    return str(path) in line or (str(path.parent) in line and path.name in line)


def check_clean_failure(run: Run, inputs: list[Path], blame: Blame,
                        capsys: pytest.CaptureFixture[str], what: str) -> None:
    """Run ``run`` and assert that it failed cleanly (module docstring)."""
    before = {p: snapshot(p) for p in inputs}
    capsys.readouterr()
    try:
        code = main(run.argv)
    except BaseException as exc:  # uncaught: the user would see a traceback
        raise AssertionError(f"{what}: uncaught {type(exc).__name__}: {exc}\n"
                             f"  argv: {' '.join(run.argv)}") from exc
    out, err = capsys.readouterr()
    context = f"{what}\n  argv: {' '.join(run.argv)}\n  exit {code}\n  stderr: {err!r}"
    errors = [line for line in err.splitlines()
              if line.strip() and not line.startswith(f"vpseg {run.argv[0]}: note: ")]
    assert code == 2, context
    assert "Traceback" not in err + out, context
    assert len(errors) == 1 and errors[0].startswith(f"vpseg {run.argv[0]}: error: "), context
    assert any(names(errors[0], p) for p in blame.paths), f"names none of {blame.paths}: {context}"
    if blame.frame is not None:
        assert f"frame {blame.frame}" in errors[0], f"does not name frame {blame.frame}: {context}"
    finished = [line for line in out.splitlines() if not line.startswith("tracker: ")]
    assert not finished, f"stdout reads as finished: {out!r}; {context}"
    for path in run.outputs:  # nor a staging folder beside it
        left = list(path.parent.iterdir()) if path.parent.exists() else []
        assert not left, f"{left} left behind: {context}"
    for path in inputs:
        assert snapshot(path) == before[path], f"input {path} changed: {context}"


def run_case(case: Case, bases: Callable[[str, str], Path], top: Path,
             capsys: pytest.CaptureFixture[str], *, pick: int = 1,
             commands: tuple[str, ...] | None = None, target: str | None = None,
             options: tuple[str, ...] = ()) -> None:
    """Break a fresh copy as ``case`` says (at its ``pick``-th frame), run the commands."""
    corruption = BY_NAME[case.corruption]
    ds = fresh_copy(bases(case.fmt, case.layout), top, case.fmt, case.layout)
    frames = ds.frames()
    frame = frames[pick % len(frames)]
    blame = corruption.apply(ds, frame)
    clean = {layout: bases(case.fmt, layout) for layout in sorted(LAYOUTS)}
    for command in commands or commands_for(corruption, case.role):
        run = command_line(command, ds, clean, ds.root.parent / "out" / command, frame.video,
                           target, options)
        check_clean_failure(run, [ds.root, *clean.values()], blame, capsys,
                            f"{case.id} / {command}")


def all_cases() -> list[Case]:
    """Every (format, corruption, layout, role) where the corruption applies."""
    return [Case(fmt, c.name, layout, role)
            for c in CORRUPTIONS
            for fmt, layout, role in itertools.product(FORMATS, sorted(c.layouts), sorted(c.roles))
            if fmt in c.formats]


def as_param(case: Case) -> object:
    marks = []
    reason = known_bug(case)
    if reason is not None:
        marks.append(pytest.mark.xfail(strict=True, reason=f"BUG: {reason}"))
    if "no-permission" in case.corruption:
        marks.append(pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file"))
    return pytest.param(case, id=case.id, marks=marks)


CASES = all_cases()


@pytest.mark.parametrize("case", [as_param(c) for c in CASES])
def test_every_corruption(case: Case, bases, tmp_path, capsys) -> None:
    """Each corruption, on every format, layout and role it applies to, through every command
    of that role."""
    run_case(case, bases, tmp_path, capsys)


SWEPT = [c for c in CASES if known_bug(c) is None
         and not ("no-permission" in c.corruption and os.geteuid() == 0)]


@settings(max_examples=int(os.environ.get("VPSEG_SWEEP_EXAMPLES", "200")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_sweep(data: st.DataObject, bases, tmp_path, capsys) -> None:
    """Hypothesis: any corruption that applies, at any frame, through any command of its role
    with any of its options; convert to any format."""
    case = data.draw(st.sampled_from(SWEPT), label="case")
    pick = data.draw(st.integers(0, 63), label="frame")
    command = data.draw(st.sampled_from(commands_for(BY_NAME[case.corruption], case.role)),
                        label="command")
    options = data.draw(st.sampled_from(options_for(command, BY_NAME[case.corruption])),
                        label="options")
    target = data.draw(st.sampled_from(FORMATS), label="target") if command == "convert" \
        else None
    run_case(case, bases, tmp_path, capsys, pick=pick, commands=(command,), target=target,
             options=options)


# -- the inputs before they are broken ----------------------------------------------------------


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("fmt", FORMATS)
def test_clean_inputs_pass(fmt: str, layout: str, bases, tmp_path, capsys) -> None:
    """Every command and option of the sweep succeeds on the valid data set or submission, so
    that an exit code 2 above comes from the corruption; convert writes every format."""
    ds = Dataset(fmt, layout, bases(fmt, layout))
    clean = {name: bases(fmt, name) for name in sorted(LAYOUTS)}
    video = ds.frames()[0].video
    runs = [(command, options, target)
            for command in (*INPUT_COMMANDS, *PRED_COMMANDS, "eval-tc")
            if layout == "dataset" or command != "eval-tc"  # TC needs RGB frames
            for options in OPTIONS[command]
            for target in (FORMATS if command == "convert" else (None,))]
    for i, (command, options, target) in enumerate(runs):
        run = command_line(command, ds, clean, tmp_path / str(i), video, target, options)
        capsys.readouterr()
        assert main(run.argv) == 0, f"{' '.join(run.argv)}: {capsys.readouterr().err}"


@pytest.mark.parametrize("fmt", FORMATS)
def test_viz_side_by_side_of_a_submission_with_split(fmt: str, bases, tmp_path, capsys) -> None:
    """``viz GT --split val --side-by-side SUBMISSION``, as one would call it, works."""
    code = main(["viz", str(bases(fmt, "dataset")), "--format", fmt, "--split", "val", "--out",
                 str(tmp_path / "viz"), "--side-by-side", str(bases(fmt, "submission"))])
    assert code == 0, capsys.readouterr().err


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("fmt", FORMATS)
def test_unpadded_frame_numbers_keep_their_order(fmt: str, layout: str, bases, tmp_path) -> None:
    """Frames numbered 8, 9, 10, 11 (names that sort differently as text) are read in the
    order of their numbers (refusing them would do too)."""
    ds = fresh_copy(bases(fmt, layout), tmp_path, fmt, layout)
    video = [f for f in ds.frames() if f.video == ds.frames()[0].video]
    names = []
    for k, frame in enumerate(video):
        prefix = frame.name.rsplit("_", 1)[0] + "_" if fmt in FLAT_FORMATS else ""
        names.append(f"{prefix}{8 + k}")
        rename_frame(ds, frame, names[-1])
    try:
        read = get_format(fmt).read_video(ds.root, video[0].video,
                                          split="val" if layout == "dataset" else None)
    except InputError:
        return
    assert list(read.frame_names) == names
    assert list(read.frame_index) == sorted(read.frame_index)
