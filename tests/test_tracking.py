"""Trackers on small hand-made cases: crossing objects, occlusion and re-appearance after 5 and
15 frames, look-alike neighbours, an object entering, a class flip; SORT's motion model, flow
propagation, stitching; memory flat over a 2000-frame stream."""

import tracemalloc

import numpy as np
import pytest

from vpseg.tracking import TRACKERS, FrameSegments, Segment, make_tracker, paste

H, W = 40, 80


def frame(boxes, *, categories=None, embeddings=None, clip_ids=None, shape=(H, W)):
    """Segments from boxes (x0, y0, x1, y1) in pixels; None = not visible this frame."""
    index = np.zeros(shape, np.int32)
    cats, embs, cids = [], [], []
    for i, box in enumerate(boxes):
        if box is None:
            continue
        x0, y0, x1, y1 = box
        index[y0:y1, x0:x1] = len(cats) + 1
        cats.append(0 if categories is None else categories[i])
        if embeddings is not None:
            embs.append(embeddings[i])
        if clip_ids is not None:
            cids.append(clip_ids[i])
    return FrameSegments(index=index, category=np.array(cats, np.int64),
                         embedding=None if embeddings is None else np.array(embs, np.float32),
                         clip_id=None if clip_ids is None else np.array(cids, np.int64))


def run(tracker, frames):
    """Track ids per frame, as lists in the order the boxes were given (visible ones)."""
    tracker.reset()
    return [tracker.update([f])[0].tolist() for f in frames]


def sq(x, y=10, size=10):
    return (x, y, x + size, y + size)


def test_registry_and_unknown_names():
    assert set(TRACKERS) == {"iou", "sort", "flow", "stitch", "memory", "hila", "kernel", "none"}
    with pytest.raises(KeyError, match="known: iou"):
        make_tracker("nope")
    with pytest.raises(TypeError):
        make_tracker("iou", no_such_parameter=1)


@pytest.mark.parametrize("name", ["iou", "sort", "hila"])
def test_crossing_objects_keep_their_ids(name):
    # A moves right on the upper row, B moves left on the lower row; their x ranges cross
    frames = [frame([sq(10 + 3 * t, 5), sq(60 - 3 * t, 25)]) for t in range(15)]
    ids = run(make_tracker(name), frames)
    assert all(f == ids[0] for f in ids) and ids[0][0] != ids[0][1]


def _occluded(gap):
    visible = [frame([sq(30)]) for _ in range(3)]
    hidden = [frame([]) for _ in range(gap)]
    return visible + hidden + [frame([sq(30)])]


@pytest.mark.parametrize(("name", "gap", "same"), [
    ("iou", 5, True), ("iou", 15, False),  # kept sigma = 10 frames
    ("hila", 5, True), ("hila", 15, False),  # memory refreshed after tau = 10 frames
    ("sort", 5, False),  # SORT drops a track after max_age = 1 frame
])
def test_occlusion_and_reappearance(name, gap, same):
    ids = run(make_tracker(name), _occluded(gap))
    assert (ids[-1][0] == ids[0][0]) == same


def test_longer_memory_bridges_15_frames():
    ids = run(make_tracker("hila", tau=20), _occluded(15))
    assert ids[-1] == ids[0]
    ids = run(make_tracker("iou", keep=20), _occluded(15))
    assert ids[-1] == ids[0]


def test_look_alike_neighbours_need_location():
    # two objects with almost the same embedding, both hidden for 3 frames; when they come back,
    # the left one's embedding is slightly closer to the right one's memory
    e_left, e_right = np.array([1.0, 0.02, 0]), np.array([1.0, -0.02, 0])
    before = [frame([sq(10), sq(50)], embeddings=[e_left, e_right]) for _ in range(3)]
    hidden = [frame([], embeddings=[]) for _ in range(3)]
    after = [frame([sq(10), sq(50)], embeddings=[e_right, e_left])]
    frames = before + hidden + after
    hila = run(make_tracker("hila"), frames)
    assert hila[-1] == hila[0]
    naive = run(make_tracker("memory", tau=10, alpha=0.5), frames)
    assert naive[-1] == naive[0][::-1]  # appearance alone swaps them


def test_entering_object_gets_a_new_id():
    frames = [frame([sq(10)]), frame([sq(10), sq(60)])]
    for name in ("iou", "sort", "hila"):
        ids = run(make_tracker(name), frames)
        assert ids[1][0] == ids[0][0] and ids[1][1] not in ids[0]


