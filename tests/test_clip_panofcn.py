"""Clip-PanoFCN's inference glue on hand-made kernels and features: one fused kernel is one id
through the clip; the kernel tracker links adjacent clips by their fused kernels."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import vpseg.models.panoptic_fcn_family as family  # noqa: E402
from vpseg.core.labels import get_label_space  # noqa: E402
from vpseg.models.panoptic_fcn import FrameKernels, PanopticFCNPost  # noqa: E402
from vpseg.models.registry import InferenceOptions  # noqa: E402
from vpseg.tracking import FrameSegments, make_tracker  # noqa: E402

LABELS = get_label_space("kitti-step")
CAR, ROAD = 13, 0
H, W = 64, 96  # frames; the encoded feature is at stride 4: 16 x 24


class _Stub(torch.nn.Module):
    """Stands in for the network: ``frame_kernels`` is replaced, so its outputs are unused."""

    def __init__(self) -> None:
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> dict:
        return {}


def _feature(car_box: tuple[int, int, int, int]) -> torch.Tensor:
    """D = 3 feature: channel 0 large on the car, channel 1 large elsewhere (road)."""
    y0, y1, x0, x1 = car_box
    f = torch.full((3, H // 4, W // 4), -10.0)
    f[1] = 10.0
    f[0, y0:y1, x0:x1] = 10.0
    f[1, y0:y1, x0:x1] = -10.0
    return f


def _kernels(feature: torch.Tensor, car_kernel: list[float]) -> FrameKernels:
    return FrameKernels(kernels=torch.tensor([car_kernel, [0.0, 1.0, 0.0]]),
                        classes=torch.tensor([CAR, ROAD]), scores=torch.tensor([0.9, 0.8]),
                        is_thing=torch.tensor([True, False]), feature=feature)


def test_one_fused_kernel_is_one_id_through_the_clip(monkeypatch) -> None:
    # the car moves right over 3 frames; each frame's kernel differs slightly (cos > 0.9)
    boxes = [(4, 8, 2 + 4 * t, 6 + 4 * t) for t in range(3)]
    car = [[1.0, 0.0, 0.05 * t] for t in range(3)]
    per_frame = [_kernels(_feature(b), k) for b, k in zip(boxes, car, strict=True)]
    monkeypatch.setattr(family, "frame_kernels", lambda out, i, labels, post: per_frame[i])
    frames = [np.zeros((H, W, 3), np.uint8)] * 3
    things, semantic = family.segment_clip(_Stub(), frames, LABELS, InferenceOptions(clip=3),
                                           PanopticFCNPost(instance_threshold=0.0))
    assert [len(t) for t in things] == [1, 1, 1]
    assert len({int(t.clip_id[0]) for t in things}) == 1  # one kernel, one identity
    for t, (y0, y1, x0, x1) in zip(things, boxes, strict=True):
        expect = np.zeros((H, W), bool)
        expect[4 * y0 : 4 * y1, 4 * x0 : 4 * x1] = True
        got = t.index == 1  # bilinear upsampling from stride 4 moves the edges by a pixel or two
        assert (got & expect).sum() / (got | expect).sum() > 0.8
        assert got[4 * y0 + 2 : 4 * y1 - 2, 4 * x0 + 2 : 4 * x1 - 2].all()
        assert t.category.tolist() == [CAR]
    for s, t in zip(semantic, things, strict=True):
        assert (s[t.index == 0] == ROAD).all()
    # through a tracker: the same track id in every frame of the clip
    ids = make_tracker("kernel").update(things)
    assert len({int(i[0]) for i in ids}) == 1


def _frame(embedding: list[float], clip_id: int) -> FrameSegments:
    index = np.zeros((8, 8), np.int32)
    index[2:5, 2:5] = 1
    return FrameSegments(index=index, category=np.array([CAR]), score=np.array([0.9]),
                         embedding=np.array([embedding], np.float32),
                         clip_id=np.array([clip_id]))


def test_kernel_tracking_between_clips_merges_similar_and_starts_dissimilar() -> None:
    tracker = make_tracker("kernel")
    (a,) = tracker.update([_frame([1.0, 0.0, 0.0], 0)] * 2)[0].tolist()
    (same,) = tracker.update([_frame([0.95, 0.1, 0.0], 3)] * 2)[0].tolist()  # similar kernel
    assert same == a
    (new,) = tracker.update([_frame([0.0, 0.0, 1.0], 0)] * 2)[0].tolist()  # below the threshold
    assert new != a
