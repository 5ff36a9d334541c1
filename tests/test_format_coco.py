"""COCO-panoptic-style formats against hand-made files in the official layouts.

The PNGs and JSONs here are written with Pillow and json alone, pixel by pixel, so an encoding
mistake cannot pass just because vpseg's reader and writer agree with each other.
"""

import json

import numpy as np
import pytest
from PIL import Image

from vpseg.errors import InputError
from vpseg.formats import get_format

VIPSEG = get_format("vipseg")
CITY = get_format("cityscapes-vps")

# RGB -> id = R + 256 G + 256^2 B (panopticapi rgb2id)
WALL = (120, 120, 120)  # 120 + 30720 + 7864320 = 7895160
PERSON_A = (1, 2, 3)  # 1 + 512 + 196608 = 197121
PERSON_B = (11, 200, 200)  # 11 + 51200 + 13107200 = 13158411
CAR = (140, 140, 140)  # 9211020


def _png(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.array(rows, dtype=np.uint8), mode="RGB").save(path)


def _seg(seg_id, cat, crowd=0):
    return {"id": seg_id, "category_id": cat, "iscrowd": crowd, "area": 1}


@pytest.fixture
def vipseg_root(tmp_path):
    """Two frames of video 127_-hIVCYO4C90 in the official VIPSeg_720P layout."""
    root = tmp_path / "VIPSeg_720P"
    video = "127_-hIVCYO4C90"
    _png(root / "panomasksRGB" / video / "00000166.png", [[WALL, PERSON_A, (0, 0, 0)], [CAR, CAR, WALL]])
    _png(root / "panomasksRGB" / video / "00000167.png", [[PERSON_B, PERSON_A, WALL], [CAR, WALL, WALL]])
    gt = {
        "videos": [{"video_id": video, "images": [
            {"id": "00000166", "width": 3, "height": 2, "file_name": "00000166.png"},
            {"id": "00000167", "width": 3, "height": 2, "file_name": "00000167.png"}]}],
        "annotations": [{"video_id": video, "annotations": [
            {"image_id": "00000166", "file_name": "00000166.png",
             "segments_info": [_seg(7895160, 0), _seg(197121, 60), _seg(9211020, 48, crowd=1)]},
            {"image_id": "00000167", "file_name": "00000167.png",
             "segments_info": [_seg(13158411, 60), _seg(197121, 60), _seg(7895160, 0),
                               _seg(9211020, 48, crowd=1)]}]}],
        "categories": _vipseg_categories(),
    }
    (root / "panoptic_gt_VIPSeg_val.json").write_text(json.dumps(gt))
    (root / "val.txt").write_text(video + "\n")
    return root


def _vipseg_categories():
    from vpseg.core.labels import get_label_space

    return [{"id": c.id, "name": c.name, "isthing": int(c.isthing), "color": list(c.color)}
            for c in get_label_space("vipseg").categories]


def test_vipseg_golden_pixels(vipseg_root):
    assert VIPSEG.list_videos(vipseg_root, split="val") == ["127_-hIVCYO4C90"]
    video = VIPSEG.read_video(vipseg_root, "127_-hIVCYO4C90", split="val")
    assert video.label_space.name == "vipseg"
    assert video.frame_names == ("00000166", "00000167")
    # wall = class 0 (stuff), person = 60 (thing): tracks numbered by first appearance,
    # car segment is crowd: instance 0; id 0 is void (255)
    assert video.panoptic[0].tolist() == [[0, 60001, 255000], [48000, 48000, 0]]
    assert video.panoptic[1].tolist() == [[60002, 60001, 0], [48000, 0, 0]]


def test_vipseg_from_the_mask_folder_itself(vipseg_root):
    video = VIPSEG.read_video(vipseg_root / "panomasksRGB", "127_-hIVCYO4C90")
    assert video.panoptic[0][0, 1] == 60001


