"""Panoptic-DeepLab / Motion-DeepLab: network, targets, losses and post-processing (CPU, tiny
inputs)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("torch")

import torch  # noqa: E402

from vpseg.core.labels import get_label_space  # noqa: E402
from vpseg.core.synthetic import SynthConfig, generate_video  # noqa: E402
from vpseg.models.layers import count_parameters  # noqa: E402
from vpseg.models.panoptic_deeplab import (  # noqa: E402
    CONFIGS,
    DeepLabConfig,
    DeepLabLoss,
    DeepLabLossWeights,
    DeepLabPost,
    build_deeplab,
    deeplab_targets,
    postprocess,
)

LABELS = get_label_space("kitti-step")  # Cityscapes ids; things: person 11, car 13
C = LABELS.max_id + 1
DIV = LABELS.label_divisor
VOID = LABELS.ignore_label * DIV
ROAD, SKY, POLE, PERSON, CAR = 0, 10, 5, 11, 13


# -- network ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["panoptic-deeplab-tiny", "motion-deeplab-tiny"])
def test_forward_shapes(name: str) -> None:
    torch.manual_seed(0)
    model = build_deeplab(name, C).eval()
    chans = 7 if "motion" in name else 3
    assert model.input_channels == chans
    with torch.no_grad():
        out = model(torch.rand(2, chans, 64, 96))
    want = {"semantic": (2, C, 64, 96), "center": (2, 1, 64, 96), "offset": (2, 2, 64, 96)}
    if chans == 7:
        want["prev_offset"] = (2, 2, 64, 96)
    assert {k: tuple(v.shape) for k, v in out.items()} == want
    with pytest.raises(ValueError, match="images"):
        model(torch.rand(1, 10 - chans, 64, 96))
    with pytest.raises(ValueError, match="divisible by 32"):
        model(torch.rand(1, chans, 48, 96))


def test_motion_input_starts_as_the_single_frame_network() -> None:
    """The previous frame and heatmap channels of the first conv start at 0, so a fresh
    Motion-DeepLab ignores them; the training step below shows that they get gradients."""
    torch.manual_seed(0)
    model = build_deeplab("motion-deeplab-tiny", C).eval()
    x = torch.rand(1, 7, 64, 64)
    y = x.clone()
    y[:, 3:] = torch.rand(1, 4, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x)["semantic"], model(y)["semantic"], atol=1e-6)


def test_offsets_are_in_input_pixels() -> None:
    """The offset heads predict at stride 4; upsampled to the input, their values are scaled by
    4 (deeplab2 ``resize_and_rescale_offsets``). A head that outputs (1, -2) stride-4 pixels
    everywhere gives (4, -8) input pixels."""
    model = build_deeplab("motion-deeplab-tiny", C).eval()
    for head in (model.offset_head, model.prev_offset_head):
        assert head is not None
        final = head[-1]
        assert isinstance(final, torch.nn.Conv2d) and final.bias is not None
        torch.nn.init.zeros_(final.weight)
        with torch.no_grad():
            final.bias.copy_(torch.tensor([1.0, -2.0]))
    with torch.no_grad():
        out = model(torch.rand(1, 7, 64, 96))
    for key in ("offset", "prev_offset"):
        assert torch.allclose(out[key][0, 0], torch.full((64, 96), 4.0))
        assert torch.allclose(out[key][0, 1], torch.full((64, 96), -8.0))


def test_r50_parameter_count() -> None:
    # Published: Axial-DeepLab (Wang et al., ECCV 2020, arXiv 2003.07853), Table 6, Cityscapes
    # val: Panoptic-DeepLab with "ResNet-50 (our impl.)" + ASPP, output stride 16: 30.0M
    # parameters (24.8M without the ASPPs). Ours, 19 classes: ResNet-50 without fc 23,508,032;
    # two separable ASPPs of 3,019,776; decoders and heads 395,462.
    published = 30.0e6
    model = build_deeplab("panoptic-deeplab-r50", 19)
    n = count_parameters(model)
    assert abs(n - published) / published < 0.05
    # plain (not separable) atrous convs would add ~25M: the bound tells the two apart
    plain = build_deeplab(replace(CONFIGS["panoptic-deeplab-r50"], aspp_separable=False), 19)
    assert count_parameters(plain) > 1.5 * published
    # the paper's output stride 16: the last stage is dilated, not strided
    with torch.no_grad():
        feats = model.backbone.eval()(torch.rand(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 4]
    # Motion-DeepLab adds 4 input channels to conv1 (7x7, 64) and a 32-wide previous-offset head
    motion = build_deeplab("motion-deeplab-r50", 19)
    assert count_parameters(motion) - n == 4 * 64 * 49 + 7_682


def test_configs_and_errors() -> None:
    assert set(CONFIGS) == {"panoptic-deeplab-r50", "panoptic-deeplab-tiny",
                            "motion-deeplab-r50", "motion-deeplab-tiny"}
    assert CONFIGS["motion-deeplab-tiny"].motion and not CONFIGS["panoptic-deeplab-tiny"].motion
    with pytest.raises(ValueError, match="unknown model"):
        build_deeplab("panoptic-deeplab-x71", C)
    with pytest.raises(ValueError, match="output stride 16"):
        build_deeplab(DeepLabConfig(backbone="tiny", output_stride=16), C)


# -- targets ---------------------------------------------------------------------------------

def _scene() -> torch.Tensor:
    """64×96: road, a void border row band, two touching cars, a person, a crowd of cars."""
    pan = torch.full((1, 64, 96), ROAD * DIV, dtype=torch.int64)
    pan[0, :3] = VOID
    pan[0, 10:21, 10:31] = CAR * DIV + 1  # 11×21, centre (15, 20)
    pan[0, 10:21, 31:46] = CAR * DIV + 2  # 11×15, centre (15, 38), touching car 1
    pan[0, 40:55, 60:67] = PERSON * DIV + 5  # 15×7, centre (47, 63)
    pan[0, 40:50, 10:20] = CAR * DIV  # crowd: thing class, instance 0
    return pan


CENTRES = {CAR * DIV + 1: (15, 20), CAR * DIV + 2: (15, 38), PERSON * DIV + 5: (47, 63)}


def _grid(h: int, w: int) -> torch.Tensor:
    return torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"))


def test_targets_centres_offsets_and_weights() -> None:
    pan = _scene()
    t = deeplab_targets(pan, LABELS, small_instance_area=200)
    heat = t["center"][0, 0]
    yx = _grid(64, 96)
    instance_px = torch.zeros(64, 96, dtype=torch.bool)
    for pid, (cy, cx) in CENTRES.items():
        mask = pan[0] == pid
        instance_px |= mask
        assert heat[cy, cx] == 1.0  # the peak at the (rounded) centre of mass
        assert heat[mask].max() == 1.0
        # every pixel's offset points to its instance's centre
        moved = yx[:, mask] + t["offset"][0][:, mask].long()
        assert torch.equal(moved, torch.tensor([[cy], [cx]]).expand_as(moved))
    # Gaussian with sigma 8, cut off 3·sigma + 1 = 25 pixels from the centre
    assert heat[47, 63 + 8] == pytest.approx(math.exp(-0.5), rel=1e-6)
    assert heat[47, 63 + 25] == pytest.approx(math.exp(-625 / 128), rel=1e-5)
    assert heat[47, 63 + 26] == 0.0
    # the only local maxima are the three centres (none for the crowd)
    pooled = torch.nn.functional.max_pool2d(heat[None, None], 3, 1, 1)[0, 0]
    peaks = {tuple(p) for p in torch.nonzero((heat == pooled) & (heat > 0)).tolist()}
    assert peaks == set(CENTRES.values())
    assert heat[44, 14] == 0.0  # the crowd's centre, far from every instance
    # weights: offsets on instance pixels only; centre everywhere but void and crowd
    crowd = pan[0] == CAR * DIV
    void = pan[0] == VOID
    assert torch.equal(t["offset_weight"][0, 0].bool(), instance_px)
    assert torch.equal(t["offset"][0][:, ~instance_px], torch.zeros(2, int((~instance_px).sum())))
    assert torch.equal(t["center_weight"][0, 0].bool(), ~(crowd | void))
    # semantic: void -1, crowd keeps its class; small instances (< 200 px) weighted 3
    sem = t["semantic"][0]
    assert sem.dtype == torch.int64
    assert bool((sem[void] == -1).all()) and bool((sem[crowd] == CAR).all())
    assert bool((sem[pan[0] == PERSON * DIV + 5] == PERSON).all())
    weight = t["semantic_weight"][0]
    assert bool((weight[pan[0] == CAR * DIV + 1] == 1.0).all())  # 231 px
    assert bool((weight[pan[0] == CAR * DIV + 2] == 3.0).all())  # 165 px
    assert bool((weight[pan[0] == PERSON * DIV + 5] == 3.0).all())  # 105 px
    assert bool((weight[crowd] == 1.0).all()) and bool((weight[void] == 0.0).all())
    assert "prev_offset" not in t


def test_previous_frame_targets() -> None:
    pan = _scene()
    prev = torch.full_like(pan, ROAD * DIV)
    prev[0, 12:23, 7:28] = CAR * DIV + 1  # car 1 a frame earlier: centre (17, 17)
    prev[0, 40:55, 60:67] = PERSON * DIV + 5  # the person did not move
    prev[0, 10:21, 31:46] = CAR * DIV + 3  # car 2's place held by another track: car 2 is new
    t = deeplab_targets(pan, LABELS, previous=prev)
    yx = _grid(64, 96)
    car1, car2 = pan[0] == CAR * DIV + 1, pan[0] == CAR * DIV + 2
    person = pan[0] == PERSON * DIV + 5
    # the previous heatmap (Motion-DeepLab's 7th input channel) peaks at the previous centres
    prev_heat = t["prev_center"][0, 0]
    assert prev_heat[17, 17] == 1.0 and prev_heat[47, 63] == 1.0 and prev_heat[15, 38] == 1.0
    # a moved instance: each current pixel points to the track's centre in the previous frame
    moved = yx[:, car1] + t["prev_offset"][0][:, car1].long()
    assert torch.equal(moved, torch.tensor([[17], [17]]).expand_as(moved))
    assert torch.equal(t["prev_offset"][0][:, person], t["offset"][0][:, person])
    # an instance that was not in the previous frame (same place, other track id): no target
    weight = t["prev_offset_weight"][0, 0]
    assert torch.equal(weight.bool(), car1 | person)
    assert not bool(t["prev_offset"][0][:, car2].any())
    # deeplab2's training jitter: reproducible, and the offsets follow the jittered centres
    a = deeplab_targets(pan, LABELS, previous=prev, prev_noise=torch.Generator().manual_seed(3))
    b = deeplab_targets(pan, LABELS, previous=prev, prev_noise=torch.Generator().manual_seed(3))
    assert torch.equal(a["prev_center"], b["prev_center"])
    assert torch.equal(a["prev_offset"], b["prev_offset"])
    target = yx[:, car1] + a["prev_offset"][0][:, car1].long()
    assert a["prev_center"][0, 0, target[0, 0], target[1, 0]] == 1.0
    assert not torch.equal(a["prev_offset"], t["prev_offset"])


# -- loss ------------------------------------------------------------------------------------

def _perfect(t: dict) -> dict:
    """The targets as outputs; semantic logits 20 on the right class, 0 on the others (in
    float64, so that the ~1e-8 cross-entropy left is not rounded to 0 and can grow)."""
    sem = t["semantic"].clamp(min=0)
    logits = torch.nn.functional.one_hot(sem, C).permute(0, 3, 1, 2).double() * 20.0
    return {"semantic": logits, "center": t["center"].clone(), "offset": t["offset"].clone(),
            "prev_offset": t["prev_offset"].clone()}


def test_each_loss_is_minimal_at_the_perfect_prediction() -> None:
    pan = torch.cat([_scene(), _scene().flip(-1)])
    t = deeplab_targets(pan, LABELS, previous=pan.roll(2, -1))
    loss = DeepLabLoss()
    perfect = _perfect(t)
    total, parts = loss(perfect, t)
    assert parts["center"] == 0.0 and parts["offset"] == 0.0 and parts["prev_offset"] == 0.0
    assert parts["semantic"] < 1e-6 and float(total) < 1e-6
    gen = torch.Generator().manual_seed(0)
    for key in ("semantic", "center", "offset", "prev_offset"):
        for scale in (1e-2, 1.0, 10.0):
            out = dict(perfect)
            noise = torch.randn(perfect[key].shape, generator=gen, dtype=perfect[key].dtype)
            out[key] = perfect[key] + scale * noise
            _, worse = loss(out, t)
            assert worse[key] > parts[key], (key, scale)
            assert worse["total"] > parts["total"]
    # only weighted pixels count: changing the heatmap on void and crowd costs nothing
    out = dict(perfect)
    out["center"] = perfect["center"] + 5.0 * (1 - t["center_weight"])
    assert loss(out, t)[1]["center"] == 0.0


def test_loss_normalisation_follows_deeplab2() -> None:
    pan = _scene()
    t = deeplab_targets(pan, LABELS, previous=pan)
    perfect = _perfect(t)
    out = dict(perfect)
    # an error of 1 in both offset channels on every instance pixel: L1 1 per pixel, divided
    # by the number of non-zero pixel losses -> 1, times the weight 0.01
    out["offset"] = perfect["offset"] + 1.0
    out["center"] = perfect["center"] + 0.1  # MSE 0.01 where weighted -> 0.01 · 200
    _, parts = DeepLabLoss()(out, t)
    assert parts["offset"] == pytest.approx(0.01, rel=1e-5)
    assert parts["center"] == pytest.approx(2.0, rel=1e-4)
    # cross-entropy: with uniform logits every valid pixel costs log C times its weight; the
    # top 20 % of all pixels are kept and averaged over the non-zero ones
    out["semantic"] = torch.zeros_like(perfect["semantic"])
    _, parts = DeepLabLoss(DeepLabLossWeights(top_k_percent=0.2))(out, t)
    per_pixel = np.sort((math.log(C) * t["semantic_weight"]).flatten().numpy())[::-1]
    top = per_pixel[: round(0.2 * per_pixel.size)]
    assert parts["semantic"] == pytest.approx(top.sum() / np.count_nonzero(top), rel=1e-5)
    with pytest.raises(ValueError, match="top_k_percent"):
        DeepLabLossWeights(top_k_percent=0.0)


# -- post-processing -------------------------------------------------------------------------

def _gaussian(h: int, w: int, cy: int, cx: int, peak: float, sigma: float = 3.0) -> torch.Tensor:
    yx = _grid(h, w).float()
    return peak * torch.exp(-((yx[0] - cy) ** 2 + (yx[1] - cx) ** 2) / (2 * sigma**2))


def _logits(classes: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.one_hot(classes, C).permute(2, 0, 1).float() * 10.0


def _offsets_to(mask: torch.Tensor, cy: float, cx: float, off: torch.Tensor) -> None:
    yx = _grid(*mask.shape).float()
    off[0][mask] = cy - yx[0][mask]
    off[1][mask] = cx - yx[1][mask]


def test_postprocess_recovers_touching_instances_and_stuff() -> None:
    h, w = 40, 64
    classes = torch.full((h, w), ROAD)
    classes[:20] = SKY
    masks = {"a": torch.zeros(h, w, dtype=torch.bool), "b": torch.zeros(h, w, dtype=torch.bool),
             "p": torch.zeros(h, w, dtype=torch.bool)}
    masks["a"][8:16, 8:20] = True
    masks["b"][8:16, 20:32] = True  # touching car a
    masks["p"][22:36, 44:50] = True
    classes[masks["a"] | masks["b"]] = CAR
    classes[masks["p"]] = PERSON
    classes[30:33, 5:8] = POLE  # 9 pixels of stuff: below stuff_area
    centres = {"a": (11, 13, 0.9), "b": (11, 26, 0.8), "p": (28, 46, 0.7)}
    heat = torch.zeros(h, w)
    off = torch.zeros(2, h, w)
    for key, (cy, cx, peak) in centres.items():
        heat = torch.maximum(heat, _gaussian(h, w, cy, cx, peak))
        _offsets_to(masks[key], cy, cx, off)
    heat[35, 20] = 0.05  # a weak peak on the road: below the threshold
    pred = postprocess(_logits(classes), heat[None], off, LABELS)
    assert pred.instance.dtype == np.int32 and pred.semantic.dtype == np.int64
    for k, key in enumerate(("a", "b", "p"), start=1):  # in score order
        assert np.array_equal(pred.instance == k, masks[key].numpy()), key
    assert pred.category.tolist() == [CAR, CAR, PERSON]
    assert pred.score == pytest.approx([0.9, 0.8, 0.7])
    assert pred.center.tolist() == [[11, 13], [11, 26], [28, 46]]
    want = classes.numpy().copy()
    want[30:33, 5:8] = LABELS.ignore_label  # the small stuff region is void
    assert np.array_equal(pred.semantic, want)
    pan = pred.panoptic(LABELS)
    assert set(np.unique(pan[masks["a"].numpy()])) == {CAR * DIV + 1}
    assert set(np.unique(pan[masks["p"].numpy()])) == {PERSON * DIV + 3}
    assert pan[0, 0] == SKY * DIV and pan[31, 6] == VOID
    # with no area limit the pole stays; the semantic score scales by the class probability
    pred = postprocess(_logits(classes), heat[None], off, LABELS,
                       DeepLabPost(stuff_area=0, semantic_score=True))
    assert pred.semantic[31, 6] == POLE
    prob = torch.softmax(_logits(classes)[:, 10, 10], 0)[CAR].item()
    assert pred.score[0] == pytest.approx(0.9 * prob, rel=1e-5)


def test_postprocess_threshold_and_nms() -> None:
    h, w = 40, 64
    classes = torch.full((h, w), ROAD)
    car = torch.zeros(h, w, dtype=torch.bool)
    car[4:12, 4:16] = True
    classes[car] = CAR
    off = torch.zeros(2, h, w)
    _offsets_to(car, 5, 5, off)  # every car pixel points to (5, 5)
    heat = torch.zeros(h, w)
    heat[5, 5] = 0.05  # below the 0.1 threshold
    heat[30, 50] = 0.5
    pred = postprocess(_logits(classes), heat[None], off, LABELS)
    assert pred.center.tolist() == [[30, 50]]  # the weak peak is no centre
    assert np.array_equal(pred.instance == 1, car.numpy())
    pred = postprocess(_logits(classes), heat[None], off, LABELS,
                       DeepLabPost(center_threshold=0.01))
    assert pred.center.tolist() == [[5, 5]]  # ... unless the threshold is lowered
    # two peaks 3 pixels apart, inside one 7×7 window: only the larger survives NMS, so the
    # pixels pointing between them (closer to the smaller) stay in one instance
    person = torch.zeros(h, w, dtype=torch.bool)
    person[20:34, 40:52] = True
    classes = torch.full((h, w), ROAD)
    classes[person] = PERSON
    left, right = person.clone(), person.clone()
    left[:, 46:] = False
    right[:, :46] = False
    off = torch.zeros(2, h, w)
    _offsets_to(left, 27, 45, off)
    _offsets_to(right, 27, 47, off)
    heat = torch.zeros(h, w)
    heat[27, 45], heat[27, 48] = 0.9, 0.85
    pred = postprocess(_logits(classes), heat[None], off, LABELS)
    assert pred.center.tolist() == [[27, 45]] and pred.score.tolist() == pytest.approx([0.9])
    assert np.array_equal(pred.instance == 1, person.numpy())
    pred = postprocess(_logits(classes), heat[None], off, LABELS, DeepLabPost(nms_kernel=3))
    assert len(pred.category) == 2  # a 3×3 window keeps both peaks and splits the person
    # nothing above the threshold: no instances
    pred = postprocess(_logits(classes), torch.zeros(1, h, w), off, LABELS)
    assert pred.category.shape == (0,) and pred.center.shape == (0, 2)
    assert not pred.instance.any()
    with pytest.raises(ValueError, match="odd"):
        DeepLabPost(nms_kernel=4)


# -- training --------------------------------------------------------------------------------

def _synthetic_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Two synthetic KITTI-STEP videos of 2 frames, 64×96: RGB B×T×3×H×W, ids B×T×H×W."""
    cfg = SynthConfig(height=64, width=96, frames=2)
    videos = [generate_video(cfg, LABELS, seed=0, index=i) for i in range(2)]
    rgb = np.stack([np.stack(v.rgb) for v in videos])  # type: ignore[arg-type]
    pan = np.stack([np.stack([np.asarray(p) for p in v.panoptic]) for v in videos])
    images = torch.from_numpy(rgb).permute(0, 1, 4, 2, 3).float() / 255.0
    return images, torch.from_numpy(pan.astype(np.int64))


