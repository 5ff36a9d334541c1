"""PSPNet / OCRNet / VSPW's TCB: ST-PPM with identical frames is PPM; ST-OCR's object regions
are each frame's spatial softmax and its object representations their mean over the target and
support frames (Eq. 1), the pixel-object relation a softmax over the classes (Eq. 2), the
context ρ(Σ w δ(f)) (Eq. 3); the inference memory gives what recomputing the support frames
gives, at one backbone pass per frame; the losses and the command-line path."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

from vpseg.cli.main import main  # noqa: E402
from vpseg.core.labels import get_label_space  # noqa: E402
from vpseg.formats import get_format  # noqa: E402
from vpseg.models.registry import get_model  # noqa: E402
from vpseg.models.tcb import (  # noqa: E402
    CONFIGS,
    FrameContext,
    OCRContext,
    TCBConfig,
    TCBNet,
    TCBStream,
    support_indices,
)
from vpseg.models.tcb_family import TCBLossWeights, semantic_targets  # noqa: E402

K = 7


def _net(name: str, seed: int = 0) -> TCBNet:
    torch.manual_seed(seed)
    net = TCBNet(CONFIGS[name], K).eval()
    for m in net.modules():  # non-trivial batch-norm statistics, so eval mode is not identity-ish
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net


def test_st_ppm_with_identical_frames_is_ppm() -> None:
    tcb = _net("tcb-psp-tiny")
    image = _net("psp-tiny")
    image.load_state_dict(tcb.state_dict())  # the same parameters: TCB adds none
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        alone = image(x)["logits"]
        clip = tcb(x[:, None].expand(2, 4, 3, 64, 96).contiguous())["logits"]
        other = torch.stack([torch.ones_like(x), torch.zeros_like(x), torch.ones_like(x), x], 1)
        moving = tcb(other)["logits"]
    assert alone.shape == (2, K, 8, 12)  # stride 8
    torch.testing.assert_close(clip, alone, rtol=1e-5, atol=1e-6)
    # other support frames do change the context (a random network's logits move little)
    assert (moving - alone).abs().max() > 1e-4


def test_st_ppm_averages_each_pooled_scale_over_the_frames() -> None:
    net = _net("tcb-psp-tiny")
    feats = [torch.rand(1, 192, 8, 12) for _ in range(4)]
    ctx = [net.context.frame(f) for f in feats]
    mean_feature = torch.stack(feats).mean(0)  # pooling is linear: pooled mean = mean of pooled
    with torch.no_grad():
        got = net.context(feats[-1], ctx)
        # the same module fed the averaged pyramid of one "frame" whose feature is the mean
        averaged = FrameContext(pooled=[F.adaptive_avg_pool2d(mean_feature, b) for b in net.context.bins])
        want = net.context(feats[-1], [averaged])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_st_ocr_object_regions_and_representations_follow_eq_1() -> None:
    torch.manual_seed(1)
    n_frames, c, h, w = 4, 5, 3, 4
    features = [torch.randn(1, c, h, w) for _ in range(n_frames)]
    regions = [torch.randn(1, K, h, w) * 3 for _ in range(n_frames)]
    frames = [OCRContext.frame(f, r) for f, r in zip(features, regions, strict=True)]
    got = OCRContext.objects(frames)[0]  # K×C
    want = torch.zeros(K, c)
    for f, r in zip(features, regions, strict=True):  # Eq. 1 written out pixel by pixel
        for k in range(K):
            m = torch.exp(r[0, k].flatten())
            m = m / m.sum()  # the soft object region: a softmax over the frame's pixels
            want[k] += (m[:, None] * f[0].flatten(1).T).sum(0) / n_frames
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # a class whose region logits peak at one pixel takes that pixel's representation
    peaked = torch.full((1, K, h, w), -50.0)
    peaked[0, 2, 1, 3] = 50.0
    one = OCRContext.frame(features[0], peaked)
    torch.testing.assert_close(one.objects[0, 2], features[0][0, :, 1, 3])


def test_st_ocr_relation_is_a_softmax_over_classes_and_context_follows_eq_2_3() -> None:
    net = _net("tcb-ocr-tiny")
    ocr = net.context
    assert isinstance(ocr, OCRContext)
    c = net.config.channels
    feature = torch.randn(1, c, 2, 3)
    frames = [OCRContext.frame(torch.randn(1, c, 2, 3), torch.randn(1, K, 2, 3)) for _ in range(4)]
    with torch.no_grad():
        got = ocr(feature, frames)
        f = OCRContext.objects(frames)[0]  # K×C
        pixels = feature[0].flatten(1).T  # P×C
        phi = ocr.phi(feature)[0].flatten(1).T  # P×key
        psi = ocr.psi(f.T[None, :, :, None])[0, :, :, 0].T  # K×key
        delta = ocr.delta(f.T[None, :, :, None])[0, :, :, 0].T  # K×key
        w = torch.softmax(phi @ psi.T / ocr.key_channels ** 0.5, dim=1)  # Eq. 2: over the K classes
        assert torch.allclose(w.sum(1), torch.ones(6))
        y = ocr.rho((w @ delta).T.reshape(1, -1, 2, 3))  # Eq. 3
        want = ocr.fuse(torch.cat([y, pixels.T.reshape(1, c, 2, 3)], 1))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["tcb-ocr-tiny", "tcb-psp-tiny", "ocr-tiny"])
def test_inference_memory_equals_recomputing_the_support_frames(name: str) -> None:
    net = _net(name)
    passes: list[int] = []
    net.backbone.register_forward_hook(lambda m, i, o: passes.append(i[0].shape[0]))
    frames = [torch.rand(1, 3, 48, 64) for _ in range(13)]
    with_memory, recomputed = TCBStream(net, memory=True), TCBStream(net, memory=False)
    a = [with_memory(f) for f in frames]
    assert len(passes) == 13  # one backbone pass per frame
    passes.clear()
    b = [recomputed(f) for f in frames]
    assert len(passes) == 13 * (1 + len(net.config.dilations))
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)
    # the memory holds only the frames a later frame can still reach
    assert len(with_memory.contexts) == max(net.config.dilations, default=0) + 1


def test_support_frames_before_the_first_frame_are_the_first_frame() -> None:
    assert support_indices(0, (3, 6, 9)) == [0, 0, 0]
    assert support_indices(7, (3, 6, 9)) == [4, 1, 0]
    assert support_indices(20, (3, 6, 9)) == [17, 14, 11]
    net = _net("tcb-ocr-tiny")
    x = torch.rand(1, 3, 48, 64)
    with torch.no_grad():  # frame 0 of a video: its support frames are itself
        stream = TCBStream(net)(x)
        clip = net(x[:, None].expand(1, 4, 3, 48, 64).contiguous())["logits"]
    torch.testing.assert_close(stream, clip, rtol=1e-5, atol=1e-5)


def test_losses_are_minimal_at_a_perfect_prediction() -> None:
    labels = get_label_space("vspw")
    entry = get_model("tcb-ocr-tiny")
    criterion = entry.family.criterion(labels, TCBLossWeights())
    classes = torch.randint(0, 5, (1, 10, 16, 24))
    classes[0, :, :2] = labels.ignore_label  # void rows are ignored
    panoptic = classes * labels.label_divisor
    target = semantic_targets(panoptic, labels)
    assert (target[0, :, :2] == -100).all() and (target[0, :, 2:] == classes[0, :, 2:]).all()

    class Oracle(torch.nn.Module):
        def __init__(self, scale: float) -> None:
            super().__init__()
            self.config = entry.config
            self.p = torch.nn.Parameter(torch.zeros(1))
            self.scale = scale

        def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
            pick = [9 - d for d in entry.config.dilations] + [9]
            onehot = F.one_hot(target[:, pick].clamp(min=0), labels.max_id + 1).permute(0, 1, 4, 2, 3)
            logits = self.scale * (2 * onehot.float() - 1)
            return {"logits": logits[:, -1], "aux": logits}

    batch = {"images": torch.rand(1, 10, 3, 16, 24), "panoptic": panoptic}
    losses = [float(criterion(Oracle(s), batch)[0]) for s in (0.0, 1.0, 5.0, 20.0)]
    assert losses == sorted(losses, reverse=True) and losses[-1] < 1e-6
    total, parts = criterion(Oracle(1.0), batch)
    assert set(parts) == {"ce", "aux", "total"}


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="context must be"):
        TCBConfig(context="aspp")
    with pytest.raises(ValueError, match="distinct positive"):
        TCBConfig(dilations=(3, 3))
    net = _net("tcb-ocr-tiny")
    with pytest.raises(ValueError, match="expected clips of 4 frames"):
        net(torch.rand(1, 2, 3, 32, 32))


def test_segment_and_eval_from_a_checkpoint_in_the_vspw_format(tmp_path, capsys) -> None:
    data, run, pred = tmp_path / "vspw", tmp_path / "run", tmp_path / "pred"
    assert main(["synth", str(data), "--format", "vspw", "--videos", "1", "--frames", "12",
                 "--height", "64", "--width", "96", "--seed", "2"]) == 0
    assert main(["train", "--model", "tcb-ocr-tiny", "--format", "vspw", "--data", str(data),
                 "--split", "train", "--crop", "64,96", "--batch-size", "2", "--iters", "2",
                 "--out", str(run), "--checkpoint-every", "0"]) == 0
    assert main(["segment", str(data), "--input-format", "vspw", "--split", "train", "--checkpoint",
                 str(run / "ckpt.pt"), "--out", str(pred), "--format", "vspw", "--out-split", "train",
                 "--no-overlay"]) == 0
    assert main(["eval", str(data), str(pred), "--format", "vspw", "--split", "train",
                 "--metrics", "semantic,vc,tc", "--json", str(tmp_path / "m.json")]) == 0
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["config"]["frames"] == 12 and 0.0 <= result["semantic"]["mIoU"] <= 1.0
    assert set(result["vc"]) == {"8", "16"} and 0.0 <= result["tc"] <= 1.0
    frame = np.asarray(get_format("vspw").read_video(pred, "0000", split="train").panoptic[0])
    assert frame.shape == (64, 96) and (frame % 1000 == 0).all()  # classes, no instances
    capsys.readouterr()
    # a semantic model has no instances for a tracker
    assert main(["segment", str(data), "--input-format", "vspw", "--split", "train", "--checkpoint",
                 str(run / "ckpt.pt"), "--out", str(tmp_path / "x"), "--format", "vspw",
                 "--tracker", "iou"]) == 2
    err = capsys.readouterr().err
    assert "tcb-ocr-tiny predicts classes only" in err and len(err.strip().splitlines()) == 1