def test_vipseg_submission_matched_by_position(vipseg_root, tmp_path):
    """pred.json names frames .jpg (ClipPanoFCN); the official script pairs by position."""
    pred = tmp_path / "submit"
    video = "127_-hIVCYO4C90"
    _png(pred / "pan_pred" / video / "00000166.png", [[WALL, WALL, WALL], [PERSON_A, WALL, WALL]])
    _png(pred / "pan_pred" / video / "00000167.png", [[WALL, WALL, WALL], [WALL, WALL, WALL]])
    (pred / "pred.json").write_text(json.dumps({"annotations": [{"video_id": video, "annotations": [
        {"file_name": "00000166.jpg", "segments_info": [_seg(7895160, 0), _seg(197121, 60)]},
        {"file_name": "00000167.jpg", "segments_info": [_seg(7895160, 0)]}]}]}))
    gt = VIPSEG.read_video(vipseg_root, video, split="val")
    got = VIPSEG.read_video(pred, video, frame_names=gt.frame_names)
    assert got.panoptic[0].tolist() == [[0, 0, 0], [60001, 0, 0]]
    with pytest.raises(InputError, match=r"00000168.png \(frame 00000168\): missing frame"):
        VIPSEG.read_video(pred, video, frame_names=["00000166", "00000168"])


def test_png_id_missing_from_json(vipseg_root):
    _png(vipseg_root / "panomasksRGB" / "127_-hIVCYO4C90" / "00000167.png", [[(9, 9, 9)] * 3] * 2)
    video = VIPSEG.read_video(vipseg_root, "127_-hIVCYO4C90", split="val")
    with pytest.raises(InputError, match=r"00000167.png \(frame 00000167\): segment id 592137"):
        video.panoptic[1]


def test_category_outside_label_space(vipseg_root):
    path = vipseg_root / "panoptic_gt_VIPSeg_val.json"
    gt = json.loads(path.read_text())
    gt["annotations"][0]["annotations"][0]["segments_info"][0]["category_id"] = 500
    path.write_text(json.dumps(gt))
    with pytest.raises(InputError, match="panoptic_gt_VIPSeg_val.json.*category_id 500"):
        VIPSEG.read_video(vipseg_root, "127_-hIVCYO4C90", split="val")


def test_coco_png_with_wrong_mode(vipseg_root):
    path = vipseg_root / "panomasksRGB" / "127_-hIVCYO4C90" / "00000166.png"
    Image.fromarray(np.zeros((2, 3), dtype=np.uint8), mode="L").save(path)
    with pytest.raises(InputError, match="00000166.png.*mode 'L', expected 'RGB'"):
        VIPSEG.read_video(vipseg_root, "127_-hIVCYO4C90", split="val")


def test_broken_json_names_the_file(vipseg_root):
    (vipseg_root / "panoptic_gt_VIPSeg_val.json").write_text("{not json")
    with pytest.raises(InputError, match="panoptic_gt_VIPSeg_val.json: cannot read JSON"):
        VIPSEG.list_videos(vipseg_root, split="val")


def test_writer_uses_category_colours_and_json_schema(tmp_path):
    from vpseg.core.labels import get_label_space
    from vpseg.core.video import Video

    labels = get_label_space("vipseg")
    pan = np.array([[0, 60007, 60007], [48000, 255000, 60009]], dtype=np.int32)
    with VIPSEG.open_writer(tmp_path, split="val") as writer:
        writer.write(Video(name="v", panoptic=[pan], label_space=labels))
    rgb = np.asarray(Image.open(tmp_path / "panomasksRGB" / "v" / "000000.png"))
    assert tuple(rgb[0, 0]) == labels[0].color  # stuff: exactly the category colour
    assert tuple(rgb[1, 1]) == (0, 0, 0)  # void
    assert tuple(rgb[0, 1]) == tuple(rgb[0, 2]) != tuple(rgb[1, 2])  # two person tracks
    gt = json.loads((tmp_path / "panoptic_gt_VIPSeg.json").read_text())
    info = {s["category_id"] * 1000 + s.get("instance_id", 0): s
            for s in gt["annotations"][0]["annotations"][0]["segments_info"]}
    assert info[60007]["area"] == 2 and info[60007]["bbox"] == [1, 0, 2, 1]
    assert info[48000]["iscrowd"] == 1 and info[0]["iscrowd"] == 0
    r, g, b = (int(v) for v in rgb[0, 1])
    assert info[60007]["id"] == r + 256 * g + 65536 * b
    assert (tmp_path / "val.txt").read_text() == "v\n"


