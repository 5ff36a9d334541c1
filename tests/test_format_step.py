"""KITTI-STEP / MOTChallenge-STEP: R = semantic, G*256 + B = instance (deeplab2)."""

import numpy as np
import pytest
from PIL import Image

from vpseg.core.labels import get_label_space
from vpseg.errors import InputError, Note
from vpseg.formats import get_format

KITTI = get_format("kitti-step")


def _golden(root, seq="0000", frame="000000"):
    """A 2x3 panoptic PNG written with Pillow alone, pixel by pixel."""
    px = np.array(
        [
            [[0, 0, 0], [11, 0, 3], [13, 1, 2]],  # road; person 3; car 1*256+2 = 258
            [[255, 0, 0], [11, 0, 0], [10, 0, 0]],  # void; crowd person; sky
        ],
        dtype=np.uint8,
    )
    path = root / "panoptic_maps" / "val" / seq / f"{frame}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(px, mode="RGB").save(path)
    return path, px


def test_golden_pixels_decode_to_known_ids(tmp_path):
    _golden(tmp_path)
    video = KITTI.read_video(tmp_path, "0000", split="val")
    assert video.panoptic[0].tolist() == [[0, 11003, 13258], [255000, 11000, 10000]]
    assert video.frame_index == (0,) and video.frame_names == ("000000",)


def test_writer_produces_the_golden_pixels(tmp_path):
    _, px = _golden(tmp_path / "a")
    video = KITTI.read_video(tmp_path / "a", "0000", split="val").materialize()
    with KITTI.open_writer(tmp_path / "b", split="val") as writer:
        writer.write(video)
    written = np.asarray(Image.open(tmp_path / "b/panoptic_maps/val/0000/000000.png"))
    assert written.tolist() == px.tolist()


def test_reader_accepts_split_folder_and_prediction_folder(tmp_path):
    _golden(tmp_path)
    pred = tmp_path / "submission"
    (pred / "0000").mkdir(parents=True)
    (tmp_path / "panoptic_maps/val/0000/000000.png").rename(pred / "0000/000000.png")
    _golden(tmp_path)
    for root in (tmp_path / "panoptic_maps" / "val", pred):
        assert KITTI.list_videos(root) == ["0000"]
        assert KITTI.read_video(root, "0000").panoptic[0][0, 1] == 11003


