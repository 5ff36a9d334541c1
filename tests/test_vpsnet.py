"""VPSNet: UPSNet's panoptic head on a hand-made overlap of a thing box and a stuff region; flow
warping exact for a known shift; the track head's affinity and VPSNet's association on hand-made
embeddings; the losses minimal at a perfect prediction; the targets; the command-line path."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

import torch.nn.functional as F  # noqa: E402

from vpseg.cli.main import main  # noqa: E402
from vpseg.core.labels import get_label_space  # noqa: E402
from vpseg.models.registry import get_model  # noqa: E402
from vpseg.models.vpsnet import (  # noqa: E402
    CONFIGS,
    TrackHead,
    VPSNet,
    VPSNetConfig,
    correlation,
    panoptic_logits,
    paste_mask,
    warp,
)
from vpseg.models.vpsnet_family import (  # noqa: E402
    ClassSortTracker,
    VPSNetTracker,
    frame_targets,
)
from vpseg.tracking import FrameSegments  # noqa: E402

ROAD, SKY, CAR, PERSON = 0, 1, 2, 3  # channels of a hand-made 4-class semantic head


def test_panoptic_head_resolves_a_thing_box_over_a_stuff_region_as_upsnet() -> None:
    h, w = 8, 10
    sem = torch.zeros(4, h, w)
    sem[ROAD] = 2.0  # road everywhere ...
    sem[CAR, 2:6, 3:8] = 1.5  # ... the semantic head thinks "car" a bit less, inside the car
    box = torch.tensor([[3.0, 2.0, 7.9, 5.9]])  # x1, y1, x2, y2: truncated to columns 3..7, rows 2..5
    mask = torch.full((1, 4, 4), -3.0)
    mask[0, :, 2:] = 3.0  # the mask head: the car is the right half of its box
    logits = panoptic_logits(sem, [ROAD, SKY], box, [CAR], mask)
    assert logits.shape == (3, h, w)  # road, sky, one instance; no unknown channel (VPSNet)
    torch.testing.assert_close(logits[:2], sem[[ROAD, SKY]])  # stuff = their semantic logits
    inst = logits[2]
    pasted, (rows, cols) = paste_mask(mask[0], box[0], h, w)
    assert (rows, cols) == (slice(2, 6), slice(3, 8))
    expect = torch.zeros(h, w)
    expect[rows, cols] = pasted[rows, cols] + sem[CAR, rows, cols]  # mask + semantic of its class
    torch.testing.assert_close(inst, expect)
    assert (inst[:, :3] == 0).all() and (inst[:2] == 0).all()  # zero outside the box
    winner = logits.argmax(0)
    # inside the box: the car where mask + semantic (≈ 3 + 1.5) beats road (2), road where the
    # mask says no (−3 + 1.5); outside the box, road
    assert (winner[2:6, 6:8] == 2).all() and (winner[2:6, 3:5] == 0).all()
    assert (winner[:2] == 0).all() and (winner[:, :3] == 0).all()
    # UPSNet's unknown channel: max over the thing classes' semantic logits minus max over the
    # instance channels (a pixel the semantic head calls a thing that no instance claims)
    with_unknown = panoptic_logits(sem, [ROAD, SKY], box, [CAR], mask, unknown=True,
                                   thing_classes=[CAR, PERSON])
    assert with_unknown.shape == (4, h, w)
    torch.testing.assert_close(with_unknown[3], torch.maximum(sem[CAR], sem[PERSON]) - inst)


def test_flow_warping_with_a_known_shift_is_exact_away_from_borders() -> None:
    torch.manual_seed(0)
    target = torch.randn(1, 5, 16, 20)
    dx, dy = 3, -2
    # the reference shows the target's content moved by (dx, dy): ref(x + d) = target(x)
    reference = torch.roll(target, shifts=(dy, dx), dims=(2, 3))
    flow = torch.zeros(1, 2, 16, 20)
    flow[:, 0], flow[:, 1] = dx, dy  # target -> reference
    aligned = warp(reference, flow)
    inner = (slice(None), slice(None), slice(2, 14), slice(0, 17))
    torch.testing.assert_close(aligned[inner], target[inner], rtol=0, atol=1e-5)
    # sub-pixel: bilinear sampling of a linear ramp is exact
    ramp = torch.arange(20.0).expand(1, 1, 16, 20).contiguous()
    half = torch.zeros(1, 2, 16, 20)
    half[:, 0] = 0.5
    torch.testing.assert_close(warp(ramp, half)[..., :19], ramp[..., :19] + 0.5)
    # outside the map the warped feature is zero
    far = torch.zeros(1, 2, 16, 20)
    far[:, 0] = 100.0
    assert warp(target, far).abs().max() == 0


def test_correlation_peaks_at_the_true_displacement() -> None:
    torch.manual_seed(1)
    a = torch.randn(1, 8, 12, 12)
    b = torch.roll(a, shifts=(1, 2), dims=(2, 3))  # b(x + (2, 1)) = a(x)
    corr = correlation(a, b, max_displacement=4)
    assert corr.shape == (1, 81, 12, 12)
    best = corr[0, :, 4:8, 4:8].mean((1, 2)).argmax().item()
    assert divmod(best, 9) == (4 + 1, 4 + 2)  # (dy, dx) = (1, 2) from the centre (4, 4)


def test_track_head_affinity_has_a_zero_new_object_column() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    r = torch.tensor([[3.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    a = TrackHead.affinity(q, r)
    torch.testing.assert_close(a, torch.tensor([[0.0, 3.0, 0.0, 1.0], [0.0, 0.0, 2.0, 2.0]]))


def _frame(boxes: list[tuple[int, int, int, int]], emb: list[list[float]], cats: list[int],
           scores: list[float] | None = None) -> FrameSegments:
    index = np.zeros((40, 40), np.int32)
    for k, (y0, y1, x0, x1) in enumerate(boxes):
        index[y0:y1, x0:x1] = k + 1
    return FrameSegments(index=index, category=np.array(cats), score=np.array(scores or [0.9] * len(cats)),
                         embedding=np.array(emb, np.float32))


def test_vpsnet_association_follows_embeddings_class_and_overlap() -> None:
    tracker = VPSNetTracker()
    a, b = [8.0, 0.0, 0.0], [0.0, 8.0, 0.0]
    first = tracker.update([_frame([(0, 10, 0, 10), (20, 30, 20, 30)], [a, b], [CAR, CAR])])[0]
    assert len(set(first.tolist())) == 2
    # the two cars swap places: the embeddings (dot products 64 vs 0) outweigh the box IoU (2.0)
    swapped = tracker.update([_frame([(0, 10, 0, 10), (20, 30, 20, 30)], [b, a], [CAR, CAR])])[0]
    assert swapped.tolist() == first[::-1].tolist()
    # an object of another class at a car's place, unlike both in appearance: new (the class
    # term, +10, goes to "new" and to objects of its class; the box and mask IoU give only +4)
    c = [0.0, 0.0, 8.0]
    person = tracker.update([_frame([(0, 10, 0, 10)], [c], [PERSON])])[0]
    assert person[0] not in first.tolist()
    # two detections claiming one object: the better score keeps it, the other is new
    both = tracker.update([_frame([(0, 10, 0, 10), (0, 10, 12, 22)], [a, a], [CAR, CAR], [0.95, 0.7])])[0]
    assert both[0] == first[0] and both[1] not in (first[0], first[1], person[0])
    # an object seen long ago is still remembered (memory of every object since the start)
    again = tracker.update([_frame([(20, 30, 20, 30)], [b], [CAR])])[0]
    assert again[0] == first[1]
    tracker.reset()
    assert tracker.update([_frame([(0, 10, 0, 10)], [a], [CAR])])[0].tolist() == [1]


def test_class_sort_numbers_each_class_by_score_in_every_frame() -> None:
    tracker = ClassSortTracker()
    f1 = tracker.update([_frame([(0, 5, 0, 5), (10, 15, 10, 15)], [[0.0]] * 2, [CAR, CAR], [0.6, 0.9])])[0]
    f2 = tracker.update([_frame([(0, 5, 0, 5), (10, 15, 10, 15)], [[0.0]] * 2, [CAR, CAR], [0.9, 0.6])])[0]
    assert f1.tolist() == f2[::-1].tolist()  # the same rank, the same id: no association


def test_losses_are_minimal_at_a_perfect_prediction() -> None:
    # the panoptic loss: cross-entropy of UPSNet's logits against the instance/stuff target
    h, w = 8, 10
    target = torch.zeros(h, w, dtype=torch.long)  # stuff channel 0 (road)
    target[2:6, 3:8] = 2  # instance 0 -> channel 2 (after road, sky)
    box = torch.tensor([[3.0, 2.0, 7.9, 5.9]])
    losses = []
    for s in (0.0, 1.0, 4.0, 16.0):
        sem = torch.zeros(4, h, w)
        sem[ROAD] = s * (target == 0).float() - s * (target != 0).float()
        sem[CAR, 2:6, 3:8] = s
        mask = torch.full((1, 4, 4), s)
        logits = panoptic_logits(sem, [ROAD, SKY], box, [CAR], mask)
        losses.append(float(F.cross_entropy(logits[None], target[None])))
    assert losses == sorted(losses, reverse=True) and losses[-1] < 1e-6
    # the track loss: lowest when each query's embedding points at its reference object (or,
    # for a new object, away from all of them); the head's embeddings have norm √10
    head = TrackHead(8, 64, scale=10.0)
    labels = torch.tensor([1, 2, 0])  # query 0 -> ref 0, query 1 -> ref 1, query 2 -> new
    r = torch.tensor([[1.0, 0.0], [0.0, 1.0]]) * 10 ** 0.5
    track = []
    for angle in (1.2, 0.8, 0.4, 0.0):  # from far off to aligned
        c, s_ = float(np.cos(angle)), float(np.sin(angle))
        q = torch.tensor([[c, s_], [s_, c], [-c, -c]]) * 10 ** 0.5 / torch.tensor([[1.0], [1.0], [2 ** 0.5 * c]])
        track.append(float(F.cross_entropy(TrackHead.affinity(q, r), labels)))
    assert track == sorted(track, reverse=True)
    emb = head(torch.randn(5, 8))
    torch.testing.assert_close(emb.norm(dim=1), torch.full((5,), 10 ** 0.5))


def test_frame_targets_from_a_panoptic_frame() -> None:
    labels = get_label_space("cityscapes-vps")
    car = labels.by_name("car").id
    road = labels.by_name("road").id
    div = labels.label_divisor
    pan = torch.full((16, 24), road * div, dtype=torch.long)
    pan[4:8, 4:12] = car * div + 3
    pan[10:14, 16:20] = car * div + 7
    pan[0, :] = labels.ignore_label * div
    t = frame_targets(pan, labels)
    assert t.ids.tolist() == [car * div + 3, car * div + 7] and t.labels.tolist() == [car + 1] * 2
    assert t.boxes.tolist() == [[4.0, 4.0, 12.0, 8.0], [16.0, 10.0, 20.0, 14.0]]
    assert t.masks.shape == (2, 16, 24) and int(t.masks[0].sum()) == 32
    assert (t.semantic[0] == -100).all() and int(t.semantic[5, 5]) == car
    assert t.panoptic.shape == (4, 6)  # stride 4
    stuff = list(labels.stuff_ids)
    assert int(t.panoptic[1, 1]) == len(stuff) and int(t.panoptic[3, 4]) == len(stuff) + 1
    assert int(t.panoptic[2, 0]) == stuff.index(road) and int(t.panoptic[0, 0]) == -100


def test_r50_modules_have_the_official_parameter_counts() -> None:
    # counted from the official code (mcahny/vps): the BFPTcea neck (TCEA 2,885,888 +
    # LiteFlowNetCorr 251,298 + refine 590,080), UPSNet's semantic head with 19 classes, the
    # MaskTrack head (12544 -> 1024 -> 1024)
    net = VPSNet(CONFIGS["vpsnet-r50"], 19)

    def count(m: torch.nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    assert count(net.neck) == 2_885_888 + 251_298 + 590_080
    assert count(net.semantic_head) == 1_146_697
    assert count(net.track_head) == 13_895_680
    assert count(VPSNet(get_model("vpsnet-r50-base").config, 19).neck) == 0  # parameter-free


def test_config_switches_and_errors() -> None:
    names = get_model("vpsnet-tiny").family.configs
    assert {"vpsnet-tiny", "vpsnet-tiny-base", "vpsnet-tiny-fuse", "vpsnet-tiny-track",
            "vpsnet-tiny-disjoined", "vpsnet-r50"} <= set(names)
    base = get_model("vpsnet-tiny-base").config
    assert not base.fuse and not base.track
    with pytest.raises(ValueError, match="disjoined needs both"):
        VPSNetConfig(fuse=False, disjoined=True)
    net = VPSNet(CONFIGS["vpsnet-tiny"], 19)
    assert not hasattr(VPSNet(get_model("vpsnet-tiny-base").config, 19), "track_head")
    with pytest.raises(ValueError, match="divisible by 32"):
        net.features(torch.rand(1, 3, 50, 64))
    with torch.no_grad():  # without targets: inference, frame after frame
        out = net.eval()(torch.rand(2, 3, 64, 64))
    assert len(out["boxes"]) == 2 and out["semantic"][0].shape == (19, 64, 64)


def test_segment_and_eval_from_a_checkpoint_in_the_cityscapes_vps_format(tmp_path, capsys) -> None:
    data, run, pred = tmp_path / "cvps", tmp_path / "run", tmp_path / "pred"
    assert main(["synth", str(data), "--format", "cityscapes-vps", "--videos", "1", "--frames", "20",
                 "--height", "64", "--width", "128", "--seed", "2"]) == 0
    assert main(["train", "--model", "vpsnet-tiny", "--format", "cityscapes-vps", "--crop", "64,128",
                 "--batch-size", "2", "--iters", "2", "--out", str(run), "--checkpoint-every", "0"]) == 0
    for tracker in ("vpsnet", "cls-sort", "iou"):
        out = pred / tracker
        assert main(["segment", str(data), "--input-format", "cityscapes-vps", "--split", "train",
                     "--checkpoint", str(run / "ckpt.pt"), "--out", str(out), "--format",
                     "cityscapes-vps", "--out-split", "train", "--tracker", tracker,
                     "--no-overlay"]) == 0
        assert main(["eval", str(data), str(out), "--format", "cityscapes-vps", "--split", "train",
                     "--vpq-preset", "cityscapes-vps", "--json", str(tmp_path / f"{tracker}.json")]) == 0
        result = json.loads((tmp_path / f"{tracker}.json").read_text())
        # every 5th frame annotated: 4 of 20, all four windows k = 0, 5, 10, 15 exist
        assert 0.0 <= result["vpq"]["VPQ"] <= 1.0 and result["config"]["frames"] == 4
