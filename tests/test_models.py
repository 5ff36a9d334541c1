"""Video-kMaX network, losses and training on tiny inputs (CPU, seconds)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vpseg.core.labels import get_label_space  # noqa: E402
from vpseg.core.synthetic import SynthConfig  # noqa: E402
from vpseg.engine.data import SyntheticClips, collate  # noqa: E402
from vpseg.engine.train import RunSpec, make_trainer, num_classes_of  # noqa: E402
from vpseg.engine.trainer import TrainConfig, seed_everything  # noqa: E402
from vpseg.models.losses import KMaXLoss, features_at, make_targets  # noqa: E402
from vpseg.models.video_kmax import MODEL_CONFIGS, build_model  # noqa: E402

LABELS = get_label_space("kitti-step")
C = num_classes_of(LABELS)


def _clip_batch(n: int = 2, frames: int = 2, seed: int = 0) -> dict:
    ds = SyntheticClips(LABELS, length=100, frames=frames, seed=seed,
                        config=SynthConfig(height=64, width=96, frames=frames))
    return collate([ds[i] for i in range(n)])


@pytest.mark.parametrize("frames", [1, 2, 3])
@pytest.mark.parametrize("stride", [2, 4])
def test_forward_shapes_clip_as_one_tall_image(frames: int, stride: int) -> None:
    torch.manual_seed(0)
    cfg = replace(MODEL_CONFIGS["video-kmax-tiny"], final_stride=stride)
    model = build_model(cfg, C).eval()
    with torch.no_grad():
        out = model(torch.rand(2, frames, 3, 64, 96))
    n = model.config.num_queries
    assert out["class_logits"].shape == (2, n, C + 1)
    # T·H/s × W/s: the tiny model's final masks are at stride 2, kMaX-DeepLab's at 4
    assert out["mask_logits"].shape == (2, n, frames * 64 // stride, 96 // stride)
    assert out["query_embedding"].shape == (2, n, model.config.query_dim)
    assert torch.allclose(out["pixel_feature"].norm(dim=1), torch.ones(1), atol=1e-4)
    model.train()
    out = model(torch.rand(2, frames, 3, 64, 96))
    assert out["aux_size"] == (frames * 16, 24)  # the auxiliaries are supervised at stride 4
    assert out["semantic_logits"].shape[-2:] == (frames * 16, 24)


def test_stride_2_needs_a_backbone_with_a_stride_2_feature() -> None:
    with pytest.raises(ValueError, match="stride-2"):
        build_model(replace(MODEL_CONFIGS["video-kmax-r50"], backbone="convnext_tiny",
                            final_stride=2), C)
    with pytest.raises(ValueError, match="final_stride"):
        build_model(replace(MODEL_CONFIGS["video-kmax-tiny"], final_stride=8), C)
    # at stride 4 the same backbone runs (its torchvision ``features`` is not the stride-2 hook)
    small = replace(MODEL_CONFIGS["video-kmax-tiny"], backbone="convnext_tiny", final_stride=4,
                    final_head_dim=None, final_mask_dim=None)
    with torch.no_grad():
        out = build_model(small, C).eval()(torch.rand(1, 1, 3, 64, 64))
    assert out["mask_logits"].shape[-2:] == (16, 16)


def test_targets_resized_keep_their_segments_and_order() -> None:
    batch = _clip_batch(n=1)
    (fine,) = make_targets(batch["panoptic"], LABELS, (32, 48))
    coarse = fine.resized((32, 24))  # the clip image: 2 frames × 16 rows, 24 columns
    assert coarse.shape == (32, 24) and torch.equal(coarse.classes, fine.classes)
    grid = fine.masks.reshape(-1, 64, 48)[:, ::2, ::2].flatten(1)
    assert torch.equal(coarse.masks, grid)
    # the per-pixel segment index agrees with the masks on both grids
    for t in (fine, coarse):
        inside = t.segment >= 0
        assert torch.equal(inside, t.valid)
        assert torch.equal(t.masks.float().argmax(0)[inside], t.segment[inside])
    with pytest.raises(ValueError, match="cannot be subsampled"):
        fine.resized((20, 24))


def test_features_at_equals_upsampling_then_picking() -> None:
    torch.manual_seed(0)
    for (h, w), (hh, ww) in (((4, 8), (32, 64)), ((8, 4), (64, 64)), ((5, 7), (40, 56))):
        f = torch.randn(2, 3, h, w, dtype=torch.float64)
        up = torch.nn.functional.interpolate(f, size=(hh, ww), mode="bilinear",
                                             align_corners=False).flatten(2)
        pick = torch.stack([torch.randperm(hh * ww)[:200] for _ in range(2)])  # B × K
        want = torch.stack([up[i][:, pick[i]] for i in range(2)])
        assert torch.allclose(features_at(f, pick, (hh, ww)), want, atol=1e-12)
    same = torch.randn(1, 3, 6, 5)
    assert torch.equal(features_at(same, torch.tensor([[0, 7, 29]]), (6, 5)),
                       same.flatten(2)[:, :, [0, 7, 29]])


def test_targets_are_tubes_across_the_clip() -> None:
    div = LABELS.label_divisor
    pan = torch.full((1, 2, 8, 8), 0 * div, dtype=torch.int64)  # road
    pan[0, 0, :4, :4] = 13 * div + 5  # car 5 in frame 0
    pan[0, 1, 4:, 4:] = 13 * div + 5  # ... and in frame 1: one tube
    pan[0, 1, :2, :2] = 11 * div  # crowd of people: in no segment
    pan[0, 0, 7, 7] = LABELS.ignore_label * div  # void
    (t,) = make_targets(pan, LABELS, (8, 8))
    assert sorted(t.classes.tolist()) == [0, 13]
    car = t.masks[t.classes.tolist().index(13)]
    assert int(car.sum()) == 32 and bool(car[:64].any()) and bool(car[64:].any())
    assert int((~t.valid).sum()) == 5  # 4 crowd + 1 void pixels
    assert int((t.semantic == -1).sum()) == 1  # crowd keeps its class for the semantic loss


def _perfect_outputs(targets: list, n: int, size: tuple[int, int]) -> dict:
    """Outputs that put query k on ground-truth segment k with certainty, the rest on void."""
    b = len(targets)
    cls = torch.full((b, n, C + 1), -50.0)
    cls[:, :, C] = 50.0
    masks = torch.full((b, n, size[0] * size[1]), -50.0)
    feats = torch.zeros(b, 64, size[0] * size[1])
    for i, t in enumerate(targets):
        for k, (c, m) in enumerate(zip(t.classes.tolist(), t.masks, strict=True)):
            cls[i, k, :] = -50.0
            cls[i, k, c] = 50.0
            masks[i, k, m] = 50.0
            feats[i, k, m] = 1.0  # one direction per segment
        masks[i, len(t.classes), ~t.valid] = 50.0  # void pixels: any query
    sem = torch.full((b, C, size[0] * size[1]), -50.0)
    for i, t in enumerate(targets):
        ok = t.semantic >= 0
        sem[i, t.semantic[ok], torch.nonzero(ok).squeeze(1)] = 50.0
    shape = (b, -1, *size)
    return {"class_logits": cls, "mask_logits": masks.reshape(shape),
            "pixel_feature": feats.reshape(shape), "semantic_logits": sem.reshape(shape)}


def test_losses_are_minimal_at_a_perfect_prediction() -> None:
    batch = _clip_batch()
    size = (2 * 16, 24)
    targets = make_targets(batch["panoptic"], LABELS, (16, 24))
    loss = KMaXLoss(C)
    perfect = _perfect_outputs(targets, 32, size)
    total, parts = loss(perfect, targets)
    assert parts["pq_style"] == pytest.approx(0.0, abs=1e-4)  # CE 0, 1 − Dice 0
    assert parts["mask_id"] == pytest.approx(0.0, abs=1e-4)
    assert parts["semantic"] == pytest.approx(0.0, abs=1e-4)
    # pixel contrast against soft "same segment" targets: its minimum is the targets' entropy,
    # reached only in the limit; orthogonal embeddings per segment are close to it
    torch.manual_seed(1)
    for _ in range(3):  # any perturbation costs
        noisy = {k: v + 20 * torch.randn_like(v) for k, v in perfect.items()}
        noisy["pixel_feature"] = torch.nn.functional.normalize(noisy["pixel_feature"], dim=1)
        noisy_total, noisy_parts = loss(noisy, targets)
        assert float(noisy_total) > float(total) + 0.5
        assert noisy_parts["instance_discrimination"] > parts["instance_discrimination"]


def _reference_losses(out: dict, targets: list, w) -> dict:
    """The kMaX losses clip by clip, prediction by prediction and query by query, straight from
    their definitions (docs/models.md); instance discrimination over *every* pixel in a segment
    (no sampling), on pixel features upsampled to the supervised grid."""
    from scipy.optimize import linear_sum_assignment

    F = torch.nn.functional
    size = tuple(out["mask_logits"].shape[-2:])
    aux_size = tuple(out.get("aux_size", size))

    def up(x):
        return x if tuple(x.shape[-2:]) == aux_size else F.interpolate(
            x, size=aux_size, mode="bilinear", align_corners=False)

    preds = [(out["class_logits"], out["mask_logits"], out["pixel_feature"], False)] + [
        (a["class_logits"], up(a["mask_logits"]), a["pixel_feature"], True) for a in out["aux"]]
    b, alpha, floor = len(targets), w.class_alpha, w.min_weight
    pq = mid = idisc = torch.zeros(())
    for i, t in enumerate(targets):
        with torch.no_grad():  # Hungarian on p(c) · Dice, final prediction, void zeroed
            probs = out["mask_logits"][i].flatten(1).softmax(0) * t.valid
            gt = t.masks.double()
            dice = (probs @ gt.T) / ((probs.sum(1)[:, None] + gt.sum(1)[None]) / 2 + 1e-5)
            sim = out["class_logits"][i].softmax(-1)[:, t.classes] * dice
        rows, cols = linear_sum_assignment(-sim.numpy())
        segment_of = dict(zip(rows.tolist(), cols.tolist(), strict=True))
        for cls, masks, feats, is_aux in preds:
            tt = t.resized(aux_size) if is_aux else t
            logits = masks[i].flatten(1)
            soft = logits.softmax(0)
            probs = soft * tt.valid
            log_p = cls[i].log_softmax(-1)
            n = logits.shape[0]
            owner = torch.full((logits.shape[1],), -1)
            term = torch.zeros(())
            for q in range(n):
                if q in segment_of:
                    g = tt.masks[segment_of[q]].double()
                    owner[g.bool()] = q
                    d = (2 * (probs[q] * g).sum() + 1) / (probs[q].sum() + g.sum() + 1)
                    ce = -log_p[q, tt.classes[segment_of[q]]]
                    term = term + alpha * d.detach().clamp(min=floor) * ce
                    term = term + alpha * (-ce).exp().detach().clamp(min=floor) * (1 - d)
                else:
                    void = 1 - probs[q].sum() / soft[q].sum()
                    term = term + (1 - alpha) * void.detach().clamp(min=floor) * -log_p[q, -1]
            pq = pq + term / n / b
            keep = owner >= 0
            mid = mid + F.cross_entropy(logits[:, keep].T, owner[keep]) / b
            f = F.interpolate(feats[i][None], size=tt.shape, mode="bilinear",
                              align_corners=False)[0].flatten(1)[:, tt.valid]
            seg = tt.segment[tt.valid]
            same = (seg[:, None] == seg[None, :]).double()
            target = same / same.sum(1, keepdim=True)
            idisc = idisc + -(target * (f.T @ f / w.temperature).log_softmax(-1)).sum(-1).mean() / b
    sem_t = torch.stack([t.resized(aux_size).semantic for t in targets])
    sem = F.cross_entropy(up(out["semantic_logits"]).flatten(2), sem_t, ignore_index=-1)
    return {"pq_style": pq, "mask_id": mid, "instance_discrimination": idisc, "semantic": sem}


def test_batched_losses_equal_their_per_clip_definition() -> None:
    from vpseg.models.losses import LossWeights

    batch = _clip_batch(n=3)  # clips with different numbers of segments (padded in the batch)
    targets = make_targets(batch["panoptic"], LABELS, (32, 48))  # stride-2 final of 64×96
    assert len({int(t.masks.shape[0]) for t in targets}) > 1
    torch.manual_seed(0)
    n = 12  # fewer queries than segments in some clip: unmatched segments are left out

    def leaf(*shape):
        return torch.randn(*shape, dtype=torch.float64).requires_grad_()

    def pred(h, w, d):
        return {"class_logits": leaf(3, n, C + 1), "mask_logits": leaf(3, n, h, w),
                "pixel_feature": leaf(3, d, h, w)}

    out = {**pred(64, 48, 8), "aux": [pred(8, 6, 16), pred(32, 24, 16)], "aux_size": (32, 24),
           "semantic_logits": leaf(3, C, 32, 24)}
    for p in [out, *out["aux"]]:
        p["pixel_feature"] = torch.nn.functional.normalize(p["pixel_feature"], dim=1)
    weights = LossWeights(sample_pixels=10**9)  # every pixel: no sampling to differ
    total, parts = KMaXLoss(C, weights)(out, targets)
    ref = _reference_losses(out, targets, weights)
    for name, value in ref.items():
        assert parts[name] == pytest.approx(float(value.detach()), rel=1e-9), name
    ref_total = (weights.pq_style * ref["pq_style"] + weights.mask_id * ref["mask_id"]
                 + weights.instance_discrimination * ref["instance_discrimination"]
                 + weights.semantic * ref["semantic"])
    leaves = [out["class_logits"], out["mask_logits"], out["aux"][0]["mask_logits"],
              out["semantic_logits"]]
    got = torch.autograd.grad(total, leaves, retain_graph=True)
    want = torch.autograd.grad(ref_total, leaves)
    for g, r in zip(got, want, strict=True):
        assert torch.allclose(g, r, rtol=1e-7, atol=1e-12)


def test_matching_is_shared_by_the_auxiliary_layers() -> None:
    batch = _clip_batch(n=1)
    targets = make_targets(batch["panoptic"], LABELS, (16, 24))
    perfect = _perfect_outputs(targets, 32, (32, 24))
    loss = KMaXLoss(C)
    base = loss(perfect, targets)[1]["pq_style"]
    # an auxiliary layer predicting the same segments with the queries permuted is penalised:
    # it is held to the final prediction's matching, not matched on its own
    perm = torch.roll(torch.arange(32), 1)
    aux = {"class_logits": perfect["class_logits"][:, perm],
           "mask_logits": perfect["mask_logits"][:, perm],
           "pixel_feature": perfect["pixel_feature"]}
    with_aux = loss({**perfect, "aux": [aux]}, targets)[1]["pq_style"]
    assert with_aux > base + 0.1


def test_a_fine_final_prediction_and_coarse_auxiliaries_share_the_matching() -> None:
    batch = _clip_batch(n=1)
    targets = make_targets(batch["panoptic"], LABELS, (32, 48))  # stride 2 of 64×96
    coarse = [t.resized((32, 24)) for t in targets]
    final = _perfect_outputs(targets, 32, (64, 48))
    aux = _perfect_outputs(coarse, 32, (32, 24))
    out = {**final, "aux": [aux], "aux_size": (32, 24), "semantic_logits": aux["semantic_logits"]}
    loss = KMaXLoss(C)
    _, parts = loss(out, targets)
    assert parts["pq_style"] == pytest.approx(0.0, abs=1e-4)
    assert parts["mask_id"] == pytest.approx(0.0, abs=1e-4)
    assert parts["semantic"] == pytest.approx(0.0, abs=1e-4)
    perm = torch.roll(torch.arange(32), 1)  # the auxiliary held to the final's matching
    shuffled = {**aux, "class_logits": aux["class_logits"][:, perm],
                "mask_logits": aux["mask_logits"][:, perm]}
    assert loss({**out, "aux": [shuffled]}, targets)[1]["pq_style"] > parts["pq_style"] + 0.1


def test_unmatched_queries_are_pushed_to_no_object_by_their_void_share() -> None:
    batch = _clip_batch(n=1)
    (target,) = targets = make_targets(batch["panoptic"], LABELS, (16, 24))
    perfect = _perfect_outputs(targets, 32, (32, 24))
    loss = KMaXLoss(C)
    base = loss(perfect, targets)[1]["pq_style"]
    wrong = {k: v.clone() for k, v in perfect.items()}
    wrong["class_logits"][0, 31, :] = -50.0
    wrong["class_logits"][0, 31, 0] = 50.0  # a spare query claims "road" ...
    on_void = wrong["mask_logits"][0, 31].flatten()
    on_void[~target.valid] = 60.0  # ... over the void pixels: weight 1 − α, CE 100, over N
    wrong["mask_logits"][0, 31] = on_void.reshape(32, 24)
    assert loss(wrong, targets)[1]["pq_style"] == pytest.approx(base + 0.25 * 100 / 32, rel=1e-3)


def test_one_training_step_reduces_the_loss_on_a_fixed_batch() -> None:
    seed_everything(0)
    batch = _clip_batch()
    spec = RunSpec(model="video-kmax-tiny", clip=2, batch_size=2, crop=(64, 96))
    trainer = make_trainer(spec, LABELS, SyntheticClips(LABELS, length=4, frames=2),
                           TrainConfig(max_iters=100, lr=1e-3, grad_clip=None), device="cpu")
    trainer.batches = lambda i: batch
    model = trainer.model

    def loss_now() -> float:
        torch.manual_seed(123)  # same pixel sample for instance discrimination
        with torch.no_grad():
            return float(trainer.loss_fn(model, batch))

    model.train()
    before = loss_now()
    trainer.step()
    assert loss_now() < before


def test_training_resumes_bit_identically(tmp_path) -> None:
    spec = RunSpec(model="video-kmax-tiny", clip=2, batch_size=1, crop=(64, 96))
    data = SyntheticClips(LABELS, length=10, frames=2, config=SynthConfig(height=64, width=96, frames=2))
    cfg = TrainConfig(max_iters=4, lr=1e-3, seed=3, deterministic=True)

    def run(stop_at: int | None) -> dict:
        seed_everything(3, deterministic=True)
        trainer = make_trainer(spec, LABELS, data, cfg, out_dir=tmp_path / "run", device="cpu")
        if stop_at is None:
            trainer.resume(tmp_path / "run" / "ckpt.pt")
        trainer.train(until=stop_at)
        return {k: v.clone() for k, v in trainer.model.state_dict().items()}

    straight = run(4)
    run(2)  # writes the checkpoint at iteration 2
    resumed = run(None)
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    torch.use_deterministic_algorithms(False)


def test_segment_frames_gives_tracks_online_and_near_online() -> None:
    from vpseg.core.synthetic import generate_video
    from vpseg.models.kmax_inference import segment_frames
    from vpseg.tracking import make_tracker

    torch.manual_seed(0)
    model = build_model("video-kmax-tiny", C).eval()
    video = generate_video(SynthConfig(height=64, width=96, frames=5), LABELS, seed=0, index=0)
    for clip, tracker in ((1, "hila"), (2, "hila"), (3, "stitch")):
        frames = list(segment_frames(model, video.rgb, LABELS, make_tracker(tracker), clip=clip))
        assert len(frames) == 5 and all(f.shape == (64, 96) and f.dtype == np.int32 for f in frames)


def test_an_input_scale_returns_masks_at_the_input_size() -> None:
    from vpseg.models.kmax_inference import PostProcess, predict_clip

    torch.manual_seed(0)
    model = build_model("video-kmax-tiny", C).eval()
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    images = torch.rand(2, 3, 64, 96)
    scaled = predict_clip(model, images, LABELS,
                          PostProcess(thing_threshold=0.0, stuff_threshold=0.0, input_scale=1.25))
    assert seen == [(1, 2, 3, 96, 128)]  # 80×120, padded to multiples of 32
    assert [s.shape for s in scaled.semantic] == [(64, 96)] * 2
    assert all(f.index.shape == (64, 96) for f in scaled.things)


# kMaX-DeepLab's published parameter counts (COCO, 133 classes; Yu et al. 2022, Table 1 and the
# official model zoo): ResNet-50 57M, ConvNeXt-L 232M — inference parameters, without the
# training-only auxiliary semantic head.
@pytest.mark.parametrize(("name", "published"), [("video-kmax-r50", 57e6),
                                                 ("video-kmax-convnext-l", 232e6)])
def test_full_size_parameter_counts_match_kmax_deeplab(name: str, published: float) -> None:
    with torch.device("meta"):  # shapes only: no memory, no time
        model = build_model(name, 133)
    assert abs(model.inference_parameters() - published) / published < 0.05


def test_backbone_weights_load_from_a_local_file(tmp_path) -> None:
    from torchvision.models import resnet50

    from vpseg.errors import InputError
    from vpseg.models.backbones import load_backbone_weights

    torch.manual_seed(0)
    reference = resnet50(weights=None)
    path = tmp_path / "resnet50.pth"
    torch.save(reference.state_dict(), path)
    model = build_model("video-kmax-r50", C)
    load_backbone_weights(model.backbone, path)
    assert torch.equal(model.backbone.layer4[2].conv3.weight, reference.layer4[2].conv3.weight)
    assert torch.equal(model.backbone.stem[0].weight, reference.conv1.weight)
    tiny = build_model("video-kmax-tiny", C)
    with pytest.raises(InputError, match="do not fit"):
        load_backbone_weights(tiny.backbone, path)
    with pytest.raises(InputError, match="not found"):
        load_backbone_weights(tiny.backbone, tmp_path / "missing.pth")


def test_a_clip_without_segments_only_pushes_queries_to_no_object() -> None:
    pan = torch.full((1, 2, 64, 96), LABELS.ignore_label * LABELS.label_divisor, dtype=torch.int64)
    targets = make_targets(pan, LABELS, (16, 24))
    torch.manual_seed(0)
    out = {"class_logits": torch.randn(1, 32, C + 1), "mask_logits": torch.randn(1, 32, 32, 24),
           "pixel_feature": torch.nn.functional.normalize(torch.randn(1, 16, 32, 24), dim=1)}
    total, parts = KMaXLoss(C)(out, targets)
    assert torch.isfinite(total) and parts["mask_id"] == 0 and parts["instance_discrimination"] == 0
    assert parts["pq_style"] > 0
