"""STQ: hand-computed cases, the deeplab2-style reference, properties."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_tiny_labels
from reference_metrics import stq_reference
from vpseg.metrics.stq import STQAccumulator
from vpseg.metrics.tables import pair_table

V = 255000


def _stq(labels, videos):
    acc = STQAccumulator(labels)
    for i, (gt, pred) in enumerate(videos):
        for g, p in zip(gt, pred, strict=True):
            acc.update(pair_table(np.asarray(g, np.int32), np.asarray(p, np.int32)), f"s{i}")
    return acc


def test_perfect_prediction_scores_one(tiny_labels):
    gt = [[[0, 2001, 2001, 3002]], [[0, 0, 2001, 3002]]]
    r = _stq(tiny_labels, [(gt, gt)]).result()
    assert r["STQ"] == r["AQ"] == r["IoU"] == 1.0


def test_id_switch_halves_association(tiny_labels):
    # one person of 2 px in 2 frames; the prediction switches its id in frame 2
    gt = [[[2001, 2001]], [[2001, 2001]]]
    pred = [[[2001, 2001]], [[2002, 2002]]]
    r = _stq(tiny_labels, [(gt, pred)]).result()
    # |g| = 4; p1 ∩ g = 2, IoU = 2/4; p2 the same: AQ = (1/4)(2*0.5 + 2*0.5) = 0.5
    assert r["AQ"] == pytest.approx(0.5)
    assert r["IoU"] == 1.0 and r["STQ"] == pytest.approx(np.sqrt(0.5))


def test_crowd_is_left_out_of_association_but_not_of_iou(tiny_labels):
    gt = [[[2000, 2000, 2001, 2001]]]  # crowd persons, then person 1
    pred = [[[2005, 2005, 2001, 2001]]]  # a predicted person on the crowd
    r = _stq(tiny_labels, [(gt, pred)]).result()
    assert r["AQ"] == 1.0  # the prediction on crowd neither enlarges nor adds a tube
    assert r["IoU"] == 1.0


def test_void_prediction_makes_void_a_class_with_iou_zero(tiny_labels):
    gt = [[[0, 0, 1000, 1000]]]
    pred = [[[0, 0, 1000, V]]]
    r = _stq(tiny_labels, [(gt, pred)]).result()
    # road 1, sky 1/2, void column 0 -> (1 + 0.5 + 0) / 3
    assert r["IoU"] == pytest.approx(1.5 / 3)
    assert r["AQ"] == 0.0  # no ground-truth tube at all


def test_prediction_on_void_enlarges_its_tube(tiny_labels):
    gt = [[[2001, 2001, V, V]]]
    pred = [[[2001, 2001, 2001, 2001]]]
    r = _stq(tiny_labels, [(gt, pred)]).result()
    assert r["AQ"] == pytest.approx(0.5)  # IoU 2 / 4


def _random(rng, frames, h=5, w=6):
    classes = np.array([0, 1, 2, 3, 255])
    out = []
    for _ in range(frames):
        c = classes[rng.integers(0, 5, (h, w))]
        out.append((c * 1000 + np.where(np.isin(c, [2, 3]), rng.integers(0, 3, (h, w)), 0)).astype(np.int32))
    return out


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_equals_the_reference_and_stays_in_range(seed):
    labels = make_tiny_labels()
    rng = np.random.default_rng(seed)
    videos = []
    for _ in range(int(rng.integers(1, 4))):
        gt = _random(rng, int(rng.integers(1, 4)))
        noise = _random(rng, len(gt))
        pred = [np.where(rng.random(g.shape) < 0.3, n, g) for g, n in zip(gt, noise, strict=True)]
        videos.append((gt, pred))
    got = _stq(labels, videos).result()
    ref = stq_reference(videos, labels)
    for key in ("STQ", "AQ", "IoU"):
        assert got[key] == pytest.approx(ref[key], abs=1e-12)
        assert 0.0 <= got[key] <= 1.0


def test_permuting_predicted_ids_changes_nothing(tiny_labels):
    rng = np.random.default_rng(4)
    gt = _random(rng, 3)
    perm = {2001: 2002, 2002: 2001, 3001: 3002, 3002: 3001}
    pred = [np.vectorize(lambda v: perm.get(v, v))(g).astype(np.int32) for g in gt]
    assert _stq(tiny_labels, [(gt, pred)]).result()["STQ"] == 1.0


def test_merge_of_parts_is_identical(tiny_labels):
    rng = np.random.default_rng(6)
    videos = [(g, [np.roll(x, 1) for x in g]) for g in (_random(rng, 3) for _ in range(4))]
    whole = _stq(tiny_labels, videos)
    a = _stq(tiny_labels, videos[:2])
    b = STQAccumulator(tiny_labels)
    for i, (gt, pred) in enumerate(videos[2:], start=2):
        for g, p in zip(gt, pred, strict=True):
            b.update(pair_table(g, p), f"s{i}")
    assert a.merge(b).result() == whole.result()


# The official deeplab2 STQ unit tests (numpy, segmentation_and_tracking_quality_test.py): one
# car track of single-pixel frames; classes car (0, thing) and sky (1, stuff). Expected values
# as in that file. "c" is crowd (car, instance 0), "s" sky, integers are car instance ids.


def _car_sky():
    from vpseg.core.labels import LabelSpace

    return LabelSpace.from_json({"categories": [{"id": 0, "name": "car", "isthing": 1},
                                                {"id": 1, "name": "sky", "isthing": 0}]})


def _frames(seq):
    return [np.array([[1000 if v == "s" else 0 if v == "c" else v]], np.int32) for v in seq]


@pytest.mark.parametrize(
    ("gt", "pred", "stq", "aq", "iou"),
    [
        ([1] * 5, [1] * 5, 1.0, 1.0, 1.0),
        ([1] * 5, [1, 1, 2, 2, 2], 0.72111026, 0.52, 1.0),
        ([1] * 5, [1, 2, 2, 2, 2], 0.82462113, 0.68, 1.0),
        ([1] * 5, [1, 2, 3, 4, 5], 0.447213596, 0.2, 1.0),
        ([1] * 5, [1, 2, 1, 2, 2], 0.72111026, 0.52, 1.0),
        ([1] * 5, ["s", 1, 1, 1, 1], 0.50596443, 0.64, 0.4),
        (["c", 1, 1, 1, 1, 1], [1] * 6, 1.0, 1.0, 1.0),
        (["c", 1, 1, 1, 1, 1], [2, 2, 2, 2, 1, 1], 0.72111026, 0.52, 1.0),
        (["c", 1, 1, 1, 1, 1], [2, 2, "s", 1, 1, 1], 0.40824829, 0.4, 5 / 12),
        (["s", 1, 1, 1, 1], [1] * 5, 0.56568542, 0.8, 0.4),
        (["s", 1, 1, 1, 1], [2, 2, 2, 1, 1], 0.42426407, 0.45, 0.4),
        (["s", 1, 1, 1, 1], [2, 2, "s", 1, 1], 0.3, 0.3, 0.3),
    ],
)
def test_deeplab2_unit_test_examples(gt, pred, stq, aq, iou):
    r = _stq(_car_sky(), [(_frames(gt), _frames(pred))]).result()
    assert r["STQ"] == pytest.approx(stq, abs=1e-8)
    assert r["AQ"] == pytest.approx(aq, abs=1e-12)
    assert r["IoU"] == pytest.approx(iou, abs=1e-12)


def test_id_transfer_is_penalised():
    # two ground-truth cars one after the other (ids 1, 2); the prediction keeps one id throughout
    r = _stq(_car_sky(), [(_frames([1, 1, 2, 2, 2]), _frames([7] * 5))]).result()
    # tube 1: (1/2)(2 * 2/5) = 0.4; tube 2: (1/3)(3 * 3/5) = 0.6; AQ = (0.4 + 0.6) / 2
    assert r["AQ"] == pytest.approx(0.5) and r["STQ"] == pytest.approx(np.sqrt(0.5))


def test_a_class_change_starts_a_new_predicted_tube():
    from vpseg.core.labels import LabelSpace

    labels = LabelSpace.from_json({"categories": [
        {"id": 0, "name": "car", "isthing": 1}, {"id": 1, "name": "truck", "isthing": 1}]})
    gt = [np.array([[1]], np.int32)] * 4
    pred = [np.array([[v]], np.int32) for v in (1, 1, 1001, 1001)]  # car 1, then truck 1
    r = _stq(labels, [(gt, pred)]).result()
    assert r["AQ"] == pytest.approx(0.25 * (2 * 0.5 + 2 * 0.5))
    assert r["IoU"] == pytest.approx((0.5 + 0.0) / 2)  # truck is only predicted: IoU 0
    assert r["STQ"] == pytest.approx(np.sqrt(0.5 * 0.25))


# The official deeplab2 test_complex_example (three 8x8 frames; classes sky 0, vegetation 1,
# cars 2 = thing). Exact values: AQ = 12989/23460, IoU = 137437/170316.
_COMPLEX = {
    "gt_sem": [
        ["00000000", "00000000", "00020111", "02222111", "22222211", "22222221", "22222221", "22222211"],
        ["00000000", "00000000", "02001100", "22211110", "22221111", "22222111", "22222111", "22221111"],
        ["00000000", "00000000", "00000000", "20111000", "22111100", "22211110", "22211111", "22211111"],
    ],
    "gt_inst": [
        ["00000000", "00000000", "00020000", "02222000", "22222200", "22222220", "22222220", "22222200"],
        ["00000000", "00000000", "02000000", "22200000", "22220000", "22222000", "22222000", "22220000"],
        ["00000000", "00000000", "00000000", "20000000", "22000000", "22200000", "22200000", "22200000"],
    ],
    "pr_sem": [
        ["00000000", "00000000", "00000100", "00022111", "02222211", "22222221", "22222221", "22222221"],
        ["00000000", "00000000", "00001100", "02221111", "22221111", "22222111", "22222211", "22222111"],
        ["00000000", "00000000", "00001000", "00111100", "22211100", "22211111", "22221111", "22221111"],
    ],
    "pr_inst": [
        ["00000000", "00000000", "00000000", "00022000", "02222100", "22222110", "22221110", "22221110"],
        ["00000000", "00000000", "00000000", "02220000", "22220000", "22222000", "22221100", "22221000"],
        ["00000000", "00000000", "00000000", "00000000", "22200000", "22200000", "22220000", "22220000"],
    ],
}


def test_deeplab2_complex_example_exactly():
    from fractions import Fraction

    from vpseg.core.labels import LabelSpace

    labels = LabelSpace.from_json({"categories": [{"id": 0, "name": "sky"},
                                                  {"id": 1, "name": "vegetation"},
                                                  {"id": 2, "name": "cars", "isthing": 1}]})

    def grid(rows):
        return np.array([[int(c) for c in r] for r in rows], np.int32)

    gt = [grid(s) * 1000 + grid(i) for s, i in zip(_COMPLEX["gt_sem"], _COMPLEX["gt_inst"], strict=True)]
    pred = [grid(s) * 1000 + grid(i) for s, i in zip(_COMPLEX["pr_sem"], _COMPLEX["pr_inst"], strict=True)]
    r = _stq(labels, [(gt, pred)]).result()
    aq, iou = Fraction(12989, 23460), Fraction(137437, 170316)
    assert r["AQ"] == pytest.approx(float(aq), abs=1e-12)
    assert r["IoU"] == pytest.approx(float(iou), abs=1e-12)
    assert r["STQ"] == pytest.approx(0.6684177335247542, abs=1e-12)