def test_class_flip():
    frames = [frame([sq(10)], categories=[0]), frame([sq(10)], categories=[1])]
    ids = run(make_tracker("iou"), frames)
    assert ids[1] == ids[0]  # class-agnostic by default, as B1
    ids = run(make_tracker("iou", match_class=True), frames)
    assert ids[1] != ids[0]


def test_sort_predicts_through_a_missed_frame():
    # 10 px wide, 4 px per frame, missed once: the last mask overlaps the return by 2/18 only
    xs = [4 * t for t in range(8)]
    frames = [frame([sq(x)]) if t != 6 else frame([]) for t, x in enumerate(xs)]
    sort = run(make_tracker("sort", max_age=2), frames)
    iou = run(make_tracker("iou"), frames)
    assert sort[-1] == sort[0]
    assert iou[-1] != iou[0]


def test_flow_propagates_fast_motion():
    import cv2

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (64, 64, 3)).astype(np.float32)
    tex = np.clip((cv2.GaussianBlur(noise, (0, 0), 3) - 127) * 4 + 127, 0, 255).astype(np.uint8)
    frames, rgb = [], []
    for t in range(4):
        x = 20 + 22 * t  # 22 px per frame, 64 px wide: consecutive mask IoU 42/86 < 0.5
        img = np.full((160, 240, 3), 120, np.uint8)
        img[48:112, x : x + 64] = tex
        rgb.append(img)
        frames.append(frame([(x, 48, x + 64, 112)], shape=(160, 240)))
    flow = make_tracker("flow", threshold=0.5)
    ids = [flow.update([f], rgb=[r])[0].tolist() for f, r in zip(frames, rgb, strict=True)]
    assert all(i == ids[0] for i in ids)  # the warped mask overlaps the new one
    plain = run(make_tracker("iou", threshold=0.5), frames)
    assert plain[1] != plain[0]  # without flow the same threshold loses the object


def test_stitching_clips_with_overlap():
    tracker = make_tracker("stitch")
    # clip 1: frames 0-1, clip 2: frames 1-2 (overlap 1); clip-local ids differ between clips
    clip1 = [frame([sq(10), sq(50)], clip_ids=[7, 8]), frame([sq(12), sq(48)], clip_ids=[7, 8])]
    clip2 = [frame([sq(12), sq(48)], clip_ids=[1, 2]), frame([sq(14), sq(46)], clip_ids=[1, 2])]
    a = tracker.update(clip1)
    b = tracker.update(clip2, overlap=1)
    assert b[1].tolist() == a[1].tolist() == a[0].tolist()
    with pytest.raises(ValueError, match="without overlap"):
        make_tracker("iou").update(clip2, overlap=1)


def test_kernel_matches_adjacent_clips_by_embedding():
    tracker = make_tracker("kernel")
    e = [np.array([1.0, 0, 0]), np.array([0, 1.0, 0])]
    clip1 = [frame([sq(10), sq(50)], embeddings=e, clip_ids=[1, 2])]
    clip2 = [frame([sq(50), sq(10)], embeddings=e[::-1], clip_ids=[1, 2])]  # moved far apart
    a, b = tracker.update(clip1)[0].tolist(), tracker.update(clip2)[0].tolist()
    assert b == a[::-1]


def test_none_gives_new_ids_every_clip_shared_within_a_clip_by_clip_id():
    tracker = make_tracker("none")
    clip1 = [frame([sq(10), sq(50)], clip_ids=[4, 7]), frame([sq(12), sq(52)], clip_ids=[4, 7])]
    ids = [i.tolist() for i in tracker.update(clip1)]
    assert ids[0] == ids[1] and len(set(ids[0])) == 2
    again = tracker.update([frame([sq(10)], clip_ids=[4])])[0].tolist()
    assert again[0] not in ids[0]  # a new clip: new ids
    single = tracker.update([frame([sq(10)]), frame([sq(10)])])
    assert single[0][0] != single[1][0]  # without clip ids: new every frame


def test_fallback_without_embeddings_is_said():
    tracker = make_tracker("memory", tau=10)
    run(tracker, _occluded(2))
    assert any("location only" in n for n in tracker.notes)


