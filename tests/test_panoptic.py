import numpy as np
import pytest

from vpseg.core.panoptic import (
    merge,
    relabel,
    segment_areas,
    segment_boxes,
    split,
    validate_panoptic,
)
from vpseg.errors import InputError


def test_merge_and_split_are_inverse():
    sem = np.array([[0, 11], [13, 255]])
    inst = np.array([[0, 3], [999, 0]])
    pan = merge(sem, inst, 1000)
    assert pan.dtype == np.int32
    assert pan.tolist() == [[0, 11003], [13999, 255000]]
    s, i = split(pan, 1000)
    assert s.tolist() == sem.tolist() and i.tolist() == inst.tolist()


def test_merge_rejects_instance_that_does_not_fit():
    with pytest.raises(ValueError, match="instance ids"):
        merge(np.zeros((1, 1)), np.full((1, 1), 1000), 1000)


def test_relabel_maps_only_given_ids():
    pan = np.array([[5, 6], [7, 5]])
    assert relabel(pan, {5: 50, 7: 70}).tolist() == [[50, 6], [70, 50]]


def test_areas_and_boxes_by_hand():
    pan = np.array(
        [
            [1, 1, 2, 2],
            [1, 3, 3, 2],
            [0, 0, 3, 0],
        ]
    )
    assert segment_areas(pan) == {0: 3, 1: 3, 2: 3, 3: 3}
    boxes = segment_boxes(pan)
    assert boxes[1] == (0, 0, 2, 2)  # x0, y0, x1, y1 with exclusive ends
    assert boxes[3] == (1, 1, 3, 3)
    assert boxes[0] == (0, 2, 4, 3)


def test_validate_names_file_and_frame(tiny_labels):
    pan = np.array([[7000]])  # class 7 does not exist
    with pytest.raises(InputError, match=r"x.png \(frame 4\): class id 7"):
        validate_panoptic(pan, tiny_labels, path="x.png", frame=4)
    validate_panoptic(np.array([[255000, 2003]]), tiny_labels)  # void and a thing are fine
