"""vpseg train / segment / demo end to end on tiny inputs, and their user errors (exit 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from PIL import Image  # noqa: E402

from vpseg.cli.main import main  # noqa: E402
from vpseg.formats import get_format  # noqa: E402

TRAIN = ["--model", "video-kmax-tiny", "--format", "kitti-step", "--crop", "64,96",
         "--batch-size", "2"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run trained for 3 iterations on the synthetic world (weights are untrained: these tests
    check plumbing, not quality)."""
    out = tmp_path_factory.mktemp("run")
    assert main(["train", *TRAIN, "--iters", "3", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def kitti_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "kitti"
    assert main(["synth", str(root), "--format", "kitti-step", "--videos", "2", "--frames", "4",
                 "--height", "64", "--width", "96", "--seed", "5"]) == 0
    return root


def test_train_writes_a_resumable_checkpoint(run, capsys):
    import torch

    state = torch.load(run / "ckpt.pt", weights_only=False)
    assert state["iteration"] == 3 and state["extra"]["run"]["model"] == "video-kmax-tiny"
    capsys.readouterr()
    assert main(["train", *TRAIN, "--iters", "3", "--out", str(run), "--resume"]) == 0
    assert "resumed" in capsys.readouterr().out  # at 3 of 3: nothing left, exits cleanly


def test_train_on_a_data_set_and_online(kitti_root, tmp_path):
    out = tmp_path / "run"
    assert main(["train", *TRAIN, "--data", str(kitti_root), "--clip", "1", "--epochs", "0.5",
                 "--out", str(out)]) == 0
    assert (out / "ckpt.pt").is_file()


def test_segment_a_data_set_writes_its_format_and_overlays(run, kitti_root, tmp_path):
    out = tmp_path / "pred"
    assert main(["segment", str(kitti_root), "--input-format", "kitti-step", "--checkpoint",
                 str(run / "ckpt.pt"), "--out", str(out), "--format", "kitti-step"]) == 0
    fmt = get_format("kitti-step")
    assert fmt.list_videos(out, split="val") == ["0000", "0001"]
    video = fmt.read_video(out, "0001", split="val")
    assert len(video) == 4 and video.panoptic[0].shape == (64, 96)
    assert (out / "overlay" / "0001.mp4").stat().st_size > 0
    # the predictions evaluate like any other (the prediction folder holds one split: it is used)
    assert main(["eval", str(kitti_root), str(out), "--format", "kitti-step", "--split", "train",
                 "--json", str(tmp_path / "m.json")]) == 0
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["config"]["videos"] == 2 and 0.0 <= result["stq"]["STQ"] <= 1.0


def test_segment_a_video_file_and_a_frame_folder(run, tmp_path):
    from vpseg.viz import write_mp4

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (64, 96, 3), dtype=np.uint8) for _ in range(3)]
    write_mp4(tmp_path / "clip.mp4", frames, fps=5)
    out = tmp_path / "from_mp4"
    assert main(["segment", str(tmp_path / "clip.mp4"), "--checkpoint", str(run / "ckpt.pt"),
                 "--out", str(out), "--format", "vipseg", "--tracker", "iou"]) == 0
    video = get_format("vipseg").read_video(out, "clip", split="val")
    assert len(video) == 3
    folder = tmp_path / "frames" / "street"
    folder.mkdir(parents=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{i:04d}.png")
    out2 = tmp_path / "from_folder"
    assert main(["segment", str(folder), "--checkpoint", str(run / "ckpt.pt"), "--out",
                 str(out2), "--no-overlay", "--clip", "1"]) == 0
    names = get_format("kitti-step").read_video(out2, "street", split="val").frame_names
    assert names == ("0000", "0001", "0002")


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "--model", "nope", "--format", "kitti-step", "--iters", "1", "--out", "X"],
     "unknown model"),
    (["train", *TRAIN, "--out", "X"], "say how long"),
    (["train", *TRAIN, "--iters", "1", "--crop", "64", "--out", "X"], "--crop must be H,W"),
    (["segment", "missing.mp4", "--checkpoint", "c.pt", "--out", "X"], "no such file"),
    (["train", *TRAIN, "--iters", "1", "--lr", "0", "--out", "X"], "--lr must be > 0"),
    (["train", *TRAIN, "--iters", "1", "--min-scale", "2", "--out", "X"], "--min-scale"),
    (["segment", "x.mp4", "--checkpoint", "c.pt", "--out", "X", "--input-scale", "0"],
     "--input-scale must be > 0"),
    (["demo", "--out", "X", "--batch-size", "0"], "--batch-size must be >= 1"),
    (["demo", "--out", "X", "--minutes", "0"], "--minutes must be > 0"),
    (["demo", "--out", "X", "--train-objects", "-1"], "--train-objects >= 0"),
])
def test_user_mistakes_exit_2_with_one_line(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_segment_rejects_a_file_that_is_not_a_checkpoint(kitti_root, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["segment", str(kitti_root), "--input-format", "kitti-step", "--checkpoint",
                 str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "bad.pt" in capsys.readouterr().err


def test_demo_runs_end_to_end_in_miniature(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--minutes", "0.3", "--reserve", "5",
                 "--val-videos", "1", "--frames", "4"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"stq", "vpq", "semantic"} <= set(metrics["results"] if "results" in metrics else metrics)
    for name in ("report.md", "run/ckpt.pt"):
        assert (out / name).is_file()
    assert list(out.glob("overlay_*.mp4"))
    assert "metrics JSON" in capsys.readouterr().out
    html = (out / "report.html").read_text()  # opened in a browser by tests/test_report.py
    assert html.count("<video") == 1 and "data:video/webm;base64," in html
    assert "VPQ against window k" in html and "0000" in html


def test_torchrun_trains_with_distributed_data_parallel(tmp_path):
    """Two CPU processes (Gloo) through torchrun: the same command, one checkpoint."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-port", "29517", "-m", "vpseg", "train", *TRAIN, "--iters", "2",
           "--device", "cpu", "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    import torch

    state = torch.load(out / "ckpt.pt", weights_only=False)
    assert state["iteration"] == 2
    assert not any(k.startswith("module.") for k in state["model"])  # the bare model is saved