def test_paste_resolves_overlaps_by_score_and_drops_small():
    big = np.zeros((10, 10), bool)
    big[:, :6] = True
    other = np.zeros((10, 10), bool)
    other[:, 4:] = True
    tiny = np.zeros((10, 10), bool)
    tiny[0, 9] = True
    segs = [Segment(big, 0, 0.5), Segment(other, 1, 0.9), Segment(tiny, 1, 0.1)]
    out, kept = paste(segs, (10, 10), min_area=2)
    assert kept == [1, 0]  # by score; the tiny one dropped
    assert (out.index[:, 4:] == 1).all() and (out.index[:, :4] == 2).all()


@pytest.mark.parametrize("name", ["iou", "hila", "sort"])
def test_memory_is_flat_over_2000_frames(name):
    tracker = make_tracker(name)
    rng = np.random.default_rng(0)
    tracemalloc.start()
    sizes = []
    for t in range(2000):
        n = 6
        xs = (np.arange(n) * 13 + t) % (W - 10)  # objects cycle through the frame
        boxes = [sq(int(x), 5 + 5 * (i % 3)) for i, x in enumerate(xs)]
        boxes = [b if rng.random() > 0.1 else None for b in boxes]
        tracker.update([frame(boxes, embeddings=[np.eye(n)[i] for i in range(n)])])
        if t in (499, 1999):
            sizes.append(tracemalloc.get_traced_memory()[0])
    tracemalloc.stop()
    assert sizes[1] < sizes[0] * 1.2 + 200_000


def test_vpseg_track_end_to_end(tmp_path, capsys):
    """Shuffle instance ids per frame, track them back, evaluate: association is restored."""
    import json
    from dataclasses import replace

    from vpseg.cli.main import main
    from vpseg.core.labels import get_label_space
    from vpseg.core.synthetic import SynthConfig, generate
    from vpseg.formats import get_format

    fmt = get_format("kitti-step")
    labels = get_label_space("kitti-step")
    videos = [v.materialize() for v in generate(SynthConfig(height=48, width=96, frames=8, objects=5),
                                                  labels, seed=4, videos=2)]
    rng = np.random.default_rng(1)
    with fmt.open_writer(tmp_path / "gt", split="val") as gt, \
            fmt.open_writer(tmp_path / "shuffled", split="val") as shuffled:
        for v in videos:
            gt.write(v)
            frames = []
            for pan in v.panoptic:
                ids = np.unique(pan[pan % 1000 > 0])
                new = {int(i): int(i // 1000 * 1000 + 100 + k)
                       for k, i in enumerate(rng.permutation(ids))}
                frames.append(np.vectorize(lambda x, m=new: m.get(int(x), int(x)))(pan).astype(np.int32))
            shuffled.write(replace(v, panoptic=frames))
    gt_root, out = tmp_path / "gt", tmp_path / "tracked"
    scores = {}
    for tracker in ("iou", "hila"):
        assert main(["track", str(tmp_path / "shuffled"), str(out / tracker), "--format",
                     "kitti-step", "--split", "val", "--tracker", tracker]) == 0
        res = tmp_path / f"{tracker}.json"
        assert main(["eval", str(gt_root), str(out / tracker / "panoptic_maps" / "val"), "--format",
                     "kitti-step", "--split", "val", "--metrics", "stq", "--json", str(res)]) == 0
        scores[tracker] = json.loads(res.read_text())["stq"]["AQ"]
    res = tmp_path / "shuffled.json"
    main(["eval", str(gt_root), str(tmp_path / "shuffled" / "panoptic_maps" / "val"), "--format",
          "kitti-step", "--split", "val", "--metrics", "stq", "--json", str(res)])
    untracked = json.loads(res.read_text())["stq"]["AQ"]
    assert untracked < 0.5 < scores["iou"] and scores["hila"] > 0.5
    assert "location only" in capsys.readouterr().err  # hila without embeddings says so
    assert main(["track", str(tmp_path / "shuffled"), str(out / "x"), "--format", "kitti-step",
                 "--tracker", "hila", "--param", "nonsense=1"]) == 2
    assert main(["track", str(tmp_path / "shuffled"), str(out / "y"), "--format", "kitti-step",
                 "--tracker", "nope"]) == 2


def test_compose_fills_stuff_from_the_semantic_map():
    from vpseg.core.labels import get_label_space
    from vpseg.tracking.segments import compose

    labels = get_label_space("kitti-step")
    f = FrameSegments(index=np.array([[0, 1, 1, 0]], np.int32), category=np.array([13]))
    semantic = np.array([[0, 13, 13, 10]])
    assert compose(f, [5], semantic, labels).tolist() == [[0, 13005, 13005, 10000]]
