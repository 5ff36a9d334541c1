"""A checkpoint on held-out synthetic videos of several resolutions, segmented as `vpseg segment`
segments them with no flags (frames brought to the training scale, `ResizeShortestEdge`-style),
and, for comparison, with the checkpoint's factor applied to the frames as given (what vpseg did
before it recorded the training scale).

    python benchmarks/resolution_bench.py --checkpoint demo-out/run/ckpt.pt
"""

from __future__ import annotations

import argparse
import time

import torch

from vpseg.core.synthetic import SynthConfig, generate_video
from vpseg.core.video import Video
from vpseg.engine.inference import load_model
from vpseg.evaluation import VPQ_PRESETS, EvalConfig, evaluate_video
from vpseg.models.registry import InferenceOptions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--sizes", default="128x256,256x512,192x384",
                    help="HxW of the videos (256x512 is vpseg synth's default)")
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--seed", type=int, default=10_000,
                    help="world seed (the demo's val set: 10000 + its --seed)")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    loaded = load_model(args.checkpoint)
    labels = loaded.labels
    ks, names, _ = VPQ_PRESETS["vipseg"]
    config = EvalConfig(metrics=("stq", "vpq"), vpq_ks=ks, vpq_names=names)
    spec = loaded.spec
    print(f"{args.checkpoint}: {spec.model}, trained at short side {spec.train_short_side}, "
          f"--input-scale {spec.input_scale:g}; {args.videos} videos x {args.frames} frames, "
          f"world seed {args.seed}")
    print(f"{'size':<10}{'inference':<44}{'STQ':>7}{'AQ':>7}{'SQ':>7}{'VPQ':>7}{'s/frame':>9}")
    for size in args.sizes.split(","):
        h, w = (int(v) for v in size.split("x"))
        videos = [generate_video(SynthConfig(height=h, width=w, frames=args.frames), labels,
                                 seed=args.seed, index=i) for i in range(args.videos)]
        settings = [(f"training scale x {spec.input_scale:g} (default)", loaded.options()),
                    (f"factor {spec.input_scale:g} on the frame as given",
                     InferenceOptions(clip=spec.clip, input_scale=spec.input_scale))]
        for what, options in settings:
            acc = None
            start = time.perf_counter()
            for gt in videos:
                assert gt.rgb is not None
                pred = list(loaded.segment(gt.rgb, options=options))
                a = evaluate_video(gt, Video(name=gt.name, panoptic=pred, label_space=labels),
                                   labels, config)
                acc = a if acc is None else acc.merge(a)
            assert acc is not None
            r = acc.result()
            seconds = (time.perf_counter() - start) / (args.videos * args.frames)
            print(f"{size:<10}{what:<44}{r['stq']['STQ']:>7.3f}{r['stq']['AQ']:>7.3f}"
                  f"{r['stq']['SQ']:>7.3f}{r['vpq']['VPQ']:>7.3f}{seconds:>9.3f}", flush=True)


if __name__ == "__main__":
    main()
