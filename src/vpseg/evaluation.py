"""Evaluate a prediction folder against ground truth (``vpseg eval``): the I/O, validation and
process pool around the metrics in ``vpseg.metrics`` (which never touch files).

Each video is evaluated on its own (one pair table per frame feeds every metric), giving
mergeable accumulators; ``workers > 1`` runs videos in separate processes, and ``dask=ADDRESS``
on the workers of a dask.distributed cluster (which must see the same paths); either way the
accumulators are reduced in video order, so the numbers do not depend on where videos ran.
Notes (``vpseg.errors.Note``) raised while a video is read travel back with its accumulators.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vpseg import __version__
from vpseg._allocator import keep_freed_memory
from vpseg.core.labels import LabelSpace
from vpseg.core.video import IndexedFrames, Video
from vpseg.errors import InputError, Note, note
from vpseg.flow import optical_flow, warp_labels
from vpseg.formats import Format, get_format
from vpseg.formats._common import LABEL_SPACE_FILE, saved_label_space
from vpseg.metrics.pq import PQStats, match_table
from vpseg.metrics.semantic import ConfusionAccumulator, VCAccumulator
from vpseg.metrics.stq import STQAccumulator
from vpseg.metrics.tables import PairTable, pair_table, pair_table_indexed
from vpseg.metrics.tc import TCAccumulator
from vpseg.metrics.tracking import TrackingAccumulator
from vpseg.metrics.vpq import VPQAccumulator

__all__ = ["EvalConfig", "VPQ_PRESETS", "METRIC_FAMILIES", "evaluate", "evaluate_video", "Accumulators"]

METRIC_FAMILIES = ("stq", "vpq", "pq", "semantic", "vc", "tc", "tracking")

#: name -> (window lengths in annotated frames, their names in the output, frame stride on
#: densely annotated data). VIPSeg: consecutive frames; the script's default adds n = 8.
#: Cityscapes-VPS: k = 0, 5, 10, 15 frames apart = windows of 1..4 frames taken every 5th frame.
VPQ_PRESETS: dict[str, tuple[tuple[int, ...], tuple[str, ...], int]] = {
    "vipseg": ((1, 2, 4, 6), ("1", "2", "4", "6"), 1),
    "vipseg-script": ((1, 2, 4, 6, 8), ("1", "2", "4", "6", "8"), 1),
    "cityscapes-vps": ((1, 2, 3, 4), ("0", "5", "10", "15"), 5),
}


@dataclass(frozen=True)
class EvalConfig:
    """Every parameter that changes a number (recorded in the output's ``config``)."""

    metrics: tuple[str, ...] = ("stq", "vpq", "semantic")
    vpq_ks: tuple[int, ...] = (1, 2, 4, 6)
    vpq_names: tuple[str, ...] = ("1", "2", "4", "6")
    vpq_stride: int = 1  # use every vpq_stride-th annotated frame for VPQ windows
    vc_ns: tuple[int, ...] = (8, 16)
    vc_official_windows: bool = True
    flow_backend: str = "dis"  # TC: optical flow between consecutive RGB frames
    flow_max_side: int | None = 640  # TC: flow working resolution (longer side, pixels)
    flow_weights: str | None = None  # TC: local weights file for the raft backends
    tc_per_video: bool = False  # TC: the paper's per-video mean instead of the official pooled
    stq_vipseg_wrapper: bool = False  # STQ: reproduce eval_stq_vspw.py's first-segment-as-crowd

    def __post_init__(self) -> None:
        unknown = [m for m in self.metrics if m not in METRIC_FAMILIES]
        if unknown:
            raise InputError(f"unknown or not yet available metric {unknown[0]!r}; "
                             f"available: {', '.join(METRIC_FAMILIES)}")
        if len(self.vpq_names) != len(self.vpq_ks) or self.vpq_stride < 1:
            raise InputError("VPQ window names must match the k list and the stride be >= 1")


@dataclass
class Accumulators:
    """The mergeable state of every metric family asked for."""

    labels: LabelSpace
    config: EvalConfig
    stq: STQAccumulator | None = None
    vpq: VPQAccumulator | None = None
    pq: PQStats | None = None
    semantic: ConfusionAccumulator | None = None
    vc: VCAccumulator | None = None
    tracking: TrackingAccumulator | None = None
    tc: TCAccumulator | None = None
    frames: int = 0
    per_video: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def empty(cls, labels: LabelSpace, config: EvalConfig) -> Accumulators:
        m = config.metrics
        size = max(labels.max_id, labels.ignore_label) + 1
        return cls(
            labels, config,
            stq=STQAccumulator(labels) if "stq" in m else None,
            vpq=VPQAccumulator(labels, config.vpq_ks) if "vpq" in m else None,
            pq=PQStats(size) if "pq" in m else None,
            semantic=ConfusionAccumulator(labels) if "semantic" in m else None,
            vc=VCAccumulator(config.vc_ns, config.vc_official_windows) if "vc" in m else None,
            tracking=TrackingAccumulator(labels) if "tracking" in m else None,
            tc=TCAccumulator(labels) if "tc" in m else None,
        )

    def merge(self, other: Accumulators) -> Accumulators:
        for name in ("stq", "vpq", "pq", "semantic", "vc", "tracking", "tc"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None and theirs is not None:
                mine.merge(theirs)
        self.frames += other.frames
        self.per_video.update(other.per_video)
        self.notes.extend(n for n in other.notes if n not in self.notes)
        return self

    def result(self) -> dict[str, Any]:
        """The families asked for, in the JSON layout of DESIGN.md (fractions in [0, 1])."""
        out: dict[str, Any] = {}
        if self.stq is not None:
            stq = self.stq.result()
            out["stq"] = {"STQ": stq["STQ"], "AQ": stq["AQ"], "SQ": stq["IoU"]}
            if not any(s["tubes"] for s in stq["per_sequence"].values()):  # type: ignore[attr-defined]
                out["stq"]["notes"] = [
                    "AQ and STQ are 0 by definition: the ground truth has no thing tracks"
                    + ("" if self.labels.thing_ids else " (the label space has no thing class)")]
        if self.vpq is not None:
            vpq: dict[str, Any] = self.vpq.result()
            names = dict(zip((str(k) for k in self.config.vpq_ks), self.config.vpq_names, strict=True))
            out["vpq"] = {"VPQ": vpq["VPQ"], "VPQ_th": vpq["VPQ_th"], "VPQ_st": vpq["VPQ_st"],
                          "per_k": {names[k]: v for k, v in vpq["per_k"].items()}}
            if "notes" in vpq:
                out["vpq"]["notes"] = vpq["notes"]
        if self.pq is not None:
            pq = self.pq.result(self.labels)
            out["pq"] = {k: pq[k] for k in ("PQ", "SQ", "RQ", "PQ_th", "PQ_st")}
        if self.semantic is not None:
            out["semantic"] = self.semantic.result()
        if self.vc is not None:
            out["vc"] = self.vc.result()
        if self.tracking is not None:
            out["tracking"] = self.tracking.result()
        if self.tc is not None:
            out["tc"] = self.tc.result(per_video=self.config.tc_per_video)
        return out

    def per_class(self) -> dict[str, dict[str, Any]]:
        """Per-class scores of every family that has them, keyed by class name."""
        table: dict[str, dict[str, Any]] = {c.name: {} for c in self.labels.categories}
        if self.pq is not None:
            scores = self.pq.per_class()
            for c in self.labels.categories:
                if self.pq.present()[c.id]:
                    table[c.name].update({f"{k}": float(scores[k][c.id]) for k in ("PQ", "SQ", "RQ")})
        if self.vpq is not None:
            for k, name in zip(self.config.vpq_ks, self.config.vpq_names, strict=True):
                stats = self.vpq.stats[k]
                pq = stats.per_class()["PQ"]
                for c in self.labels.categories:
                    if stats.present()[c.id]:
                        table[c.name][f"VPQ_{name}"] = float(pq[c.id])
        if self.semantic is not None:
            iou = self.semantic.per_class_iou()
            for i, c in enumerate(self.labels.categories):
                if not np.isnan(iou[i]):
                    table[c.name]["IoU"] = float(iou[i])
        return {name: v for name, v in table.items() if v}


def _check_frame(gt_shape: tuple[int, ...], pred_shape: tuple[int, ...], video: Video,
                 pred_video: Video, i: int) -> None:
    if gt_shape != pred_shape:
        where = pred_video.sources[i] if pred_video.sources else f"{pred_video.name}"
        raise InputError(f"prediction is {pred_shape[0]}x{pred_shape[1]}, ground truth "
                         f"{gt_shape[0]}x{gt_shape[1]}", path=where, frame=video.frame_names[i])


class _Frame:
    """Frame ``i`` of a video, read once: the indexed form where the reader gives one (the
    pair table is counted on it), the ``(H, W)`` int32 ids only if a metric needs pixels."""

    def __init__(self, video: Video, i: int) -> None:
        frames = video.panoptic
        self.indexed = frames.indexed(i) if isinstance(frames, IndexedFrames) else None
        self._pixels = None if self.indexed is not None else np.asarray(frames[i])

    @property
    def shape(self) -> tuple[int, ...]:
        return self.indexed.shape if self.indexed is not None else self.pixels.shape

    @property
    def pixels(self) -> np.ndarray:
        if self._pixels is None:
            self._pixels = np.asarray(self.indexed)
        return self._pixels


def _table(g: _Frame, p: _Frame) -> PairTable:
    if g.indexed is not None and p.indexed is not None:
        return pair_table_indexed(g.indexed, p.indexed)
    return pair_table(g.pixels, p.pixels)


def evaluate_video(gt: Video, pred: Video, labels: LabelSpace, config: EvalConfig) -> Accumulators:
    """Every asked-for metric of one video (frames read one at a time)."""
    acc = Accumulators.empty(labels, config)
    div = labels.label_divisor
    if acc.tc is not None and gt.rgb is None:
        raise InputError(f"TC needs the RGB frames of video {gt.name!r}; none found beside the "
                         "ground truth", path=gt.sources[0] if gt.sources else gt.name)
    previous: tuple[np.ndarray, np.ndarray] | None = None  # TC: last frame's RGB and prediction
    gt_ids: set[int] = set()  # the GT segment ids seen: the video's thing track count
    for i in range(len(gt)):
        g, p = _Frame(gt, i), _Frame(pred, i)
        _check_frame(g.shape, p.shape, gt, pred, i)
        if acc.tc is not None and gt.rgb is not None:
            rgb = np.asarray(gt.rgb[i])
            if previous is not None and gt.frame_index[i] == gt.frame_index[i - 1] + 1:
                flow = optical_flow(previous[0], rgb, backend=config.flow_backend,
                                    max_side=config.flow_max_side, weights=config.flow_weights)
                warped = warp_labels(p.pixels // div, flow, fill=labels.ignore_label)
                acc.tc.update(previous[1] // div, warped, gt.name)
            previous = (rgb, p.pixels)
        table = _table(g, p)
        gt_ids.update(table.gt_ids.tolist())
        if acc.stq is not None:
            quirk = gt.meta.get("first_listed") if config.stq_vipseg_wrapper else None
            if isinstance(quirk, int):
                # VIPSeg's wrapper gives the video's first-listed segment instance 0: crowd
                crowd = np.where(g.pixels == quirk, quirk - quirk % div, g.pixels)
                acc.stq.update(pair_table(crowd, p.pixels), gt.name)
            else:
                acc.stq.update(table, gt.name)
        if acc.vpq is not None and i % config.vpq_stride == 0:
            acc.vpq.update(table, gt.name)
        if acc.pq is not None:
            match_table(table, labels, acc.pq)
        if acc.semantic is not None:
            acc.semantic.update(table)
        if acc.vc is not None:
            acc.vc.update(g.pixels // div, p.pixels // div, gt.name)
        if acc.tracking is not None:
            acc.tracking.update(table, gt.name)
        acc.frames += 1
    if acc.vc is not None:
        acc.vc.finish()
    acc.per_video[gt.name] = {"frames": acc.frames, "instances": _thing_tracks(gt_ids, labels),
                              **_flat(acc.result())}
    return acc


def _thing_tracks(ids: set[int], labels: LabelSpace) -> int:
    """Distinct ground-truth thing tracks (thing class, instance > 0) among a video's segment
    ids: the per-video instance count that VIPSeg's analysis plots STQ and AQ against."""
    if not ids:
        return 0
    sem, inst = np.divmod(np.fromiter(ids, dtype=np.int64, count=len(ids)), labels.label_divisor)
    return int(np.count_nonzero(np.isin(sem, labels.thing_ids) & (inst > 0)))


def _flat(result: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of a result, for the per-video table."""
    out = {}
    for family, key in (("stq", "STQ"), ("stq", "AQ"), ("vpq", "VPQ"), ("pq", "PQ"),
                        ("semantic", "mIoU"), ("tracking", "PTQ"), ("tracking", "IDS")):
        if family in result:
            out[key] = result[family][key]
    return out


def with_json(fmt: Format, path: str | Path | None, flag: str) -> Format:
    """``fmt`` reading its index JSON from ``path`` (COCO-style formats only)."""
    if path is None:
        return fmt
    method = getattr(fmt, "with_json", None)
    if method is None:
        raise InputError(f"{flag} applies to the COCO-style formats, not {fmt.name}")
    return method(path)


def check_prediction_classes(pred_root: Path, labels: LabelSpace) -> None:
    """Predictions are read in the ground truth's label space; a prediction root that records
    other classes (a ``vpseg_label_space.json`` beside it, as ``vpseg segment --hf-model`` writes
    for a COCO model) would be scored with its class ids taken for the wrong classes: a clear
    error instead of a silently wrong number."""
    saved = saved_label_space(pred_root)
    if saved is None or _classes(saved) == _classes(labels):
        return
    raise InputError(f"the predictions are in label space {saved.name!r} ({len(saved)} classes, "
                     f"{LABEL_SPACE_FILE}), the ground truth in {labels.name!r} ({len(labels)} "
                     "classes): the same class id means different classes, so no score would "
                     "be right; predict in the ground truth's classes (or pass --label-space "
                     "to read both in one)", path=pred_root)


def _classes(labels: LabelSpace) -> tuple[tuple[int, str, bool], ...]:
    return tuple((c.id, c.name, bool(c.isthing)) for c in labels.categories)


def prediction_split(fmt: Format, root: Path, split: str | None) -> str | None:
    """The ground truth's split where the predictions have it too (a prediction root may hold
    other folders beside it, e.g. ``vpseg segment``'s ``overlay/``); else None: the root's only
    split, or none."""
    if split is None:
        return None
    try:
        fmt.list_videos(root, split=split)
    except InputError:
        return None
    return split


@dataclass(frozen=True)
class _Job:
    """One video to evaluate; plain values only, so it pickles for the process pool."""

    fmt: str
    gt_root: str
    pred_root: str
    video: str
    split: str | None
    labels: LabelSpace | None
    config: EvalConfig
    gt_json: str | None
    pred_json: str | None
    pred_split: str | None = None  # the predictions' split folder, where they have the GT's


def _evaluate_one(job: _Job) -> Accumulators:
    """One video's accumulators, with the notes its reading raised (they must cross process
    and machine boundaries, which warnings do not)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", Note)
        fmt = get_format(job.fmt)
        gt = with_json(fmt, job.gt_json, "--gt-json").read_video(
            job.gt_root, job.video, split=job.split, label_space=job.labels)
        if job.labels is None:
            check_prediction_classes(Path(job.pred_root), gt.label_space)
        pred = with_json(fmt, job.pred_json, "--pred-json").read_video(
            job.pred_root, job.video, split=job.pred_split,
            label_space=job.labels or gt.label_space, frame_names=gt.frame_names)
        acc = evaluate_video(gt, pred, gt.label_space, job.config)
    for warning in caught:
        if issubclass(warning.category, Note):
            text = str(warning.message)
            if text not in acc.notes:
                acc.notes.append(text)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                   warning.lineno)
    return acc


#: How long ``--dask`` tries to reach the scheduler before it gives up (seconds).
DASK_CONNECT_TIMEOUT = 20.0


def _run_dask(address: str, jobs: list[_Job]) -> Iterator[Accumulators]:
    """Evaluate ``jobs`` on the workers of the dask.distributed scheduler at ``address``."""
    try:
        from distributed import Client
    except ImportError:
        raise InputError("--dask needs dask.distributed: pip install 'vpseg[cluster]'") from None
    try:
        client = Client(address, timeout=DASK_CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(f"cannot reach the dask scheduler at {address!r}: {exc}") from None
    with client:
        futures = client.map(_evaluate_one, jobs, pure=False)
        for future in futures:  # in video order, so the reduction is the local one
            yield future.result()


def evaluate(
    fmt: Format,
    gt_root: str | Path,
    pred_root: str | Path,
    config: EvalConfig,
    *,
    split: str | None = None,
    label_space: LabelSpace | None = None,
    workers: int = 1,
    dask: str | None = None,
    progress: bool | None = None,
    videos: Sequence[str] | None = None,
    gt_json: str | Path | None = None,
    pred_json: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate every ground-truth video; returns the JSON object of DESIGN.md.

    ``workers`` processes on this machine, or the workers of the dask.distributed scheduler at
    ``dask`` (``tcp://host:8786``); the numbers are the same either way.
    """
    if workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    gt_root, pred_root = Path(gt_root), Path(pred_root)
    for root in (gt_root, pred_root):
        if not root.exists():
            raise InputError("no such file or folder", path=root)
    gt_fmt = with_json(fmt, gt_json, "--gt-json")
    pred_fmt = with_json(fmt, pred_json, "--pred-json")
    names = list(videos) if videos is not None else gt_fmt.list_videos(gt_root, split=split)
    if not names:
        raise InputError(f"no {fmt.name} ground-truth videos found", path=gt_root)
    pred_split = prediction_split(pred_fmt, pred_root, split)
    have = pred_fmt.list_videos(pred_root, split=pred_split)
    have_set, name_set = set(have), set(names)
    missing = [n for n in names if n not in have_set]
    if missing:
        raise InputError(f"missing video {missing[0]!r} that the ground truth has"
                         + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                         path=pred_root)
    extra = [n for n in have if n not in name_set]
    notes = ([f"{pred_root}: {len(extra)} prediction video(s) that the ground truth does not "
              f"have are ignored ({', '.join(extra[:3])}{', ...' if len(extra) > 3 else ''})"]
             if extra else [])
    jobs = [_Job(fmt.name, str(gt_root), str(pred_root), n, split, label_space, config,
                 None if gt_json is None else str(gt_json),
                 None if pred_json is None else str(pred_json), pred_split) for n in names]
    show = sys.stderr.isatty() if progress is None else progress
    bar: Callable[..., Any] = tqdm
    total: Accumulators | None = None
    if dask is not None:
        results = _run_dask(dask, jobs)
        for acc in bar(results, total=len(jobs), desc="eval", unit="video", disable=not show):
            total = acc if total is None else total.merge(acc)
    elif workers > 1:
        with ProcessPoolExecutor(workers, initializer=keep_freed_memory) as pool:
            results = pool.map(_evaluate_one, jobs)
            for acc in bar(results, total=len(jobs), desc="eval", unit="video", disable=not show):
                total = acc if total is None else total.merge(acc)
    else:
        for job in bar(jobs, desc="eval", unit="video", disable=not show):
            acc = _evaluate_one(job)
            total = acc if total is None else total.merge(acc)
    assert total is not None
    out = total.result()
    for text in notes + total.notes:
        note(text)
    if notes + total.notes:
        out["notes"] = notes + total.notes
    out["per_video"] = total.per_video
    out["per_class"] = total.per_class()
    out["config"] = {
        "format": fmt.name, "label_space": total.labels.name, "metrics": list(config.metrics),
        "vpq_k": list(config.vpq_names), "vpq_windows": list(config.vpq_ks),
        "vpq_stride": config.vpq_stride, "vc_n": list(config.vc_ns),
        "vc_official_windows": config.vc_official_windows, "videos": len(names),
        "flow_backend": config.flow_backend, "flow_max_side": config.flow_max_side,
        "tc_per_video": config.tc_per_video, "stq_vipseg_wrapper": config.stq_vipseg_wrapper,
        "frames": total.frames, "vpseg": __version__,
    }
    return out
