"""One engine for every model: each registered model trains through ``make_trainer`` (one step
lowers its loss), is saved and segments from its checkpoint alone; inference brings frames of
any size to the training scale."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vpseg.cli.main import main  # noqa: E402
from vpseg.core.labels import get_label_space  # noqa: E402
from vpseg.core.synthetic import SynthConfig, generate_video  # noqa: E402
from vpseg.engine.data import SyntheticClips, collate  # noqa: E402
from vpseg.engine.inference import load_model  # noqa: E402
from vpseg.engine.train import RunSpec, make_trainer  # noqa: E402
from vpseg.engine.trainer import TrainConfig, seed_everything  # noqa: E402
from vpseg.formats import get_format  # noqa: E402
from vpseg.models.registry import InferenceOptions, get_model, model_names, parse_options  # noqa: E402

LABELS = get_label_space("kitti-step")


def test_every_family_registers_tiny_and_full_size_models() -> None:
    names = model_names()
    for name in ("video-kmax-tiny", "video-kmax-r50", "panoptic-deeplab-tiny",
                 "panoptic-deeplab-r50", "motion-deeplab-tiny", "motion-deeplab-r50"):
        assert name in names
    with pytest.raises(KeyError, match="unknown model 'nope'; known: video-kmax-r50, "):
        get_model("nope")


@pytest.mark.parametrize("name", model_names())
def test_one_training_step_lowers_the_loss_of_every_registered_model(name: str) -> None:
    """The full-size models too (video-kmax-convnext-l: ~13 s and 5 GB on a CPU)."""
    seed_everything(0)
    entry = get_model(name)
    clip = entry.family.recipe.train_clip or entry.family.recipe.clip
    data = SyntheticClips(LABELS, length=4, frames=clip,
                          config=SynthConfig(height=64, width=96, frames=clip, objects=6))
    batch = collate([data[i] for i in range(2)])
    spec = RunSpec(model=name, clip=clip, batch_size=2, crop=(64, 96),
                   loss=tuple(entry.family.recipe.loss.items()))
    trainer = make_trainer(spec, LABELS, data, TrainConfig(max_iters=100, lr=1e-4, grad_clip=None),
                           device="cpu")
    trainer.batches = lambda i: batch

    def loss_now() -> float:
        torch.manual_seed(123)  # the same random choices (pixel samples, target noise) each time
        with torch.no_grad():
            return float(trainer.loss_fn(trainer.model, batch))

    trainer.model.train()
    before = loss_now()
    trainer.step()
    after = loss_now()
    assert np.isfinite(before) and after < before


def test_loss_options_are_checked_by_name_and_type() -> None:
    kind = get_model("video-kmax-tiny").family.loss_options
    assert parse_options(kind, {"sample_pixels": "512"}).sample_pixels == 512
    with pytest.raises(ValueError, match="unknown option 'pixels'"):
        parse_options(kind, {"pixels": 3})
    with pytest.raises(ValueError, match="option sample_pixels must be int"):
        parse_options(kind, {"sample_pixels": "many"})


def test_inference_scale_follows_the_short_side_of_the_training_frames() -> None:
    opts = InferenceOptions(input_scale=1.25, short_side=128)
    assert opts.scale(256, 512) == pytest.approx(0.625)  # the measured best for 256x512
    assert opts.scale(128, 256) == pytest.approx(1.25)
    assert opts.scale(512, 300) == pytest.approx(1.25 * 128 / 300)  # portrait: the short side
    assert InferenceOptions(input_scale=2.0).scale(100, 100) == 2.0  # no training scale known


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 2-iteration run of each tiny model of each family (weights untrained: plumbing only)."""
    out = {}
    for name in ("panoptic-deeplab-tiny", "motion-deeplab-tiny", "video-kmax-tiny",
                 "clip-panofcn-tiny"):
        folder = tmp_path_factory.mktemp(name)
        assert main(["train", "--model", name, "--format", "kitti-step", "--crop", "64,96",
                     "--batch-size", "2", "--iters", "2", "--out", str(folder),
                     "--checkpoint-every", "0"]) == 0
        out[name] = folder / "ckpt.pt"
    return out


