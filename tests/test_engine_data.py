"""Clip data: one augmentation per clip, nearest-neighbour labels, determinism, both sources."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vpseg.core.labels import get_label_space  # noqa: E402
from vpseg.core.synthetic import SynthConfig  # noqa: E402
from vpseg.engine.data import (  # noqa: E402
    ClipAugment,
    FormatClips,
    SyntheticClips,
    augment_clip,
    collate,
)
from vpseg.formats import get_format  # noqa: E402

LABELS = get_label_space("kitti-step")


def test_the_same_augmentation_for_every_frame_of_a_clip():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    pan = rng.choice([0, 10000, 13001, 13002], size=(30, 40)).astype(np.int32)
    for seed in range(5):
        out_img, out_pan = augment_clip([img, img, img], [pan, pan, pan],
                                        ClipAugment(crop=(24, 32)), np.random.default_rng(seed), 255000)
        assert out_img.shape == (3, 24, 32, 3) and out_pan.shape == (3, 24, 32)
        assert (out_img[0] == out_img[1]).all() and (out_img[1] == out_img[2]).all()
        assert (out_pan[0] == out_pan[2]).all()
        # nearest neighbour: only ids that existed (or void padding) come out
        assert set(np.unique(out_pan).tolist()) <= {0, 10000, 13001, 13002, 255000}


def test_flip_and_padding_by_hand():
    img = np.zeros((2, 4, 3), np.uint8)
    img[:, 0] = 255  # a white left column
    pan = np.array([[1, 2, 3, 4], [1, 2, 3, 4]], np.int32)
    aug = ClipAugment(crop=(3, 4), scale=(1.0, 1.0), flip=True)
    flipped = [augment_clip([img], [pan], aug, np.random.default_rng(s), 99) for s in range(20)]
    outs = {tuple(p[0, 0].tolist()) for _, p in flipped}
    assert outs == {(1, 2, 3, 4), (4, 3, 2, 1)}  # both orientations occur, and nothing else
    _, p = flipped[0]
    assert p[0, 2].tolist() == [99] * 4  # the crop is taller than the image: void padding


def test_synthetic_clips_are_fresh_scenes_and_deterministic():
    data = SyntheticClips(LABELS, length=4, frames=2, config=SynthConfig(height=48, width=64),
                          augment=ClipAugment(crop=(32, 48)), seed=3)
    a, b = data[1], data[1]
    assert torch.equal(a["images"], b["images"]) and torch.equal(a["panoptic"], b["panoptic"])
    assert a["images"].shape == (2, 3, 32, 48) and a["images"].dtype == torch.float32
    assert not torch.equal(data[0]["images"], data[1]["images"])
    batch = collate([data[0], data[2]])
    assert batch["images"].shape == (2, 2, 3, 32, 48) and batch["panoptic"].shape == (2, 2, 32, 48)


def test_clips_from_a_format(tmp_path):
    from vpseg.cli.main import main

    assert main(["synth", str(tmp_path), "--format", "kitti-step", "--videos", "2", "--frames", "5",
                 "--height", "32", "--width", "48"]) == 0
    data = FormatClips(get_format("kitti-step"), tmp_path, frames=2, step=1)
    assert len(data) == 2 * 4
    sample = data[5]
    video = get_format("kitti-step").read_video(tmp_path, "0001")
    assert torch.equal(sample["panoptic"][0], torch.from_numpy(video.panoptic[1].astype(np.int64)))
