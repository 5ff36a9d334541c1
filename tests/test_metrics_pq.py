"""Image PQ and VPQ: hand-computed cases, the reference implementation, properties."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_tiny_labels
from reference_metrics import vpq_reference
from vpseg.metrics.pq import PQStats, match_table
from vpseg.metrics.tables import pair_table, sum_tables
from vpseg.metrics.vpq import VPQAccumulator

V = 255000  # void in the tiny label space (ignore 255, divisor 1000)


def _pq(gt, pred, labels):
    stats = PQStats(256)
    match_table(pair_table(np.array(gt), np.array(pred)), labels, stats)
    return stats


def test_hand_case_two_matches(tiny_labels):
    # road 0..4, person#1 5..9 | predicted road 0..3, person#4 4..9
    gt = [[0, 0, 0, 0, 0, 2001, 2001, 2001, 2001, 2001]]
    pred = [[0, 0, 0, 0, 2004, 2004, 2004, 2004, 2004, 2004]]
    stats = _pq(gt, pred, tiny_labels)
    assert stats.tp[0] == 1 and stats.tp[2] == 1 and stats.fp.sum() == 0 and stats.fn.sum() == 0
    assert stats.iou[0] == pytest.approx(4 / 5) and stats.iou[2] == pytest.approx(5 / 6)
    r = stats.result(tiny_labels)
    assert r["PQ"] == pytest.approx((4 / 5 + 5 / 6) / 2)
    assert r["PQ_th"] == pytest.approx(5 / 6) and r["PQ_st"] == pytest.approx(4 / 5)
    assert r["RQ"] == 1.0


def test_void_is_left_out_of_the_union(tiny_labels):
    # gt person 0..3, void 4..7; prediction person covering 0..7: IoU = 4 / (4 + 8 - 4 - 4) = 1
    gt = [[2001] * 4 + [V] * 4]
    pred = [[2009] * 8]
    stats = _pq(gt, pred, tiny_labels)
    assert stats.tp[2] == 1 and stats.iou[2] == pytest.approx(1.0)


def test_unmatched_prediction_mostly_on_void_or_crowd_is_no_false_positive(tiny_labels):
    # gt: crowd of persons 0..3, void 4..5, road 6..9; pred person 0..5 (on crowd+void), car 6..9
    gt = [[2000] * 4 + [V] * 2 + [0] * 4]
    pred = [[2005] * 6 + [3001] * 4]
    stats = _pq(gt, pred, tiny_labels)
    assert stats.fp[2] == 0  # the person is on crowd + void
    assert stats.fp[3] == 1 and stats.fn[0] == 1  # car is an FP, road an FN
    assert stats.fn[2] == 0  # crowd is never a false negative


def test_iou_of_exactly_half_is_no_match(tiny_labels):
    gt = [[2001, 2001, 0, 0]]
    pred = [[2001, 2001, 2001, 2001]]  # IoU 2/4 = 0.5: not > 0.5
    stats = _pq(gt, pred, tiny_labels)
    assert stats.tp[2] == 0 and stats.fp[2] == 1 and stats.fn[2] == 1


def test_empty_prediction_and_absent_classes(tiny_labels):
    gt = [[0, 0, 2001, 2001]]
    pred = [[V] * 4]
    r = _pq(gt, pred, tiny_labels).result(tiny_labels)
    assert r["PQ"] == 0.0 and r["PQ_th"] == 0.0
    r = _pq([[0, 0]], [[0, 0]], tiny_labels).result(tiny_labels)
    assert r["PQ"] == 1.0 and r["PQ_th"] is None  # no thing class present: unavailable


def _random_video(rng, frames, h=6, w=7):
    classes = np.array([0, 1, 2, 3, 255])
    gt = []
    pred = []
    for _ in range(frames):
        c = classes[rng.integers(0, 5, (h, w))]
        inst = np.where(np.isin(c, [2, 3]), rng.integers(0, 3, (h, w)), 0)
        g = c * 1000 + inst
        noise_class = classes[rng.integers(0, 5, (h, w))]
        noise = noise_class * 1000 + np.where(np.isin(noise_class, [2, 3]), rng.integers(0, 3, (h, w)), 0)
        p = np.where(rng.random((h, w)) < 0.25, noise, g)
        gt.append(g.astype(np.int32))
        pred.append(p.astype(np.int32))
    return gt, pred


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_vpq_equals_the_pixel_reference(seed):
    tiny_labels = make_tiny_labels()
    rng = np.random.default_rng(seed)
    videos = [_random_video(rng, int(rng.integers(1, 6))) for _ in range(2)]
    ks = (1, 2, 4)
    acc = VPQAccumulator(tiny_labels, ks)
    for i, (gt, pred) in enumerate(videos):
        for g, p in zip(gt, pred, strict=True):
            acc.update(pair_table(g, p), f"v{i}")
    ref = vpq_reference(videos, tiny_labels, ks)
    result = acc.result()
    for scores in result["per_k"].values():
        assert all(v is None or 0.0 <= v <= 1.0 for v in scores.values())
    for k in ks:
        for c in range(4):
            iou, tp, fp, fn = ref[k].get(c, [0.0, 0, 0, 0])
            s = acc.stats[k]
            assert (s.tp[c], s.fp[c], s.fn[c]) == (tp, fp, fn)
            assert s.iou[c] == pytest.approx(iou, abs=1e-10)


def test_k1_equals_image_pq_over_all_frames(tiny_labels):
    rng = np.random.default_rng(1)
    gt, pred = _random_video(rng, 5)
    acc = VPQAccumulator(tiny_labels, (1,))
    image = PQStats(256)
    for g, p in zip(gt, pred, strict=True):
        acc.update(pair_table(g, p), "v")
        match_table(pair_table(g, p), tiny_labels, image)
    assert np.array_equal(acc.stats[1].tp, image.tp) and np.allclose(acc.stats[1].iou, image.iou)


def test_short_video_gives_no_window_and_unavailable_vpq(tiny_labels):
    acc = VPQAccumulator(tiny_labels, (1, 6))
    gt = np.zeros((2, 2), np.int32)
    for _ in range(3):
        acc.update(pair_table(gt, gt), "v")
    r = acc.result()
    assert acc.windows == {1: 3, 6: 0}
    assert r["VPQ"] is None and r["per_k"]["1"]["VPQ"] == 1.0
    assert any("k=6" in n for n in r["notes"])


def test_perfect_prediction_and_permuted_ids(tiny_labels):
    rng = np.random.default_rng(2)
    gt, _ = _random_video(rng, 4)
    perm = {2001: 2002, 2002: 2001, 3001: 3002, 3002: 3001}
    pred = [np.vectorize(lambda v: perm.get(v, v))(g).astype(np.int32) for g in gt]
    a, b = VPQAccumulator(tiny_labels, (1, 2)), VPQAccumulator(tiny_labels, (1, 2))
    for g, p in zip(gt, pred, strict=True):
        a.update(pair_table(g, g), "v")
        b.update(pair_table(g, p), "v")
    assert a.result()["VPQ"] == 1.0
    assert a.result() == b.result()


def test_merge_equals_one_pass(tiny_labels):
    rng = np.random.default_rng(3)
    videos = [_random_video(rng, 4) for _ in range(3)]
    whole = VPQAccumulator(tiny_labels, (1, 2))
    parts = [VPQAccumulator(tiny_labels, (1, 2)) for _ in range(3)]
    for i, (gt, pred) in enumerate(videos):
        for g, p in zip(gt, pred, strict=True):
            whole.update(pair_table(g, p), f"v{i}")
            parts[i].update(pair_table(g, p), f"v{i}")
    merged = parts[0].merge(parts[1]).merge(parts[2])
    assert merged.result() == whole.result()


def test_tables_add_up_and_keep_int64(tiny_labels):
    g = np.array([[0, 2001], [2001, 2001]], np.int32)
    p = np.array([[0, 0], [2001, 2001]], np.int32)
    t = sum_tables([pair_table(g, p)] * 3)
    assert t.gt_area.dtype == np.int64 and t.gt_area.tolist() == [3, 9]
    gi, pi = t.pair_ids()
    assert sorted(zip(gi.tolist(), pi.tolist(), t.pair_count.tolist(), strict=True)) == [
        (0, 0, 3), (2001, 0, 3), (2001, 2001, 6)]


def test_more_than_2_to_the_31_pixels_stay_exact(tiny_labels):
    g = np.zeros((1000, 1000), np.int32)
    t = pair_table(g, g)
    big = sum_tables([t] * 2200)  # 2.2e9 pixels of one class
    assert big.gt_area.tolist() == [2_200_000_000] and big.pair_count.tolist() == [2_200_000_000]
    stats = PQStats(256)
    match_table(big, tiny_labels, stats)
    assert stats.tp[0] == 1 and stats.iou[0] == 1.0


# Worked examples checked against a transcription of the official VPQ core (VIPSeg's
# eval_vpq_vspw.py): categories road (0, stuff), car (1, thing), person (2, thing).
def _road_car_person():
    from vpseg.core.labels import LabelSpace

    return LabelSpace.from_json({"categories": [
        {"id": 0, "name": "road", "isthing": 0}, {"id": 1, "name": "car", "isthing": 1},
        {"id": 2, "name": "person", "isthing": 1}]})


def _vpq(labels, gt, pred, ks):
    acc = VPQAccumulator(labels, ks)
    for g, p in zip(gt, pred, strict=True):
        acc.update(pair_table(np.array(g, np.int32), np.array(p, np.int32)), "v")
    return acc.result()


def test_official_example_id_switch_is_exactly_half():
    frame = [[0, 0, 1001, 1001], [0, 0, 1001, 1001]]
    pred0 = [[0, 0, 1011, 1011], [0, 0, 1011, 1011]]
    pred1 = [[0, 0, 1012, 1012], [0, 0, 1012, 1012]]
    r = _vpq(_road_car_person(), [frame, frame], [pred0, pred1], (1, 2))
    assert r["per_k"]["1"]["VPQ"] == 1.0
    assert r["per_k"]["2"]["VPQ"] == 0.5 and r["per_k"]["2"]["VPQ_th"] == 0.0
    assert (r["VPQ"], r["VPQ_th"], r["VPQ_st"]) == (0.75, 0.5, 1.0)


@pytest.mark.parametrize(("person", "all_", "things"), [(False, 0.875, 0.75), (True, 0.58333333333333336, 0.375)])
def test_official_example_void_and_crowd(person, all_, things):
    gt = [[V, V, 1000, 1000, 1001, 1001, 1001, 1001, 0, 0]]  # void, car crowd, car, road
    second = 2021 if person else 1021
    pred = [[1020, 1020, second, second, 1020, 1020, 1020, second, 0, 0]]
    r = _vpq(_road_car_person(), [gt], [pred], (1,))
    assert r["per_k"]["1"]["VPQ"] == pytest.approx(all_, abs=1e-12)
    assert r["per_k"]["1"]["VPQ_th"] == pytest.approx(things, abs=1e-12)
    assert r["per_k"]["1"]["VPQ_st"] == 1.0


def test_official_example_exactly_half_on_void_is_a_false_positive():
    labels = _road_car_person()
    stats = PQStats(256)
    match_table(pair_table(np.array([[V, V, 0, 0]]), np.array([[1020] * 4])), labels, stats)
    assert (stats.tp[0], stats.fp[0], stats.fn[0]) == (0, 0, 1)
    assert (stats.tp[1], stats.fp[1], stats.fn[1]) == (0, 1, 0)


def test_official_example_empty_group_is_unavailable_not_a_crash():
    r = _vpq(_road_car_person(), [[[0, 0]]], [[[0, 0]]], (1,))
    assert r["VPQ"] == 1.0 and r["VPQ_st"] == 1.0 and r["VPQ_th"] is None
