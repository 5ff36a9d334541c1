"""Motion-DeepLab's association (STEP B4) on hand-made centres and previous-offsets."""

from __future__ import annotations

import numpy as np

from vpseg.models.motion_association import CentreTracker, instance_radius

CAR, PERSON = 13, 11


def _step(tracker: CentreTracker, centres, offsets, scores=None, classes=None, radius=None):
    n = len(centres)
    return tracker.update(np.array(centres, float).reshape(n, 2),
                          np.array(offsets, float).reshape(n, 2),
                          np.ones(n) if scores is None else np.array(scores, float),
                          np.full(n, CAR) if classes is None else np.array(classes),
                          np.full(n, 10.0) if radius is None else np.array(radius, float))


def test_crossing_objects_keep_their_ids_by_their_previous_offsets() -> None:
    """Two cars cross: at the crossing the nearest previous centre of each *unshifted* centre is
    the other car's; shifted by the previous-offsets they find their own."""
    t = CentreTracker()
    a, b = _step(t, [(50, 40), (50, 60)], [(0, 0), (0, 0)])
    # frame 2: car a moved right by 15 (now at 55), car b left by 15 (now at 45)
    ids = _step(t, [(50, 55), (50, 45)], [(0, -15), (0, 15)])
    assert list(ids) == [a, b]
    # without the offsets the nearest centres swap the identities (what B4's offsets fix)
    t2 = CentreTracker()
    a2, b2 = _step(t2, [(50, 40), (50, 60)], [(0, 0), (0, 0)])
    assert list(_step(t2, [(50, 55), (50, 45)], [(0, 0), (0, 0)])) == [b2, a2]


def test_entering_object_starts_a_track_and_a_leaving_one_ends_after_keep_frames() -> None:
    t = CentreTracker(keep=3)
    (a,) = _step(t, [(10, 10)], [(0, 0)])
    a1, new = _step(t, [(10, 12), (80, 80)], [(0, -2), (0, 0)])  # a moves; another enters
    assert a1 == a and new not in (a,)
    # a leaves: only the newcomer is seen for two frames; a is still a candidate
    assert list(_step(t, [(80, 81)], [(0, -1)])) == [new]
    assert list(_step(t, [(10, 12)], [(0, 0)])) == [a]  # re-found within keep frames
    for _ in range(3):  # gone for 3 frames: dropped from the candidates
        assert list(_step(t, [(80, 81)], [(0, 0)])) == [new]
    (fresh,) = _step(t, [(10, 12)], [(0, 0)])
    assert fresh not in (a, new)


def test_greedy_in_decreasing_score_and_gated_by_the_previous_radius() -> None:
    t = CentreTracker()
    (a,) = _step(t, [(50, 50)], [(0, 0)], radius=[5.0])
    # two candidates for one previous centre: the higher score takes it, the other is new
    ids = _step(t, [(50, 52), (50, 51)], [(0, 0), (0, 0)], scores=[0.9, 0.5])
    assert ids[0] == a and ids[1] != a
    # beyond the previous instance's radius: a new track, even as the nearest centre
    t = CentreTracker()
    (a,) = _step(t, [(50, 50)], [(0, 0)], radius=[5.0])
    (b,) = _step(t, [(50, 56)], [(0, 0)], radius=[100.0])
    assert b != a


def test_only_the_same_class_matches() -> None:
    t = CentreTracker()
    (a,) = _step(t, [(50, 50)], [(0, 0)], classes=[CAR])
    (b,) = _step(t, [(50, 50)], [(0, 0)], classes=[PERSON])
    assert b != a


def test_instance_radius_is_the_geometric_mean_of_the_mask_extent() -> None:
    index = np.zeros((40, 40), np.int32)
    index[5:10, 3:23] = 1  # extent 4 x 19 (max - min, as deeplab2)
    index[30, 30] = 2  # one pixel: radius 0
    assert np.allclose(instance_radius(index, 3), [np.sqrt(4 * 19), 0.0, 0.0])
