"""VSPW's comparison (its Table 2, on the synthetic world): PSPNet against TCB-PSP and OCRNet
against TCB-OCR, trained for the same time, in mIoU, mVC8, mVC16 and TC.

The checkpoints come from ``vpseg demo --model M --format vspw`` (the same minutes for each:
equal training time, which gives the TCB models fewer iterations, as each of their samples costs
four backbone passes). ``--train MINUTES`` runs those four demos first, one after another, into
``--out``. Every row segments the same held-out synthetic VSPW videos through
``LoadedModel.segment`` (the path of ``vpseg segment``) and is scored with ``vpseg.evaluation``
(mIoU; mVC_C over clips of C frames; TC with DIS optical flow). A second setting takes every 3rd
frame of videos three times as long, so things move three times as far between frames.

    python benchmarks/vspw_table.py --train 10 --out vspw-runs
    python benchmarks/vspw_table.py --psp A/run/ckpt.pt --tcb-psp B/run/ckpt.pt --ocr C/... --tcb-ocr D/...
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
from vpseg.evaluation import EvalConfig, evaluate_video

ROWS = (("PSPNet", "psp", "psp-tiny"), ("TCB (ST-PPM)", "tcb-psp", "tcb-psp-tiny"),
        ("OCRNet", "ocr", "ocr-tiny"), ("TCB (ST-OCR)", "tcb-ocr", "tcb-ocr-tiny"))


def score(loaded: LoadedModel, videos: list[Video], config: EvalConfig) -> tuple[dict, float]:
    acc = None
    start = time.perf_counter()
    for gt in videos:
        assert gt.rgb is not None
        pred = list(loaded.segment(gt.rgb))
        a = evaluate_video(gt, Video(name=gt.name, panoptic=pred, label_space=loaded.labels),
                           loaded.labels, config)
        acc = a if acc is None else acc.merge(a)
    assert acc is not None
    return acc.result(), (time.perf_counter() - start) / sum(len(v) for v in videos)


def train(minutes: float, out: Path) -> dict[str, Path]:
    paths = {}
    for _, key, model in ROWS:
        folder = out / model
        if not (folder / "run" / "ckpt.pt").exists():
            print(f"training {model} for {minutes:g} min -> {folder}", flush=True)
            subprocess.run([sys.executable, "-m", "vpseg", "demo", "--model", model, "--format",
                            "vspw", "--minutes", str(minutes), "--out", str(folder)],
                           check=True, stdout=subprocess.DEVNULL)
        paths[key] = folder / "run" / "ckpt.pt"
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for _, key, _ in ROWS:
        ap.add_argument(f"--{key}", type=Path, help=f"a {key}-* checkpoint")
    ap.add_argument("--train", type=float, metavar="MINUTES",
                    help="first train the four tiny models for MINUTES each (vpseg demo)")
    ap.add_argument("--out", type=Path, default=Path("vspw-runs"), help="where --train writes")
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--size", default="128,256")
    ap.add_argument("--seed", type=int, default=20_000,
                    help="world seed of the videos (the demos' val sets use 10000 + their seed)")
    ap.add_argument("--extra", action="append", default=[], metavar="LABEL=CHECKPOINT",
                    help="another row (e.g. an image model trained for TCB's iteration count)")
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = ap.parse_args()
    paths = train(args.train, args.out) if args.train else {k: getattr(args, k.replace("-", "_"))
                                                           for _, k, _ in ROWS}
    if any(p is None for p in paths.values()):
        ap.error("give the four checkpoints (--psp --tcb-psp --ocr --tcb-ocr) or --train MINUTES")
    torch.set_grad_enabled(False)
    h, w = (int(v) for v in args.size.split(","))
    rows = list(ROWS)
    for extra in args.extra:
        label, _, path = extra.partition("=")
        if not path:
            ap.error(f"--extra takes LABEL=CHECKPOINT, got {extra!r}")
        paths[label] = Path(path)
        rows.append((label, label, ""))
    models = {k: load_model(p) for k, p in paths.items()}
    iterations = {k: int(load_checkpoint(p)["iteration"]) for k, p in paths.items()}
    labels = models["psp"].labels
    config = EvalConfig(metrics=("semantic", "vc", "tc"))
    settings: dict[str, list[Video]] = {
        "normal speed": [generate_video(SynthConfig(height=h, width=w, frames=args.frames), labels,
                                        seed=args.seed, index=i) for i in range(args.videos)],
        "fast motion (every 3rd frame)": [
            generate_video(SynthConfig(height=h, width=w, frames=args.frames), labels,
                           seed=args.seed, index=i, step=3) for i in range(args.videos)],
    }
    print(f"{args.videos} held-out synthetic VSPW videos x {args.frames} frames {h}x{w} "
          f"(seed {args.seed}); TC with DIS flow")
    names = ("mIoU", "mVC8", "mVC16", "TC", "iters", "s/frame")
    for setting, videos in settings.items():
        print(f"\n{setting}")
        if args.markdown:
            print("| model | " + " | ".join(names) + " |")
            print("|---" * (len(names) + 1) + "|")
        else:
            print(f"{'model':<16}" + "".join(f"{n:>9}" for n in names))
        for name, key, _ in rows:
            result, seconds = score(models[key], videos, config)
            values = (result["semantic"]["mIoU"], result["vc"]["8"], result["vc"]["16"], result["tc"])
            cells = ["n/a" if v is None else f"{v:.3f}" for v in values]
            cells += [str(iterations[key]), f"{seconds:.3f}"]
            if args.markdown:
                print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
            else:
                print(f"{name:<16}" + "".join(f"{c:>9}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
