"""PanopticFCN: network, targets, losses and inference (CPU, tiny inputs)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("torch")

import torch  # noqa: E402

from vpseg.core.labels import get_label_space  # noqa: E402
from vpseg.core.synthetic import SynthConfig  # noqa: E402
from vpseg.engine.data import SyntheticClips, collate  # noqa: E402
from vpseg.models.layers import count_parameters  # noqa: E402
from vpseg.models.panoptic_fcn import (  # noqa: E402
    CONFIGS,
    FrameKernels,
    PanopticFCN,
    PanopticFCNConfig,
    PanopticFCNLoss,
    PanopticFCNLossWeights,
    PanopticFCNPost,
    build_panoptic_fcn,
    frame_kernels,
    fuse_kernels,
    masks_from_kernels,
    panoptic_fcn_targets,
    panoptic_from_masks,
    postprocess,
)

LABELS = get_label_space("kitti-step")  # Cityscapes ids; things: person 11, car 13
C = LABELS.max_id + 1
DIV = LABELS.label_divisor
VOID = LABELS.ignore_label * DIV
ROAD, SKY, PERSON, CAR = 0, 10, 11, 13
# one level (P3, stride 8) taking every instance: regions aligned to 8 pixels give binary maps
ONE_LEVEL = replace(CONFIGS["panopticfcn-tiny"], levels=(3,), thing_scales=((1, 4096),))


# -- network ---------------------------------------------------------------------------------

def test_forward_shapes() -> None:
    torch.manual_seed(0)
    model = build_panoptic_fcn("panopticfcn-tiny", C).eval()
    assert isinstance(model, PanopticFCN) and model.num_classes == C
    assert model.config is CONFIGS["panopticfcn-tiny"]
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 96))
    assert out["levels"] == [3, 4, 5]
    d = model.config.kernel_dim
    assert [tuple(p.shape) for p in out["position"]] == [(2, C, 8, 12), (2, C, 4, 6), (2, C, 2, 3)]
    assert [tuple(k.shape) for k in out["kernels"]] == [(2, d, 8, 12), (2, d, 4, 6), (2, d, 2, 3)]
    assert [tuple(k.shape) for k in out["stuff_kernels"]] == [(2, d, 8, 12), (2, d, 4, 6), (2, d, 2, 3)]
    assert tuple(out["feature"].shape) == (2, d, 16, 24)
    # position logits start at the focal-loss prior bias -2.19
    assert abs(float(out["position"][0].mean()) + 2.19) < 0.1
    with pytest.raises(ValueError, match="divisible by 32"):
        model(torch.rand(1, 3, 48, 96))
    with pytest.raises(ValueError, match="images"):
        model(torch.rand(1, 4, 64, 96))
    with pytest.raises(ValueError, match="unknown model"):
        build_panoptic_fcn("panopticfcn-r101", C)
    with pytest.raises(ValueError, match="thing_scales"):
        PanopticFCNConfig(levels=(3, 4))


def test_r50_parameter_count() -> None:
    # Published: 37.0M, Panoptic FCN R50 (36 epochs, COCO) in Table 1 (#P) of Panoptic SegFormer
    # (Li et al., CVPR 2022, arXiv 2109.03814); the official README gives no count. It is
    # checked against the official architecture (COCO: 80
    # thing + 54 stuff position outputs) counted from its modules (panopticfcn/head.py,
    # backbone_utils.py, config.py, detectron2 ResNet-50 + FPN with frozen BN = buffers):
    #   ResNet-50 conv weights                          23,454,912
    #   FPN: laterals + 3x3 outputs (bias) + P6 + P7      4,524,544
    #   semantic FPN: 7 3x3 convs 256 + GN                4,132,352
    #   feature encoder: coord + 3 3x3 convs to 64 (bias)   222,528
    #   position head: 3 DCNv2 (offset/mask conv) + GN,
    #     3x3 outputs 80 + 54                             2,266,583
    #   kernel head: coord + 3 convs + GN, 3x3 out 256    2,365,696
    #   thing and stuff embed 1x1 256->64                    32,896
    #   total                                            36,999,511
    official = 36_999_511
    n = count_parameters(build_panoptic_fcn("panopticfcn-r50", 80 + 54))
    assert abs(n - 37.0e6) / 37.0e6 < 0.05  # the published figure
    assert abs(n - official) / official < 0.05
    assert n - official == 53_120  # exactly the affine parameters of torchvision's BNs
    cfg = CONFIGS["panopticfcn-r50"]
    assert (cfg.fpn_channels, cfg.kernel_dim, cfg.levels) == (256, 64, (3, 4, 5, 6, 7))
    # without the deformable position convs the count drops by their 3 offset/mask convs
    plain = build_panoptic_fcn(replace(cfg, position_deform=False), 80 + 54)
    assert n - count_parameters(plain) == 3 * (256 * 27 * 9 + 27)


# -- targets ---------------------------------------------------------------------------------

def _scene() -> torch.Tensor:
    """64×96, every region aligned to 8 pixels: sky, road, two cars, a person, a crowd, void."""
    pan = torch.full((1, 64, 96), ROAD * DIV, dtype=torch.int64)
    pan[0, :16] = SKY * DIV
    pan[0, 24:40, 8:32] = CAR * DIV + 1  # 16×24, centre of mass (31.5, 19.5) -> P3 cell (4, 2)
    pan[0, 24:40, 48:72] = CAR * DIV + 2  # -> P3 cell (4, 7)
    pan[0, 40:56, 80:88] = PERSON * DIV + 7  # 16×8 -> P3 cell (6, 10)
    pan[0, 48:56, 16:32] = CAR * DIV  # crowd: no instance
    pan[0, 56:64, 0:8] = VOID
    return pan


def test_targets() -> None:
    pan = _scene()
    t = panoptic_fcn_targets(pan, LABELS, ONE_LEVEL)
    assert t.levels == [3]
    heat = t.center[0][0]
    assert heat.shape == (C, 8, 12)
    assert heat[CAR, 4, 2] == 1.0 and heat[CAR, 4, 7] == 1.0 and heat[PERSON, 6, 10] == 1.0
    # the peaks are the only local maxima; nothing on the stuff channels; crowd has no peak
    pooled = torch.nn.functional.max_pool2d(heat[None], 3, 1, 1)[0]
    peaks = {tuple(p) for p in torch.nonzero((heat == pooled) & (heat > 0)).tolist()}
    assert peaks == {(CAR, 4, 2), (CAR, 4, 7), (PERSON, 6, 10)}
    assert float(heat[ROAD].abs().sum()) == 0.0 and float(heat[SKY].abs().sum()) == 0.0
    # instances: masks at stride 4, classes, one level each
    assert t.classes[0].tolist() == [PERSON, CAR, CAR]  # by panoptic id
    assert t.masks[0].shape == (3, 16, 24) and t.assigned[0].tolist() == [[True]] * 3
    want = (pan[0, ::4, ::4] == CAR * DIV + 1).float()  # row 1
    assert torch.equal(t.masks[0][1], want)
    # stuff maps at the level: binary here, void and things negative for every stuff class
    sm = t.stuff[0][0]
    assert torch.equal(sm[SKY], (pan[0, ::8, ::8] == SKY * DIV).float())
    assert torch.equal(sm[ROAD], (pan[0, ::8, ::8] == ROAD * DIV).float())
    assert float(sm[CAR].sum()) == 0.0 and sm[ROAD, 7, 0] == 0.0  # void cell
    assert t.stuff_classes[0].tolist() == [ROAD, SKY]


def test_targets_assign_levels_by_size() -> None:
    """Tiny config: sqrt(box area) in [1, 48] -> P3, [24, 96] -> P4, [64, 4096] -> P5."""
    pan = torch.full((1, 128, 128), ROAD * DIV, dtype=torch.int64)
    pan[0, 8:24, 8:24] = CAR * DIV + 1  # 16 -> P3
    pan[0, 32:64, 32:64] = CAR * DIV + 2  # 32 -> P3 and P4
    pan[0, 40:120, 70:126] = CAR * DIV + 3  # sqrt(80*56) = 66.9 -> P4 and P5
    t = panoptic_fcn_targets(pan, LABELS, CONFIGS["panopticfcn-tiny"])
    assert t.assigned[0].tolist() == [[True, False, False], [True, True, False], [False, True, True]]
    assert [int((c[0, CAR] == 1.0).sum()) for c in t.center] == [2, 2, 1]


# -- loss ------------------------------------------------------------------------------------

def _perfect(t, d: int = 12) -> dict:
    """Outputs that predict the targets: confident position logits (±30), a feature whose
    channel 0 is 1 and channel 1 + j the j-th mask (instances, then stuff classes), and kernel
    maps holding ``40·e_{1+j} − 20·e_0`` on each region, so ``kernel · F`` is ±20."""
    b = len(t.masks)
    h4, w4 = t.masks[0].shape[-2:]
    pos = torch.where(t.center[0] >= 1.0, 30.0, -30.0)
    stuff_ch = t.stuff_ids
    pos[:, stuff_ch] = torch.where(t.stuff[0][:, stuff_ch] > 0, 30.0, -30.0)
    feat = torch.zeros(b, d, h4, w4)
    ker = torch.zeros(b, d, *pos.shape[-2:])
    sker = torch.zeros_like(ker)
    for i in range(b):
        feat[i, 0] = 1.0
        masks = torch.cat([t.masks[i], t.stuff_masks[i]])
        assert len(masks) + 1 <= d
        for j, m in enumerate(masks):
            feat[i, 1 + j] = m
            kern = torch.zeros(d)
            kern[0], kern[1 + j] = -20.0, 40.0
            region = torch.nn.functional.interpolate(m[None, None], size=pos.shape[-2:],
                                                     mode="bilinear")[0, 0] > 0.1
            target = ker if j < len(t.masks[i]) else sker
            target[i][:, region] = kern[:, None]
    return {"levels": [3], "position": [pos], "kernels": [ker], "stuff_kernels": [sker],
            "feature": feat}


def test_each_loss_is_minimal_at_the_perfect_prediction() -> None:
    pan = torch.cat([_scene(), _scene().flip(-1)])
    t = panoptic_fcn_targets(pan, LABELS, ONE_LEVEL)
    perfect = _perfect(t)
    loss = PanopticFCNLoss(PanopticFCNLossWeights(thing_focal="centernet"))
    total, parts = loss(perfect, t)
    assert set(parts) == {"pos_thing", "pos_stuff", "seg_thing", "seg_stuff", "total"}
    for key in ("pos_thing", "pos_stuff", "seg_thing", "seg_stuff"):
        assert 0.0 <= parts[key] < 1e-6, (key, parts[key])
    gen = torch.Generator().manual_seed(0)
    for key, names in (("position", ("pos_thing", "pos_stuff")),
                       ("feature", ("seg_thing", "seg_stuff"))):
        for scale in ((20.0, 40.0) if key == "position" else (0.5, 5.0)):
            out = dict(perfect)
            if key == "position":
                p = perfect["position"][0]
                out["position"] = [p + scale * torch.randn(p.shape, generator=gen)]
            else:
                f = perfect["feature"]
                out["feature"] = f + scale * torch.randn(f.shape, generator=gen)
            _, worse = loss(out, t)
            for name in names:
                assert worse[name] > parts[name] + 1e-4, (name, scale)
            assert worse["total"] > parts["total"]
    # the official (RetinaNet) focal loss on stuff is ~0 too: its region maps are binary here
    _, official = PanopticFCNLoss()(perfect, t)
    assert official["pos_stuff"] < 1e-6 and official["seg_thing"] < 1e-6


def test_official_focal_and_dice_normalisation() -> None:
    """Zero logits (p = 0.5): each element costs alpha_t · log 2 · 0.5²; the thing sum is
    divided by the number of (instance, level) assignments, the stuff one averaged per (image,
    class) and divided by the batch. A zero feature gives masks 0.5 everywhere: dice
    1 − Σt / (N/4 + Σt²) per kernel, times 3."""
    pan = _scene()
    t = panoptic_fcn_targets(pan, LABELS, ONE_LEVEL)
    out = _perfect(t)
    out["position"] = [torch.zeros_like(out["position"][0])]
    out["feature"] = torch.zeros_like(out["feature"])
    _, parts = PanopticFCNLoss()(out, t)
    y = t.center[0][:, t.thing_ids].double()
    per = (0.25 * y + 0.75 * (1 - y)) * math.log(2) * 0.25
    assert parts["pos_thing"] == pytest.approx(float(per.sum()) / 3, rel=1e-5)
    s = t.stuff[0][:, t.stuff_ids].double()
    per = (0.25 * s + 0.75 * (1 - s)) * math.log(2) * 0.25
    assert parts["pos_stuff"] == pytest.approx(float(per.flatten(2).mean(-1).sum()), rel=1e-5)
    n = 16 * 24

    def dice(m: torch.Tensor) -> float:
        return 1 - float(m.sum()) / (n / 4 + float((m**2).sum()))

    assert parts["seg_thing"] == pytest.approx(3 * np.mean([dice(m) for m in t.masks[0]]), rel=1e-5)
    assert parts["seg_stuff"] == pytest.approx(
        3 * np.mean([dice(m) for m in t.stuff_masks[0]]), rel=1e-5)
    with pytest.raises(ValueError, match="thing_focal"):
        PanopticFCNLossWeights(thing_focal="l2")


# -- inference -------------------------------------------------------------------------------

def _hand_frame() -> tuple[dict, dict[str, torch.Tensor]]:
    """One level (8×12 cells at stride 8, feature 16×24 at stride 4): sky (rows 0-1), car A
    (cells rows 2-4, cols 1-5) with two centre peaks (one weaker, same kernel), car B (rows 2-4,
    cols 7-10), road elsewhere. Feature channels: 1, car A, car B, road, sky."""
    h, w = 8, 12
    cells = {k: torch.zeros(h, w, dtype=torch.bool) for k in ("a", "b", "sky")}
    cells["sky"][:2] = True
    cells["a"][2:5, 1:6] = True
    cells["b"][2:5, 7:11] = True
    cells["road"] = ~(cells["a"] | cells["b"] | cells["sky"])
    up = {k: v.repeat_interleave(2, 0).repeat_interleave(2, 1) for k, v in cells.items()}
    feat = torch.zeros(1, 5, 16, 24)
    feat[0, 0] = 1.0
    for j, key in enumerate(("a", "b", "road", "sky"), start=1):
        feat[0, j] = up[key].float()

    def kernel(j: int) -> torch.Tensor:
        k = torch.zeros(5)
        k[0], k[j] = -20.0, 40.0
        return k

    pos = torch.full((1, C, h, w), -10.0)
    pos[0, CAR, 3, 2], pos[0, CAR, 3, 4], pos[0, CAR, 3, 8] = 5.0, 3.0, 4.0
    pos[0, ROAD][cells["road"]] = 5.0
    pos[0, SKY][cells["sky"]] = 5.0
    ker = torch.zeros(1, 5, h, w)
    ker[0][:, cells["a"]] = kernel(1)[:, None]
    ker[0][:, cells["b"]] = kernel(2)[:, None]
    sker = kernel(3)[None, :, None, None].repeat(1, 1, h, w)
    sker[0][:, cells["sky"]] = kernel(4)[:, None]
    out = {"levels": [3], "position": [pos], "kernels": [ker], "stuff_kernels": [sker],
           "feature": feat}
    return out, up


def _peak_score(logit: float) -> float:
    """(p + avgpool3(p)) / 2 at an isolated peak among logits -10."""
    p, q = 1 / (1 + math.exp(-logit)), 1 / (1 + math.exp(10.0))
    return (p + (p + 8 * q) / 9) / 2


def test_hand_made_frame_is_recovered() -> None:
    out, up = _hand_frame()
    k = frame_kernels(out, 0, LABELS)
    assert k.is_thing.tolist() == [True, True, True, False, False]
    assert k.classes.tolist() == [CAR, CAR, CAR, ROAD, SKY]
    assert k.scores[:3].tolist() == pytest.approx([_peak_score(5), _peak_score(4), _peak_score(3)],
                                                  rel=1e-5)
    assert k.feature.shape == (5, 16, 24)
    # the weaker peak inside car A has car A's kernel: fused away; car B's is kept
    fused = fuse_kernels(k, 0.9)
    assert fused.classes.tolist() == [CAR, CAR, ROAD, SKY]
    assert torch.equal(fused.kernels[0], k.kernels[0]) and torch.equal(fused.kernels[1], k.kernels[1])
    probs = masks_from_kernels(fused.kernels, fused.feature, (16, 24))
    assert probs.shape == (4, 16, 24)
    pred = panoptic_from_masks(fused, probs, LABELS, PanopticFCNPost(stuff_area=4))
    assert pred.instance.dtype == np.int32 and pred.semantic.dtype == np.int64
    assert np.array_equal(pred.instance == 1, up["a"].numpy())
    assert np.array_equal(pred.instance == 2, up["b"].numpy())
    assert pred.category.tolist() == [CAR, CAR] and pred.kernel_index.tolist() == [0, 1]
    assert pred.score == pytest.approx([_peak_score(5), _peak_score(4)], rel=1e-5)
    want = np.full((16, 24), ROAD)
    want[up["sky"].numpy()] = SKY
    want[(up["a"] | up["b"]).numpy()] = CAR
    assert np.array_equal(pred.semantic, want)
    pan = pred.panoptic(LABELS)
    assert pan[6, 4] == CAR * DIV + 1 and pan[0, 0] == SKY * DIV and pan[15, 0] == ROAD * DIV
    # unfused, the duplicate's mask is fully covered by car A's: the overlap rule drops it
    pred = panoptic_from_masks(k, masks_from_kernels(k.kernels, k.feature, (16, 24)), LABELS,
                               PanopticFCNPost(stuff_area=4))
    assert pred.kernel_index.tolist() == [0, 1]
    # at the input size (4× the feature) the convenience chain gives the same layout
    full = postprocess(out, 0, LABELS, PanopticFCNPost(stuff_area=4))
    assert full.instance.shape == (64, 96) and full.category.tolist() == [CAR, CAR]
    assert full.instance[24, 16] == 1 and full.instance[24, 64] == 2
    assert full.semantic[2, 2] == SKY and full.semantic[60, 40] == ROAD
    # a stuff area limit above the sky's area makes it void; higher thresholds drop things
    pred = panoptic_from_masks(fused, probs, LABELS, PanopticFCNPost(stuff_area=100))
    assert (pred.semantic[:4] == LABELS.ignore_label).all()
    pred = panoptic_from_masks(fused, probs, LABELS, PanopticFCNPost(instance_threshold=0.7))
    assert pred.category.tolist() == []
    assert frame_kernels(out, 0, LABELS, PanopticFCNPost(center_threshold=0.548)).classes.tolist() \
        == [CAR, ROAD, SKY]


def test_fuse_kernels() -> None:
    feat = torch.zeros(2, 4, 4)

    def frame(kernels: list[list[float]], classes: list[int], things: list[bool]) -> FrameKernels:
        n = len(classes)
        return FrameKernels(torch.tensor(kernels), torch.tensor(classes),
                            torch.linspace(0.9, 0.5, n), torch.tensor(things), feat)

    same = fuse_kernels(frame([[1.0, 0.0], [1.0, 0.0]], [CAR, CAR], [True, True]), 0.9)
    assert same.classes.tolist() == [CAR] and same.scores.tolist() == pytest.approx([0.9])
    near = fuse_kernels(frame([[1.0, 0.0], [0.99, 0.14]], [CAR, CAR], [True, True]), 0.9)
    assert near.kernels.tolist() == [pytest.approx([0.995, 0.07])]  # the mean of the two
    ortho = fuse_kernels(frame([[1.0, 0.0], [0.0, 1.0]], [CAR, CAR], [True, True]), 0.9)
    assert len(ortho.classes) == 2
    other = fuse_kernels(frame([[1.0, 0.0], [1.0, 0.0]], [CAR, PERSON], [True, True]), 0.9)
    assert other.classes.tolist() == [CAR, PERSON]  # class-specific
    stuff = fuse_kernels(frame([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], [CAR, ROAD, SKY],
                               [True, False, False]), 0.9)
    assert stuff.classes.tolist() == [CAR, ROAD, SKY]  # stuff rows pass untouched


# -- training --------------------------------------------------------------------------------

def test_one_step_lowers_the_loss_and_postprocess_runs() -> None:
    torch.manual_seed(0)
    data = SyntheticClips(LABELS, length=2, frames=1,
                          config=SynthConfig(height=64, width=96, frames=1, objects=6))
    batch = collate([data[0], data[1]])
    images, pan = batch["images"].flatten(0, 1), batch["panoptic"].flatten(0, 1)
    model = build_panoptic_fcn("panopticfcn-tiny", C).train()
    t = panoptic_fcn_targets(pan, LABELS, model.config)
    assert sum(len(c) for c in t.classes) > 0  # the frames hold thing instances
    loss = PanopticFCNLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before, parts = loss(model(images), t)
    assert all(v > 0 for v in parts.values())
    opt.zero_grad()
    before.backward()
    for module in (model.backbone, model.encoder, model.kernel_tower, model.thing_embed,
                   model.stuff_embed, model.position_out):
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads) and any(bool(g.abs().sum() > 0) for g in grads)
    opt.step()
    with torch.no_grad():
        _, after = loss(model(images), t)
    assert after["total"] < parts["total"]
    model.eval()
    with torch.no_grad():
        out = model(images)
    pred = postprocess(out, 1, LABELS, PanopticFCNPost(center_threshold=0.0, instance_threshold=0.0))
    assert pred.semantic.shape == (64, 96) and pred.instance.shape == (64, 96)
    j = len(pred.category)
    assert pred.score.shape == (j,) and pred.kernel_index.shape == (j,)
    assert set(np.unique(pred.instance)) <= set(range(j + 1))
