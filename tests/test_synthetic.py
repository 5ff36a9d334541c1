import numpy as np
import pytest

from vpseg.core.labels import get_label_space
from vpseg.core.synthetic import (
    SynthConfig,
    generate,
    generate_video,
    stream_video,
    world_classes,
)


@pytest.fixture(scope="module")
def kitti_videos():
    labels = get_label_space("kitti-step")
    cfg = SynthConfig(height=128, width=256, frames=30)
    return [v.materialize() for v in generate(cfg, labels, seed=3, videos=6)]


def test_deterministic_in_seed_and_index():
    labels = get_label_space("kitti-step")
    cfg = SynthConfig(height=64, width=96, frames=4)
    a = generate_video(cfg, labels, seed=1, index=2)
    b = generate_video(cfg, labels, seed=1, index=2)
    c = generate_video(cfg, labels, seed=2, index=2)
    assert all(np.array_equal(x, y) for x, y in zip(a.panoptic, b.panoptic, strict=True))
    assert all(np.array_equal(x, y) for x, y in zip(a.rgb, b.rgb, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a.panoptic, c.panoptic, strict=True))


def test_a_streamed_video_renders_the_same_frames_in_any_order_of_reading():
    labels = get_label_space("kitti-step")
    cfg = SynthConfig(height=64, width=96, frames=6)
    eager = generate_video(cfg, labels, seed=4, index=1)
    lazy = stream_video(cfg, labels, seed=4, index=1)
    assert len(lazy) == 6 and lazy.name == eager.name
    for i in (0, 1, 1, 5, 2, 0, 4, 3):  # forwards, repeated, backwards (a re-render)
        assert np.array_equal(lazy.panoptic[i], eager.panoptic[i])
        assert np.array_equal(lazy.rgb[i], eager.rgb[i])
    first, second = generate(cfg, labels, seed=4, videos=2)  # what vpseg synth writes
    assert all(np.array_equal(x, y) for x, y in zip(second.panoptic, eager.panoptic, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(first.panoptic, eager.panoptic, strict=True))


def test_a_frame_step_is_every_kth_frame_of_a_longer_video():
    labels = get_label_space("kitti-step")
    fast = generate_video(SynthConfig(height=64, width=96, frames=4), labels, seed=5, index=1, step=3)
    long = generate_video(SynthConfig(height=64, width=96, frames=12), labels, seed=5, index=1)
    assert len(fast) == 4
    assert all(np.array_equal(x, y) for x, y in zip(fast.panoptic, list(long.panoptic)[::3], strict=True))
    assert all(np.array_equal(x, y) for x, y in zip(fast.rgb, list(long.rgb)[::3], strict=True))
    with pytest.raises(ValueError, match="step"):
        generate_video(SynthConfig(height=64, width=96, frames=4), labels, seed=5, index=1, step=0)


def test_kitti_world_uses_cityscapes_ids_and_tracks_only_people_and_cars(kitti_videos):
    labels = kitti_videos[0].label_space
    classes = set()
    for video in kitti_videos:
        for pan in video.panoptic:
            sem, inst = pan // 1000, pan % 1000
            classes |= set(np.unique(sem).tolist())
            assert set(np.unique(sem[inst > 0]).tolist()) <= {11, 13}
    assert 255 in classes  # void border
    assert len(classes - {255}) >= 8
    assert classes - {255} <= set(labels.ids)


def _gap_events(video, border=4):
    """(hidden, left): some track vanished inside the frame / at its edge and came back later."""
    masks = {}
    for t, pan in enumerate(video.panoptic):
        for i in np.unique(pan[pan % 1000 > 0]).tolist():
            masks.setdefault(i, {})[t] = pan == i
    hidden = left = False
    for by_time in masks.values():
        times = sorted(by_time)
        for a, b in zip(times, times[1:], strict=False):
            if b > a + 1:  # absent for a while, then back with the same id
                xs = np.flatnonzero(by_time[a].any(axis=0))
                at_edge = xs.min() <= border or xs.max() >= by_time[a].shape[1] - 1 - border
                left |= at_edge
                hidden |= not at_edge
    return hidden, left


def test_default_difficulty_is_a_fair_test(kitti_videos):
    per_frame = [len(np.unique(p[p % 1000 > 0])) for v in kitti_videos for p in v.panoptic]
    assert np.mean(per_frame) >= 6
    events = [_gap_events(v) for v in kitti_videos]
    assert sum(h for h, _ in events) >= len(kitti_videos) // 2  # hidden behind an occluder
    assert sum(e for _, e in events) >= len(kitti_videos) // 2  # left the frame, came back


def test_things_occlude_each_other(kitti_videos):
    # some track loses area while staying in view: a nearer object covers it
    video = kitti_videos[0]
    areas = {}
    for pan in video.panoptic:
        ids, counts = np.unique(pan[pan % 1000 > 0], return_counts=True)
        for i, c in zip(ids.tolist(), counts.tolist(), strict=True):
            areas.setdefault(i, []).append(c)
    assert any(min(a) < 0.6 * max(a) for a in areas.values())


def test_rgb_and_labels_agree_in_size_and_void_is_black():
    cfg = SynthConfig(height=64, width=80, frames=2, void_border=2)
    video = generate_video(cfg, get_label_space("vipseg"), seed=0, index=0)
    for pan, rgb in zip(video.panoptic, video.rgb, strict=True):
        assert rgb.shape == (64, 80, 3) and rgb.dtype == np.uint8
        assert pan.shape == (64, 80)
        assert (pan[:2] // 1000 == 255).all()
        assert (rgb[:2] == 0).all()


@pytest.mark.parametrize("name", ["kitti-step", "cityscapes-vps", "vipseg", "viper", "motchallenge-step"])
def test_world_maps_onto_every_panoptic_label_space(name):
    labels = get_label_space(name)
    world = world_classes(labels)
    assert world.things and all(labels.is_thing(c) for c in world.things.values())
    assert all(world.tracked(c) for c in world.things.values())
    assert all(not labels.is_thing(c) for c in world.stuff.values())


def test_config_validation():
    with pytest.raises(ValueError):
        SynthConfig(difficulty=2.0)
    with pytest.raises(ValueError):
        SynthConfig(height=8)


def test_semantic_only_label_space_gets_objects_without_ids():
    labels = get_label_space("vspw")
    world = world_classes(labels)
    assert {"person", "car"} <= set(world.things) and not any(map(world.tracked, world.things.values()))
    video = generate_video(SynthConfig(height=64, width=96, frames=3), labels, seed=0, index=0)
    pans = np.stack(video.panoptic)
    assert not (pans % 1000).any()
    assert labels.by_name("person").id in set((pans // 1000).ravel().tolist())
