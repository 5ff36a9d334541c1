"""What each ``vpseg`` sub-command does; argument parsing lives in ``main``."""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from vpseg._allocator import keep_freed_memory
from vpseg._atomic import write_json
from vpseg.cli._outputs import check_output_file, check_output_folder, staged_folder
from vpseg.core.labels import LabelSpace, load_label_space
from vpseg.core.video import LazyFrames, Video
from vpseg.errors import InputError, note
from vpseg.evaluation import METRIC_FAMILIES, VPQ_PRESETS, EvalConfig, evaluate
from vpseg.evaluation_report import format_results
from vpseg.formats import FORMATS, Format, get_format
from vpseg.info import format_table, summarize
from vpseg.viz import render_frames, write_mp4, write_pngs

if TYPE_CHECKING:
    from vpseg.core.synthetic import SynthConfig


def format_names() -> list[str]:
    return list(FORMATS)


def _format(name: str) -> Format:
    try:
        return get_format(name)
    except KeyError as exc:
        raise InputError(str(exc.args[0])) from None


def _labels(path: str | None) -> LabelSpace | None:
    return None if path is None else load_label_space(path)


def _videos(fmt: Format, root: str, split: str | None, labels: LabelSpace | None,
            names: list[str] | None = None, desc: str = "videos") -> Iterator[Video]:
    if not Path(root).exists():
        raise InputError("no such file or folder", path=root)
    available = fmt.list_videos(root, split=split)
    if not available:
        raise InputError(f"no {fmt.name} videos found", path=root)
    for name in names or available:
        if name not in available:
            raise InputError(f"no video {name!r} (have {', '.join(available[:5])}…)", path=root)
    for name in tqdm(names or available, desc=desc, unit="video", leave=False,
                     disable=not sys.stderr.isatty()):
        yield fmt.read_video(root, name, split=split, label_space=labels)


def synthesize(out: Path, fmt: Format, cfg: SynthConfig, *, videos: int, seed: int,
               split: str, labels: LabelSpace | None = None, submission: bool = False) -> None:
    """Write ``videos`` synthetic videos into ``out`` in ``fmt``'s layout and label space."""
    from vpseg.core.synthetic import generate, world_classes

    labels = labels or fmt.default_label_space()
    try:
        world_classes(labels)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if cfg.objects >= labels.label_divisor:
        raise InputError(f"--objects {cfg.objects}: at most {labels.label_divisor - 1} thing "
                         f"tracks per video fit below the label divisor {labels.label_divisor} "
                         f"of label space {labels.name!r}")
    stride = fmt.annotation_stride
    with fmt.open_writer(out, label_space=labels, split=split, submission=submission) as writer:
        for video in tqdm(generate(cfg, labels, seed=seed, videos=videos), total=videos,
                          desc="synth", unit="video", leave=False, disable=not sys.stderr.isatty()):
            writer.write(_sparsify(video, stride))


def _sparsify(video: Video, stride: int) -> Video:
    """Keep every ``stride``-th annotation (as sparsely annotated data sets do), all RGB."""
    if stride == 1:
        return video
    keep = [i for i in range(len(video)) if i % stride == stride - 1]
    pan, rgb = video.panoptic, video.rgb
    assert rgb is not None
    return Video(  # frames read when written (the synthetic world renders them then)
        name=video.name,
        panoptic=LazyFrames([functools.partial(pan.__getitem__, i) for i in keep]),
        label_space=video.label_space,
        frame_index=tuple(video.frame_index[i] for i in keep),
        frame_names=tuple(video.frame_names[i] for i in keep),
        rgb=LazyFrames([functools.partial(rgb.__getitem__, i) for i in keep]),
        all_rgb=rgb,
        all_rgb_names=video.frame_names,
    )


def synth(args: argparse.Namespace) -> int:
    from vpseg.core.synthetic import SynthConfig

    fmt = _format(args.format)
    if not 1 <= args.videos <= 100_000:
        raise InputError(f"--videos must be in 1..100000, got {args.videos}")
    if not 0 <= args.seed < 2**63:
        raise InputError(f"--seed must be a non-negative integer, got {args.seed}")
    if not 32 <= args.height <= 16384 or not 32 <= args.width <= 16384:
        raise InputError(f"--height and --width must be in 32..16384, got {args.height}x{args.width}")
    if not 1 <= args.frames <= 1_000_000:
        raise InputError(f"--frames must be in 1..1000000, got {args.frames}")
    try:
        cfg = SynthConfig(height=args.height, width=args.width, frames=args.frames,
                          objects=args.objects, difficulty=args.difficulty)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    start = time.perf_counter()
    labels = _labels(args.label_space)
    with staged_folder(args.out, "the output") as stage:
        synthesize(stage, fmt, cfg, videos=args.videos, seed=args.seed, split=args.split,
                   labels=labels)
    print(f"wrote {args.videos} videos x {args.frames} frames ({args.height}x{args.width}) "
          f"in {fmt.name} layout to {args.out} in {time.perf_counter() - start:.1f} s")
    return 0


