"""``vpseg train``, ``vpseg segment`` and ``vpseg demo``: the commands that need PyTorch (imported
only when one of them runs)."""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vpseg._atomic import write_json, write_text
from vpseg.cli._outputs import check_output_folder, staged_folder
from vpseg.core.labels import LabelSpace, load_label_space
from vpseg.core.video import Video
from vpseg.errors import InputError, note
from vpseg.formats import Format, get_format

if TYPE_CHECKING:
    from vpseg.models.registry import ModelEntry, Recipe

__all__ = ["train", "segment", "demo", "models", "read_video_file", "InputVideo", "input_videos"]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _format(name: str) -> Format:
    try:
        return get_format(name)
    except KeyError as exc:
        raise InputError(str(exc.args[0])) from None


def _pair(text: str, what: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in text.lower().replace("x", ",").split(","))
    except ValueError:
        raise InputError(f"{what} must be H,W (e.g. 128,256), got {text!r}") from None
    if a < 32 or b < 32:
        raise InputError(f"{what} must be at least 32,32, got {text!r}")
    return a, b


# ---------------------------------------------------------------------------------------------
# the registry: model names, their defaults, loss options


def _model(name: str) -> ModelEntry:
    from vpseg.models.registry import get_model

    try:
        return get_model(name)
    except KeyError as exc:
        raise InputError(str(exc.args[0])) from None


def _fill(args: argparse.Namespace, recipe: Recipe, keys: Sequence[str]) -> None:
    """Flags the user did not give take the model's recipe value."""
    for key in keys:
        if getattr(args, key, None) is None:
            setattr(args, key, getattr(recipe, key))


def _loss_options(entry: ModelEntry, given: Sequence[str] | None,
                  defaults: dict | None = None) -> tuple[tuple[str, object], ...]:
    """``--loss key=value`` flags checked against the model's loss options."""
    from vpseg.models.registry import parse_options

    values: dict[str, object] = dict(defaults or {})
    for item in given or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--loss takes KEY=VALUE, got {item!r}")
        values[key.strip().replace("-", "_")] = value.strip()
    try:
        options = parse_options(entry.family.loss_options, values)
    except ValueError as exc:
        raise InputError(f"--loss for {entry.name}: {exc}") from None
    return tuple((k, getattr(options, k)) for k in values)


def models(args: argparse.Namespace) -> int:
    """List the registered models, their defaults and loss options."""
    from dataclasses import fields

    from vpseg.models.registry import families

    for fam in families():
        r = fam.recipe
        print(f"{fam.name}: {fam.description}")
        print(f"  models: {', '.join(fam.configs)}")
        own = f" (its own: {', '.join(r.trackers)})" if r.trackers else ""
        if r.semantic:
            print(f"  trains on clips of {r.train_clip or r.clip} (the target frame last), "
                  "segments frame by frame; classes only, no tracker")
        elif r.train_clip is not None and r.train_clip != r.clip:
            print(f"  trains on clips of {r.train_clip}, segments clips of {r.clip} (--clip), "
                  f"tracks with {r.tracker}{own}")
        else:
            print(f"  trains on clips of {r.clip}, tracks with {r.tracker}{own}")
        print(f"  --loss options: {', '.join(f.name for f in fields(fam.loss_options))}")
    return 0


# ---------------------------------------------------------------------------------------------
# vpseg train


def _check_tracker(entry: ModelEntry, tracker: str, config: Any = None) -> None:
    """One line for an association the model (``config``: the checkpoint's) cannot use."""
    check = entry.family.tracker_error
    why = check(config or entry.config, tracker) if check is not None else None
    if why:
        raise InputError(f"{entry.name} {why}")


def _check_knobs(args: argparse.Namespace, entry: ModelEntry) -> None:
    """The numeric flags train and demo share: one clear line for a value that cannot work."""
    if args.clip < 1 or args.batch_size < 1:
        raise InputError("--clip and --batch-size must be >= 1")
    if args.clip < entry.family.recipe.min_clip:
        raise InputError(f"{entry.name} trains on clips of at least "
                         f"{entry.family.recipe.min_clip} frames, got --clip {args.clip}")
    if args.lr <= 0:
        raise InputError("--lr must be > 0")
    if not 0 < args.min_scale <= args.max_scale:
        raise InputError("--min-scale and --max-scale must satisfy 0 < min <= max")
    if args.input_scale <= 0:
        raise InputError("--input-scale must be > 0")