@pytest.mark.parametrize("name", ["panoptic-deeplab-tiny", "motion-deeplab-tiny", "video-kmax-tiny"])
def test_checkpoint_alone_rebuilds_the_model_and_its_training_scale(runs, name) -> None:
    loaded = load_model(runs[name])
    assert loaded.spec.model == name and loaded.entry.name == name
    assert loaded.spec.train_short_side == 64  # the synthetic frames were rendered at 64x96
    assert loaded.spec.clip == get_model(name).family.recipe.clip


@pytest.mark.parametrize("name", ["panoptic-deeplab-tiny", "motion-deeplab-tiny"])
def test_frames_of_any_size_reach_the_network_at_the_training_scale(runs, name) -> None:
    loaded = load_model(runs[name])
    seen: list[tuple[int, ...]] = []
    loaded.model.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)))
    video = generate_video(SynthConfig(height=128, width=192, frames=3), LABELS, seed=1, index=0)
    assert video.rgb is not None
    pred = list(loaded.segment(video.rgb))
    assert [p.shape for p in pred] == [(128, 192)] * 3  # mapped back to the frames' size
    channels = 7 if "motion" in name else 3
    assert seen == [(1, channels, 64, 96)] * 3  # short side 128 -> 64, the training scale
    seen.clear()
    list(loaded.segment(video.rgb, options=loaded.options(input_scale=1.5)))
    assert seen[0] == (1, channels, 96, 160)  # 96x144 padded to a multiple of 32


def test_segment_runs_from_a_checkpoint_alone_and_eval_reads_it(runs, tmp_path, capsys) -> None:
    data = tmp_path / "kitti"
    assert main(["synth", str(data), "--format", "kitti-step", "--videos", "1", "--frames", "3",
                 "--height", "64", "--width", "96", "--seed", "2"]) == 0
    for name in ("panoptic-deeplab-tiny", "motion-deeplab-tiny"):
        out = tmp_path / f"pred-{name}"
        assert main(["segment", str(data), "--input-format", "kitti-step", "--checkpoint",
                     str(runs[name]), "--out", str(out), "--no-overlay"]) == 0
        assert main(["eval", str(data), str(out), "--format", "kitti-step", "--split", "train",
                     "--json", str(tmp_path / f"{name}.json")]) == 0
        result = json.loads((tmp_path / f"{name}.json").read_text())
        assert result["config"]["videos"] == 1 and 0.0 <= result["stq"]["STQ"] <= 1.0
    capsys.readouterr()
    # the model's own association needs the model that has it
    assert main(["segment", str(data), "--input-format", "kitti-step", "--checkpoint",
                 str(runs["panoptic-deeplab-tiny"]), "--out", str(tmp_path / "x"),
                 "--tracker", "nope"]) == 2
    assert "unknown tracker 'nope' for panoptic-deeplab-tiny" in capsys.readouterr().err


def test_independent_clips_segmented_in_parallel_give_the_sequential_result(runs) -> None:
    loaded = load_model(runs["clip-panofcn-tiny"])
    batches: list[int] = []
    loaded.model.register_forward_pre_hook(lambda m, args: batches.append(args[0].shape[0]))
    video = generate_video(SynthConfig(height=64, width=96, frames=7), LABELS, seed=3, index=0)
    assert video.rgb is not None
    one_by_one = list(loaded.segment(video.rgb, options=loaded.options(clip=2)))
    assert batches == [2, 2, 2, 1]
    batches.clear()
    together = list(loaded.segment(video.rgb, options=loaded.options(clip=2, parallel_clips=3)))
    assert batches == [6, 1]  # three clips in one network call, then the last frame's clip
    assert len(together) == 7
    for a, b in zip(one_by_one, together, strict=True):
        # batched convolutions may round differently; ids and classes must not move
        assert (a == b).mean() > 0.999


