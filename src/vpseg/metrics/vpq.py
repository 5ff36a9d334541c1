"""Video panoptic quality over sliding windows of k annotated frames (VIPSeg / VPSNet scripts).

In a window, a tube is one panoptic id (ids are consistent through a video), its area the sum
over the window's frames; tubes are matched exactly like image PQ (``vpseg.metrics.pq``). The
window's table is the sum of its frames' pair tables, so every k comes from the same per-frame
tables: one pass over the pixels whatever the k list. Windows ``[i, i + k)`` slide by one
annotated frame; a video shorter than k adds nothing to that k. Per class, TP/FP/FN and the IoU
sum add up over all windows of all videos; VPQ is the mean over the k list of the per-k PQ.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from vpseg.core.labels import LabelSpace
from vpseg.metrics.pq import PQStats, match_table
from vpseg.metrics.tables import PairTable, sum_tables

__all__ = ["VPQAccumulator"]


@dataclass
class VPQAccumulator:
    """Streams frames of one video at a time; ``merge`` adds another accumulator's counts.

    Holds at most ``max(ks)`` frame tables (memory flat in video length).
    """

    labels: LabelSpace
    ks: Sequence[int] = (1, 2, 4, 6)
    stats: dict[int, PQStats] = field(init=False)
    windows: dict[int, int] = field(init=False)
    _recent: deque[PairTable] = field(init=False, repr=False)
    _video: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.ks or min(self.ks) < 1:
            raise ValueError("window lengths k must be >= 1")
        size = max(max(self.labels.ids), self.labels.ignore_label) + 1
        self.stats = {k: PQStats(size) for k in self.ks}
        self.windows = dict.fromkeys(self.ks, 0)
        self._recent = deque(maxlen=max(self.ks))

    def update(self, table: PairTable, video: str) -> None:
        """Add the next annotated frame of ``video`` (frames in order, videos one after another)."""
        if video != self._video:
            self._recent.clear()
            self._video = video
        self._recent.append(table)
        recent = list(self._recent)
        seen = len(recent)
        window: PairTable | None = None
        size = 0
        for k in sorted(set(self.ks)):  # each window extends the next shorter one (exact sums)
            if seen < k:
                break
            window = sum_tables(([] if window is None else [window]) + recent[seen - k:seen - size])
            size = k
            match_table(window, self.labels, self.stats[k])
            self.windows[k] += 1

    def merge(self, other: VPQAccumulator) -> VPQAccumulator:
        for k in self.ks:
            self.stats[k].merge(other.stats[k])
            self.windows[k] += other.windows[k]
        return self

    def result(self) -> dict[str, object]:
        """``VPQ``/``VPQ_th``/``VPQ_st`` (means over k) and ``per_k``; ``None`` where unavailable
        (no window of that length, or no class of the group), with the reason in ``notes``."""
        per_k: dict[str, dict[str, float | None]] = {}
        notes = []
        for k in self.ks:
            r = self.stats[k].result(self.labels)
            per_k[str(k)] = {"VPQ": r["PQ"], "VPQ_th": r["PQ_th"], "VPQ_st": r["PQ_st"],
                             "SQ": r["SQ"], "RQ": r["RQ"]}
            if self.windows[k] == 0:
                notes.append(f"k={k}: no video has {k} annotated frames")
        out: dict[str, object] = {"per_k": per_k}
        for name in ("VPQ", "VPQ_th", "VPQ_st"):
            values = [per_k[str(k)][name] for k in self.ks]
            if any(v is None for v in values):
                out[name] = None
                notes.append(f"{name}: unavailable for some k (no window or no class of the group)")
            else:
                out[name] = sum(v for v in values if v is not None) / len(values)
        if notes:
            out["notes"] = notes
        return out
