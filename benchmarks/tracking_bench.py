"""Association strategies on synthetic-world videos, like Video-kMaX Table 5, plus speed.

Image-level predictions are built from the ground truth: instance ids shuffled per frame (or per
clip, for near-online: a clip's tube keeps one id inside the clip), masks eroded, dilated or
shifted, detections dropped (occlusion gaps), false positives added, and, for appearance, an
embedding = a fixed per-track vector + Gaussian noise. AQ and STQ come from vpseg's own metrics.
Then ms per frame of each tracker against 10, 50 and 200 objects per frame.

    python benchmarks/tracking_bench.py [--videos 6 --frames 40 --embedding-noise 0.5]
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from vpseg.core.labels import get_label_space
from vpseg.core.synthetic import SynthConfig, generate_video
from vpseg.metrics.stq import STQAccumulator
from vpseg.metrics.tables import pair_table
from vpseg.tracking import FrameSegments, make_tracker, to_panoptic

LABELS = get_label_space("kitti-step")
DIV = LABELS.label_divisor


def noisy_frame(pan, rng, args, vectors, clip_perm):  # type: ignore[no-untyped-def]
    """Damaged thing segments of one ground-truth frame, as a model would give them."""
    h, w = pan.shape
    index = np.zeros((h, w), np.int32)
    cats, embs, clip_ids, truth = [], [], [], []
    kernel = np.ones((3, 3), np.uint8)
    ids = [int(i) for i in np.unique(pan) if i % DIV > 0]
    for seg in ids:
        if rng.random() < args.drop:
            continue  # a missed detection
        mask = (pan == seg).astype(np.uint8)
        r = rng.random()
        if r < 0.15:
            mask = cv2.erode(mask, kernel)
        elif r < 0.3:
            mask = cv2.dilate(mask, kernel)
        elif r < 0.5:
            mask = np.roll(mask, int(rng.choice([-1, 1])), axis=int(rng.integers(0, 2)))
        mask = mask.astype(bool) & (index == 0)
        if mask.sum() < 4:
            continue
        index[mask] = len(cats) + 1
        cats.append(seg // DIV)
        track = seg % DIV
        vec = vectors.setdefault(track, rng.normal(size=args.dim))
        embs.append(vec + rng.normal(scale=args.embedding_noise, size=args.dim))
        clip_ids.append(clip_perm.setdefault(track, int(rng.integers(1, 1 << 30))))
        truth.append(track)
    for _ in range(rng.poisson(args.false_positives)):
        y, x = int(rng.integers(0, h - 8)), int(rng.integers(0, w - 8))
        free = index[y : y + 8, x : x + 8] == 0
        if free.sum() > 20:
            index[y : y + 8, x : x + 8][free] = len(cats) + 1
            cats.append(LABELS.thing_ids[int(rng.integers(0, 2))])
            embs.append(rng.normal(size=args.dim))
            clip_ids.append(int(rng.integers(1, 1 << 30)))
            truth.append(900)  # false positives share one id in the oracle
    frame = FrameSegments(index=index, category=np.array(cats, np.int64),
                          embedding=np.array(embs, np.float32).reshape(len(cats), args.dim),
                          clip_id=np.array(clip_ids, np.int64))
    frame.truth = np.array(truth, np.int64)  # type: ignore[attr-defined]
    return frame


def evaluate(name, params, videos, args, *, clip):  # type: ignore[no-untyped-def]
    acc = STQAccumulator(LABELS)
    for v_index, (gt, rgb, frames) in enumerate(videos):
        tracker = make_tracker("iou" if name == "oracle" else name, **params)
        tracker.reset()
        for t in range(len(gt)):
            if name == "oracle":  # the true track ids: what the noise alone leaves of AQ
                ids = frames[t].truth
            elif clip == 1:
                ids = tracker.update([frames[t]], rgb=[rgb[t]])[0]
            elif t == 0:
                continue
            else:  # near-online: clip (t - 1, t), overlap 1; the first clip gives both frames
                pair = list(frames[t])
                out = tracker.update(pair, rgb=[rgb[t - 1], rgb[t]], overlap=0 if t == 1 else 1)
                if t == 1:
                    stuff = np.where(gt[0] % DIV == 0, gt[0], 0)
                    first = to_panoptic(np.zeros_like(gt[0]), pair[0], out[0], LABELS)
                    acc.update(pair_table(gt[0], np.where(pair[0].index > 0, first, stuff)),
                               f"v{v_index}")
                ids, frames_t = out[1], pair[1]
            seg = frames[t] if clip == 1 else frames_t
            stuff = np.where(gt[t] % DIV == 0, gt[t], 0)  # stuff and void as ground truth
            pred = np.where(seg.index > 0, to_panoptic(np.zeros_like(gt[t]), seg, ids, LABELS), stuff)
            acc.update(pair_table(gt[t], pred), f"v{v_index}")
    r = acc.result()
    return r["AQ"], r["STQ"]


def build_videos(args, stride=1):  # type: ignore[no-untyped-def]
    cfg = SynthConfig(height=args.height, width=args.width, frames=args.frames * stride,
                      objects=args.objects, difficulty=args.difficulty)
    videos = []
    for i in range(args.videos):
        v = generate_video(cfg, LABELS, seed=args.seed, index=i)
        rng = np.random.default_rng(i)
        vectors: dict[int, np.ndarray] = {}
        gt = [np.asarray(p) for p in v.panoptic][::stride]
        rgb = list(v.rgb)[::stride]  # type: ignore[arg-type]
        online = [noisy_frame(g, rng, args, vectors, {}) for g in gt]  # ids shuffled per frame
        # near-online: clip (t - 1, t) predicts both frames with one id per tube inside the clip
        clips: list[tuple[FrameSegments, FrameSegments] | None] = [None]
        for t in range(1, len(gt)):
            perm: dict[int, int] = {}
            clips.append((noisy_frame(gt[t - 1], rng, args, vectors, perm),
                          noisy_frame(gt[t], rng, args, vectors, perm)))
        videos.append((gt, rgb, online, clips))
    return videos


def speed(name, params, n_objects, frames=30):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    h, w = 384, 640
    tracker = make_tracker(name, **params)
    xs, ys = rng.uniform(0, w - 24, n_objects), rng.uniform(0, h - 24, n_objects)
    vx = rng.uniform(-3, 3, n_objects)
    rgb = np.full((h, w, 3), 127, np.uint8)
    total = 0.0
    for _ in range(frames):
        index = np.zeros((h, w), np.int32)
        for k in range(n_objects):
            x, y = int(xs[k]) % (w - 24), int(ys[k])
            index[y : y + 20, x : x + 20][index[y : y + 20, x : x + 20] == 0] = k + 1
        xs += vx
        present = np.unique(index[index > 0])
        remap = np.zeros(n_objects + 1, np.int32)
        remap[present] = np.arange(1, len(present) + 1)
        seg = FrameSegments(index=remap[index], category=np.full(len(present), 13, np.int64),
                            embedding=np.eye(n_objects, dtype=np.float32)[present - 1])
        start = time.perf_counter()
        tracker.update([seg], rgb=[rgb])
        total += time.perf_counter() - start
    return 1000 * total / frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--objects", type=int, default=10)
    ap.add_argument("--difficulty", type=float, default=0.7)
    ap.add_argument("--drop", type=float, default=0.05, help="probability of a missed detection")
    ap.add_argument("--false-positives", type=float, default=0.3, help="mean per frame")
    ap.add_argument("--embedding-noise", type=float, default=0.5)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    raw = build_videos(args)
    online = [(gt, rgb, on) for gt, rgb, on, _ in raw]
    near = [(gt, rgb, clips) for gt, rgb, _, clips in raw]

    rows = [
        ("oracle (true ids; the noise's bound)", "oracle", {}, 1),
        ("iou (B1)", "iou", {}, 1),
        ("sort (B2)", "sort", {}, 1),
        ("flow (B3)", "flow", {}, 1),
        ("naive-MB: appearance", "memory", {}, 1),
        ("HiLA-MB: location only", "hila", {"appearance": False}, 1),
        ("HiLA-MB: appearance + location", "hila", {}, 1),
        ("video stitching only", "stitch", {}, 2),
        ("stitching + appearance", "hila", {"location": False}, 2),
        ("HiLA-MB (stitch + app. + loc.)", "hila", {}, 2),
        ("kernel (Clip-PanoFCN)", "kernel", {}, 2),
    ]
    print(f"\n{args.videos} synthetic KITTI-STEP videos x {args.frames} frames at "
          f"{args.height}x{args.width}, difficulty {args.difficulty}; drop {args.drop}, "
          f"FP {args.false_positives}/frame, embedding noise {args.embedding_noise}")
    print(f"\n{'setting':<38}{'T':>3}{'AQ':>8}{'STQ':>8}")
    for label, name, params, clip in rows:
        aq, stq = evaluate(name, params, online if clip == 1 else near, args, clip=clip)
        print(f"{label:<38}{clip:>3}{100 * aq:8.1f}{100 * stq:8.1f}")

    fast = build_videos(args, stride=3)
    print("\nfast motion: the same world seen at every 3rd frame")
    print(f"{'setting':<38}{'T':>3}{'AQ':>8}{'STQ':>8}")
    for label, name in (("oracle", "oracle"), ("iou (B1)", "iou"), ("sort (B2)", "sort"),
                        ("flow (B3)", "flow")):
        aq, stq = evaluate(name, {}, [(g, r, o) for g, r, o, _ in fast], args, clip=1)
        print(f"{label:<38}{1:>3}{100 * aq:8.1f}{100 * stq:8.1f}")

    print("\nms per frame (384x640, tracker only) against objects per frame:")
    print(f"{'tracker':<10}" + "".join(f"{n:>9}" for n in (10, 50, 200)))
    for name in ("iou", "sort", "flow", "memory", "hila"):
        print(f"{name:<10}" + "".join(f"{speed(name, {}, n):9.2f}" for n in (10, 50, 200)))


if __name__ == "__main__":
    main()
