"""PNG helpers: the COCO RGB id encoding against hand-computed values, modes, atomic writes."""

import numpy as np
import pytest
from PIL import Image

from vpseg.errors import InputError
from vpseg.formats._png import id_to_rgb, read_image, rgb_to_id, write_image, write_png


def test_rgb_id_golden_values():
    rgb = np.array([[[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [255, 255, 255], [1, 2, 3]]],
                   dtype=np.uint8)
    assert rgb_to_id(rgb).tolist() == [[0, 1, 256, 65536, 16777215, 1 + 2 * 256 + 3 * 65536]]
    assert np.array_equal(id_to_rgb(rgb_to_id(rgb)), rgb)
    with pytest.raises(ValueError):
        id_to_rgb(np.array([1 << 24]))


def test_written_png_is_what_pillow_reads(tmp_path):
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 7
    write_png(tmp_path / "a.png", rgb)  # channels must not come out swapped (OpenCV is BGR)
    assert np.asarray(Image.open(tmp_path / "a.png")).tolist() == rgb.tolist()
    grey = np.array([[0, 17, 255]], dtype=np.uint8)
    write_png(tmp_path / "g.png", grey)
    img = Image.open(tmp_path / "g.png")
    assert img.mode == "L" and np.asarray(img).tolist() == grey.tolist()
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[5] = (1, 2, 3)
    write_png(tmp_path / "p.png", np.array([[5, 200]], dtype=np.uint8), palette=palette)
    img = Image.open(tmp_path / "p.png")
    assert img.mode == "P" and np.asarray(img).tolist() == [[5, 200]]
    assert img.getpalette()[15:18] == [1, 2, 3]


def test_write_image_picks_the_encoder_from_the_suffix(tmp_path):
    rgb = np.full((8, 8, 3), 100, dtype=np.uint8)
    write_image(tmp_path / "x.jpg", rgb)
    write_image(tmp_path / "x.png", rgb)
    assert Image.open(tmp_path / "x.jpg").format == "JPEG"
    assert Image.open(tmp_path / "x.png").format == "PNG"


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match=r"nope.png \(frame 3\): file not found"):
        read_image(tmp_path / "nope.png", modes=("RGB",), frame=3)
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "l.png")
    with pytest.raises(InputError, match="l.png: mask has PNG mode 'L', expected 'RGB'"):
        read_image(tmp_path / "l.png", modes=("RGB",), what="mask")
    good = tmp_path / "t.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(good)
    (tmp_path / "trunc.png").write_bytes(good.read_bytes()[:300])  # a half-written file
    with pytest.raises(InputError, match="trunc.png.*cannot"):
        read_image(tmp_path / "trunc.png", modes=("RGB",))
