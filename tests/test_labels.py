import json

import numpy as np
import pytest

from vpseg.core.labels import BUILTIN_LABEL_SPACES, LabelSpace, get_label_space, load_label_space
from vpseg.errors import InputError


def test_cityscapes_kitti_step_tracks_only_pedestrians_and_cars():
    kitti = get_label_space("kitti-step")
    assert len(kitti) == 19
    assert kitti.thing_ids == (11, 13)
    assert kitti[11].name == "person" and kitti[13].name == "car"
    assert kitti.ignore_label == 255 and kitti.label_divisor == 1000


def test_cityscapes_vps_has_eight_things():
    cs = get_label_space("cityscapes-vps")
    assert [cs[i].name for i in cs.thing_ids] == [
        "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"
    ]
    assert cs[0].color == (128, 64, 128)  # cityscapesScripts colour of road


@pytest.mark.parametrize(
    ("name", "total", "things"),
    [("vipseg", 124, 58), ("vspw", 124, 0), ("viper", 23, 10), ("motchallenge-step", 7, 1)],
)
def test_builtin_sizes(name, total, things):
    labels = get_label_space(name)
    assert len(labels) == total
    assert len(labels.thing_ids) == things


@pytest.mark.parametrize("name", BUILTIN_LABEL_SPACES)
def test_builtins_are_consistent(name):
    labels = get_label_space(name)
    assert labels.ignore_label not in labels
    assert len(set(labels.ids)) == len(labels)
    assert all(len(c.name) > 0 for c in labels.categories)
    # the lookup tables agree with the category list
    lut = labels.thing_lut()
    assert sorted(np.flatnonzero(lut)) == sorted(labels.thing_ids)


def test_unknown_label_space_lists_known_names():
    with pytest.raises(KeyError, match="kitti-step"):
        get_label_space("nope")


def test_custom_json_round_trip(tmp_path, tiny_labels):
    path = tmp_path / "ls.json"
    path.write_text(json.dumps(tiny_labels.to_json()))
    loaded = load_label_space(path)
    assert loaded.categories == tiny_labels.categories
    assert loaded.thing_ids == (2, 3)


def test_custom_json_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"categories": [{"name": "x"}]}')
    with pytest.raises(InputError, match="bad.json"):
        load_label_space(bad)
    with pytest.raises(InputError, match="missing.json"):
        load_label_space(tmp_path / "missing.json")
    clash = tmp_path / "clash.json"
    clash.write_text('{"categories": [{"id": 255, "name": "x"}], "ignore_label": 255}')
    with pytest.raises(InputError, match="clash.json.*ignore label"):
        load_label_space(clash)


def test_with_things_changes_only_isthing(tiny_labels):
    changed = tiny_labels.with_things([0])
    assert changed.thing_ids == (0,)
    assert [c.name for c in changed.categories] == [c.name for c in tiny_labels.categories]


def test_color_table_indexes_by_id():
    labels = LabelSpace.from_json({"categories": [{"id": 5, "name": "a", "color": [1, 2, 3]}]})
    table = labels.color_table()
    assert table[5].tolist() == [1, 2, 3]
    assert table[0].tolist() == [0, 0, 0]
