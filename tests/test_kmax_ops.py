"""kMaX building blocks against their definitions on hand cases."""

import itertools

import pytest

torch = pytest.importorskip("torch")

from vpseg.models.kmax_ops import (  # noqa: E402
    clip_to_image,
    hungarian_match,
    image_to_clip,
    kmeans_cross_attention,
    pq_similarity,
)


def test_kmeans_cross_attention_equals_its_definition():
    # 2 centres, 3 pixels in 2-D: pixel 0 and 2 are closer (by dot product) to centre 0
    centers = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    keys = torch.tensor([[[2.0, 1.0], [0.0, 3.0], [1.0, -1.0]]])
    values = torch.tensor([[[1.0, 1.0], [10.0, 10.0], [100.0, 100.0]]])
    updated, assignment = kmeans_cross_attention(centers, keys, values)
    assert assignment.tolist() == [[[1, 0, 1], [0, 1, 0]]]
    assert updated.tolist() == [[[1.0 + 101, 0.0 + 101], [0.0 + 10, 1.0 + 10]]]
    # the same, by loops: argmax over clusters, then sums of assigned values
    for p in range(3):
        best = max(range(2), key=lambda n: float(centers[0, n] @ keys[0, p]))
        assert assignment[0, best, p] == 1 and assignment[0, :, p].sum() == 1


def test_clip_reshape_is_exact_and_invertible():
    x = torch.arange(2 * 3 * 4 * 5 * 6, dtype=torch.float32).reshape(2, 3, 4, 5, 6)  # B T C H W
    image = clip_to_image(x)
    assert image.shape == (2, 4, 15, 6)
    for b, t, c, h, w in itertools.product(range(2), range(3), range(4), range(5), range(6)):
        if (b + t + c + h + w) % 7 == 0:  # spot checks of the index map
            assert image[b, c, t * 5 + h, w] == x[b, t, c, h, w]
    assert torch.equal(image_to_clip(image, 3), x)
    with pytest.raises(ValueError):
        image_to_clip(image, 4)


def test_hungarian_matching_picks_the_optimum():
    # 3 predictions, 2 ground-truth masks over 4 pixels; classes (C = 2, + void)
    probs = torch.tensor([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.5, 0.4, 0.1]])
    masks = torch.tensor([[1.0, 1, 0, 0], [0, 0, 1, 1], [1, 1, 1, 1]])
    gt_classes = torch.tensor([0, 1])
    gt_masks = torch.tensor([[1.0, 1, 0, 0], [0, 0, 1, 1]])
    sim = pq_similarity(probs, masks, gt_classes, gt_masks)
    rows, cols = hungarian_match(sim)
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 0), (1, 1)]
    best = max(itertools.permutations(range(3), 2), key=lambda p: float(sim[p[0], 0] + sim[p[1], 1]))
    assert best == (0, 1)  # brute force agrees