def info(args: argparse.Namespace) -> int:
    fmt = _format(args.format)
    labels = _labels(args.label_space)
    if args.json not in (None, "-"):
        check_output_file(args.json, "--json", inputs=[args.root])
    videos = list(_videos(fmt, args.root, args.split, labels))
    summary = summarize(videos, videos[0].label_space).to_json()
    if args.json == "-":
        print(json.dumps(summary, indent=1))
        return 0
    print(format_table(summary))
    if args.json:
        write_json(args.json, summary, indent=1)
        print(f"summary JSON: {args.json}")
    return 0


def viz(args: argparse.Namespace) -> int:
    fmt = _format(args.format)
    labels = _labels(args.label_space)
    if args.no_png and not args.mp4:
        raise InputError("--no-png without --mp4 would write nothing; add --mp4")
    if args.mp4 and not 0 < args.fps <= 1000:
        raise InputError(f"--fps must be in (0, 1000], got {args.fps:g}")
    inputs = [args.root] + ([args.side_by_side] if args.side_by_side else [])
    written = []
    with staged_folder(args.out, "--out", inputs) as out:
        for video in _videos(fmt, args.root, args.split, labels, args.video, desc="viz"):
            pred = None
            if args.side_by_side:  # read as vpseg eval reads a prediction: no split
                if video.name not in fmt.list_videos(args.side_by_side):
                    raise InputError(f"missing video {video.name!r} that the ground truth has",
                                     path=args.side_by_side)
                pred = fmt.read_video(args.side_by_side, video.name,
                                      label_space=labels or video.label_space,
                                      frame_names=video.frame_names)
            if not args.no_png:
                write_pngs(out / video.name, video.frame_names, render_frames(video, pred))
            if args.mp4:
                write_mp4(out / f"{video.name}.mp4", render_frames(video, pred), fps=args.fps)
            written.append(f"{video.name}: {len(video)} frames -> {Path(args.out) / video.name}"
                           + (f" and {Path(args.out) / video.name}.mp4" if args.mp4 else ""))
    print("\n".join(written))
    return 0


def convert(args: argparse.Namespace) -> int:
    src, dst = _format(args.src_format), _format(args.dst_format)
    labels = _labels(args.label_space)
    videos = _videos(src, args.src, args.split, labels, desc="convert")
    first = next(videos)  # the writer records the source label space when it is not its own
    count = 0
    with staged_folder(args.dst, "the output", [args.src]) as stage, \
            dst.open_writer(stage, label_space=first.label_space, split=args.split or "train",
                            submission=args.submission) as writer:
        for video in itertools.chain([first], videos):
            writer.write(_fit(video, dst, args.semantic_only))
            count += 1
    print(f"converted {count} videos from {src.name} ({args.src}) to {dst.name} ({args.dst})"
          + (" in the benchmark's submission layout" if args.submission else ""))
    return 0


