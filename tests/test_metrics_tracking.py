"""PTQ / IDS / MOTSA family on single-pixel car tracks (values computed by hand from the
Panoptic-Tracking and MOTS definitions: IoU 1 per match, so PTQ_car = (TP - IDS) / (TP + FP/2 + FN/2))."""

import numpy as np
import pytest

from vpseg.core.labels import LabelSpace
from vpseg.metrics.tables import pair_table
from vpseg.metrics.tracking import TrackingAccumulator

LABELS = LabelSpace.from_json({"categories": [{"id": 0, "name": "car", "isthing": 1},
                                              {"id": 1, "name": "sky", "isthing": 0}]})


def _run(gt, pred):
    acc = TrackingAccumulator(LABELS)
    for g, p in zip(gt, pred, strict=True):
        enc = lambda v: np.array([[1000 if v == "s" else v]], np.int32)  # noqa: E731
        acc.update(pair_table(enc(g), enc(p)), "v")
    return acc


@pytest.mark.parametrize(
    ("gt", "pred", "ptq_car", "ids", "motsa"),
    [
        ([1] * 5, [1, 1, 1, 2, 2], 0.8, 1, 0.8),  # late switch
        ([1] * 5, [1, 2, 2, 2, 2], 0.8, 1, 0.8),  # early switch: same PTQ (STQ tells them apart)
        ([1] * 5, [1, 2, 1, 1, 1], 0.6, 2, 0.6),  # recovery counts twice
        ([1] * 5, [1, 2, 1, 2, 2], 0.4, 3, 0.4),  # back and forth
        ([1, 1, 2, 2, 2], [7] * 5, 1.0, 0, 1.0),  # ID transfer goes unnoticed
        ([1] * 5, [1, 1, 1, "s", "s"], 0.75, 0, 0.6),  # wrong ids removed (predicted as sky)
    ],
)
def test_hand_cases(gt, pred, ptq_car, ids, motsa):
    acc = _run(gt, pred)
    assert acc.per_class()["PTQ"][0] == pytest.approx(ptq_car)
    r = acc.result()
    assert r["IDS"] == ids and r["sIDS"] == pytest.approx(ids)  # IoU 1 per switch
    assert r["MOTSA"] == pytest.approx(motsa) and r["sMOTSA"] == pytest.approx(motsa)
    assert r["MOTSP"] == 1.0


def test_gap_is_bridged():
    # the track is missed in frame 2; matching it to another id afterwards is one switch
    acc = _run([1, 1, 1], [1, "s", 2])
    assert acc.result()["IDS"] == 1


def test_false_positive_on_void_is_ignored_and_crowd_is_void():
    acc = TrackingAccumulator(LABELS)
    # void, void, crowd car, sky | a car prediction lying only on void + crowd, sky right
    acc.update(pair_table(np.array([[255000, 255000, 0, 1000]], np.int32),
                          np.array([[5, 5, 5, 1000]], np.int32)), "v")
    assert acc.fp.sum() == 0 and acc.tp[1] == 1
    # void, sky x3 | a car over everything: 1 of 4 px on void -> a false positive, sky missed
    acc.update(pair_table(np.array([[255000, 1000, 1000, 1000]], np.int32),
                          np.array([[7, 7, 7, 7]], np.int32)), "v")
    assert acc.fp[0] == 1 and acc.fn[1] == 1


def test_merge_adds_counts():
    a, b = _run([1] * 3, [1, 2, 2]), _run([1] * 3, [1, 1, 1])
    assert a.merge(b).result()["IDS"] == 1