@pytest.mark.parametrize("name", ["panoptic-deeplab-tiny", "motion-deeplab-tiny"])
def test_one_step_lowers_the_loss(name: str) -> None:
    torch.manual_seed(0)
    images, pan = _synthetic_batch()
    assert bool((pan[:, 1] % DIV > 0).any())  # the frames hold thing instances
    model = build_deeplab(name, C).train()
    if model.config.motion:
        t = deeplab_targets(pan[:, 1], LABELS, previous=pan[:, 0],
                            prev_noise=torch.Generator().manual_seed(0))
        x = torch.cat([images[:, 1], images[:, 0], t["prev_center"]], 1)
        assert bool(t["prev_offset_weight"].any())
    else:
        t = deeplab_targets(pan[:, 1], LABELS)
        x = images[:, 1]
    loss = DeepLabLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    torch.manual_seed(1)  # the same dropout masks before and after the step
    before, parts = loss(model(x), t)
    assert set(parts) == {"semantic", "center", "offset", "total"} | (
        {"prev_offset"} if model.config.motion else set())
    opt.zero_grad()
    before.backward()
    first = next(model.backbone.parameters())  # the (widened) first convolution
    assert first.grad is not None and bool(first.grad.abs().sum() > 0)
    opt.step()
    torch.manual_seed(1)
    with torch.no_grad():
        _, after = loss(model(x), t)
    assert after["total"] < parts["total"]


def test_center_heatmap_is_the_center_target() -> None:
    from vpseg.models.panoptic_deeplab import center_heatmap

    video = generate_video(SynthConfig(height=64, width=96, frames=1, objects=6), LABELS,
                           seed=3, index=0)
    pan = torch.from_numpy(np.asarray(video.panoptic[0]).astype(np.int64))
    heat = center_heatmap(pan, LABELS)
    assert heat.max() == 1.0
    assert torch.equal(heat, deeplab_targets(pan[None], LABELS)["center"][0, 0])