def test_cityscapes_vps_golden(tmp_path):
    """Official names: <video>_<counter>_<city>_<seq>_<frame>, ids = trainIds, crowd, void."""
    image_id = "0005_0025_frankfurt_000000_001736"
    _png(tmp_path / "val" / "panoptic_video" / f"{image_id}_final_mask.png",
         [[(128, 64, 128), (5, 0, 0)], [(0, 0, 0), (6, 0, 0)]])
    gt = {"images": [{"id": image_id, "file_name": f"{image_id}_newImg8bit.png", "width": 2,
                      "height": 2}],
          "annotations": [{"image_id": image_id, "file_name": f"{image_id}_final_mask.png",
                           "segments_info": [_seg(128 + 64 * 256 + 128 * 65536, 0), _seg(5, 13),
                                             _seg(6, 11, crowd=1)]}],
          "categories": [{"id": i, "name": n, "isthing": int(i >= 11)} for i, n in enumerate(
              ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
               "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck",
               "bus", "train", "motorcycle", "bicycle"])]}
    (tmp_path / "panoptic_gt_val_city_vps.json").write_text(json.dumps(gt))
    assert CITY.list_videos(tmp_path, split="val") == ["0005"]
    video = CITY.read_video(tmp_path, "0005", split="val")
    assert video.label_space.name == "cityscapes-vps"
    assert video.frame_index == (4,)  # the 5th frame of its 30-frame snippet
    assert video.panoptic[0].tolist() == [[0, 13001], [255000, 11000]]


def test_cityscapes_vps_submission(tmp_path):
    pred = tmp_path / "val_pans_unified"
    ids = ["0005_0025_frankfurt_000000_001736", "0005_0026_frankfurt_000000_001741"]
    for i in ids:
        _png(pred / "pan_pred" / f"{i}.png", [[(5, 0, 0), (0, 0, 0)]])
    (pred / "pred.json").write_text(json.dumps({"annotations": [
        {"segments_info": [_seg(5, 13)]}, {"segments_info": [_seg(5, 14)]}]}))
    video = CITY.read_video(pred, "0005")
    assert video.frame_names == tuple(ids)
    assert [p.tolist() for p in video.panoptic] == [[[13001, 255000]], [[14001, 255000]]]
    (pred / "pred.json").write_text(json.dumps({"annotations": [{"segments_info": []}]}))
    with pytest.raises(InputError, match=r"pred.json: pred.json must be .* with one annotation per pan_pred PNG \(2\)"):
        CITY.list_videos(pred)


@pytest.mark.parametrize("fmt_name", ["vipseg", "cityscapes-vps"])
def test_interrupted_writer_leaves_no_json(tmp_path, fmt_name):
    from vpseg.core.video import Video

    fmt = get_format(fmt_name)
    labels = fmt.default_label_space()
    good = np.zeros((2, 2), dtype=np.int32)
    bad = np.full((2, 2), 200000, dtype=np.int32)  # class 200 is in neither label space
    with pytest.raises(InputError, match=r"\(frame 000001\): class id 200"):
        with fmt.open_writer(tmp_path, split="val") as writer:
            writer.write(Video(name="0001", panoptic=[good, bad], label_space=labels))
    assert not list(tmp_path.glob("*.json"))


def test_vipseg_raw_download_golden(tmp_path):
    """Raw panomasks: 0 void, 1..124 stuff (1-based), class*100 + k things (k from 0)."""
    video = "127_-hIVCYO4C90"
    path = tmp_path / "panomasks" / video / "00000166.png"
    path.parent.mkdir(parents=True)
    raw = np.array([[0, 1, 6100], [6101, 124, 6100]], dtype=np.uint16)
    Image.fromarray(raw).save(path)  # 16-bit greyscale
    (tmp_path / "val.txt").write_text(video + "\n")
    assert VIPSEG.list_videos(tmp_path, split="val") == [video]
    got = VIPSEG.read_video(tmp_path, video)
    # wall is raw 1 -> class 0; person raw 61 -> class 60, instances 0, 1 -> 1, 2
    assert got.panoptic[0].tolist() == [[255000, 0, 60001], [60002, 123000, 60001]]
    # and it converts to the official COCO layout
    with VIPSEG.open_writer(tmp_path / "coco", split="val") as writer:
        writer.write(got)
    back = VIPSEG.read_video(tmp_path / "coco", video, split="val")
    assert np.array_equal(back.panoptic[0], got.panoptic[0])