def test_round_trip_with_rgb(tmp_path, tiny_video):
    labels = get_label_space("kitti-step")
    video = tiny_video
    remap = {0: 0, 1: 10, 2: 11, 3: 13, 255: 255}  # tiny ids -> Cityscapes ids
    pans = [np.vectorize(lambda v: remap[v // 1000] * 1000 + v % 1000)(p).astype(np.int32)
            for p in video.panoptic]
    from dataclasses import replace

    video = replace(video, panoptic=pans, label_space=labels)
    with KITTI.open_writer(tmp_path, split="train") as writer:
        writer.write(video)
    back = KITTI.read_video(tmp_path, "v0", split="train")
    assert back.rgb is not None
    for a, b, ra, rb in zip(video.panoptic, back.panoptic, video.rgb, back.rgb, strict=True):
        assert np.array_equal(a, b) and b.dtype == np.int32
        assert np.array_equal(ra, rb)


def test_class_outside_label_space_names_file_and_frame(tmp_path):
    path = tmp_path / "s" / "0000" / "000004.png"
    path.parent.mkdir(parents=True)
    Image.fromarray(np.full((2, 2, 3), [40, 0, 0], dtype=np.uint8)).save(path)
    video = KITTI.read_video(tmp_path / "s", "0000")
    with pytest.raises(InputError, match=r"000004.png \(frame 000004\): class id 40"):
        video.panoptic[0]


def test_wrong_png_mode_names_file(tmp_path):
    path = tmp_path / "0000" / "000000.png"
    path.parent.mkdir(parents=True)
    Image.fromarray(np.zeros((2, 2), dtype=np.uint8), mode="L").save(path)
    with pytest.raises(InputError, match=r"000000.png.*mode 'L', expected 'RGB'"):
        KITTI.read_video(tmp_path, "0000")


def test_frames_of_different_sizes(tmp_path):
    for name, size in (("000000", (2, 2)), ("000001", (3, 2))):
        path = tmp_path / "0000" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros(size + (3,), dtype=np.uint8)).save(path)
    with pytest.raises(InputError, match=r"000001.png.*size 3x2 differs from 2x2"):
        KITTI.read_video(tmp_path, "0000")


def _step_png(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(path)


def test_instance_ids_beyond_the_divisor_are_renumbered_within_the_video(tmp_path):
    # person (11) ids 54287 (G=212, B=15), 7 and 1; car (13) id 1024 (G=4, B=0) and 1
    _step_png(tmp_path / "0000" / "000000.png", [[[11, 212, 15], [11, 0, 7], [13, 4, 0]]])
    _step_png(tmp_path / "0000" / "000001.png", [[[11, 0, 1], [11, 212, 15], [13, 0, 1]]])
    with pytest.warns(Note, match=r"0000: video '0000': 2 instance ids \(up to 54287\) .*renumbered"):
        video = KITTI.read_video(tmp_path, "0000")
        backwards = [video.panoptic[1], video.panoptic[0]]
        again = KITTI.read_video(tmp_path, "0000").panoptic[0]
    # ids that fit keep their value; 54287 takes the smallest free person id (2: 1 and 7 are
    # used), 1024 the smallest free car id (2), the same whichever frame is read first
    assert backwards[1].tolist() == [[11002, 11007, 13002]]
    assert backwards[0].tolist() == [[11001, 11002, 13001]]
    assert np.array_equal(again, backwards[1])


def test_more_ids_in_one_class_than_the_divisor_holds_is_an_error(tmp_path):
    ids = np.arange(1, 1001)
    pixels = np.stack([np.full(ids.size, 11), ids // 256, ids % 256], axis=-1)[None]
    _step_png(tmp_path / "0000" / "000000.png", pixels)
    with pytest.raises(InputError, match=r"1000 distinct instance ids of class 11; at most 999"):
        KITTI.read_video(tmp_path, "0000").panoptic[0]


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="missing video 'nope'"):
        KITTI.read_video(tmp_path, "nope")
    path = tmp_path / "0000" / "000000.png"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a png")
    with pytest.raises(InputError, match="000000.png.*not a PNG file"):
        KITTI.read_video(tmp_path, "0000")


def test_prediction_missing_a_frame_names_the_expected_file(tmp_path):
    _golden(tmp_path)
    with pytest.raises(InputError, match=r"0000/000001.png \(frame 000001\): missing frame"):
        KITTI.read_video(tmp_path, "0000", split="val", frame_names=["000000", "000001"])


def test_writer_rejects_ids_that_do_not_fit(tmp_path, tiny_labels):
    from vpseg.core.labels import LabelSpace
    from vpseg.core.video import Video

    wide = LabelSpace.from_json({"categories": [{"id": 300, "name": "x"}]})
    video = Video(name="v", panoptic=[np.full((1, 1), 300000, dtype=np.int32)], label_space=wide)
    with pytest.raises(InputError, match="class id 300 does not fit"):
        with KITTI.open_writer(tmp_path, label_space=wide) as writer:
            writer.write(video)


def test_custom_label_space_is_saved_and_found_again(tmp_path, tiny_video):
    with KITTI.open_writer(tmp_path, label_space=tiny_video.label_space) as writer:
        writer.write(tiny_video)
    back = KITTI.read_video(tmp_path, "v0", split="train")
    assert back.label_space.categories == tiny_video.label_space.categories
    assert np.array_equal(back.panoptic[1], tiny_video.panoptic[1])


def test_motchallenge_step_uses_its_label_space(tmp_path):
    mots = get_format("motchallenge-step")
    assert len(mots.default_label_space()) == 7
