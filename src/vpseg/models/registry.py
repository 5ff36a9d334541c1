"""Every model the engine knows, each registered once with what the engine needs of it.

A ``ModelFamily`` is one kind of network (Video-kMaX, Panoptic-DeepLab, ...) with its named
configurations and three parts:

* ``build(config, num_classes)``: the network (a ``torch.nn.Module``);
* ``criterion(labels, options)``: a ``Criterion``, ``(model, batch) -> (total loss, named parts)``,
  where ``batch`` is what ``vpseg.engine.data`` yields (``images`` B×T×3×H×W in [0, 1],
  ``panoptic`` B×T×H×W ids): the family turns panoptic frames into its own targets and feeds
  the network as it trains (one frame, a clip, a frame and its predecessor...);
* ``segmenter(model, labels, options)``: a ``Segmenter``, ``(frames, tracker) -> panoptic
  frames``, streaming a video's RGB frames through the network, post-processing and the
  association (a ``vpseg.tracking`` tracker, or the model's own where it has one).

``recipe`` holds what a user does not have to say: clip length, association, learning rate,
scale jitter and inference scale the family trains and runs with by default. ``loss_options``
is the dataclass of the criterion's settings (``vpseg train --loss key=value``).

The engine and the command line use only this interface: a new model adds a module under
``vpseg.models`` (defining ``FAMILIES``) and its name to ``FAMILY_MODULES``, nothing in ``engine/`` or ``cli/``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from vpseg.core.labels import LabelSpace

__all__ = ["Recipe", "InferenceOptions", "ModelFamily", "ModelEntry", "Criterion", "Segmenter",
           "total_and_parts", "unwrap",
           "FAMILY_MODULES", "families", "model_names", "get_model", "config_from_dict",
           "parse_options"]

Criterion = Callable[[nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, float]]]
# frames, and a tracker: a ``vpseg.tracking`` one (by name or built) or the model's own by name
Segmenter = Callable[[Iterable[np.ndarray], Any], Iterator[np.ndarray]]


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (what holds the config and the weights)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def total_and_parts(parts: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """A criterion's return value from its weighted losses: their sum, and every one (and the
    total) as a float for the training log."""
    total = torch.stack(list(parts.values())).sum()
    named = {k: float(v.detach()) for k, v in parts.items()}
    named["total"] = float(total.detach())
    return total, named


@dataclass(frozen=True)
class Recipe:
    """How a family trains and runs unless told otherwise (``vpseg train / demo`` defaults)."""

    clip: int = 2  # frames per training sample, and per clip at inference for clip models
    min_clip: int = 1  # the fewest the criterion can train on
    # frames per training sample where it is not ``--clip`` (Clip-PanoFCN trains on single
    # frames, as PanopticFCN, and segments clips of ``--clip`` frames)
    train_clip: int | None = None
    tracker: str = "hila"  # association at inference
    trackers: tuple[str, ...] = ()  # the model's own associations, beside vpseg.tracking's
    lr: float = 1e-3
    batch_size: int = 8
    min_scale: float = 0.75
    max_scale: float = 1.5
    input_scale: float = 1.0  # inference scale relative to the training scale
    loss: Mapping[str, Any] = field(default_factory=dict)  # demo loss options
    # clips at inference depend on nothing before them but the tracker (Clip-PanoFCN): several
    # can go through the network together (``InferenceOptions.parallel_clips``)
    independent_clips: bool = False
    semantic: bool = False  # predicts classes only (video semantic segmentation): no tracker
    demo_format: str = "kitti-step"  # layout and label space of ``vpseg demo`` without --format


@dataclass(frozen=True)
class InferenceOptions:
    """How a video is brought to the network.

    Every frame is resized so that its short side is ``short_side × input_scale`` (the scale the
    model was trained at, as detectron2's ``ResizeShortestEdge`` at test time, times the
    checkpoint's factor); the prediction is mapped back to the frame's size. ``short_side``
    None: no rescaling, only ``input_scale``. ``clip``: frames per clip for clip models;
    ``parallel_clips``: clips per network call where clips are independent
    (``Recipe.independent_clips``).
    """

    clip: int = 1
    input_scale: float = 1.0
    short_side: int | None = None
    parallel_clips: int = 1

    def scale(self, height: int, width: int) -> float:
        """The resize factor for a frame of ``height × width``."""
        base = 1.0 if self.short_side is None else self.short_side / min(height, width)
        return base * self.input_scale


@dataclass(frozen=True)
class ModelFamily:
    name: str
    configs: Mapping[str, Any]  # name -> config dataclass instance
    config_type: type
    build: Callable[[Any, int], nn.Module]
    criterion: Callable[[LabelSpace, Any], Criterion]
    loss_options: type
    segmenter: Callable[[nn.Module, LabelSpace, InferenceOptions], Segmenter]
    recipe: Recipe = Recipe()
    description: str = ""
    # what the network takes for ``clip`` frames of ``height × width`` (random values), for
    # benchmarks and shape checks: ``example_input(config, clip, height, width)``
    example_input: Callable[[Any, int, int, int], torch.Tensor] | None = None
    # why a configuration cannot use an association (e.g. VPSNet without its track head and
    # the ``vpsnet`` association), or None: ``tracker_error(config, tracker_name)``
    tracker_error: Callable[[Any, str], str | None] | None = None


@dataclass(frozen=True)
class ModelEntry:
    """A named model: its family and configuration."""

    name: str
    family: ModelFamily
    config: Any

    def build(self, num_classes: int, config: Any = None) -> nn.Module:
        return self.family.build(self.config if config is None else config, num_classes)


# modules that define ``FAMILIES`` (imported on first use: each imports torch and its layers)
FAMILY_MODULES = ("vpseg.models.video_kmax_family", "vpseg.models.deeplab_family",
                  "vpseg.models.panoptic_fcn_family", "vpseg.models.tcb_family",
                  "vpseg.models.vpsnet_family")

_families: list[ModelFamily] = []


def families() -> list[ModelFamily]:
    if not _families:
        for module in FAMILY_MODULES:
            _families.extend(importlib.import_module(module).FAMILIES)
    return list(_families)


def model_names() -> list[str]:
    return [name for fam in families() for name in fam.configs]


def get_model(name: str) -> ModelEntry:
    """The registered model ``name``; ``KeyError`` (listing the known names) otherwise."""
    for fam in families():
        if name in fam.configs:
            return ModelEntry(name, fam, fam.configs[name])
    raise KeyError(f"unknown model {name!r}; known: {', '.join(model_names())}")


def config_from_dict(family: ModelFamily, values: Mapping[str, Any]) -> Any:
    """A family's configuration from its ``asdict`` form (a checkpoint's ``model_config``; JSON
    and pickles may turn tuples into lists)."""
    return family.config_type(**{k: tuple(v) if isinstance(v, list) else v
                                 for k, v in values.items()})


def parse_options(kind: type, values: Mapping[str, Any]) -> Any:
    """``kind(**values)`` with strings converted to the fields' types; ``ValueError`` naming
    the key for unknown keys or values that do not convert."""
    known = {f.name: f for f in fields(kind)}
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ValueError(f"unknown option {key!r}; known: {', '.join(known)}")
        default = getattr(kind(), key)
        if isinstance(value, str) and not isinstance(default, str):
            try:
                value = (value.lower() in ("1", "true", "yes", "on") if isinstance(default, bool)
                         else type(default)(value) if default is not None else float(value))
            except (TypeError, ValueError):
                raise ValueError(f"option {key} must be {type(default).__name__}, "
                                 f"got {value!r}") from None
        out[key] = value
    return kind(**out)
