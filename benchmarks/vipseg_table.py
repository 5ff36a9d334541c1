"""The VIPSeg paper's Table 2 (tracking strategies) and Fig. 7 (clip length) on held-out synthetic
VIPSeg videos, from one PanopticFCN / Clip-PanoFCN checkpoint (both are the same network: the
rows differ only in how a video is cut and linked).

Table 2: PanopticFCN (frame by frame, no association: `none`), +Track (frame by frame, the
`kernel` tracker between frames), +Clip (clips of C frames, clip-fused kernels, no association
between clips), +Clip and Track (clips of C, `kernel` tracking between clips). Fig. 7: VPQ^k
and STQ against the clip length C with kernel tracking. Every row segments through
`LoadedModel.segment` (the path of `vpseg segment`), VPQ with the vipseg preset (k = 1, 2, 4,
6).

    vpseg demo --format vipseg --model clip-panofcn-tiny --out demo-clip
    python benchmarks/vipseg_table.py --checkpoint demo-clip/run/ckpt.pt
"""

from __future__ import annotations

import argparse
import time

import torch

from vpseg.core.synthetic import SynthConfig, generate_video
from vpseg.core.video import Video
from vpseg.engine.inference import LoadedModel, load_model
from vpseg.evaluation import VPQ_PRESETS, EvalConfig, evaluate_video


def score(loaded: LoadedModel, videos: list[Video], clip: int, tracker: str,
          config: EvalConfig) -> tuple[dict, float]:
    acc = None
    start = time.perf_counter()
    for gt in videos:
        assert gt.rgb is not None
        pred = list(loaded.segment(gt.rgb, tracker, options=loaded.options(clip=clip)))
        a = evaluate_video(gt, Video(name=gt.name, panoptic=pred, label_space=loaded.labels),
                           loaded.labels, config)
        acc = a if acc is None else acc.merge(a)
    assert acc is not None
    return acc.result(), (time.perf_counter() - start) / sum(len(v) for v in videos)


def row(name: str, result: dict, seconds: float, markdown: bool) -> str:
    vpq = result["vpq"]
    cells = [vpq["per_k"][k]["VPQ"] for k in ("1", "2", "4", "6")]
    cells += [vpq["VPQ"], result["stq"]["STQ"], result["stq"]["AQ"]]
    text = [f"{c:.3f}" for c in cells]
    if markdown:
        return f"| {name} | " + " | ".join(text) + f" | {seconds:.3f} |"
    return f"{name:<26}" + "".join(f"{t:>8}" for t in text) + f"{seconds:>9.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True, help="a panopticfcn / clip-panofcn checkpoint")
    ap.add_argument("--clip", type=int, default=4, help="C of the +Clip rows")
    ap.add_argument("--lengths", default="1,2,3,4,6,8", help="clip lengths of Fig. 7")
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--size", default="128,256")
    ap.add_argument("--seed", type=int, default=20_000)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    loaded = load_model(args.checkpoint)
    h, w = (int(v) for v in args.size.split(","))
    videos = [generate_video(SynthConfig(height=h, width=w, frames=args.frames), loaded.labels,
                             seed=args.seed, index=i) for i in range(args.videos)]
    ks, names, _ = VPQ_PRESETS["vipseg"]
    config = EvalConfig(metrics=("stq", "vpq"), vpq_ks=ks, vpq_names=names)
    head = ["VPQ1", "VPQ2", "VPQ4", "VPQ6", "VPQ", "STQ", "AQ"]
    print(f"{args.checkpoint} ({loaded.spec.model}); {args.videos} held-out synthetic videos x "
          f"{args.frames} frames {h}x{w}, label space {loaded.labels.name}, seed {args.seed}")

    def header(first: str) -> None:
        if args.markdown:
            print(f"| {first} | " + " | ".join(head) + " | s/frame |")
            print("|---" * (len(head) + 2) + "|")
        else:
            print(f"{first:<26}" + "".join(f"{c:>8}" for c in head) + f"{'s/frame':>9}")

    print("\nTable 2: tracking strategies")
    header("method")
    for name, clip, tracker in (("PanopticFCN", 1, "none"), ("+Track", 1, "kernel"),
                                (f"+Clip (C = {args.clip})", args.clip, "none"),
                                (f"+Clip and Track (C = {args.clip})", args.clip, "kernel")):
        result, seconds = score(loaded, videos, clip, tracker, config)
        print(row(name, result, seconds, args.markdown), flush=True)
    print("\nFig. 7: clip length, kernel tracking between clips")
    header("C")
    for c in (int(v) for v in args.lengths.split(",")):
        result, seconds = score(loaded, videos, c, "kernel", config)
        print(row(str(c), result, seconds, args.markdown), flush=True)


if __name__ == "__main__":
    main()
