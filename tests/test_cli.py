"""The vpseg command: exit codes, one-line errors naming files, and the tools end to end."""

import json

import numpy as np
import pytest
from PIL import Image

from vpseg.cli.main import main
from vpseg.formats import get_format


@pytest.fixture(scope="module")
def kitti_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "kitti"
    assert main(["synth", str(root), "--format", "kitti-step", "--videos", "2", "--frames", "6",
                 "--height", "64", "--width", "128", "--seed", "5"]) == 0
    return root


def test_synth_writes_the_kitti_step_layout(kitti_root):
    assert sorted(p.name for p in (kitti_root / "panoptic_maps" / "train").iterdir()) == ["0000", "0001"]
    assert len(list((kitti_root / "images" / "train" / "0001").glob("*.png"))) == 6
    assert not (kitti_root / "vpseg_label_space.json").exists()  # the format's own label space


def test_info_prints_videos_and_frames(kitti_root, capsys):
    assert main(["info", str(kitti_root), "--format", "kitti-step"]) == 0
    out = capsys.readouterr().out
    assert "videos                    2" in out
    assert "annotated frames          12" in out


def test_info_json(kitti_root, tmp_path, capsys):
    out = tmp_path / "s.json"
    assert main(["info", str(kitti_root), "--format", "kitti-step", "--json", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary["videos"] == 2 and summary["annotated_frames"] == 12
    assert summary["thing_instances"] > 0


def test_viz_writes_pngs_and_mp4(kitti_root, tmp_path):
    pytest.importorskip("av")
    out = tmp_path / "viz"
    assert main(["viz", str(kitti_root), "--format", "kitti-step", "--out", str(out),
                 "--video", "0000", "--mp4", "--side-by-side", str(kitti_root)]) == 0
    frame = np.asarray(Image.open(out / "0000" / "000000.png"))
    assert frame.shape == (64, 128 * 2 + 4, 3)
    assert (out / "0000.mp4").stat().st_size > 1000


def test_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nowhere"), "--format", "kitti-step"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere" in err and "Traceback" not in err
    assert main(["info", str(tmp_path), "--format", "no-such-format"]) == 2
    assert "known:" in capsys.readouterr().err


def test_viz_side_by_side_with_missing_prediction_video(kitti_root, tmp_path, capsys):
    pred = tmp_path / "pred"
    (pred / "0001").mkdir(parents=True)
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(pred / "0001" / "000000.png")
    code = main(["viz", str(kitti_root), "--format", "kitti-step", "--out", str(tmp_path / "o"),
                 "--video", "0000", "--side-by-side", str(pred)])
    assert code == 2
    assert "missing video '0000'" in capsys.readouterr().err


def test_convert_to_vspw_needs_semantic_only(kitti_root, tmp_path, capsys):
    dst = tmp_path / "vspw"
    assert main(["convert", str(kitti_root), str(dst), "--from", "kitti-step", "--to", "vspw"]) == 2
    assert "--semantic-only" in capsys.readouterr().err
    assert main(["convert", str(kitti_root), str(dst), "--from", "kitti-step", "--to", "vspw",
                 "--semantic-only"]) == 0
    kitti, vspw = get_format("kitti-step"), get_format("vspw")
    a = kitti.read_video(kitti_root, "0001", split="train")
    b = vspw.read_video(dst, "0001")
    for pa, pb in zip(a.panoptic, b.panoptic, strict=True):
        assert np.array_equal(pa // 1000, pb // 1000) and not (pb % 1000).any()


def test_synth_coco_video_with_a_custom_label_space(tmp_path, capsys):
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"categories": [
        {"id": 1, "name": "sky"}, {"id": 2, "name": "road"}, {"id": 7, "name": "person", "isthing": 1}]}))
    out = tmp_path / "coco"
    assert main(["synth", str(out), "--format", "coco-video", "--videos", "1", "--frames", "2"]) == 2
    assert "--label-space" in capsys.readouterr().err
    assert main(["synth", str(out), "--format", "coco-video", "--videos", "1", "--frames", "2",
                 "--height", "48", "--width", "64", "--label-space", str(labels)]) == 0
    video = get_format("coco-video").read_video(out, "0000")
    assert video.label_space.ids == (1, 2, 7)
    classes = set(np.unique(np.stack(video.panoptic) // 1000).tolist())
    assert classes <= {1, 2, 7, 255} and 7 in classes
