"""The STEP paper's Table 2 (its baselines B1-B4) on held-out synthetic KITTI-STEP videos.

B1-B3 are one Panoptic-DeepLab checkpoint followed by the ``iou``, ``sort`` and ``flow`` trackers
(DIS optical flow; RAFT too with ``--raft-weights``), B4 a Motion-DeepLab checkpoint with its own
``motion`` association; a last row runs the Motion-DeepLab network with ``iou`` association, to
tell its network from its association. Every row segments the same videos through
``LoadedModel.segment`` (the path of ``vpseg segment``) and is scored with ``vpseg.evaluation``:
STQ, AQ, SQ, VPQ (windows of 1-4 consecutive frames, STEP's K = 4), PTQ, sPTQ, IDS, sIDS,
sMOTSA, MOTSP. Two settings: the videos at their frame rate, and fast motion (every 3rd frame of
videos three times as long: objects move three times as far between frames).

    vpseg demo --model panoptic-deeplab-tiny --out pdl && vpseg demo --model motion-deeplab-tiny --out mdl
    python benchmarks/step_table.py --panoptic pdl/run/ckpt.pt --motion mdl/run/ckpt.pt
"""

from __future__ import annotations

import argparse
import time

import torch

from vpseg.core.synthetic import SynthConfig, generate_video
from vpseg.core.video import Video
from vpseg.engine.inference import LoadedModel, load_model
from vpseg.evaluation import EvalConfig, evaluate_video
from vpseg.tracking import make_tracker

COLUMNS = (("STQ", "stq", "STQ"), ("AQ", "stq", "AQ"), ("SQ", "stq", "SQ"), ("VPQ", "vpq", "VPQ"),
           ("PTQ", "tracking", "PTQ"), ("sPTQ", "tracking", "sPTQ"), ("IDS", "tracking", "IDS"),
           ("sIDS", "tracking", "sIDS"), ("sMOTSA", "tracking", "sMOTSA"),
           ("MOTSP", "tracking", "MOTSP"))


def rows(args: argparse.Namespace) -> list[tuple[str, str, object]]:
    """(name, checkpoint role, tracker) per row."""
    out: list[tuple[str, str, object]] = [
        ("B1: IoU Assoc.", "panoptic", "iou"),
        ("B2: SORT", "panoptic", "sort"),
        ("B3: Mask Propagation (DIS)", "panoptic", "flow"),
    ]
    if args.raft_weights:
        out.append(("B3: Mask Propagation (RAFT)", "panoptic",
                    make_tracker("flow", flow="raft", flow_weights=args.raft_weights)))
    out += [("B4: Motion-DeepLab", "motion", "motion"),
            ("Motion-DeepLab net + IoU", "motion", "iou")]
    return out


def score(loaded: LoadedModel, tracker: object, videos: list[Video], config: EvalConfig) -> tuple[dict, float]:
    acc = None
    start = time.perf_counter()
    for gt in videos:
        assert gt.rgb is not None
        if not isinstance(tracker, str):
            tracker.reset()  # type: ignore[attr-defined]
        pred = list(loaded.segment(gt.rgb, tracker))  # type: ignore[arg-type]
        a = evaluate_video(gt, Video(name=gt.name, panoptic=pred, label_space=loaded.labels),
                           loaded.labels, config)
        acc = a if acc is None else acc.merge(a)
    assert acc is not None
    frames = sum(len(v) for v in videos)
    return acc.result(), (time.perf_counter() - start) / frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--panoptic", required=True, help="a panoptic-deeplab checkpoint (B1-B3)")
    ap.add_argument("--motion", required=True, help="a motion-deeplab checkpoint (B4)")
    ap.add_argument("--raft-weights", help="local RAFT weights file (torchvision raft_large)")
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--size", default="128,256")
    ap.add_argument("--seed", type=int, default=20_000,
                    help="world seed of the videos (the demos' val sets use 10000 + their seed)")
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    h, w = (int(v) for v in args.size.split(","))
    models = {"panoptic": load_model(args.panoptic), "motion": load_model(args.motion)}
    labels = models["panoptic"].labels
    config = EvalConfig(metrics=("stq", "vpq", "tracking"), vpq_ks=(1, 2, 3, 4),
                        vpq_names=("1", "2", "3", "4"))
    settings = {
        "normal speed": [generate_video(SynthConfig(height=h, width=w, frames=args.frames), labels,
                                        seed=args.seed, index=i) for i in range(args.videos)],
        "fast motion (every 3rd frame)": [
            generate_video(SynthConfig(height=h, width=w, frames=args.frames), labels,
                           seed=args.seed, index=i, step=3) for i in range(args.videos)],
    }
    print(f"{args.videos} held-out synthetic KITTI-STEP videos x {args.frames} frames {h}x{w} "
          f"(seed {args.seed}); B1-B3: {args.panoptic}; B4: {args.motion}")
    for setting, videos in settings.items():
        print(f"\n{setting}")
        names = [c[0] for c in COLUMNS]
        if args.markdown:
            print("| baseline | " + " | ".join(names) + " | s/frame |")
            print("|---" * (len(names) + 2) + "|")
        else:
            print(f"{'baseline':<30}" + "".join(f"{n:>8}" for n in names) + f"{'s/frame':>9}")
        for name, role, tracker in rows(args):
            result, seconds = score(models[role], tracker, videos, config)
            cells = []
            for _, family, key in COLUMNS:
                value = result[family][key]
                cells.append("n/a" if value is None else
                             f"{value:.0f}" if key in ("IDS", "sIDS") else f"{value:.3f}")
            if args.markdown:
                print(f"| {name} | " + " | ".join(cells) + f" | {seconds:.3f} |", flush=True)
            else:
                print(f"{name:<30}" + "".join(f"{c:>8}" for c in cells) + f"{seconds:>9.3f}",
                      flush=True)


if __name__ == "__main__":
    main()