def _fit(video: Video, dst: Format, semantic_only: bool) -> Video:
    """Check that ``dst`` can hold ``video`` (or drop instance ids when asked)."""
    if dst.holds_instances:
        return video
    div = video.label_space.label_divisor
    sources = video.sources or tuple(f"{video.name}/{n}" for n in video.frame_names)

    def strip(i: int) -> np.ndarray:
        pan = np.asarray(video.panoptic[i])
        if not semantic_only and (pan % div).any():
            raise InputError(f"{dst.name} holds no instance ids but this frame has some; "
                             "pass --semantic-only to drop them", path=sources[i],
                             frame=video.frame_names[i])
        return (pan // div) * div

    loaders = [functools.partial(strip, i) for i in range(len(video))]
    return replace(video, panoptic=LazyFrames(loaders))


def _ints(text: str, what: str, *, top: int = 100_000) -> tuple[int, ...]:
    """A comma list of integers in ``1..top``."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"{what} must be a comma list of integers, got {text!r}") from None
    if not values or min(values) < 1 or max(values) > top:
        raise InputError(f"{what} must be integers in 1..{top}, got {text!r}")
    return values


def _metrics(text: str | None, fmt: Format) -> tuple[str, ...]:
    if text is None:
        return ("stq", "vpq", "semantic") if fmt.holds_instances else ("semantic", "vc")
    metrics = tuple(m.strip() for m in text.split(",") if m.strip())
    if not metrics:
        raise InputError(f"--metrics names no metric; choose from {', '.join(METRIC_FAMILIES)}")
    return metrics


def eval_(args: argparse.Namespace) -> int:
    fmt = _format(args.format)
    metrics = _metrics(args.metrics, fmt)
    if args.vpq_stride is not None and not 1 <= args.vpq_stride <= 100_000:
        raise InputError(f"--vpq-stride must be in 1..100000, got {args.vpq_stride}")
    if args.flow_max_side < 0:
        raise InputError(f"--flow-max-side must be >= 0 (0: full size), got {args.flow_max_side}")
    if args.workers < 1:
        raise InputError(f"--workers must be >= 1, got {args.workers}")
    if args.vpq_k:
        ks = _ints(args.vpq_k, "--vpq-k")
        names, stride = tuple(str(k) for k in ks), args.vpq_stride or 1
    else:
        ks, names, dense_stride = VPQ_PRESETS[args.vpq_preset or "vipseg"]
        # sparsely annotated data (Cityscapes-VPS) already holds every 5th frame only
        stride = args.vpq_stride or (1 if fmt.annotation_stride > 1 else dense_stride)
    config = EvalConfig(metrics=metrics, vpq_ks=ks, vpq_names=names, vpq_stride=stride,
                        vc_ns=_ints(args.vc_n, "--vc-n"),
                        vc_official_windows=not args.vc_all_windows, flow_backend=args.flow,
                        flow_max_side=args.flow_max_side or None, tc_per_video=args.tc_per_video,
                        flow_weights=args.flow_weights,
                        stq_vipseg_wrapper=args.stq_vipseg_wrapper)
    if args.json:
        check_output_file(args.json, "--json", inputs=[args.gt, args.pred])
    keep_freed_memory()  # every decoded frame reuses the last one's pages (vpseg._allocator)
    result = evaluate(fmt, args.gt, args.pred, config, split=args.split,
                      label_space=_labels(args.label_space), workers=args.workers,
                      dask=args.dask, gt_json=args.gt_json, pred_json=args.pred_json)
    print(format_results(result))
    if args.json:
        write_json(args.json, result, indent=1)
        print(f"results JSON: {args.json}")
    return 0


def _param(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise InputError(f"--param takes K=V, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _auto_tracker(pred_in: str, names: list[str]) -> tuple[str, str]:
    """(tracker, why): the best tracker for the cues the predictions carry. Measured on
    synthetic KITTI-STEP predictions with shuffled ids and 10 % dropped detections
    (docs/tracking.md): mask IoU AQ 0.733, flow 0.722, SORT 0.685, HiLA-MB without embeddings
    0.578; with embeddings, appearance is the strongest cue (HiLA-MB)."""
    folder = Path(pred_in) / "embeddings"
    if any((folder / f"{n}.npz").is_file() for n in names):
        return "hila", "embeddings given: appearance + location memory (HiLA-MB)"
    return "iou", "no embeddings: mask IoU between consecutive frames (STEP B1)"


def track(args: argparse.Namespace) -> int:
    from vpseg.formats._common import frame_files, rgb_frames
    from vpseg.tracking import make_tracker
    from vpseg.tracking.video import load_embeddings, track_video

    fmt = _format(args.format)
    params = dict(_param(p) for p in args.param)
    inputs = [args.pred_in] + ([args.frames] if args.frames else [])
    check_output_folder(args.out, "the output", inputs)
    if not Path(args.pred_in).exists():
        raise InputError("no such file or folder", path=args.pred_in)
    names = fmt.list_videos(args.pred_in, split=args.split)
    name = args.tracker
    if name == "auto":
        name, why = _auto_tracker(args.pred_in, names)
        print(f"tracker: {name} ({why}; choose another with --tracker)")
    try:
        tracker = make_tracker(name, **params)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(str(exc.args[0] if exc.args else exc)) from None
    labels = _labels(args.label_space)
    videos = _videos(fmt, args.pred_in, args.split, labels, desc="track")
    first = next(videos)
    count = 0
    with staged_folder(args.out, "the output", inputs) as stage, \
            fmt.open_writer(stage, label_space=first.label_space, split=args.split or "val",
                            submission=args.submission) as writer:
        for video in itertools.chain([first], videos):
            rgb = video.rgb
            if args.frames:
                folder = Path(args.frames) / video.name
                files = [folder / f"{n}.png" for n in video.frame_names]
                size = np.asarray(video.panoptic[0]).shape if len(video) else None
                rgb = (rgb_frames(folder, files, size)
                       if frame_files(folder, (".png", ".jpg", ".jpeg")) else None)
            if name == "flow" and rgb is None:
                raise InputError(f"the flow tracker needs RGB frames of video {video.name!r}: "
                                 "none in the dataset root; give --frames", path=args.pred_in)
            embeddings = load_embeddings(Path(args.pred_in) / "embeddings" / f"{video.name}.npz")
            writer.write(track_video(video, tracker, rgb=rgb, embeddings=embeddings))
            count += 1
    for text in tracker.notes:
        note(text)
    print(f"tracked {count} videos with {name!r} -> {args.out}")
    return 0
