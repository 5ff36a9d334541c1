"""Label spaces: the categories of a data set, its ignore label and its panoptic label divisor.

A panoptic id is ``semantic * label_divisor + instance``. Built-in label spaces carry the real
class lists of the data sets of the field (files in ``_label_data/``, each naming its official
source); custom ones load from a COCO-panoptic-style JSON::

    {"categories": [{"id": 0, "name": "road", "isthing": 0, "color": [128, 64, 128]}, ...],
     "ignore_label": 255, "label_divisor": 1000}
"""

from __future__ import annotations

import colorsys
import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from vpseg.errors import InputError

__all__ = [
    "Category",
    "LabelSpace",
    "BUILTIN_LABEL_SPACES",
    "get_label_space",
    "load_label_space",
    "distinct_color",
]


@dataclass(frozen=True)
class Category:
    """One class: ``id`` as stored on disk / in panoptic ids, ``isthing`` if it has instances."""

    id: int
    name: str
    isthing: bool
    color: tuple[int, int, int]


@dataclass(frozen=True)
class LabelSpace:
    """An ordered set of categories plus the ignore label and the label divisor."""

    name: str
    categories: tuple[Category, ...]
    ignore_label: int = 255
    label_divisor: int = 1000
    _by_id: dict[int, Category] = field(init=False, repr=False, compare=False)
    _ids: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _thing_ids: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id: dict[int, Category] = {}
        for cat in self.categories:
            if cat.id in by_id:
                raise ValueError(f"label space {self.name!r}: duplicate category id {cat.id}")
            if cat.id < 0:
                raise ValueError(f"label space {self.name!r}: negative category id {cat.id}")
            by_id[cat.id] = cat
        if self.ignore_label in by_id:
            raise ValueError(
                f"label space {self.name!r}: ignore label {self.ignore_label} is also a category"
            )
        if self.label_divisor < 2:
            raise ValueError(f"label space {self.name!r}: label divisor must be >= 2")
        object.__setattr__(self, "_by_id", by_id)
        # the id lists are asked for per frame by the metrics: computed once
        object.__setattr__(self, "_ids", tuple(c.id for c in self.categories))
        object.__setattr__(self, "_thing_ids", tuple(c.id for c in self.categories if c.isthing))

    # -- look-ups -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.categories)

    def __contains__(self, category_id: object) -> bool:
        return category_id in self._by_id

    def __getitem__(self, category_id: int) -> Category:
        return self._by_id[category_id]

    @property
    def ids(self) -> tuple[int, ...]:
        return self._ids

    @property
    def thing_ids(self) -> tuple[int, ...]:
        return self._thing_ids

    @property
    def stuff_ids(self) -> tuple[int, ...]:
        return tuple(c.id for c in self.categories if not c.isthing)

    @property
    def max_id(self) -> int:
        return max(self._ids)

    def is_thing(self, category_id: int) -> bool:
        cat = self._by_id.get(category_id)
        return cat is not None and cat.isthing

    def by_name(self, name: str) -> Category:
        for cat in self.categories:
            if cat.name == name:
                return cat
        raise KeyError(f"label space {self.name!r} has no category named {name!r}")

    def thing_lut(self, size: int | None = None) -> np.ndarray:
        """``(size,)`` bool array: ``lut[c]`` is True for thing category ids ``c``."""
        size = max(self.max_id, self.ignore_label) + 1 if size is None else size
        lut = np.zeros(size, dtype=bool)
        lut[list(self.thing_ids)] = True
        return lut

    def valid_lut(self) -> np.ndarray:
        """Bool array over ``0..max(ids, ignore)``: True for category ids and the ignore label."""
        lut = np.zeros(max(self.max_id, self.ignore_label) + 1, dtype=bool)
        lut[list(self.ids)] = True
        lut[self.ignore_label] = True
        return lut

    def color_table(self) -> np.ndarray:
        """``(max_id + 1, 3)`` uint8 colours indexed by category id (black for gaps)."""
        table = np.zeros((max(self.max_id, self.ignore_label) + 1, 3), dtype=np.uint8)
        for cat in self.categories:
            table[cat.id] = cat.color
        return table

    def with_things(self, thing_ids: Iterable[int], name: str | None = None) -> LabelSpace:
        """A copy in which exactly ``thing_ids`` are things (e.g. KITTI-STEP tracks 2 classes)."""
        things = set(thing_ids)
        cats = tuple(replace(c, isthing=c.id in things) for c in self.categories)
        return replace(self, name=name or self.name, categories=cats)

    # -- serialisation --------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ignore_label": self.ignore_label,
            "label_divisor": self.label_divisor,
            "categories": [
                {"id": c.id, "name": c.name, "isthing": int(c.isthing), "color": list(c.color)}
                for c in self.categories
            ],
        }

    @classmethod
    def from_json(
        cls, obj: Mapping[str, Any], *, name: str = "custom", source: str | None = None
    ) -> LabelSpace:
        """Build from the JSON object of the module docstring; ``source`` names it in errors."""
        where = source or "label space JSON"
        cats_in = obj.get("categories")
        if not isinstance(cats_in, list) or not cats_in:
            raise InputError("expected a non-empty 'categories' list", path=where)
        cats = []
        for i, c in enumerate(cats_in):
            try:
                cid = int(c["id"])
                cname = str(c.get("name", f"class_{cid}"))
                isthing = bool(int(c.get("isthing", 0)))
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(
                    f"category #{i} must have an integer 'id' (and 'name', 'isthing'): {exc}",
                    path=where,
                ) from None
            color = c.get("color")
            try:
                rgb = tuple(int(v) for v in color) if color is not None else distinct_color(cid)
                if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb) or isinstance(color, str):
                    raise ValueError
            except (TypeError, ValueError):
                raise InputError(f"category {cid}: 'color' must be 3 integers in 0..255, got "
                                 f"{color!r}", path=where) from None
            cats.append(Category(cid, cname, isthing, (rgb[0], rgb[1], rgb[2])))
        try:
            return cls(
                name=str(obj.get("name", name)),
                categories=tuple(cats),
                ignore_label=int(obj.get("ignore_label", 255)),
                label_divisor=int(obj.get("label_divisor", 1000)),
            )
        except (TypeError, ValueError) as exc:
            raise InputError(f"'ignore_label' and 'label_divisor' must be integers: {exc}"
                             if isinstance(exc, TypeError) else str(exc), path=where) from None


