"""The ``vpseg`` argument parser and the error handling around a command (``vpseg.cli.main``
is the entry point that imports this)."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from vpseg import __version__
from vpseg.errors import InputError

__all__ = ["run", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_format(p: argparse.ArgumentParser, *, flag: str = "--format", dest: str = "format") -> None:
    from vpseg.cli import commands

    p.add_argument(flag, dest=dest, required=True,
                   help="dataset format: " + ", ".join(commands.format_names()))


MODEL_HELP = ("a registered model: `vpseg models` lists them (video-kmax-*, panoptic-deeplab-*, "
              "motion-deeplab-*, panopticfcn-*, clip-panofcn-*)")


def build_parser() -> argparse.ArgumentParser:
    from vpseg.cli import commands, model_commands, report_command

    parser = _Parser(
        prog="vpseg", description="Video panoptic / video semantic segmentation tools."
    )
    parser.add_argument("--version", action="version", version=f"vpseg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)

    p = sub.add_parser("synth", help="write a synthetic data set in a format's own layout")
    p.add_argument("out", help="output dataset root")
    _add_format(p)
    p.add_argument("--videos", type=int, default=8)
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--objects", type=int, default=10, help="thing tracks per video")
    p.add_argument("--difficulty", type=float, default=0.5, help="0 (easy) .. 1 (hard)")
    p.add_argument("--split", default="train")
    p.add_argument("--label-space", help="label space JSON (default: the format's own; world "
                   "classes are matched by category name)")
    p.set_defaults(func=commands.synth)

    p = sub.add_parser("info", help="summarise a data set (videos, frames, classes, tracks)")
    p.add_argument("root")
    _add_format(p)
    p.add_argument("--split")
    p.add_argument("--label-space", help="custom label space JSON (overrides the format's)")
    p.add_argument("--json", nargs="?", const="-", metavar="OUT",
                   help="write the summary as JSON to OUT (or stdout when no OUT)")
    p.set_defaults(func=commands.info)

    p = sub.add_parser("viz", help="coloured panoptic frames as PNGs and an H.264 MP4")
    p.add_argument("root")
    _add_format(p)
    p.add_argument("--out", required=True)
    p.add_argument("--video", action="append", help="video name (repeatable); default: all")
    p.add_argument("--split")
    p.add_argument("--label-space")
    p.add_argument("--mp4", action="store_true", help="also write <out>/<video>.mp4")
    p.add_argument("--no-png", action="store_true", help="write no PNG frames")
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--side-by-side", metavar="PRED_DIR",
                   help="prediction folder (same format) shown right of the ground truth")
    p.set_defaults(func=commands.viz)

    p = sub.add_parser("convert", help="convert a data set (or predictions) between formats")
    p.add_argument("src")
    p.add_argument("dst")
    _add_format(p, flag="--from", dest="src_format")
    _add_format(p, flag="--to", dest="dst_format")
    p.add_argument("--split", help="split to read (and to write; default train)")
    p.add_argument("--label-space")
    p.add_argument("--semantic-only", action="store_true",
                   help="drop instance ids (needed to write a semantic-only format)")
    p.add_argument("--submission", action="store_true",
                   help="write the benchmark's submission layout (what the official evaluation "
                        "scripts and servers read; see docs/formats.md) instead of a data set")
    p.set_defaults(func=commands.convert)

    p = sub.add_parser("eval", help="evaluate predictions against ground truth")
    p.add_argument("gt", help="ground-truth dataset root (or the folder of per-video folders)")
    p.add_argument("pred", help="prediction folder (submission layout or the same layout as GT)")
    _add_format(p)
    p.add_argument("--metrics",
                   help="comma list of: stq, vpq, pq, semantic, vc, tc, tracking (default: "
                        "stq,vpq,semantic; semantic,vc for a semantic-only format such as vspw)")
    p.add_argument("--vpq-preset", choices=["vipseg", "vipseg-script", "cityscapes-vps"],
                   help="VPQ windows of the official scripts (default: vipseg)")
    p.add_argument("--vpq-k", help="comma list of window lengths in annotated frames")
    p.add_argument("--vpq-stride", type=int, help="use every S-th annotated frame for VPQ")
    p.add_argument("--vc-n", default="8,16", help="comma list of VC clip lengths")
    p.add_argument("--vc-all-windows", action="store_true",
                   help="VC over all T-N+1 windows (the official script uses T-N)")
    p.add_argument("--flow", default="dis", choices=["dis", "farneback", "raft", "raft-small"],
                   help="TC: optical flow backend (the official TC used RAFT; numbers depend on it)")
    p.add_argument("--flow-weights", help="TC: local RAFT weights file (state dict)")
    p.add_argument("--flow-max-side", type=int, default=640,
                   help="TC: flow working resolution, longer side in pixels (0: full size)")
    p.add_argument("--tc-per-video", action="store_true",
                   help="TC: mean over videos (the paper) instead of pooled pairs (the official code)")
    p.add_argument("--stq-vipseg-wrapper", action="store_true",
                   help="STQ: reproduce VIPSeg's eval_stq_vspw.py, which numbers a video's "
                        "segments from 0 so a first-listed thing becomes crowd (published VIPSeg "
                        "STQ numbers include it)")
    p.add_argument("--label-space", help="custom label space JSON (overrides the format's)")
    p.add_argument("--gt-json", help="COCO-style formats: the ground-truth JSON, if not found by name")
    p.add_argument("--pred-json", help="COCO-style formats: the prediction JSON (default pred.json)")
    p.add_argument("--split")
    p.add_argument("--workers", type=int, default=1, help="processes on this machine")
    p.add_argument("--dask", metavar="SCHEDULER",
                   help="evaluate videos on the workers of this dask.distributed scheduler "
                        "(tcp://host:8786); they must see the same paths")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON")
    p.set_defaults(func=commands.eval_)

    p = sub.add_parser("track", help="give per-frame predictions video-consistent track ids")
    p.add_argument("pred_in", help="predictions whose instance ids are arbitrary per frame")
    p.add_argument("out", help="output root (same format and layout)")
    _add_format(p)
    p.add_argument("--tracker", default="auto",
                   help="auto, iou, sort, flow, memory, hila (frame by frame); auto (the "
                        "default) picks the best for the cues present and says which")
    p.add_argument("--param", action="append", default=[], metavar="K=V",
                   help="tracker parameter, e.g. --param alpha=0.8 (repeatable)")
    p.add_argument("--frames", help="folder of RGB frames <video>/<frame>.png|jpg (for flow)")
    p.add_argument("--submission", action="store_true",
                   help="write the benchmark's submission layout instead of a data set")
    p.add_argument("--split")
    p.add_argument("--label-space")
    p.set_defaults(func=commands.track)

    p = sub.add_parser("models", help="list the models train / segment / demo know")
    p.set_defaults(func=model_commands.models)

    p = sub.add_parser("train", help="train a model (torchrun for several GPUs)")
    p.add_argument("--model", default="video-kmax-tiny", help=MODEL_HELP)
    p.add_argument("--data", help="dataset root (default: the synthetic world, a fresh scene "
                   "per clip, in --format's label space)")
    _add_format(p)
    p.add_argument("--split", help="split to train on (default: the format's train split)")
    p.add_argument("--label-space")
    p.add_argument("--out", required=True, help="run folder (ckpt.pt is written there)")
    p.add_argument("--clip", type=int,
                   help="frames per training sample (default: the model's, `vpseg models`)")
    p.add_argument("--epochs", type=float, help="passes over the data set's clips")
    p.add_argument("--iters", type=int, help="training iterations")
    p.add_argument("--minutes", type=float, help="as many iterations as fit in this time here")
    p.add_argument("--batch-size", type=int, default=8, help="clips per iteration (per process)")
    p.add_argument("--crop", default="128,256", help="training crop H,W")
    p.add_argument("--min-scale", type=float, default=0.75)
    p.add_argument("--max-scale", type=float, default=1.5)
    p.add_argument("--input-scale", type=float, default=1.0,
                   help="inference scale relative to the training scale (stored in the "
                   "checkpoint): frames are resized so their short side is the training frames' "
                   "times this")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW base learning rate (poly decay)")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup", type=int, default=100, help="warmup iterations")
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--loss", action="append", metavar="KEY=VALUE",
                   help="a loss option of the model (`vpseg models` lists them), repeatable")
    p.add_argument("--amp", action="store_true", help="mixed precision")
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--deterministic", action="store_true")
    p.add_argument("--device", help="cpu, cuda (default: cuda when available)")
    p.add_argument("--backbone-weights", help="local ImageNet weights file (torchvision format)")
    p.set_defaults(func=model_commands.train)

    p = sub.add_parser("segment", help="segment a video, a folder of frames or a data set")
    p.add_argument("input", help="video file (mp4...), folder of frames, or dataset root")
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="RUN/ckpt.pt of vpseg train")
    model.add_argument("--hf-model", metavar="PATH_OR_ID",
                       help="a Hugging Face transformers image panoptic model (Mask2Former, "
                       "OneFormer, DETR): a saved folder, or a hub id when a network is there; "
                       "run frame by frame, its segments tracked with --tracker (default hila: "
                       "its query features as appearance)")
    p.add_argument("--out", required=True)
    p.add_argument("--format", default="kitti-step", help="output format (default kitti-step)")
    p.add_argument("--label-space", help="--hf-model: label space JSON that says which of the "
                   "model's classes are things (default: its id2label matched by name to "
                   "COCO-panoptic)")
    p.add_argument("--map-to", metavar="LABELS",
                   help="--hf-model: write a data set's classes instead of the model's (a "
                   "built-in label space such as kitti-step or vipseg, or a JSON), matching "
                   "class names; classes with no match become void")
    p.add_argument("--class-map", metavar="JSON",
                   help="--hf-model with --map-to: {\"model class\": \"data set class\" or "
                   "null for void} for the names that do not match")
    p.add_argument("--batch-size", type=int,
                   help="--hf-model: frames per network call (default 4)")
    p.add_argument("--input-format", help="INPUT is a data set in this format")
    p.add_argument("--split", help="split of the input data set")
    p.add_argument("--out-split", default="val", help="split folder of the output")
    p.add_argument("--tracker", help="association (default: the model's, `vpseg models`)")
    p.add_argument("--clip", type=int, help="clip length (default: the one trained with)")
    p.add_argument("--input-scale", type=float,
                   help="inference scale relative to the training scale (default: the "
                   "checkpoint's); frames of any size are first brought to the training scale")
    p.add_argument("--parallel-clips", type=int, default=1,
                   help="clips per network call, for models whose clips are independent "
                   "(clip-panofcn, panoptic-fcn); more is faster on a GPU and takes more memory")
    p.add_argument("--no-overlay", action="store_true", help="write no overlay MP4s")
    p.add_argument("--submission", action="store_true",
                   help="write the benchmark's submission layout of --format (docs/formats.md)")
    p.add_argument("--fps", type=float, default=10.0)
    p.set_defaults(func=model_commands.segment)

    p = sub.add_parser("report", help="one self-contained HTML page of an evaluation's "
                       "results (open it in a browser)")
    p.add_argument("results", help="results JSON of vpseg eval --json (or the demo's metrics.json)")
    p.add_argument("--out", required=True, help="the HTML file to write")
    p.add_argument("--gt", help="ground-truth root: adds instance counts and overlay clips")
    p.add_argument("--pred", help="prediction root (with --gt): overlay clips GT | prediction")
    p.add_argument("--format", help="format of --gt and --pred (default: the results' own)")
    p.add_argument("--split", help="split of --gt")
    p.add_argument("--label-space")
    p.add_argument("--clips", type=int, default=4, help="overlay clips embedded (videos)")
    p.set_defaults(func=report_command.report)

    p = sub.add_parser("demo", help="the main job: train, segment and evaluate on the synthetic world")
    p.add_argument("--out", default="demo-out")
    p.add_argument("--minutes", type=float, default=10.0, help="total time budget")
    p.add_argument("--reserve", type=float, default=45.0,
                   help="seconds of the budget kept for segmenting and evaluating")
    p.add_argument("--val-videos", type=int, default=4)
    p.add_argument("--frames", type=int, default=30, help="frames per val video")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="video-kmax-tiny", help=MODEL_HELP)
    p.add_argument("--format",
                   help="layout and label space of the synthetic data (default: the model's, "
                   "kitti-step for most; cityscapes-vps for vpsnet)")
    p.add_argument("--clip", type=int, help="frames per clip (video-kmax: 2 near-online, 1 "
                   "online); the defaults of this and the next flags are the model's recipe")
    p.add_argument("--tracker", help="association for segmenting val")
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--min-scale", type=float,
                   help="training scale jitter (video-kmax: 1.0-1.6, zoomed in around the 1.25 "
                   "of inference)")
    p.add_argument("--max-scale", type=float)
    p.add_argument("--input-scale", type=float,
                   help="inference scale relative to the training scale (video-kmax: 1.25, small "
                   "things segment better slightly enlarged, +0.01-0.03 STQ on two val sets)")
    p.add_argument("--loss", action="append", metavar="KEY=VALUE",
                   help="a loss option of the model (`vpseg models` lists them), repeatable")
    p.add_argument("--clips-per-video", type=int, default=1,
                   help="consecutive training clips taken from each generated scene")
    p.add_argument("--train-objects", type=int, default=24,
                   help="thing tracks per generated training scene (the val scenes have 10)")
    p.add_argument("--amp", choices=("auto", "on", "off"), default="auto",
                   help="mixed precision (bfloat16 on a CPU, float16 on a GPU); auto: on where "
                   "a training step measures at least 10%% faster with it")
    p.add_argument("--iters", type=int,
                   help="train exactly this many iterations instead of for the time budget "
                   "(reproducible runs whose result does not follow the machine's speed)")
    p.set_defaults(func=model_commands.demo)
    return parser


def run(argv: Sequence[str] | None, state: dict[str, str]) -> int:
    """Parse ``argv`` and run the command; user mistakes become one line and exit code 2.
    ``state["command"]`` names the command for the caller's messages."""
    try:
        with warnings.catch_warnings():
            parser = build_parser()
            args = parser.parse_args(argv)
            state["command"] = f"vpseg {args.command}"
            _print_notes(state["command"])
            return int(args.func(args) or 0)
    except InputError as exc:
        print(f"{state['command']}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file or folder the user named cannot be read or written
        if exc.filename is None or isinstance(exc, BrokenPipeError):
            raise
        print(f"{state['command']}: error: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return 2


def _print_notes(command: str) -> None:
    """Show each ``vpseg.errors.Note`` once, as one line; other warnings as Python shows them."""
    from vpseg.errors import Note

    shown: set[str] = set()
    default = warnings.showwarning
    warnings.simplefilter("always", Note)

    def show(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if not issubclass(category, Note):
            default(message, category, *args, **kwargs)
        elif str(message) not in shown:
            shown.add(str(message))
            print(f"{command}: note: {message}", file=sys.stderr)

    warnings.showwarning = show
