"""Clip-PanoFCN's clip-fused kernels on hand-made kernels."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from vpseg.models.clip_fusion import fuse_clip_kernels  # noqa: E402

CAR, PERSON, ROAD, SKY = 13, 11, 0, 10


def _frame(rows, classes, scores, things):
    return (torch.tensor(rows, dtype=torch.float32), torch.tensor(classes),
            torch.tensor(scores, dtype=torch.float32), torch.tensor(things))


def _fuse(frames, threshold=0.9):
    k, c, s, t = zip(*frames, strict=True)
    return fuse_clip_kernels(k, c, s, t, threshold)


def test_identical_kernels_of_one_category_merge_dissimilar_ones_stay_apart() -> None:
    a, b = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]
    fused = _fuse([_frame([a, b], [CAR, CAR], [0.9, 0.8], [True, True]),
                   _frame([a, b], [CAR, CAR], [0.7, 0.6], [True, True])])
    assert len(fused) == 2
    assert fused.members == [[(0, 0), (1, 0)], [(0, 1), (1, 1)]]
    assert torch.allclose(fused.kernels, torch.tensor([a, b]))
    assert fused.scores.tolist() == pytest.approx([0.9, 0.8])  # the best member's


def test_similar_kernels_of_different_categories_stay_apart() -> None:
    a = [1.0, 0.0, 0.0]
    fused = _fuse([_frame([a], [CAR], [0.9], [True]), _frame([a], [PERSON], [0.8], [True])])
    assert len(fused) == 2 and sorted(fused.classes.tolist()) == [PERSON, CAR]


def test_a_kernel_joins_the_best_object_it_is_similar_to_and_the_mean_is_the_fused_kernel() -> None:
    k1, k2 = [1.0, 0.1, 0.0], [1.0, -0.1, 0.0]  # cos(k1, k2) = 0.98 > 0.9
    fused = _fuse([_frame([k1], [CAR], [0.9], [True]), _frame([k2], [CAR], [0.5], [True])])
    assert len(fused) == 1
    assert torch.allclose(fused.kernels[0], torch.tensor([1.0, 0.0, 0.0]))
    apart = _fuse([_frame([k1], [CAR], [0.9], [True]), _frame([k2], [CAR], [0.5], [True])],
                  threshold=0.99)
    assert len(apart) == 2


def test_stuff_kernels_are_averaged_over_the_clip_per_category() -> None:
    fused = _fuse([_frame([[2.0, 0.0], [0.0, 1.0]], [ROAD, SKY], [0.8, 0.6], [False, False]),
                   _frame([[0.0, 2.0]], [ROAD], [0.4], [False])])
    by_class = {int(c): i for i, c in enumerate(fused.classes)}
    assert set(by_class) == {ROAD, SKY}
    assert torch.allclose(fused.kernels[by_class[ROAD]], torch.tensor([1.0, 1.0]))  # dissimilar, yet one
    assert float(fused.scores[by_class[ROAD]]) == pytest.approx(0.6)
    assert not fused.is_thing.any()


def test_an_empty_clip_fuses_to_nothing() -> None:
    fused = _fuse([_frame([], [], [], []) for _ in range(2)])
    assert len(fused) == 0
