"""Metric speed on a VIPSeg-sized synthetic workload, against the official scripts' approach.

Workload: synthetic-world videos in the VIPSeg label space (124 classes) at 720x1280 with ~20
thing instances per frame; predictions are the ground truth shifted by a few pixels, with track
ids renamed and some frames' ids swapped. Printed, all measured in this run:

* per-frame time of each family (pair table included) and of all of them together, one process;
* the same evaluation with --workers processes (wall time per frame);
* VPQ (k = 1, 2, 4, 6) the way the official scripts compute it — per window, concatenate the k
  frames and recount every segment and intersection from pixels (``np.unique`` on a combined
  key) — and the ratio to vpseg's one-pass tables; the two must give the same numbers.

    python benchmarks/metrics_bench.py [--videos 10 --frames 24 --height 720 --width 1280 --workers 2]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from vpseg.core.labels import get_label_space
from vpseg.core.synthetic import SynthConfig, generate_video
from vpseg.evaluation import EvalConfig, evaluate_video
from vpseg.metrics.pq import PQStats, match_table
from vpseg.metrics.semantic import ConfusionAccumulator, VCAccumulator
from vpseg.metrics.stq import STQAccumulator
from vpseg.metrics.tables import pair_table
from vpseg.metrics.vpq import VPQAccumulator

KS = (1, 2, 4, 6)


def make_video(index: int, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    labels = get_label_space("vipseg")
    cfg = SynthConfig(height=args.height, width=args.width, frames=args.frames, objects=32)
    video = generate_video(cfg, labels, seed=args.seed, index=index)
    rng = np.random.default_rng(index)
    preds = []
    for t, gt in enumerate(video.panoptic):
        pred = np.roll(gt, (t % 3, 2 + t % 2), axis=(0, 1))
        thing = (pred % 1000) > 0
        pred = np.where(thing, pred + 7, pred)  # renamed tracks
        if t % 5 == 4:
            pred = np.where(thing & (rng.random() < 0.5), pred + 1, pred)  # an id switch
        preds.append(pred.astype(np.int32))
    return list(video.panoptic), preds, labels


def time_families(gt, pred, labels) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Seconds for each family over one video (each with its own pair tables) and all together."""
    out = {}
    div = labels.label_divisor

    def run(name, body):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        body()
        out[name] = time.perf_counter() - start

    def stq():  # type: ignore[no-untyped-def]
        acc = STQAccumulator(labels)
        for g, p in zip(gt, pred, strict=True):
            acc.update(pair_table(g, p), "v")
        acc.result()

    def vpq():  # type: ignore[no-untyped-def]
        acc = VPQAccumulator(labels, KS)
        for g, p in zip(gt, pred, strict=True):
            acc.update(pair_table(g, p), "v")
        acc.result()

    def miou():  # type: ignore[no-untyped-def]
        acc = ConfusionAccumulator(labels)
        for g, p in zip(gt, pred, strict=True):
            acc.update(pair_table(g, p))
        acc.result()

    def vc():  # type: ignore[no-untyped-def]
        acc = VCAccumulator((8, 16))
        for g, p in zip(gt, pred, strict=True):
            acc.update(g // div, p // div, "v")
        acc.result()

    def pq():  # type: ignore[no-untyped-def]
        stats = PQStats(256)
        for g, p in zip(gt, pred, strict=True):
            match_table(pair_table(g, p), labels, stats)

    def together():  # type: ignore[no-untyped-def]
        config = EvalConfig(metrics=("stq", "vpq", "semantic", "vc"))
        from vpseg.core.video import Video

        evaluate_video(Video("v", gt, labels), Video("v", pred, labels), labels, config)

    for name, body in (("STQ", stq), ("VPQ k=1,2,4,6", vpq), ("mIoU etc.", miou),
                       ("VC_8 + VC_16", vc), ("image PQ", pq),
                       ("STQ+VPQ+mIoU+VC together", together)):
        run(name, body)
    return out


def official_style_vpq(gt, pred, labels) -> dict[int, dict[int, list[float]]]:  # type: ignore[no-untyped-def]
    """VPQ the way eval_vpq_vspw.py does it: per window, concatenate and recount from pixels."""
    div, ignore = labels.label_divisor, labels.ignore_label
    things = set(labels.thing_ids)
    offset = np.int64(1 << 32)
    out: dict[int, dict[int, list[float]]] = {}
    for k in KS:
        stats: dict[int, list[float]] = defaultdict(lambda: [0.0, 0, 0, 0])
        for i in range(len(gt) - k + 1):
            g = np.concatenate(gt[i : i + k], axis=1).astype(np.int64)
            p = np.concatenate(pred[i : i + k], axis=1).astype(np.int64)
            g_ids, g_area = np.unique(g, return_counts=True)
            p_ids, p_area = np.unique(p, return_counts=True)
            keys, inter = np.unique(g * offset + p, return_counts=True)
            g_area_d = dict(zip(g_ids.tolist(), g_area.tolist(), strict=True))
            p_area_d = dict(zip(p_ids.tolist(), p_area.tolist(), strict=True))
            pairs = dict(zip(keys.tolist(), inter.tolist(), strict=True))
            void_with: dict[int, int] = defaultdict(int)
            for key, n in pairs.items():
                gi, pi = divmod(key, int(offset))
                if gi // div == ignore:
                    void_with[pi] += n
            gm, pm = set(), set()
            for key, n in pairs.items():
                gi, pi = divmod(key, int(offset))
                gc, pc = gi // div, pi // div
                if gc == ignore or pc == ignore or gc != pc or (gc in things and gi % div == 0):
                    continue
                iou = n / (g_area_d[gi] + p_area_d[pi] - n - void_with[pi])
                if iou > 0.5:
                    stats[gc][0] += iou
                    stats[gc][1] += 1
                    gm.add(gi)
                    pm.add(pi)
            crowd = {}
            for gi in g_area_d:
                gc = gi // div
                if gi in gm or gc == ignore:
                    continue
                if gc in things and gi % div == 0:
                    crowd[gc] = gi
                    continue
                stats[gc][3] += 1
            for pi, area in p_area_d.items():
                pc = pi // div
                if pi in pm or pc == ignore:
                    continue
                n = void_with[pi] + (pairs.get(crowd[pc] * int(offset) + pi, 0) if pc in crowd else 0)
                if n / area <= 0.5:
                    stats[pc][2] += 1
        out[k] = dict(stats)
    return out


def _worker(job: tuple[int, argparse.Namespace]) -> tuple[float, object]:
    index, args = job
    gt, pred, labels = make_video(index, args)
    from vpseg.core.video import Video

    config = EvalConfig(metrics=("stq", "vpq", "semantic", "vc"))
    start = time.perf_counter()
    acc = evaluate_video(Video(f"v{index}", gt, labels), Video(f"v{index}", pred, labels), labels, config)
    return time.perf_counter() - start, acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=int, default=10)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reference-videos", type=int, default=2,
                    help="videos timed with the official-style VPQ (it is slow)")
    args = ap.parse_args()

    totals: dict[str, float] = defaultdict(float)
    frames = 0
    instances = []
    ref_time = ours_vpq_time = 0.0
    for index in range(args.videos):
        gt, pred, labels = make_video(index, args)
        instances += [len(np.unique(g[g % 1000 > 0])) for g in gt]
        for name, seconds in time_families(gt, pred, labels).items():
            totals[name] += seconds
        frames += len(gt)
        if index < args.reference_videos:
            start = time.perf_counter()
            ref = official_style_vpq(gt, pred, labels)
            ref_time += time.perf_counter() - start
            start = time.perf_counter()
            acc = VPQAccumulator(labels, KS)
            for g, p in zip(gt, pred, strict=True):
                acc.update(pair_table(g, p), "v")
            ours_vpq_time += time.perf_counter() - start
            for k in KS:  # the two approaches must agree
                for c, (iou, tp, fp, fn) in ref[k].items():
                    s = acc.stats[k]
                    assert (s.tp[c], s.fp[c], s.fn[c]) == (tp, fp, fn), (k, c)
                    assert abs(s.iou[c] - iou) < 1e-9, (k, c)
    print(f"\nworkload: {args.videos} videos x {args.frames} frames at {args.height}x{args.width}, "
          f"VIPSeg label space (124 classes), {np.mean(instances):.1f} thing instances per frame")
    print("\none process, per frame (pair table included in each):")
    for name, seconds in totals.items():
        print(f"  {name:<28} {1000 * seconds / frames:8.1f} ms")

    start = time.perf_counter()
    busy = 0.0
    with ProcessPoolExecutor(args.workers) as pool:
        for seconds, _ in pool.map(_worker, [(i, args) for i in range(args.videos)]):
            busy += seconds
    wall = time.perf_counter() - start
    print(f"\n--workers {args.workers}: {1000 * busy / frames:.1f} ms of evaluation per frame in "
          f"each process; {1000 * wall / frames:.1f} ms wall per frame including synthesis")

    n_ref = min(args.reference_videos, args.videos) * args.frames
    print(f"\nVPQ k={','.join(map(str, KS))} on {n_ref} frames: official-style per-window recount "
          f"{1000 * ref_time / n_ref:.1f} ms/frame, vpseg tables {1000 * ours_vpq_time / n_ref:.1f} "
          f"ms/frame: {ref_time / ours_vpq_time:.1f}x faster, identical numbers")


if __name__ == "__main__":
    main()
