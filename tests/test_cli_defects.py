"""The defects a new user hit (issue: "Evaluation at the speed of reading the files ... and the
defects found trying vpseg as a new user would"), one test each: every one failed before the fix.

Conventions asserted throughout: a user mistake exits with 2 and prints exactly one error line
(notes may precede it), no traceback; nothing is written into an input; a failed run leaves no
output behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vpseg.cli.main import main
from vpseg.formats import get_format

KITTI = get_format("kitti-step")


def _synth(root: Path, fmt: str, *extra: str, videos: int = 2, frames: int = 6) -> Path:
    assert main(["synth", str(root), "--format", fmt, "--videos", str(videos), "--frames",
                 str(frames), "--height", "48", "--width", "64", "--seed", "3", *extra]) == 0
    return root


@pytest.fixture(scope="module")
def kitti(tmp_path_factory) -> Path:
    return _synth(tmp_path_factory.mktemp("kitti") / "data", "kitti-step", "--split", "val")


@pytest.fixture(scope="module")
def vipseg(tmp_path_factory) -> Path:
    return _synth(tmp_path_factory.mktemp("vipseg") / "data", "vipseg", "--split", "val")


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line of a failed command (notes allowed before it)."""
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    lines = [line for line in captured.err.splitlines() if line and ": note: " not in line]
    assert len(lines) == 1, captured.err
    assert ": error: " in lines[0]
    return lines[0]


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# --- KITTI-STEP instance ids the encoding holds but the divisor does not ------------------------


def test_step_instance_ids_up_to_65535_are_read_tracked_and_evaluated(kitti, tmp_path, capsys):
    pred = copy(kitti / "panoptic_maps" / "val", tmp_path / "pred")
    for png in pred.rglob("*.png"):  # every track id + 54000: G * 256 + B up to ~54xxx
        rgb = np.asarray(Image.open(png)).copy()
        inst = rgb[..., 1].astype(np.int64) * 256 + rgb[..., 2]
        inst = np.where(inst > 0, inst + 54000, 0)
        rgb[..., 1], rgb[..., 2] = inst // 256, inst % 256
        Image.fromarray(rgb).save(png)
    out = tmp_path / "r.json"
    assert main(["eval", str(kitti), str(pred), "--format", "kitti-step", "--split", "val",
                 "--metrics", "stq", "--json", str(out)]) == 0
    err = capsys.readouterr().err
    assert "renumbered within the video (metrics unchanged)" in err
    assert json.loads(out.read_text())["stq"]["STQ"] == 1.0  # same tracks, other numbers
    assert main(["track", str(pred), str(tmp_path / "tracked"), "--format", "kitti-step"]) == 0


def _new_track_every_frame(classes: list[int]):  # type: ignore[no-untyped-def]
    """A video whose every frame holds one thing of ``classes[t % len]`` where the last frame
    had none: the IoU tracker starts a new track each frame."""
    from vpseg.core.labels import get_label_space
    from vpseg.core.video import Video

    frames = []
    for t in range(1200):
        pan = np.zeros((2, 2), np.int32)  # road
        pan[0, t % 2] = classes[t % len(classes)] * 1000 + 1
        frames.append(pan)
    return Video("v", frames, get_label_space("kitti-step"))


def test_more_than_999_tracks_are_renumbered_within_their_class(capsys):
    from vpseg.tracking import make_tracker
    from vpseg.tracking.video import track_video

    tracked = track_video(_new_track_every_frame([11, 13]), make_tracker("iou", keep=0))
    with pytest.warns(Warning, match="201 tracks past the label divisor 1000 renumbered"):
        ids = [int(np.asarray(p)[0, t % 2]) for t, p in enumerate(tracked.panoptic)]
    assert len(set(ids)) == 1200  # 1200 tracks, all distinct panoptic ids
    assert all(i % 1000 > 0 for i in ids)


def test_a_class_with_more_tracks_than_the_divisor_holds_is_an_error(tmp_path, capsys):
    from vpseg.tracking import make_tracker
    from vpseg.tracking.video import track_video

    tracked = track_video(_new_track_every_frame([11]), make_tracker("iou", keep=0))
    with pytest.raises(Exception, match="more than 999 tracks of class 11 in one video"):
        list(tracked.panoptic)


# --- Cityscapes-VPS image ids of another form -----------------------------------------------------