def test_parallel_clips_only_for_models_whose_clips_are_independent(runs, tmp_path, capsys) -> None:
    data = tmp_path / "kitti"
    assert main(["synth", str(data), "--format", "kitti-step", "--videos", "1", "--frames", "2",
                 "--height", "64", "--width", "96", "--seed", "2"]) == 0
    capsys.readouterr()
    assert main(["segment", str(data), "--input-format", "kitti-step", "--checkpoint",
                 str(runs["video-kmax-tiny"]), "--out", str(tmp_path / "x"),
                 "--parallel-clips", "2"]) == 2
    err = capsys.readouterr().err
    assert "--parallel-clips: video-kmax-tiny's clips depend on the ones before them" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "x").exists()
    assert main(["segment", str(data), "--input-format", "kitti-step", "--checkpoint",
                 str(runs["clip-panofcn-tiny"]), "--out", str(tmp_path / "y"),
                 "--parallel-clips", "0"]) == 2
    assert "--parallel-clips must be >= 1, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("name, fmt", [("panoptic-deeplab-tiny", "kitti-step"),
                                       ("motion-deeplab-tiny", "kitti-step"),
                                       ("panoptic-deeplab-tiny", "vipseg"),
                                       ("clip-panofcn-tiny", "vipseg"),
                                       ("tcb-ocr-tiny", "vspw"),
                                       ("vpsnet-tiny", None)])
def test_demo_runs_every_model_end_to_end_in_miniature(name, fmt, tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    recipe = get_model(name).family.recipe
    frames = 10 if fmt is None else 3  # vpsnet's Cityscapes-VPS layout: every 5th frame annotated
    assert main(["demo", "--model", name, "--out", str(out), "--iters", "2", "--amp", "off",
                 "--val-videos", "1", "--frames", str(frames), "--batch-size", "2"]
                + ([] if fmt is None else ["--format", fmt])) == 0
    fmt = fmt or recipe.demo_format
    assert get_format(fmt).list_videos(out / "pred", split="val") == ["0000"]
    metrics = json.loads((out / "metrics.json").read_text())
    report = (out / "report.md").read_text()
    if recipe.semantic:
        assert 0.0 <= metrics["semantic"]["mIoU"] <= 1.0 and "| mVC8 |" in report
        assert "frame by frame" in report
    else:
        assert 0.0 <= metrics["stq"]["STQ"] <= 1.0
        assert f"with {recipe.tracker} association" in report
    assert name in report
    html = (out / "report.html").read_text()  # the page for a person, with the val video's clip
    assert html.count("<video") == 1 and "Per-class IoU" in html
    loaded = load_model(out / "run" / "ckpt.pt")
    assert loaded.spec.model == name and loaded.spec.clip == get_model(name).family.recipe.clip
    train_clip = get_model(name).family.recipe.train_clip or loaded.spec.clip
    assert f"on clips of {train_clip} frame" in report


@pytest.mark.parametrize("argv, message", [
    (["train", "--model", "motion-deeplab-tiny", "--clip", "1", "--iters", "1", "--out", "X"],
     "motion-deeplab-tiny trains on clips of at least 2 frames, got --clip 1"),
    (["train", "--model", "panoptic-deeplab-tiny", "--loss", "centre=2", "--iters", "1",
      "--out", "X"], "--loss for panoptic-deeplab-tiny: unknown option 'centre'; known: semantic"),
    (["train", "--model", "video-kmax-tiny", "--loss", "sample_pixels", "--iters", "1",
      "--out", "X"], "--loss takes KEY=VALUE, got 'sample_pixels'"),
    (["demo", "--model", "panoptic-deeplab-x", "--out", "X"], "unknown model 'panoptic-deeplab-x'"),
    (["demo", "--model", "vpsnet-tiny-base", "--out", "X"],
     "vpsnet-tiny-base has no track head (Track off), so no vpsnet association"),
])
def test_model_flags_a_model_cannot_use_are_one_line_errors(argv, message, tmp_path, capsys,
                                                             monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv[:1] + ["--format", "kitti-step"] * (argv[0] == "train") + argv[1:]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "X").exists()


def test_models_lists_every_family_with_its_defaults(capsys) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in model_names():
        assert name in out
    assert "trains on clips of 2, tracks with motion (its own: motion)" in out
    assert "trains on clips of 1, tracks with iou" in out
    assert "trains on clips of 1, segments clips of 4 (--clip), tracks with kernel" in out


@pytest.mark.parametrize("name", [n for n in model_names() if n.endswith("-tiny")])
def test_every_family_gives_the_input_its_network_takes(name: str) -> None:
    entry = get_model(name)
    assert entry.family.example_input is not None
    model = entry.build(LABELS.max_id + 1).eval()
    with torch.no_grad():
        out = model(entry.family.example_input(entry.config, 2, 64, 96))
    assert isinstance(out, dict) and out
