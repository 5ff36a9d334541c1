"""VSPW: mask value v is class v - 1; 0 (others) and 255 are void (VSPW README)."""

import numpy as np
import pytest
from PIL import Image

from vpseg.errors import InputError
from vpseg.formats import get_format

VSPW = get_format("vspw")


def _mask(root, video, frame, values, mode="P"):
    path = root / "data" / video / "mask" / f"{frame}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(np.array(values, dtype=np.uint8), mode="L")
    if mode == "P":
        img = Image.frombytes("P", img.size, img.tobytes())
        img.putpalette([v % 256 for v in range(768)])  # a full palette: values stay as they are
    img.save(path)
    return path


def test_golden_values(tmp_path):
    _mask(tmp_path, "0_wHveSGjXyDY", "00000166", [[0, 1, 124], [255, 61, 2]])
    (tmp_path / "val.txt").write_text("0_wHveSGjXyDY\n")
    assert VSPW.list_videos(tmp_path, split="val") == ["0_wHveSGjXyDY"]
    video = VSPW.read_video(tmp_path, "0_wHveSGjXyDY")
    assert video.panoptic[0].tolist() == [[255000, 0, 123000], [255000, 60000, 1000]]
    assert video.frame_index == (166,)
    assert video.label_space[60].name == "person"


def test_grey_masks_and_prediction_folder(tmp_path):
    path = tmp_path / "pred" / "vid" / "00000001.png"
    path.parent.mkdir(parents=True)
    Image.fromarray(np.array([[3, 255]], dtype=np.uint8), mode="L").save(path)  # class ids
    assert VSPW.list_videos(tmp_path / "pred") == ["vid"]
    assert VSPW.read_video(tmp_path / "pred", "vid").panoptic[0].tolist() == [[3000, 255000]]


def test_writer_golden(tmp_path):
    from vpseg.core.video import Video

    labels = VSPW.default_label_space()
    pan = np.array([[0, 123000, 255000]], dtype=np.int32)
    with VSPW.open_writer(tmp_path, split="val") as writer:
        writer.write(Video(name="v", panoptic=[pan], label_space=labels))
    img = Image.open(tmp_path / "data" / "v" / "mask" / "000000.png")
    assert img.mode == "P"
    assert np.asarray(img).tolist() == [[1, 124, 255]]
    assert img.getpalette()[3:6] == list(labels[0].color)  # value 1 is wall's colour
    assert (tmp_path / "val.txt").read_text() == "v\n"


def test_value_outside_label_space(tmp_path):
    _mask(tmp_path, "v", "00000001", [[200]])
    with pytest.raises(InputError, match=r"00000001.png \(frame 00000001\): mask value 200"):
        VSPW.read_video(tmp_path, "v").panoptic[0]


def test_rgb_mask_is_rejected(tmp_path):
    path = tmp_path / "data" / "v" / "mask" / "00000001.png"
    path.parent.mkdir(parents=True)
    Image.fromarray(np.zeros((1, 1, 3), dtype=np.uint8)).save(path)
    with pytest.raises(InputError, match="00000001.png.*mode 'RGB', expected 'P' or 'L'"):
        VSPW.read_video(tmp_path, "v")


def test_instances_cannot_be_written(tmp_path):
    from vpseg.core.video import Video

    labels = VSPW.default_label_space()
    video = Video(name="v", panoptic=[np.array([[60003]], dtype=np.int32)], label_space=labels)
    with pytest.raises(InputError, match="VSPW holds no instance ids"):
        with VSPW.open_writer(tmp_path) as writer:
            writer.write(video)
    assert not (tmp_path / "train.txt").exists()  # an interrupted write leaves no split list
