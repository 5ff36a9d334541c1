"""Inference with any registered model from its checkpoint alone: the checkpoint names the model
and holds its configuration, label space and training scale; the model's segmenter streams a
video's frames to panoptic frames with track ids."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from vpseg.core.labels import LabelSpace
from vpseg.engine.train import RunSpec
from vpseg.errors import InputError
from vpseg.models.registry import InferenceOptions, ModelEntry, config_from_dict, get_model
from vpseg.tracking import Tracker

__all__ = ["LoadedModel", "load_model", "spec_from_run"]


def spec_from_run(run: dict[str, Any]) -> RunSpec:
    """The ``RunSpec`` a checkpoint's ``run`` entry describes (older checkpoints: no training
    scale recorded, so the short side of the crop they were trained on)."""
    crop = (int(run["crop"][0]), int(run["crop"][1]))
    short = run.get("train_short_side", min(crop))
    return RunSpec(model=run["model"], clip=int(run["clip"]), batch_size=int(run["batch_size"]),
                   crop=crop, input_scale=float(run.get("input_scale", 1.0)),
                   train_short_side=None if short is None else int(short),
                   loss=tuple((str(k), v) for k, v in run.get("loss", ())))


@dataclass
class LoadedModel:
    """A trained network (eval mode) with what its checkpoint says about it."""

    model: nn.Module
    entry: ModelEntry
    spec: RunSpec
    labels: LabelSpace

    def options(self, *, clip: int | None = None, input_scale: float | None = None,
                parallel_clips: int = 1) -> InferenceOptions:
        """Inference at the checkpoint's clip length and scale unless given; ``parallel_clips``
        > 1 only for models whose clips are independent (``Recipe.independent_clips``)."""
        if parallel_clips < 1:
            raise InputError(f"--parallel-clips must be >= 1, got {parallel_clips}")
        if parallel_clips > 1 and not self.entry.family.recipe.independent_clips:
            raise InputError(f"--parallel-clips: {self.spec.model}'s clips depend on the ones "
                             "before them, so they are segmented one at a time")
        return InferenceOptions(clip=clip or self.spec.clip,
                                input_scale=self.spec.input_scale if input_scale is None else input_scale,
                                short_side=self.spec.train_short_side, parallel_clips=parallel_clips)

    def segment(self, frames: Iterable[np.ndarray], tracker: str | Tracker | None = None, *,
                options: InferenceOptions | None = None) -> Iterator[np.ndarray]:
        """Panoptic frames (int32, track ids as instances) for RGB frames ``(H, W, 3)`` uint8,
        read and produced in order. ``tracker``: a ``vpseg.tracking`` tracker (by name or
        built), the model's own association by name, or None for the model's default."""
        segmenter = self.entry.family.segmenter(self.model, self.labels, options or self.options())
        return segmenter(frames, tracker or self.entry.family.recipe.tracker)

    @property
    def trackers(self) -> tuple[str, ...]:
        """The model's own associations (beside ``vpseg.tracking``'s)."""
        return self.entry.family.recipe.trackers


def load_model(checkpoint: str | Path) -> LoadedModel:
    """The model of a ``vpseg train`` checkpoint (eval mode, CPU)."""
    from vpseg.engine.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint)
    extra = state.get("extra") or {}
    if "run" not in extra:
        raise InputError("not a vpseg model checkpoint (no run description)", path=checkpoint)
    spec = spec_from_run(extra["run"])
    try:
        entry = get_model(spec.model)
    except KeyError as exc:
        raise InputError(f"the checkpoint's model: {exc.args[0]}", path=checkpoint) from None
    labels = LabelSpace.from_json(extra["labels"])
    config = config_from_dict(entry.family, extra["model_config"]) if "model_config" in extra else None
    model = entry.build(labels.max_id + 1, config)
    weights = {k.removeprefix("module."): v for k, v in state["model"].items()}
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise InputError(f"the weights do not fit {spec.model}: {str(exc).splitlines()[0]}",
                         path=checkpoint) from None
    model.eval()
    return LoadedModel(model, entry, spec, labels)
