"""Dataset summaries like the seed papers' dataset tables (``vpseg info``).

Frames are read one at a time, so memory does not grow with the data set.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vpseg.core.labels import LabelSpace
from vpseg.core.video import Video

__all__ = ["VideoStats", "DatasetSummary", "summarize_video", "summarize"]


@dataclass
class VideoStats:
    """Counts of one video; ``tracks`` maps thing panoptic id -> annotated frames it covers."""

    name: str
    frames: int = 0  # annotated frames
    total_frames: int = 0  # all frames of the video, annotated or not (best known)
    pixels: int = 0
    void_pixels: int = 0
    masks: int = 0
    thing_masks: int = 0
    size: tuple[int, int] = (0, 0)
    tracks: Counter[int] = field(default_factory=Counter)
    classes: Counter[int] = field(default_factory=Counter)  # class id -> pixels


def summarize_video(video: Video) -> VideoStats:
    labels = video.label_space
    thing_lut = labels.thing_lut()
    stats = VideoStats(name=video.name)
    if video.all_rgb is not None:
        stats.total_frames = len(video.all_rgb)
    elif video.frame_index:
        stats.total_frames = max(video.frame_index) - min(video.frame_index) + 1
    for pan in video.panoptic:
        pan = np.asarray(pan)
        ids, counts = np.unique(pan, return_counts=True)
        sem, inst = ids // labels.label_divisor, ids % labels.label_divisor
        void = sem == labels.ignore_label
        is_thing = ~void & (sem < thing_lut.size) & thing_lut[np.minimum(sem, thing_lut.size - 1)]
        tracked = is_thing & (inst > 0)
        stats.frames += 1
        stats.size = pan.shape
        stats.pixels += pan.size
        stats.void_pixels += int(counts[void].sum())
        stats.masks += int((~void).sum())
        stats.thing_masks += int(tracked.sum())
        stats.tracks.update(int(i) for i in ids[tracked])
        for s, c in zip(sem[~void], counts[~void], strict=True):
            stats.classes[int(s)] += int(c)
    return stats


@dataclass
class DatasetSummary:
    labels: LabelSpace
    videos: list[VideoStats]

    def to_json(self) -> dict[str, Any]:
        frames = sum(v.frames for v in self.videos)
        lengths = [n for v in self.videos for n in v.tracks.values()]
        classes: Counter[int] = Counter()
        for v in self.videos:
            classes.update(v.classes)
        sizes = sorted({f"{v.size[0]}x{v.size[1]}" for v in self.videos})
        return {
            "label_space": self.labels.name,
            "videos": len(self.videos),
            "frames": sum(max(v.total_frames, v.frames) for v in self.videos),
            "annotated_frames": frames,
            "resolutions": sizes,
            "classes_present": len(classes),
            "classes_total": len(self.labels),
            "thing_instances": len(lengths),
            "mean_track_length": float(np.mean(lengths)) if lengths else 0.0,
            "max_track_length": max(lengths, default=0),
            "masks_per_frame": sum(v.masks for v in self.videos) / max(frames, 1),
            "thing_masks_per_frame": sum(v.thing_masks for v in self.videos) / max(frames, 1),
            "void_fraction": sum(v.void_pixels for v in self.videos)
            / max(sum(v.pixels for v in self.videos), 1),
            "per_class_pixels": {
                self.labels[c].name if c in self.labels else str(c): n
                for c, n in sorted(classes.items())
            },
            "per_video": {
                v.name: {"annotated_frames": v.frames, "thing_instances": len(v.tracks)}
                for v in self.videos
            },
        }


def summarize(videos: Iterable[Video], labels: LabelSpace) -> DatasetSummary:
    return DatasetSummary(labels=labels, videos=[summarize_video(v) for v in videos])


def format_table(summary: dict[str, Any]) -> str:
    """A readable multi-line table of ``DatasetSummary.to_json()``."""
    rows = [
        ("label space", summary["label_space"]),
        ("videos", summary["videos"]),
        ("frames", summary["frames"]),
        ("annotated frames", summary["annotated_frames"]),
        ("resolution(s)", ", ".join(summary["resolutions"])),
        ("classes present", f"{summary['classes_present']} of {summary['classes_total']}"),
        ("thing instances (tracks)", summary["thing_instances"]),
        ("mean / max track length", f"{summary['mean_track_length']:.1f} / {summary['max_track_length']}"),
        ("masks per frame", f"{summary['masks_per_frame']:.2f}"),
        ("thing masks per frame", f"{summary['thing_masks_per_frame']:.2f}"),
        ("void pixels", f"{100 * summary['void_fraction']:.1f} %"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    lines.append("classes: " + ", ".join(summary["per_class_pixels"]))
    return "\n".join(lines)
