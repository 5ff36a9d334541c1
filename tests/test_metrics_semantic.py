"""mIoU and friends, VC_N: hand-computed cases and the reference."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_metrics import vc_reference
from vpseg.metrics.semantic import ConfusionAccumulator, VCAccumulator
from vpseg.metrics.tables import pair_table

V = 255000


def _confusion(labels, gt, pred):
    acc = ConfusionAccumulator(labels)
    acc.update(pair_table(np.array(gt, np.int32), np.array(pred, np.int32)))
    return acc


def test_hand_case(tiny_labels):
    # gt: road road sky sky void ; pred: road sky sky car road
    acc = _confusion(tiny_labels, [[0, 0, 1000, 1000, V]], [[0, 1000, 1000, 3001, 0]])
    r = acc.result()
    # road: tp 1, gt 2, pred 1 -> 1/2; sky: tp 1, gt 2, pred 2 -> 1/3; car: only predicted,
    # so not in the mean (VSPW averages over classes present in the ground truth)
    assert r["mIoU"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert r["pixel_acc"] == pytest.approx(2 / 4)
    assert r["mean_acc"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert r["fwIoU"] == pytest.approx(0.5 * 1 / 2 + 0.5 * 1 / 3)


def test_void_prediction_is_a_miss_of_the_ground_truth_class(tiny_labels):
    acc = _confusion(tiny_labels, [[0, 0]], [[0, V]])
    assert acc.confusion[0, 0] == 1 and acc.confusion[0, -1] == 1
    assert acc.result()["mIoU"] == pytest.approx(1 / 2)


def test_instances_do_not_matter(tiny_labels):
    a = _confusion(tiny_labels, [[2001, 2002]], [[2005, 2005]]).result()
    assert a["mIoU"] == 1.0


def _video(rng, t, h=5, w=6):
    base = rng.integers(0, 3, (h, w))
    gt, pred = [], []
    for _ in range(t):
        g = np.where(rng.random((h, w)) < 0.15, rng.integers(0, 3, (h, w)), base)
        p = np.where(rng.random((h, w)) < 0.2, rng.integers(0, 3, (h, w)), g)
        gt.append(g)
        pred.append(p)
    return gt, pred


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), official=st.booleans())
def test_vc_equals_the_reference(seed, official):
    rng = np.random.default_rng(seed)
    videos = [_video(rng, int(rng.integers(1, 9))) for _ in range(3)]
    acc = VCAccumulator((2, 3, 8), official_windows=official)
    for i, (gt, pred) in enumerate(videos):
        for g, p in zip(gt, pred, strict=True):
            acc.update(g, p, f"v{i}")
    got = acc.result()
    for n in (2, 3, 8):
        ref = vc_reference(videos, n, official)
        if ref is None:
            assert got[str(n)] is None
        else:
            assert got[str(n)] == pytest.approx(ref, abs=1e-10)
            assert 0.0 <= got[str(n)] <= 1.0


def test_vc_hand_case_and_official_window_count():
    # 3 frames of 1x2 pixels; pixel 0 constant in gt and pred, pixel 1 flips in pred at t=2
    gt = [np.array([[1, 2]])] * 3
    pred = [np.array([[1, 2]]), np.array([[1, 2]]), np.array([[1, 0]])]
    official = VCAccumulator((2,))
    full = VCAccumulator((2,), official_windows=False)
    for g, p in zip(gt, pred, strict=True):
        official.update(g, p, "v")
        full.update(g, p, "v")
    assert official.result() == {"2": 1.0}  # windows [0,1] only (T - N = 1)
    assert full.result() == {"2": pytest.approx((1.0 + 0.5) / 2)}  # and [1,2]


def test_vc_merge_is_exact():
    rng = np.random.default_rng(5)
    videos = [_video(rng, 6) for _ in range(4)]
    whole = VCAccumulator((2, 4))
    parts = [VCAccumulator((2, 4)), VCAccumulator((2, 4))]
    for i, (gt, pred) in enumerate(videos):
        for g, p in zip(gt, pred, strict=True):
            whole.update(g, p, f"v{i}")
            parts[i % 2].update(g, p, f"v{i}")
    assert parts[0].merge(parts[1]).result() == whole.result()


def test_more_than_2_to_the_31_pixels_stay_exact(tiny_labels):
    from vpseg.metrics.stq import STQAccumulator
    from vpseg.metrics.tables import sum_tables

    g = np.zeros((1000, 1000), np.int32)
    g[:, :500] = 2001  # a person track
    big = sum_tables([pair_table(g, g)] * 2200)  # 2.2e9 pixels, 1.1e9 per class
    conf = ConfusionAccumulator(tiny_labels)
    conf.update(big)
    conf.update(big)  # 2.2e9 pixels of each class
    assert conf.confusion[0, 0] == 2_200_000_000 and conf.confusion.dtype == np.int64
    assert conf.result()["mIoU"] == 1.0
    stq = STQAccumulator(tiny_labels)
    stq.update(big, "s")
    stq.update(big, "s")
    r = stq.result()
    assert r["STQ"] == 1.0 and r["per_sequence"]["s"]["tubes"] == 1
