"""Shared fixtures: tiny hand-made label spaces and videos."""

from __future__ import annotations

import numpy as np
import pytest

from vpseg.core.labels import LabelSpace
from vpseg.core.video import Video


def make_tiny_labels() -> LabelSpace:
    """road (0, stuff), sky (1, stuff), person (2, thing), car (3, thing); ignore 255, div 1000."""
    return LabelSpace.from_json(
        {
            "name": "tiny",
            "categories": [
                {"id": 0, "name": "road", "isthing": 0},
                {"id": 1, "name": "sky", "isthing": 0},
                {"id": 2, "name": "person", "isthing": 1},
                {"id": 3, "name": "car", "isthing": 1},
            ],
            "ignore_label": 255,
            "label_divisor": 1000,
        }
    )


@pytest.fixture
def tiny_labels() -> LabelSpace:
    return make_tiny_labels()


@pytest.fixture
def tiny_video(tiny_labels: LabelSpace) -> Video:
    """Three 4x6 frames: sky over road, person 7 walking right, car 9, a void corner, a crowd."""
    frames = []
    for t in range(3):
        pan = np.zeros((4, 6), dtype=np.int32)
        pan[:2] = 1000  # sky
        pan[1:3, t : t + 2] = 2007  # person track 7
        pan[3, 4:] = 3009  # car track 9
        pan[0, 0] = 255000  # void
        pan[3, 0] = 2000  # crowd (person, no instance id)
        frames.append(pan)
    rgb = [np.full((4, 6, 3), 40 * t, dtype=np.uint8) for t in range(3)]
    return Video(name="v0", panoptic=frames, label_space=tiny_labels, rgb=rgb)