def test_cityscapes_vps_ids_of_another_form_are_grouped_by_position(tmp_path, capsys):
    root = _synth(tmp_path / "c", "cityscapes-vps", "--split", "val", frames=30)
    path = root / "panoptic_gt_val_city_vps.json"
    data = json.loads(path.read_text())
    rename = {im["id"]: f"frame{k:03d}" for k, im in enumerate(sorted(data["images"],
                                                                      key=lambda i: i["id"]))}
    for im in data["images"]:
        im["id"] = rename[im["id"]]
    for ann in data["annotations"]:
        ann["image_id"] = rename[ann["image_id"]]
    path.write_text(json.dumps(data))
    assert main(["info", str(root), "--format", "cityscapes-vps", "--split", "val"]) == 0
    captured = capsys.readouterr()
    assert "cut into 2 videos of 6 by position" in captured.err and "Traceback" not in captured.err
    assert "videos                    2" in captured.out


# --- viz without PyAV -----------------------------------------------------------------------------


def test_viz_mp4_without_pyav_is_one_line(kitti, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "av", None)  # import av raises ImportError
    out = tmp_path / "viz"
    assert main(["viz", str(kitti), "--format", "kitti-step", "--split", "val", "--out", str(out),
                 "--mp4"]) == 2
    assert "writing MP4 needs PyAV" in error_line(capsys)
    assert not out.exists()


# --- track's default tracker ----------------------------------------------------------------------


def test_track_picks_the_tracker_for_the_cues_present(kitti, tmp_path, capsys):
    pred = copy(kitti / "panoptic_maps" / "val", tmp_path / "pred")
    assert main(["track", str(pred), str(tmp_path / "a"), "--format", "kitti-step"]) == 0
    assert "tracker: iou (no embeddings" in capsys.readouterr().out
    (pred / "embeddings").mkdir()
    np.savez(pred / "embeddings" / "0000.npz", **{"000000:ids": np.zeros(0, np.int64),
                                                  "000000:vectors": np.zeros((0, 4), np.float32)})
    assert main(["track", str(pred), str(tmp_path / "b"), "--format", "kitti-step"]) == 0
    assert "tracker: hila (embeddings given" in capsys.readouterr().out


def test_track_reads_embeddings_frame_by_frame_and_names_a_bad_frame(kitti, tmp_path, capsys):
    pred = copy(kitti / "panoptic_maps" / "val", tmp_path / "pred")
    (pred / "embeddings").mkdir()
    frames = sorted(p.stem for p in (pred / "0000").glob("*.png"))
    rows = {f"{f}:ids": np.zeros(0, np.int64) for f in frames}
    rows.update({f"{f}:vectors": np.zeros((0, 4), np.float32) for f in frames})
    rows[f"{frames[-1]}:ids"] = np.array([1, 2], np.int64)  # two ids, no vectors for them
    np.savez(pred / "embeddings" / "0000.npz", **rows)
    assert main(["track", str(pred), str(tmp_path / "out"), "--format", "kitti-step"]) == 2
    err = capsys.readouterr().err
    assert "one row per id" in err and frames[-1] in err and "0000.npz" in err
    assert not (tmp_path / "out").exists()


