"""Instance ids that an encoding can hold but vpseg's panoptic ids cannot.

A STEP PNG holds instance ids up to 65535 (``G * 256 + B``) and a COCO-style JSON any number of
tracks, but a panoptic id ``semantic * label_divisor + instance`` needs ``instance <
label_divisor`` (1000 for the built-in label spaces). Such ids are renumbered within their video
rather than refused: ids that fit keep their value, and each id that does not gets the smallest
instance id of its class that the video does not use, taken in increasing order of the original
id. The result depends only on the set of ids in the video, never on the order frames are read,
and panoptic ids stay distinct, so every metric is unchanged (they do not depend on the numbers
a track carries). Only a class with more distinct ids in one video than the divisor leaves room
for is an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from vpseg.errors import InputError, note

__all__ = ["fit_instances"]


def fit_instances(
    pairs: Iterable[tuple[int, int]], divisor: int, *, video: str, where: str | Path | None
) -> dict[tuple[int, int], int]:
    """``(class, instance)`` pairs of one video -> new instance id of every pair whose instance
    does not fit below ``divisor`` (pairs that fit are left out: they keep their id).

    Raises ``InputError`` when a class has ``divisor`` or more distinct instance ids; emits a
    note saying that ids were renumbered.
    """
    by_class: dict[int, set[int]] = {}
    for cls, inst in pairs:
        if inst > 0:
            by_class.setdefault(cls, set()).add(inst)
    mapping: dict[tuple[int, int], int] = {}
    largest = 0
    for cls, ids in sorted(by_class.items()):
        big = sorted(i for i in ids if i >= divisor)
        if not big:
            continue
        if len(ids) >= divisor:
            raise InputError(f"video {video!r} has {len(ids)} distinct instance ids of class "
                             f"{cls}; at most {divisor - 1} fit below the label divisor "
                             f"{divisor}", path=where)
        free = (i for i in range(1, divisor) if i not in ids)
        for inst in big:
            mapping[(cls, inst)] = next(free)
        largest = max(largest, big[-1])
    if mapping:
        note(f"video {video!r}: {len(mapping)} instance ids (up to {largest}) do not fit below "
             f"the label divisor {divisor}; renumbered within the video (metrics unchanged)",
             path=where)
    return mapping
