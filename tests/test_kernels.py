"""The compiled per-pixel kernels equal their numpy versions (and hand-made answers)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vpseg._jit import numba_enabled, use_numba
from vpseg.formats._kernels import coco_decode, lut_decode, step_decode
from vpseg.metrics._kernels import pair_counts
from vpseg.metrics.tables import pair_table

pytestmark = pytest.mark.skipif(not numba_enabled(), reason="numba is not installed")


@pytest.fixture(autouse=True)
def _restore_numba():
    yield
    use_numba(True)


def both(kernel, *args):  # type: ignore[no-untyped-def]
    """(compiled result, numpy result), each on fresh copies of any output array."""
    results = []
    for compiled in (True, False):
        use_numba(compiled)
        copies = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        results.append((kernel(*copies), copies))
    return results


def frames(draw, max_side=12):  # type: ignore[no-untyped-def]
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    palette = draw(st.lists(st.integers(0, 255 * 1000 + 999), min_size=1, max_size=6))
    pick = draw(st.lists(st.integers(0, len(palette) - 1), min_size=h * w, max_size=h * w))
    return np.asarray(palette, dtype=np.int32)[np.asarray(pick)].reshape(h, w)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_pair_counts_equal_the_numpy_version(data):
    gt, pred = frames(data.draw), frames(data.draw)
    if gt.shape != pred.shape:
        pred = np.resize(pred, gt.shape)
    (a, _), (b, _) = both(pair_counts, gt.ravel(), pred.ravel())
    key = lambda r: sorted(zip(*(x.tolist() for x in r[:3]), strict=True))  # noqa: E731
    assert key(a) == key(b) and a[3] == b[3] is False
    assert sum(a[2].tolist()) == gt.size


def test_pair_counts_grow_past_the_first_table():
    gt = np.arange(5000, dtype=np.int32)  # 5000 distinct pairs: more than half of 2**12 slots
    (a, _), (b, _) = both(pair_counts, gt, gt[::-1].copy())
    assert len(a[0]) == len(b[0]) == 5000 and a[2].sum() == 5000


def test_pair_table_by_hand():
    gt = np.array([[1, 1, 2], [2, 2, 2]], dtype=np.int32)
    pred = np.array([[5, 1, 1], [1, 1, 5]], dtype=np.int32)
    for compiled in (True, False):
        use_numba(compiled)
        t = pair_table(gt, pred)
        assert t.gt_ids.tolist() == [1, 2] and t.gt_area.tolist() == [2, 4]
        assert t.pred_ids.tolist() == [1, 5] and t.pred_area.tolist() == [4, 2]
        assert list(zip(t.pair_gt.tolist(), t.pair_pred.tolist(), t.pair_count.tolist(),
                        strict=True)) == [(0, 0, 1), (0, 1, 1), (1, 0, 3), (1, 1, 1)]
    with pytest.raises(ValueError, match="non-negative"):
        pair_table(gt, -pred)


def _bgr(rgb_ids: np.ndarray) -> np.ndarray:
    return np.stack([(rgb_ids >> 16) & 255, (rgb_ids >> 8) & 255, rgb_ids & 255], -1).astype(np.uint8)


def test_coco_decode_by_hand_and_unknown_ids():
    ids = np.array([[0, 0x0A0B0C, 0x0A0B0C], [7, 7, 0]])
    keys = np.array([0, 0x0A0B0C, 7], dtype=np.int64)
    values = np.array([255000, 11003, 2000], dtype=np.int32)
    out = np.empty((2, 3), np.int32)
    for (result, copies) in both(coco_decode, _bgr(ids), keys, values, out):
        assert result == -1
        assert copies[3].tolist() == [[255000, 11003, 11003], [2000, 2000, 255000]]
    for (result, _) in both(coco_decode, _bgr(ids), keys[:2], values[:2], out):
        assert result == 7  # the first unknown id in raster order


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_coco_decode_equals_the_numpy_version(data):
    ids = frames(data.draw) % (1 << 24)
    known = np.unique(ids)
    if data.draw(st.booleans()):
        known = known[1:]  # one id unknown
    keys = known.astype(np.int64)
    values = (keys * 3 % 100000).astype(np.int32)
    (a, ca), (b, cb) = both(coco_decode, _bgr(ids), keys, values, np.empty(ids.shape, np.int32))
    assert a == b
    if a == -1:
        assert np.array_equal(ca[3], cb[3])


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_lut_and_step_decode_equal_the_numpy_versions(data):
    raw = (frames(data.draw) % 256).astype(np.uint8)
    lut = np.where(np.arange(256) % 7 == 3, -1, np.arange(256) * 1000).astype(np.int32)
    (a, ca), (b, cb) = both(lut_decode, raw, lut, np.empty(raw.shape, np.int32))
    assert a == b and (a >= 0 or np.array_equal(ca[2], cb[2]))
    bgr = np.stack([raw, raw[::-1, ::-1], (raw.astype(np.int64) * 7 % 256).astype(np.uint8)], -1).copy()
    valid = np.arange(256) % 5 != 0
    (a, ca), (b, cb) = both(step_decode, bgr, valid, 1000, np.empty(raw.shape, np.int32))
    assert a[0] == b[0]
    if a[0] == -1:
        assert a[1] == b[1]
        if a[1] < 1000:
            assert np.array_equal(ca[3], cb[3])


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_indexed_pair_table_equals_the_pixel_one(data):
    from vpseg.core.video import IndexedFrame
    from vpseg.metrics.tables import pair_table_indexed

    h, w = data.draw(st.integers(1, 10)), data.draw(st.integers(1, 10))

    def indexed() -> IndexedFrame:  # ids may repeat (two stuff segments of one class)
        ids = np.asarray(data.draw(st.lists(st.integers(0, 5000), min_size=1, max_size=5)),
                         dtype=np.int32)
        index = data.draw(st.lists(st.integers(0, len(ids) - 1), min_size=h * w, max_size=h * w))
        return IndexedFrame(np.asarray(index, dtype=np.uint8).reshape(h, w), ids)

    gt, pred = indexed(), indexed()
    for compiled in (True, False):
        use_numba(compiled)
        a, b = pair_table_indexed(gt, pred), pair_table(np.asarray(gt), np.asarray(pred))
        for name in a.__dataclass_fields__:
            assert np.array_equal(getattr(a, name), getattr(b, name)), name


@pytest.mark.parametrize("fmt", ["kitti-step", "vipseg", "cityscapes-vps", "vspw", "viper"])
def test_readers_never_sort_a_frame(tmp_path, monkeypatch, fmt):
    """The issue's profile put 46 of 54 s in np.unique on full frames in the COCO decoder."""
    from vpseg.cli.main import main
    from vpseg.formats import get_format

    assert main(["synth", str(tmp_path), "--format", fmt, "--videos", "1", "--frames", "10",
                 "--height", "40", "--width", "48", "--split", "val"]) == 0
    reader = get_format(fmt)
    video = reader.read_video(tmp_path, reader.list_videos(tmp_path, split="val")[0], split="val")
    expected = [np.asarray(f) for f in video.panoptic]
    real = np.unique

    def unique(values, *args, **kwargs):  # type: ignore[no-untyped-def]
        assert np.size(values) < 40 * 48, "a frame was sorted"
        return real(values, *args, **kwargs)

    monkeypatch.setattr(np, "unique", unique)
    for compiled in (True, False):
        use_numba(compiled)
        assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(expected, video.panoptic,
                                                                    strict=True))
