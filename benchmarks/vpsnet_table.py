"""VPSNet's ablation (its Tables 2 and 4) on synthetic Cityscapes-VPS videos: Base, Fuse, Track
and FuseTrack, image PQ and VPQ per window k = 0, 5, 10, 15, and FuseTrack's association variants
(Cls-Sort, IoU-Match, Disjoined, the full VPSNet). IoU-Match is the paper's flow-guided mask-IoU
matching: vpseg's ``flow`` tracker (masks warped by DIS flow onto the next frame, then matched by IoU).

The checkpoints come from ``vpseg demo --model vpsnet-tiny[-base|-fuse|-track|-disjoined]``
with the same minutes each (equal training time); ``--train MINUTES`` runs those demos first,
one after another, into ``--out``. Every row segments the same held-out videos (every frame, with
the previous frame as Fuse's reference) through ``LoadedModel.segment`` (the path of ``vpseg
segment``) and is scored on every 5th frame, as Cityscapes-VPS is annotated
(``vpseg.evaluation``: VPQ with the cityscapes-vps preset; k = 0 is the image PQ).

    python benchmarks/vpsnet_table.py --train 10 --out vpsnet-runs
    python benchmarks/vpsnet_table.py --fusetrack A/run/ckpt.pt --base B/... --fuse C/... --track D/... --disjoined E/...
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

from vpseg.core.synthetic import SynthConfig, generate_video
from vpseg.core.video import Video
from vpseg.engine.checkpoint import load_checkpoint
from vpseg.engine.inference import LoadedModel, load_model
from vpseg.evaluation import VPQ_PRESETS, EvalConfig, evaluate_video

MODELS = {"fusetrack": "vpsnet-tiny", "base": "vpsnet-tiny-base", "fuse": "vpsnet-tiny-fuse",
          "track": "vpsnet-tiny-track", "disjoined": "vpsnet-tiny-disjoined"}
# (row, checkpoint, association); Base and Fuse have no track head: no association (Cls-Sort)
ROWS = (("Base", "base", "cls-sort"), ("Fuse", "fuse", "cls-sort"), ("Track", "track", "vpsnet"),
        ("FuseTrack Cls-Sort", "fusetrack", "cls-sort"), ("FuseTrack IoU-Match", "fusetrack", "flow"),
        ("FuseTrack Disjoined", "disjoined", "vpsnet"), ("FuseTrack (VPSNet)", "fusetrack", "vpsnet"))
STRIDE = 5  # Cityscapes-VPS annotates every 5th frame


def score(loaded: LoadedModel, tracker: str, videos: list[Video], config: EvalConfig) -> tuple[dict, float]:
    acc = None
    start = time.perf_counter()
    for full in videos:
        assert full.rgb is not None
        pred = list(loaded.segment(full.rgb, tracker))
        keep = [i for i in range(len(full)) if i % STRIDE == STRIDE - 1]
        gt = Video(name=full.name, panoptic=[full.panoptic[i] for i in keep],
                   label_space=full.label_space, rgb=[full.rgb[i] for i in keep])
        a = evaluate_video(gt, Video(name=full.name, panoptic=[pred[i] for i in keep],
                                     label_space=loaded.labels), loaded.labels, config)
        acc = a if acc is None else acc.merge(a)
    assert acc is not None
    return acc.result(), (time.perf_counter() - start) / sum(len(v) for v in videos)


def train(minutes: float, out: Path) -> dict[str, Path]:
    paths = {}
    for key, model in MODELS.items():
        folder = out / model
        if not (folder / "run" / "ckpt.pt").exists():
            print(f"training {model} for {minutes:g} min -> {folder}", flush=True)
            tracker = "vpsnet" if key in ("fusetrack", "track", "disjoined") else "cls-sort"
            subprocess.run([sys.executable, "-m", "vpseg", "demo", "--model", model, "--minutes",
                            str(minutes), "--tracker", tracker, "--out", str(folder)],
                           check=True, stdout=subprocess.DEVNULL)
        paths[key] = folder / "run" / "ckpt.pt"
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for key, model in MODELS.items():
        ap.add_argument(f"--{key}", type=Path, help=f"a {model} checkpoint")
    ap.add_argument("--train", type=float, metavar="MINUTES",
                    help="first train the five variants for MINUTES each (vpseg demo)")
    ap.add_argument("--out", type=Path, default=Path("vpsnet-runs"), help="where --train writes")
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--frames", type=int, default=30, help="frames per video (every 5th annotated)")
    ap.add_argument("--size", default="128,256")
    ap.add_argument("--seed", type=int, default=20_000,
                    help="world seed of the videos (the demos' val sets use 10000 + their seed)")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    ap.add_argument("--only", help="comma-separated rows to score (e.g. 'Base,FuseTrack IoU-Match'); "
                    "default: all")
    args = ap.parse_args()
    rows = ROWS
    if args.only:
        wanted = [r.strip() for r in args.only.split(",")]
        unknown = [r for r in wanted if r not in {row for row, _, _ in ROWS}]
        if unknown:
            ap.error(f"--only: unknown rows {unknown}; rows: {', '.join(row for row, _, _ in ROWS)}")
        rows = tuple(r for r in ROWS if r[0] in wanted)
    paths = train(args.train, args.out) if args.train else {k: getattr(args, k) for k in MODELS}
    missing = [k for k, p in paths.items() if p is None]
    if missing:
        ap.error(f"give every checkpoint ({', '.join('--' + k for k in MODELS)}) or --train MINUTES")
    torch.set_grad_enabled(False)
    h, w = (int(v) for v in args.size.split(","))
    models = {k: load_model(p) for k, p in paths.items()}
    iterations = {k: int(load_checkpoint(p)["iteration"]) for k, p in paths.items()}
    labels = models["fusetrack"].labels
    ks, names, _ = VPQ_PRESETS["cityscapes-vps"]
    config = EvalConfig(metrics=("vpq",), vpq_ks=ks, vpq_names=names)
    videos = [generate_video(SynthConfig(height=h, width=w, frames=args.frames), labels,
                             seed=args.seed, index=i) for i in range(args.videos)]
    print(f"{args.videos} held-out synthetic Cityscapes-VPS videos x {args.frames} frames {h}x{w} "
          f"(seed {args.seed}), scored on every {STRIDE}th frame; cells VPQ / VPQ_th / VPQ_st")
    head = [f"k = {n}" for n in names] + ["VPQ", "iters", "s/frame"]
    if args.markdown:
        print("| variant | " + " | ".join(head) + " |")
        print("|---" * (len(head) + 1) + "|")
    else:
        print(f"{'variant':<22}" + "".join(f"{c:>21}" for c in head[:-2]) + f"{'iters':>7}{'s/frame':>9}")
    for row, key, tracker in rows:
        result, seconds = score(models[key], tracker, videos, config)
        vpq = result["vpq"]

        def cell(d: dict) -> str:
            return " / ".join("n/a" if d.get(x) is None else f"{d[x]:.3f}" for x in ("VPQ", "VPQ_th", "VPQ_st"))

        cells = [cell(vpq["per_k"][n]) for n in names] + [cell(vpq)]
        if args.markdown:
            print(f"| {row} | " + " | ".join(cells) + f" | {iterations[key]} | {seconds:.3f} |", flush=True)
        else:
            print(f"{row:<22}" + "".join(f"{c:>21}" for c in cells) + f"{iterations[key]:>7}{seconds:>9.3f}",
                  flush=True)


if __name__ == "__main__":
    main()