# --- submission layouts ---------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "extra", "expected"), [
    ("kitti-step", (), ["0000/000000.png"]),
    ("motchallenge-step", (), ["0000/000000.png"]),
    ("vipseg", (), ["pan_pred/0000/000000.png", "pred.json"]),
    ("cityscapes-vps", (), ["pan_pred/0000_0001_vpseg_000000_000004.png", "pred.json"]),
    ("vspw", (), ["0000/000000.png"]),
])
def test_submission_layouts_are_written_and_read_back(tmp_path, fmt, extra, expected):
    frames = 10 if fmt == "cityscapes-vps" else 4
    gt = _synth(tmp_path / "gt", fmt, "--split", "val", *extra, frames=frames)
    sub = tmp_path / "sub"
    assert main(["convert", str(gt), str(sub), "--from", fmt, "--to", fmt, "--split", "val",
                 "--submission"]) == 0
    files = {str(p.relative_to(sub)) for p in sub.rglob("*") if p.is_file()}
    assert set(expected) <= files
    assert not any(part in ("images", "img", "panoptic_maps", "data") for f in files
                   for part in Path(f).parts)
    out = tmp_path / "r.json"
    metrics = "semantic" if fmt == "vspw" else "stq,vpq,semantic"
    assert main(["eval", str(gt), str(sub), "--format", fmt, "--split", "val", "--metrics",
                 metrics, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["semantic"]["mIoU"] == 1.0
    if fmt != "vspw":
        assert result["stq"]["STQ"] == 1.0


def test_vspw_submission_holds_class_ids_and_255_for_void(tmp_path):
    gt = _synth(tmp_path / "gt", "vspw", "--split", "val", frames=2)
    sub = tmp_path / "sub"
    assert main(["convert", str(gt), str(sub), "--from", "vspw", "--to", "vspw", "--split", "val",
                 "--submission"]) == 0
    mask = np.asarray(Image.open(gt / "data" / "0000" / "mask" / "000000.png"))
    sent = np.asarray(Image.open(sub / "0000" / "000000.png"))
    void = (mask == 0) | (mask == 255)  # "others" and void in the data set's encoding
    assert void.any() and not void.all()
    assert np.array_equal(sent, np.where(void, 255, mask.astype(np.int64) - 1))


def test_track_and_segment_write_submissions_too(kitti, tmp_path):
    pred = copy(kitti / "panoptic_maps" / "val", tmp_path / "pred")
    assert main(["track", str(pred), str(tmp_path / "sub"), "--format", "kitti-step",
                 "--tracker", "iou", "--submission"]) == 0
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["0000", "0001"]


# --- tracebacks that became one line --------------------------------------------------------------


def test_segments_info_that_is_an_object(vipseg, tmp_path, capsys):
    root = copy(vipseg, tmp_path / "d")
    path = root / "panoptic_gt_VIPSeg.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["annotations"][2]["segments_info"] = {"id": 1}
    path.write_text(json.dumps(data))
    assert main(["info", str(root), "--format", "vipseg"]) == 2
    line = error_line(capsys)
    assert "panoptic_gt_VIPSeg.json (frame 000002): 'segments_info' must be a list" in line


@pytest.mark.parametrize("command", ["info", "eval", "convert", "viz"])
def test_json_that_is_a_list(vipseg, tmp_path, capsys, command):
    root = copy(vipseg, tmp_path / "d")
    (root / "panoptic_gt_VIPSeg.json").write_text("[1, 2]")
    argv = {"info": ["info", str(root), "--format", "vipseg"],
            "eval": ["eval", str(root), str(vipseg), "--format", "vipseg"],
            "convert": ["convert", str(root), str(tmp_path / "o"), "--from", "vipseg", "--to",
                        "kitti-step"],
            "viz": ["viz", str(root), "--format", "vipseg", "--out", str(tmp_path / "o")]}[command]
    assert main(argv) == 2
    assert "panoptic_gt_VIPSeg.json: not a video panoptic JSON" in error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_unreadable_video_folder(kitti, tmp_path, monkeypatch, capsys):
    root = copy(kitti, tmp_path / "d")
    blocked = root / "panoptic_maps" / "val" / "0001"
    real = Path.iterdir

    def iterdir(self: Path):  # type: ignore[no-untyped-def]
        if self == blocked:  # what chmod 000 does for a user that is not root
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    assert main(["info", str(root), "--format", "kitti-step"]) == 2
    assert f"{blocked}: cannot list video folder: Permission denied" in error_line(capsys)


def test_output_paths_that_cannot_be_written(kitti, tmp_path, capsys):
    existing = tmp_path / "file.txt"
    existing.write_text("x")
    cases = [
        (["eval", str(kitti), str(kitti), "--format", "kitti-step", "--json", str(tmp_path)],
         "--json must name a file, not a folder"),
        (["info", str(kitti), "--format", "kitti-step", "--json", str(tmp_path)],
         "--json must name a file, not a folder"),
        (["convert", str(kitti), str(existing), "--from", "kitti-step", "--to", "vipseg"],
         "must name a folder, but a file is there"),
        (["viz", str(kitti), "--format", "kitti-step", "--out", str(existing / "sub")],
         "is a file, not a folder"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        assert message in error_line(capsys)
    assert existing.read_text() == "x"


def test_read_only_output_folder(kitti, tmp_path, monkeypatch, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == locked else real(p, mode))
    assert main(["convert", str(kitti), str(locked / "out"), "--from", "kitti-step", "--to",
                 "vipseg"]) == 2
    assert "permission denied" in error_line(capsys)


@pytest.mark.parametrize(("argv", "message"), [
    (["eval", "GT", "GT", "--format", "kitti-step", "--vpq-k", "99999999999999999999"],
     "--vpq-k must be integers in 1..100000"),
    (["eval", "GT", "GT", "--format", "kitti-step", "--flow-max-side", "-5"],
     "--flow-max-side must be >= 0"),
    (["eval", "GT", "GT", "--format", "kitti-step", "--workers", "0"], "--workers must be >= 1"),
    (["eval", "GT", "GT", "--format", "kitti-step", "--workers", "-1"], "--workers must be >= 1"),
    (["eval", "GT", "GT", "--format", "kitti-step", "--vpq-stride", "0"],
     "--vpq-stride must be in 1..100000"),
    (["eval", "GT", "GT", "--format", "kitti-step", "--metrics", ""], "--metrics names no metric"),
    (["track", "PRED", "OUT", "--format", "kitti-step", "--tracker", "hila", "--param",
      "alpha=abc"], "tracker parameter alpha must be a number"),
    (["track", "PRED", "OUT", "--format", "kitti-step", "--tracker", "hila", "--param",
      "alpha=5"], "tracker parameter alpha must be in [0.0, 1.0]"),
    (["synth", "OUT", "--format", "kitti-step", "--seed", "-1"], "--seed must be a non-negative"),
    (["synth", "OUT", "--format", "kitti-step", "--videos", "0"], "--videos must be in 1.."),
    (["synth", "OUT", "--format", "vipseg", "--objects", "100000"],
     "--objects 100000: at most 999 thing tracks per video fit below the label divisor"),
    (["viz", "GT", "--format", "kitti-step", "--out", "OUT", "--fps", "-1", "--mp4"],
     "--fps must be in (0, 1000]"),
    (["viz", "GT", "--format", "kitti-step", "--out", "OUT", "--no-png"],
     "--no-png without --mp4 would write nothing"),
])
def test_arguments_that_cannot_work(kitti, tmp_path, capsys, argv, message):
    names = {"GT": str(kitti), "PRED": str(kitti / "panoptic_maps" / "val"),
             "OUT": str(tmp_path / "out")}
    assert main([names.get(a, a) for a in argv]) == 2
    assert message in error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_flow_tracker_with_an_rgb_frame_of_another_size(kitti, tmp_path, capsys):
    pred = copy(kitti / "panoptic_maps" / "val", tmp_path / "pred")
    frames = copy(kitti / "images" / "val", tmp_path / "frames")
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(frames / "0000" / "000003.png")
    assert main(["track", str(pred), str(tmp_path / "out"), "--format", "kitti-step",
                 "--tracker", "flow", "--frames", str(frames)]) == 2
    line = error_line(capsys)
    assert "000003.png (frame 000003): RGB frame is 20x30, its panoptic frame 48x64" in line
    assert not (tmp_path / "out").exists()


def _interrupt(argv: list[str], delay: float) -> subprocess.CompletedProcess[str]:
    """Run ``vpseg ARGV`` in a new process and send it SIGINT ``delay`` seconds after it has
    imported the entry point (the interpreter's own start, before any vpseg code runs, is not
    vpseg's to guard). The child takes Ctrl-C as from a terminal even where this test runs with
    SIGINT ignored (a shell's background job), which a child would inherit."""
    proc = subprocess.Popen([sys.executable, "-c", "import signal, sys; "
                             "signal.signal(signal.SIGINT, signal.default_int_handler); "
                             "from vpseg.cli.main import main; "
                             "print('ready', file=sys.stderr, flush=True); "
                             "sys.exit(main(sys.argv[1:]))", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    assert proc.stderr.readline() == "ready\n"
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


@pytest.mark.parametrize("delay", [0.0, 0.1, 0.4])
def test_ctrl_c_in_the_first_second(tmp_path, delay):
    out = tmp_path / "data"
    done = _interrupt(["synth", str(out), "--format", "kitti-step", "--videos", "50"], delay)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.strip().endswith("interrupted")
    assert not out.exists()


def test_ctrl_c_that_python_wraps_in_a_runtime_error_is_still_an_interruption(monkeypatch, capsys):
    """Python 3.11 turns a KeyboardInterrupt raised inside a class's ``__set_name__`` (e.g. while
    the standard library's ``ipaddress`` is imported) into a RuntimeError caused by it."""
    from vpseg.cli import _parser

    def interrupted(argv, state):
        raise RuntimeError("Error calling __set_name__") from KeyboardInterrupt()

    def broken(argv, state):
        raise RuntimeError("a bug")

    monkeypatch.setattr(_parser, "run", interrupted)
    assert main(["synth", "x"]) == 130
    assert capsys.readouterr().err.strip() == "vpseg: interrupted"
    monkeypatch.setattr(_parser, "run", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["synth", "x"])


# --- wrong numbers and silent successes -----------------------------------------------------------


def test_a_segment_id_listed_twice_is_an_error(vipseg, tmp_path, capsys):
    root = copy(vipseg, tmp_path / "d")
    path = root / "panoptic_gt_VIPSeg.json"
    data = json.loads(path.read_text())
    info = data["annotations"][1]["annotations"][3]["segments_info"]
    info.append({**info[0], "category_id": (info[0]["category_id"] + 1) % 124})
    path.write_text(json.dumps(data))
    assert main(["eval", str(root), str(vipseg), "--format", "vipseg", "--metrics", "stq"]) == 2
    assert f"(frame 000003): segment id {info[0]['id']} is listed twice" in error_line(capsys)


@pytest.mark.parametrize("fmt", ["kitti-step", "vipseg", "vspw"])
def test_prediction_frames_named_otherwise_are_paired_by_position(tmp_path, capsys, fmt):
    gt = _synth(tmp_path / "gt", fmt, "--split", "val", frames=4)
    sub = tmp_path / "sub"
    assert main(["convert", str(gt), str(sub), "--from", fmt, "--to", fmt, "--split", "val",
                 "--submission"]) == 0
    for png in sorted(sub.rglob("*.png")):  # 000000.png -> f000000.png
        png.rename(png.with_name("f" + png.name))
    if (sub / "pred.json").exists():
        text = (sub / "pred.json").read_text().replace('"0000', '"f0000')
        (sub / "pred.json").write_text(text.replace('"video_id": "f0000', '"video_id": "0000'))
    out = tmp_path / "r.json"
    assert main(["eval", str(gt), str(sub), "--format", fmt, "--split", "val", "--metrics",
                 "semantic", "--json", str(out)]) == 0
    assert "paired by position" in capsys.readouterr().err
    assert json.loads(out.read_text())["semantic"]["mIoU"] == 1.0


def test_frame_sizes_that_disagree_with_the_json_or_the_neighbours(vipseg, tmp_path, capsys):
    root = copy(vipseg, tmp_path / "d")
    path = root / "panoptic_gt_VIPSeg.json"
    data = json.loads(path.read_text())
    data["videos"][0]["images"][1]["width"] = 65
    path.write_text(json.dumps(data))
    assert main(["convert", str(root), str(tmp_path / "o"), "--from", "vipseg", "--to",
                 "kitti-step"]) == 2
    assert "000001.png (frame 000001): panoptic PNG is 48x64, the JSON says 48x65" in error_line(capsys)
    assert not (tmp_path / "o").exists()
    root2 = copy(vipseg, tmp_path / "d2")
    Image.fromarray(np.zeros((48, 70, 3), np.uint8)).save(root2 / "images" / "0000" / "000002.jpg")
    assert main(["convert", str(root2), str(tmp_path / "o2"), "--from", "vipseg", "--to",
                 "kitti-step"]) == 2
    assert "000002.jpg (frame 000002): RGB frame is 48x70, its panoptic frame 48x64" in error_line(capsys)
    assert not (tmp_path / "o2").exists()


def test_extra_prediction_frames_and_videos_are_reported(kitti, tmp_path, capsys):
    pred = copy(kitti / "panoptic_maps" / "val", tmp_path / "pred")
    copy(pred / "0001", pred / "0099")
    shutil.copy(pred / "0000" / "000005.png", pred / "0000" / "000099.png")
    assert main(["eval", str(kitti), str(pred), "--format", "kitti-step", "--split", "val"]) == 0
    err = capsys.readouterr().err
    assert "1 prediction video(s) that the ground truth does not have are ignored (0099)" in err
    assert "1 prediction frame(s) that the ground truth does not have are ignored" in err


def test_vspw_ground_truth_against_itself(tmp_path, capsys):
    gt = _synth(tmp_path / "gt", "vspw", "--split", "val", frames=4)
    out = tmp_path / "r.json"
    assert main(["eval", str(gt), str(gt), "--format", "vspw", "--split", "val",
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert "stq" not in result and result["semantic"]["mIoU"] == 1.0 and "vc" in result
    assert main(["eval", str(gt), str(gt), "--format", "vspw", "--split", "val",
                 "--metrics", "stq"]) == 0
    assert "AQ and STQ are 0 by definition: the ground truth has no thing tracks" in \
        capsys.readouterr().out


# --- nothing written into an input, nothing left behind -----------------------------------------


def test_track_never_writes_into_its_input(kitti, tmp_path, capsys):
    pred = copy(kitti / "panoptic_maps" / "val", tmp_path / "pred")
    before = snapshot(pred)
    for out in (pred, pred / "sub", pred.parent):
        assert main(["track", str(pred), str(out), "--format", "kitti-step"]) == 2
        assert "vpseg never writes into its input" in error_line(capsys)
    data = copy(kitti, tmp_path / "data")
    assert main(["track", str(data), str(data), "--format", "kitti-step", "--split", "val"]) == 2
    error_line(capsys)
    assert snapshot(pred) == before and snapshot(data) == snapshot(kitti)


def test_failed_runs_leave_nothing_that_reads_as_complete(kitti, tmp_path, capsys):
    data = copy(kitti, tmp_path / "data")
    (data / "panoptic_maps" / "val" / "0001" / "000004.png").write_bytes(b"broken")
    for argv in (["convert", str(data), str(tmp_path / "c"), "--from", "kitti-step", "--to",
                  "kitti-step", "--split", "val"],
                 ["viz", str(data), "--format", "kitti-step", "--split", "val", "--out",
                  str(tmp_path / "c")],
                 ["track", str(data), str(tmp_path / "c"), "--format", "kitti-step", "--split",
                  "val"]):
        assert main(argv) == 2
        assert "000004.png" in error_line(capsys)
        assert not (tmp_path / "c").exists()
        assert not list(tmp_path.glob(".c.vpseg-tmp-*"))


def test_interrupted_convert_leaves_nothing(tmp_path):
    big = tmp_path / "big"  # converting it takes a few seconds: interrupted after one
    assert main(["synth", str(big), "--format", "kitti-step", "--videos", "6", "--frames", "30",
                 "--height", "240", "--width", "480"]) == 0
    out = tmp_path / "c"
    done = _interrupt(["convert", str(big), str(out), "--from", "kitti-step", "--to",
                       "vipseg"], 0.6)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists() and not list(tmp_path.glob(".c.vpseg-tmp-*"))


def test_writing_into_an_existing_data_set_adds_videos(vipseg, tmp_path):
    out = tmp_path / "merged"
    assert main(["synth", str(out), "--format", "vipseg", "--videos", "3", "--frames", "2",
                 "--height", "48", "--width", "64", "--split", "train"]) == 0
    before = (out / "panomasksRGB" / "0002" / "000000.png").read_bytes()
    assert main(["convert", str(vipseg), str(out), "--from", "vipseg", "--to", "vipseg",
                 "--split", "val"]) == 0  # videos 0000 and 0001 are replaced, 0002 stays
    vip = get_format("vipseg")
    assert "0002" in vip.list_videos(out, split="train")
    assert vip.list_videos(out, split="val") == ["0000", "0001"]
    assert (out / "panomasksRGB" / "0002" / "000000.png").read_bytes() == before
    assert len(vip.read_video(out, "0000", split="val")) == 6


# --- messages -------------------------------------------------------------------------------------


def test_convert_to_vspw_names_the_frame_that_holds_instances(kitti, tmp_path, capsys):
    assert main(["convert", str(kitti), str(tmp_path / "v"), "--from", "kitti-step", "--to",
                 "vspw", "--split", "val"]) == 2
    line = error_line(capsys)
    named = line.split(": error: ", 1)[1].split(" (frame")[0]
    assert Path(named).is_file() and "--semantic-only" in line


def test_info_says_why_pngs_on_disk_are_not_counted(tmp_path, capsys):
    root = _synth(tmp_path / "c", "cityscapes-vps", "--split", "val", frames=30)
    masks = root / "val" / "panoptic_video"
    shutil.copy(next(masks.glob("*.png")), masks / "stray_final_mask.png")
    assert main(["info", str(root), "--format", "cityscapes-vps", "--split", "val"]) == 0
    assert "1 PNG(s) here are not listed in the JSON and are not read" in capsys.readouterr().err