def distinct_color(index: int) -> tuple[int, int, int]:
    """A deterministic, well-spread colour for ``index`` (golden-ratio hue walk)."""
    hue = (index * 0.618033988749895) % 1.0
    sat = 0.55 + 0.35 * ((index * 7) % 5) / 4
    val = 0.65 + 0.3 * ((index * 3) % 4) / 3
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return int(r * 255), int(g * 255), int(b * 255)


def load_label_space(path: str | PathLike[str]) -> LabelSpace:
    """Load a custom label space from a JSON file (format in the module docstring)."""
    p = Path(path)
    try:
        obj = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError("label space file not found", path=p) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read label space JSON: {exc}", path=p) from None
    if not isinstance(obj, dict):
        raise InputError("expected a JSON object with 'categories'", path=p)
    return LabelSpace.from_json(obj, name=p.stem, source=str(p))


def _data(file: str) -> LabelSpace:
    text = resources.files("vpseg.core").joinpath("_label_data").joinpath(file).read_text()
    return LabelSpace.from_json(json.loads(text), source=file)


def _cityscapes_vps() -> LabelSpace:
    return replace(_data("cityscapes19.json"), name="cityscapes-vps")


def _kitti_step() -> LabelSpace:
    # STEP tracks only pedestrians (11) and cars (13); deeplab2 class_has_instances_list.
    return _data("cityscapes19.json").with_things([11, 13], name="kitti-step")


_BUILDERS = {
    "cityscapes19": lambda: _data("cityscapes19.json"),
    "kitti-step": _kitti_step,
    "cityscapes-vps": _cityscapes_vps,
    "motchallenge-step": lambda: _data("motchallenge_step.json"),
    "vipseg": lambda: _data("vipseg.json"),
    "vspw": lambda: _data("vspw.json"),
    "viper": lambda: _data("viper.json"),
    "coco-panoptic": lambda: _data("coco_panoptic.json"),
}

#: Names of the built-in label spaces.
BUILTIN_LABEL_SPACES: tuple[str, ...] = tuple(_BUILDERS)


@functools.cache
def get_label_space(name: str) -> LabelSpace:
    """A built-in label space by name (see ``BUILTIN_LABEL_SPACES``)."""
    try:
        builder = _BUILDERS[name]
    except KeyError:
        known = ", ".join(BUILTIN_LABEL_SPACES)
        raise KeyError(f"unknown label space {name!r}; known: {known}") from None
    return builder()