def train(args: argparse.Namespace) -> int:
    import torch

    from vpseg.core.synthetic import SynthConfig
    from vpseg.engine.checkpoint import load_checkpoint
    from vpseg.engine.data import ClipAugment, FormatClips, SyntheticClips
    from vpseg.engine.train import RunSpec, calibrate_iterations, make_trainer
    from vpseg.engine.trainer import TrainConfig, seed_everything

    entry = _model(args.model)
    _fill(args, entry.family.recipe, ["clip"])
    _check_knobs(args, entry)
    loss = _loss_options(entry, args.loss)
    fmt = _format(args.format)
    crop = _pair(args.crop, "--crop")
    labels = load_label_space(args.label_space) if args.label_space else None
    aug = ClipAugment(crop=crop, scale=(args.min_scale, args.max_scale))
    short = min(crop)  # the synthetic world is rendered at the crop size
    frames = entry.family.recipe.train_clip or args.clip  # per training sample
    if args.data is None:  # the synthetic world, a fresh scene per clip
        labels = labels or fmt.default_label_space()
        dataset: torch.utils.data.Dataset = SyntheticClips(
            labels, length=10**9, frames=frames, augment=aug, seed=args.seed,
            config=SynthConfig(height=crop[0], width=crop[1], frames=frames))
    else:
        if not Path(args.data).exists():
            raise InputError("no such file or folder", path=args.data)
        dataset = FormatClips(fmt, args.data, split=args.split, frames=frames, augment=aug,
                              seed=args.seed, label_space=labels)
        if len(dataset) == 0:
            raise InputError(f"no clips of {frames} annotated frames found", path=args.data)
        first = fmt.read_video(args.data, fmt.list_videos(args.data, split=args.split)[0],
                               split=args.split)
        labels = labels or first.label_space
        short = min(np.asarray(first.panoptic[0]).shape)
    assert labels is not None
    spec = RunSpec(model=args.model, clip=args.clip, batch_size=args.batch_size, crop=crop,
                   input_scale=args.input_scale,
                   train_short_side=int(short), loss=loss)
    out = Path(args.out)
    resume = out / "ckpt.pt" if args.resume else None
    if resume is not None:
        state = load_checkpoint(resume)
        config = TrainConfig(**state["config"])
    else:
        if args.iters:
            iters = args.iters
        elif args.minutes:
            iters = calibrate_iterations(spec, labels, dataset, args.minutes * 60, amp=args.amp)
            print(f"{args.minutes:g} minutes on this machine: {iters} iterations")
        elif args.epochs and args.data is not None:
            iters = max(1, math.ceil(args.epochs * len(dataset) / args.batch_size))  # type: ignore[arg-type]
        else:
            raise InputError("say how long to train: --iters, --minutes or --epochs (a data set)")
        config = TrainConfig(max_iters=iters, lr=args.lr, weight_decay=args.weight_decay,
                             warmup_iters=min(args.warmup, iters // 10), grad_clip=args.grad_clip,
                             amp=args.amp, checkpoint_every=args.checkpoint_every, seed=args.seed,
                             deterministic=args.deterministic)
    seed_everything(config.seed, config.deterministic)
    trainer = make_trainer(spec, labels, dataset, config, out_dir=out, progress=True,
                           device=args.device, backbone_weights=args.backbone_weights)
    if resume is not None:
        trainer.resume(resume)
        print(f"resumed {resume} at iteration {trainer.iteration}/{config.max_iters}")
    start = time.perf_counter()
    trainer.train()
    print(f"trained {args.model} for {trainer.iteration} iterations "
          f"({time.perf_counter() - start:.0f} s) -> {out / 'ckpt.pt'}")
    return 0


# ---------------------------------------------------------------------------------------------
# inputs of vpseg segment


@dataclass
class InputVideo:
    """RGB frames to segment: a name, the names of the frames to write and a way to read every
    frame in order. ``written``: the positions (among all frames) of the frames written, for a
    sparsely annotated data set (Cityscapes-VPS: every 5th frame), whose frames in between are
    segmented (the trackers and Fuse need them) but not written; None: every frame."""

    name: str
    frame_names: tuple[str, ...]
    frames: Callable[[], Iterator[np.ndarray]]
    written: tuple[int, ...] | None = None

    def kept(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """The frames (or predictions) of ``frames`` that are written."""
        if self.written is None:
            yield from frames
            return
        wanted = set(self.written)
        yield from (f for i, f in enumerate(frames) if i in wanted)


def read_video_file(path: Path) -> InputVideo:
    """A video file decoded with PyAV (FFmpeg): frames counted first, then streamed."""
    try:
        import av
    except ImportError:  # pragma: no cover - depends on the installation
        raise InputError("reading video files needs PyAV, which is not importable here: pip install av") from None

    def decode() -> Iterator[np.ndarray]:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError("no video stream", path=path)
            count = sum(1 for _ in container.decode(video=0))
    except av.error.FFmpegError as exc:
        raise InputError(f"cannot decode video: {exc}", path=path) from None
    if count == 0:
        raise InputError("the video has no frames", path=path)
    return InputVideo(path.stem, tuple(f"{i:06d}" for i in range(count)), decode)


def _frame_folder(folder: Path) -> InputVideo:
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)

    def read() -> Iterator[np.ndarray]:
        for i, f in enumerate(files):
            try:
                yield np.asarray(Image.open(f).convert("RGB"))
            except OSError as exc:
                raise InputError(f"cannot read image: {exc}", path=f, frame=i) from None

    return InputVideo(folder.name, tuple(f.stem for f in files), read)


def _reader(frames: Sequence[np.ndarray]) -> Callable[[], Iterator[np.ndarray]]:
    return lambda: (np.asarray(f) for f in frames)


def input_videos(path: str, fmt_name: str | None, split: str | None) -> list[InputVideo]:
    """What ``vpseg segment`` reads: a video file, a folder of frames, or (with
    ``--input-format``) a data set root/split in any vpseg format (its RGB frames)."""
    p = Path(path)
    if not p.exists():
        raise InputError("no such file or folder", path=p)
    if p.is_file():
        if p.suffix.lower() not in VIDEO_SUFFIXES:
            raise InputError(f"not a video file (expected one of {', '.join(VIDEO_SUFFIXES)})", path=p)
        return [read_video_file(p)]
    if fmt_name is None:
        if not any(f.suffix.lower() in IMAGE_SUFFIXES for f in p.iterdir()):
            raise InputError("no frames (.png/.jpg) in this folder; for a data set give "
                             "--input-format", path=p)
        return [_frame_folder(p)]
    fmt = _format(fmt_name)
    names = fmt.list_videos(p, split=split)
    if not names:
        raise InputError(f"no {fmt.name} videos found", path=p)
    out = []
    for name in names:
        video = fmt.read_video(p, name, split=split)
        frames = video.all_rgb if video.all_rgb is not None else video.rgb
        if frames is None:
            raise InputError(f"video {name!r} has no RGB frames", path=p)
        written = tuple(video.frame_index) if video.all_rgb is not None else None
        out.append(InputVideo(name, tuple(video.frame_names), _reader(frames), written))
    return out


# ---------------------------------------------------------------------------------------------
# vpseg segment


def segment_videos(videos: list[InputVideo], checkpoint: str | Path | None, out: Path, fmt: Format, *,
                   tracker_name: str | None = None, clip: int | None = None, split: str = "val",
                   overlay: bool = True, fps: float = 10.0, progress: bool = True,
                   input_scale: float | None = None, submission: bool = False,
                   parallel_clips: int = 1, hf_model: str | None = None,
                   label_space: str | None = None, batch_size: int = 4,
                   map_to: str | None = None,
                   class_map: str | None = None) -> tuple[LabelSpace, list[str]]:
    """Segment ``videos`` with a checkpoint (any registered model) or a Hugging Face image
    panoptic model (``hf_model``, in a data set's classes with ``map_to``); write panoptic
    frames in ``fmt`` (and overlay MP4s under ``out/overlay/``) as they come. Returns the label
    space and the names."""
    from tqdm import tqdm

    from vpseg._allocator import keep_freed_memory
    from vpseg.tracking.video import FramesInOrder

    keep_freed_memory()
    if hf_model is not None:
        labels, run = _hf_segmenter(hf_model, tracker_name, label_space, batch_size, map_to,
                                    class_map)
    else:
        assert checkpoint is not None
        labels, run = _checkpoint_segmenter(checkpoint, tracker_name, clip, input_scale,
                                            parallel_clips)
    with fmt.open_writer(out, label_space=labels, split=split, submission=submission) as writer:
        for video in videos:
            frames = video.kept(run(video.frames()))
            bar = tqdm(frames, total=len(video.frame_names), desc=video.name, unit="frame",
                       disable=not (progress and sys.stderr.isatty()), leave=False)
            writer.write(Video(name=video.name, panoptic=FramesInOrder(iter(bar), len(video.frame_names)),
                               label_space=labels, frame_names=video.frame_names,
                               frame_index=video.written or ()))
    if overlay:
        for video in videos:
            write_overlay(out / "overlay" / f"{video.name}.mp4", video,
                          fmt.read_video(out, video.name, split=split, label_space=labels), fps)
    return labels, [v.name for v in videos]


def write_overlay(path: Path, video: InputVideo, pred: Video, fps: float) -> None:
    """The predicted frames over the RGB frames they were segmented from, one frame in memory
    at a time."""
    from vpseg.viz import overlay, write_mp4

    shown = (overlay(rgb, pan, pred.label_space)
             for rgb, pan in zip(video.kept(video.frames()), pred.panoptic, strict=True))
    write_mp4(path, shown, fps=fps)


Run = Callable[[Iterator[np.ndarray]], Iterator[np.ndarray]]


def _checkpoint_segmenter(checkpoint: str | Path, tracker_name: str | None, clip: int | None,
                          input_scale: float | None, parallel_clips: int) -> tuple[LabelSpace, Run]:
    """The label space and frame stream of a ``vpseg train`` checkpoint's model."""
    import torch

    from vpseg.engine.inference import load_model
    from vpseg.tracking import TRACKERS

    loaded = load_model(checkpoint)
    if loaded.entry.family.recipe.semantic and tracker_name not in (None, "none"):
        raise InputError(f"{loaded.spec.model} predicts classes only (video semantic "
                         f"segmentation): there are no instances for --tracker {tracker_name}")
    tracker = tracker_name or loaded.entry.family.recipe.tracker
    _check_tracker(loaded.entry, tracker, getattr(loaded.model, "config", None))
    if tracker not in TRACKERS and tracker not in loaded.trackers:
        raise InputError(f"unknown tracker {tracker!r} for {loaded.spec.model}; known: "
                         f"{', '.join([*TRACKERS, *loaded.trackers])}")
    if torch.cuda.is_available():
        loaded.model = loaded.model.cuda()
    options = loaded.options(clip=clip, input_scale=input_scale, parallel_clips=parallel_clips)
    return loaded.labels, lambda frames: loaded.segment(frames, tracker, options=options)


def _hf_segmenter(path_or_id: str, tracker_name: str | None, label_space: str | None,
                  batch_size: int, map_to: str | None = None,
                  class_map: str | None = None) -> tuple[LabelSpace, Run]:
    """The label space and frame stream of a Hugging Face transformers panoptic model (in a
    data set's classes with ``map_to``)."""
    from vpseg.models.hf_panoptic import load_hf_model
    from vpseg.tracking import TRACKERS

    if tracker_name is not None and tracker_name not in TRACKERS:  # before a long model load
        raise InputError(f"unknown tracker {tracker_name!r}; known: {', '.join(TRACKERS)}")
    labels = load_label_space(label_space) if label_space else None
    target = None if map_to is None else _label_space_named(map_to, "--map-to")
    overrides = None if class_map is None else _class_map(class_map)
    model = load_hf_model(path_or_id, label_space=labels, batch_size=batch_size,
                          map_to=target, class_map=overrides,
                          class_map_source=class_map or "--class-map")
    if target is not None:
        mapped = len(model.model_labels) - len(model.unmapped)
        shown = ", ".join(model.unmapped[:8]) + (" ..." if len(model.unmapped) > 8 else "")
        note(f"--map-to {target.name}: {mapped} of the model's {len(model.model_labels)} classes "
             "map onto its classes" + (f"; void: {shown} (name them in --class-map)"
                                       if model.unmapped else ""))
    tracker = tracker_name or model.default_tracker
    return model.labels, lambda frames: model.segment(frames, tracker)


def _label_space_named(text: str, flag: str) -> LabelSpace:
    """A built-in label space by name, or a label space JSON file."""
    from vpseg.core.labels import BUILTIN_LABEL_SPACES, get_label_space

    if text in BUILTIN_LABEL_SPACES:
        return get_label_space(text)
    if Path(text).is_file():
        return load_label_space(text)
    raise InputError(f"{flag} takes a built-in label space ({', '.join(BUILTIN_LABEL_SPACES)}) "
                     "or a label space JSON file", path=text)


def _class_map(path: str) -> dict[str, str | None]:
    """``--class-map``: a JSON object of model class name -> data set class name (or null)."""
    import json

    try:
        obj = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError("no such file", path=path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read the class map JSON: {exc}", path=path) from None
    if not isinstance(obj, dict) or not all(isinstance(v, str) or v is None for v in obj.values()):
        raise InputError('expected a JSON object {"model class": "data set class" or null}',
                         path=path)
    return obj


def segment(args: argparse.Namespace) -> int:
    if args.input_scale is not None and args.input_scale <= 0:
        raise InputError("--input-scale must be > 0")
    if not 0 < args.fps <= 1000:
        raise InputError(f"--fps must be in (0, 1000], got {args.fps:g}")
    if args.parallel_clips < 1:
        raise InputError(f"--parallel-clips must be >= 1, got {args.parallel_clips}")
    if args.batch_size is not None and args.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {args.batch_size}")
    if not Path(args.input).exists():
        raise InputError("no such file or folder", path=args.input)
    if args.checkpoint is not None and not Path(args.checkpoint).is_file():
        raise InputError("checkpoint not found", path=args.checkpoint)
    if args.hf_model is not None:
        given = [flag for flag, value in (("--clip", args.clip), ("--input-scale", args.input_scale))
                 if value is not None] + (["--parallel-clips"] if args.parallel_clips != 1 else [])
        if given:
            raise InputError(f"{', '.join(given)}: for --checkpoint models only; an --hf-model "
                             "runs frame by frame (--batch-size frames per call)")
    else:
        given = [flag for flag, value in (("--label-space", args.label_space),
                                          ("--map-to", args.map_to),
                                          ("--class-map", args.class_map),
                                          ("--batch-size", args.batch_size)) if value is not None]
        if given:
            raise InputError(f"{', '.join(given)}: for --hf-model only (a checkpoint carries "
                             "its classes)")
    if args.class_map is not None and args.map_to is None:
        raise InputError("--class-map needs --map-to (the label space its names are in)")
    fmt = _format(args.format)
    check_output_folder(args.out, "--out", [args.input])
    videos = input_videos(args.input, args.input_format, args.split)
    with staged_folder(args.out, "--out", [args.input]) as stage:
        segment_videos(videos, args.checkpoint, stage, fmt, tracker_name=args.tracker,
                       clip=args.clip, split=args.out_split, overlay=not args.no_overlay,
                       fps=args.fps, input_scale=args.input_scale, submission=args.submission,
                       parallel_clips=args.parallel_clips, hf_model=args.hf_model,
                       label_space=args.label_space, batch_size=args.batch_size or 4,
                       map_to=args.map_to, class_map=args.class_map)
    print(f"segmented {len(videos)} video(s) -> {args.out} ({fmt.name})"
          + ("" if args.no_overlay else f", overlays in {Path(args.out) / 'overlay'}"))
    return 0


# ---------------------------------------------------------------------------------------------
# vpseg demo


def _num(value: float | None) -> str:
    """A metric for the report: three decimals, or n/a where it is unavailable."""
    return "n/a" if value is None else f"{value:.3f}"


def demo(args: argparse.Namespace) -> int:
    """Synthetic train/val in ``--format``'s layout and label space (default KITTI-STEP), train
    ``--model`` (default video-kmax-tiny) on the CPU for
    ``--minutes``, segment val with its association, evaluate, write everything to ``--out``."""
    import torch

    from vpseg.cli.commands import synthesize
    from vpseg.core.synthetic import SynthConfig
    from vpseg.engine.data import ClipAugment, SyntheticClips
    from vpseg.engine.train import RunSpec, make_trainer, time_steps
    from vpseg.engine.trainer import TrainConfig, seed_everything
    from vpseg.evaluation import VPQ_PRESETS, EvalConfig, evaluate
    from vpseg.evaluation_report import format_results
    from vpseg.report import write_report
    from vpseg.viz import render_frames, write_mp4

    entry = _model(args.model)
    recipe = entry.family.recipe
    _fill(args, recipe, ["clip", "tracker", "lr", "batch_size", "min_scale", "max_scale",
                         "input_scale"])
    args.format = args.format or recipe.demo_format
    _check_tracker(entry, args.tracker)
    _check_knobs(args, entry)
    if (args.minutes <= 0 or args.val_videos < 1 or args.frames < 2 or args.clips_per_video < 1
            or args.train_objects < 0 or (args.iters is not None and args.iters < 1)):
        raise InputError("--minutes must be > 0, --val-videos, --clips-per-video and --iters "
                         ">= 1, --frames >= 2, --train-objects >= 0")
    loss = _loss_options(entry, args.loss, dict(recipe.loss))
    wall = time.perf_counter()
    out = Path(args.out)
    fmt = _format(args.format)
    labels = fmt.default_label_space()
    h, w = 128, 256
    torch.set_num_threads(max(1, torch.get_num_threads()))
    # 1. data: a held-out val set on disk; training clips generated on the fly
    val_root = out / "data"
    synthesize(val_root, fmt, SynthConfig(height=h, width=w, frames=args.frames),
               videos=args.val_videos, seed=10_000 + args.seed, split="val")
    print(f"[1/4] synthetic {fmt.name} val set: {args.val_videos} videos x {args.frames} frames "
          f"{h}x{w} -> {val_root}")
    spec = RunSpec(model=args.model, clip=args.clip, batch_size=args.batch_size,
                   crop=(h, w), input_scale=args.input_scale, train_short_side=min(h, w), loss=loss)
    train_frames = recipe.train_clip or spec.clip  # per training sample
    clips = SyntheticClips(labels, length=10**9, frames=train_frames, seed=args.seed,
                           config=SynthConfig(height=h, width=w, frames=train_frames,
                                             objects=args.train_objects),
                           clips_per_video=args.clips_per_video, interleave=args.batch_size,
                           augment=ClipAugment(crop=(h, w), scale=(args.min_scale, args.max_scale)))
    # 2. train within the time budget (the rest of it is for segmenting + eval)
    budget = max(args.minutes * 60 - (time.perf_counter() - wall) - args.reserve, 10.0)
    # a first estimate of the iteration count (warmup and schedule shape); the training loop
    # re-estimates it from its own speed and stops on time. Mixed precision where it pays here.
    modes = {"on": (True,), "off": (False,), "auto": (False, True)}[args.amp]
    amp = modes[-1]
    if args.iters and len(modes) == 1:
        iters = args.iters
    else:
        per_iter = time_steps(spec, labels, clips, amp=modes, probe=3)
        if len(modes) > 1:
            amp = per_iter[True] < 0.9 * per_iter[False]  # mixed precision only >= 10 % faster
            print(f"      a training step here: {per_iter[True]:.2f} s with mixed precision, "
                  f"{per_iter[False]:.2f} s in float32 -> {'mixed' if amp else 'float32'}")
        iters = args.iters or max(1, int(budget / per_iter[amp]))
    config = TrainConfig(max_iters=iters, lr=args.lr, warmup_iters=min(100, iters // 10),
                         seed=args.seed, amp=amp)
    seed_everything(config.seed)
    trainer = make_trainer(spec, labels, clips, config, out_dir=out / "run", progress=True)
    seconds = max(args.minutes * 60 - (time.perf_counter() - wall) - args.reserve, 10.0)
    params = sum(p.numel() for p in trainer.model.parameters()) / 1e6
    frames = f"{train_frames} frame{'s' if train_frames > 1 else ''}"
    what = f"{args.model} (clips of {frames}, {params:.2f}M parameters)"
    if args.iters:
        print(f"[2/4] training {what} for {iters} iterations ...")
        trainer.train()
    else:
        print(f"[2/4] training {what} for {seconds / 60:.1f} min (~{iters} iterations) ...")
        trainer.train(seconds=seconds)
    iters = trainer.iteration
    ckpt = out / "run" / "ckpt.pt"
    # 3. segment the val videos with the model's association
    print(f"[3/4] segmenting {args.val_videos} val videos "
          + ("frame by frame ..." if recipe.semantic else f"with {args.tracker} ..."))
    videos = input_videos(str(val_root), fmt.name, "val")
    pred_root = out / "pred"
    segment_videos(videos, ckpt, pred_root, fmt, tracker_name=args.tracker, clip=spec.clip,
                   overlay=False)
    # 4. evaluate, report (semantic formats: mIoU and the consistency metrics)
    panoptic = fmt.holds_instances
    preset = fmt.name if fmt.name in VPQ_PRESETS else "vipseg"  # Cityscapes-VPS: k = 0, 5, 10, 15
    ks, names, _ = VPQ_PRESETS[preset]
    config_eval = EvalConfig(metrics=("stq", "vpq", "semantic") if panoptic else ("semantic", "vc", "tc"),
                             vpq_ks=ks, vpq_names=names)
    result = evaluate(fmt, val_root, pred_root, config_eval, split="val")
    write_json(out / "metrics.json", result, indent=1)
    html = out / "report.html"  # the page a person reads: metrics, plots, every val video's clip
    write_report(result, html, gt=val_root, pred=pred_root, fmt=fmt, split="val",
                 clips=args.val_videos, source=out / "metrics.json")
    first = videos[0].name
    gt = fmt.read_video(val_root, first, split="val")
    pred = fmt.read_video(pred_root, first, split="val", label_space=labels)
    mp4 = out / f"overlay_{first}.mp4"
    write_mp4(mp4, render_frames(gt, pred), fps=10)
    print("[4/4] results on the held-out synthetic val videos:\n")
    print(format_results(result))
    elapsed = time.perf_counter() - wall
    miou = result["semantic"]["mIoU"]
    if panoptic:
        table = [f"| STQ | {_num(result['stq']['STQ'])} |", f"| AQ | {_num(result['stq']['AQ'])} |",
                 f"| SQ | {_num(result['stq']['SQ'])} |",
                 f"| VPQ ({preset} preset, k = {', '.join(names)}) | {_num(result['vpq']['VPQ'])} |",
                 f"| mIoU | {_num(miou)} |"]
    else:
        table = [f"| mIoU | {_num(miou)} |",
                 *(f"| mVC{n} | {_num(v)} |" for n, v in result["vc"].items()),
                 f"| TC (DIS flow) | {_num(result['tc'])} |"]
    association = "frame by frame" if recipe.semantic else f"with {args.tracker} association"
    report = "\n".join([
        "# vpseg demo", "",
        f"{args.model} trained on clips of {frames} (batch {spec.batch_size}, "
        f"lr {config.lr:g}, {'mixed precision' if amp else 'float32'}) for {iters} iterations on "
        f"synthetic {fmt.name} clips generated on the fly ({args.train_objects} thing tracks "
        f"per scene), then run on {args.val_videos} held-out "
        f"val videos ({args.frames} frames, {h}x{w}) {association}.", "",
        "| metric | value |", "|---|---|", *table, "",
        f"Wall time {elapsed / 60:.1f} min. Files: `report.html` (open it in a browser: "
        f"metrics, plots, clips of every val video), `run/ckpt.pt` (checkpoint), `metrics.json` "
        f"(the `vpseg eval` schema), `{mp4.name}` (ground truth | prediction), `pred/` "
        f"(predictions, {fmt.name} layout), `data/` (val set).", ""])
    write_text(out / "report.md", report)
    print(f"\nwall time {elapsed / 60:.1f} min; outputs in {out}/:\n"
          f"  HTML report   {html} (open it in a browser)\n"
          f"  checkpoint    {ckpt}\n  metrics JSON  {out / 'metrics.json'}\n"
          f"  overlay MP4   {mp4}\n  report        {out / 'report.md'}\n"
          f"  predictions   {pred_root}\n  val data      {val_root}")
    return 0
