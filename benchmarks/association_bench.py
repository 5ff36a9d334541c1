"""Video-kMaX Table 5 on the synthetic world: one trained model, different association features.

Segments held-out synthetic KITTI-STEP videos with a ``vpseg train`` / ``vpseg demo`` checkpoint
trained near-online (T = 2) and, for the online rows, one trained online (T = 1,
``--online-checkpoint``; without it the near-online model runs with T = 1, which clip-kMaX
allows), and reports STQ, AQ, SQ and VPQ (vipseg preset) for:

* near-online (T = 2, overlap 1): video stitching only; stitching + appearance; stitching +
  location; HiLA-MB (stitching + appearance + location);
* online (T = 1): appearance only (naive-MB); location only; appearance + location (HiLA-MB).

Only the association changes between rows of a setting, so SQ is the same within one; AQ is
what the features buy. Also the seconds per frame of segmentation + association.

    python benchmarks/association_bench.py --checkpoint demo-out/run/ckpt.pt \
        [--online-checkpoint demo-online/run/ckpt.pt] [--videos 4]
"""

from __future__ import annotations

import argparse
import time

import torch

from vpseg.core.synthetic import SynthConfig, generate_video
from vpseg.core.video import Video
from vpseg.engine.inference import load_model
from vpseg.evaluation import VPQ_PRESETS, EvalConfig, evaluate_video
from vpseg.models.kmax_inference import PostProcess, segment_frames
from vpseg.tracking import make_tracker

ROWS = [
    ("near-online", 2, "video stitching only", "stitch", {}),
    ("near-online", 2, "stitching + appearance", "hila", {"location": False}),
    ("near-online", 2, "stitching + location", "hila", {"appearance": False}),
    ("near-online", 2, "HiLA-MB (all three)", "hila", {}),
    ("online", 1, "appearance only (naive-MB)", "memory", {}),
    ("online", 1, "location only", "hila", {"appearance": False}),
    ("online", 1, "appearance + location (HiLA-MB)", "hila", {}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True, help="trained near-online (vpseg demo)")
    ap.add_argument("--online-checkpoint",
                    help="trained online, for the T = 1 rows (vpseg demo --clip 1)")
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--size", default="128,256")
    ap.add_argument("--seed", type=int, default=10_000, help="world seed of the val videos "
                    "(vpseg demo's val set uses 10000 + its --seed)")
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split(","))
    models = {2: load_model(args.checkpoint)}
    models[1] = load_model(args.online_checkpoint) if args.online_checkpoint else models[2]
    labels = models[2].labels
    videos = [generate_video(SynthConfig(height=h, width=w, frames=args.frames), labels,
                             seed=args.seed, index=i) for i in range(args.videos)]
    ks, names, _ = VPQ_PRESETS["vipseg"]
    config = EvalConfig(metrics=("stq", "vpq"), vpq_ks=ks, vpq_names=names)
    print(f"{args.videos} synthetic KITTI-STEP videos x {args.frames} frames {h}x{w}; "
          f"near-online: {args.checkpoint}; online: {args.online_checkpoint or args.checkpoint}")
    print(f"{'setting':<12}{'association':<34}{'STQ':>7}{'AQ':>7}{'SQ':>7}{'VPQ':>7}{'s/frame':>9}")
    torch.set_grad_enabled(False)
    for setting, clip, what, tracker, params in ROWS:
        loaded = models[clip]
        # the scale vpseg segment / demo run at (the training scale times the checkpoint's factor)
        post = PostProcess(input_scale=loaded.options().scale(h, w))
        acc = None
        start = time.perf_counter()
        for gt in videos:
            assert gt.rgb is not None
            pred = list(segment_frames(loaded.model, gt.rgb, labels, make_tracker(tracker, **params),
                                       clip=clip, post=post))
            a = evaluate_video(gt, Video(name=gt.name, panoptic=pred, label_space=labels),
                               labels, config)
            acc = a if acc is None else acc.merge(a)
        seconds = (time.perf_counter() - start) / (args.videos * args.frames)
        assert acc is not None
        r = acc.result()
        print(f"{setting:<12}{what:<34}{r['stq']['STQ']:>7.3f}{r['stq']['AQ']:>7.3f}"
              f"{r['stq']['SQ']:>7.3f}{r['vpq']['VPQ']:>7.3f}{seconds:>9.3f}", flush=True)


if __name__ == "__main__":
    main()
