import numpy as np
import pytest

from vpseg.viz import colorize, overlay, render_frames, side_by_side, track_color, write_mp4


def test_colors_stuff_by_class_and_things_by_track(tiny_labels):
    pan = np.array([[0, 2007, 3007, 2000, 255000]])
    out = colorize(pan, tiny_labels)
    assert tuple(out[0, 0]) == tiny_labels[0].color  # stuff: class colour
    assert tuple(out[0, 1]) == track_color(7)  # thing: track colour ...
    assert tuple(out[0, 2]) == track_color(7)  # ... whatever its class
    assert tuple(out[0, 3]) == tiny_labels[2].color  # crowd: class colour
    assert tuple(out[0, 4]) == (0, 0, 0)  # void


def test_track_colors_are_distinct_for_nearby_ids():
    colors = {track_color(i) for i in range(1, 60)}
    assert len(colors) == 59


def test_overlay_blends_and_marks_boundaries(tiny_labels):
    pan = np.array([[0, 0, 1000]])
    rgb = np.zeros((1, 3, 3), dtype=np.uint8)
    out = overlay(rgb, pan, tiny_labels, alpha=0.5)
    assert tuple(out[0, 0]) == tuple(int(0.5 * c) for c in tiny_labels[0].color)
    assert tuple(out[0, 2]) == (255, 255, 255)  # boundary between road and sky


def test_side_by_side_and_render(tiny_video):
    frames = list(render_frames(tiny_video, tiny_video))
    assert len(frames) == 3
    assert frames[0].shape == (4, 6 + 4 + 6, 3)
    assert np.array_equal(frames[0][:, :6], frames[0][:, 10:])
    assert side_by_side(np.zeros((2, 2, 3), np.uint8), np.zeros((3, 1, 3), np.uint8)).shape == (3, 7, 3)


def test_mp4_is_h264_with_every_frame(tmp_path):
    av = pytest.importorskip("av")
    frames = [np.full((31, 45, 3), 20 * i, dtype=np.uint8) for i in range(7)]  # odd size: padded
    path = tmp_path / "v.mp4"
    assert write_mp4(path, frames, fps=5) == 7
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(decoded) == 7
    assert decoded[0].shape == (32, 46, 3)
    assert abs(int(decoded[3][10, 10, 0]) - 60) <= 3  # the content survived encoding
