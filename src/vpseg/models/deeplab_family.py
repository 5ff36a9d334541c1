"""Panoptic-DeepLab and Motion-DeepLab in the model registry: the STEP baselines.

* ``panoptic-deeplab-*`` train on single frames and segment frame by frame; any ``vpseg.tracking``
  tracker links the instances (STEP's B1 ``iou``, the default; B2 ``sort``; B3 ``flow``).
* ``motion-deeplab-*`` (B4) train on pairs of consecutive frames: the network sees the current
  frame, the previous one and the previous frame's centre heatmap (the ground truth's, with
  deeplab2's noise, in training; rendered from the previous prediction at inference, as deeplab2
  does) and regresses every pixel to its instance's centre in the previous frame. Its own
  association, ``motion`` (``vpseg.models.motion_association``), follows the centres; any
  ``vpseg.tracking`` tracker can be used instead.

Frames are brought to the training scale, padded to a multiple of 32, segmented, and the maps
mapped back to the frame's size (nearest neighbour).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from vpseg.core.labels import LabelSpace
from vpseg.models.motion_association import CentreTracker, instance_radius
from vpseg.models.panoptic_deeplab import (
    CONFIGS,
    DeepLabConfig,
    DeepLabLoss,
    DeepLabLossWeights,
    DeepLabPost,
    DeepLabPrediction,
    PanopticDeepLab,
    center_heatmap,
    deeplab_targets,
    postprocess,
)
from vpseg.models.registry import (
    Criterion,
    InferenceOptions,
    ModelFamily,
    Recipe,
    Segmenter,
    unwrap,
)
from vpseg.models.video_output import (
    TrackedVideo,
    as_tracker,
    resize_instances,
    resize_labels,
    to_network,
)
from vpseg.tracking import FrameSegments, Tracker

__all__ = ["FAMILIES", "PANOPTIC_DEEPLAB", "MOTION_DEEPLAB", "MOTION_TRACKER"]

MOTION_TRACKER = "motion"


def _criterion(labels: LabelSpace, weights: DeepLabLossWeights) -> Criterion:
    criterion = DeepLabLoss(weights)

    def loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        device = next(model.parameters()).device
        images, panoptic = batch["images"], batch["panoptic"]
        motion = _config(model).motion
        if motion:  # a pair of frames: the previous one, then the current one
            if images.shape[1] < 2:
                raise ValueError("Motion-DeepLab trains on clips of 2 frames (--clip 2)")
            # deeplab2's jitter of the previous centres, drawn from torch's RNG (seeded, and
            # saved in checkpoints)
            noise = torch.Generator().manual_seed(int(torch.randint(2**62, (1,))))
            targets = deeplab_targets(panoptic[:, -1], labels, previous=panoptic[:, -2],
                                      prev_noise=noise)
            x = torch.cat([images[:, -1], images[:, -2], targets["prev_center"]], 1)
        else:  # every frame of the clip on its own
            targets = deeplab_targets(panoptic.flatten(0, 1), labels)
            x = images.flatten(0, 1)
        out = model(x.to(device, non_blocking=True))
        return criterion(out, {k: v.to(device, non_blocking=True) for k, v in targets.items()})

    return loss


def _config(model: nn.Module) -> DeepLabConfig:
    return unwrap(model).config  # type: ignore[return-value]


def _centres_of_mass(index: np.ndarray, n: int) -> np.ndarray:
    """``(n, 2)`` (y, x) mean pixel position of instances 1..n."""
    ys, xs = np.indices(index.shape)
    area = np.maximum(np.bincount(index.ravel(), minlength=n + 1)[1:], 1)
    cy = np.bincount(index.ravel(), ys.ravel(), minlength=n + 1)[1:] / area
    cx = np.bincount(index.ravel(), xs.ravel(), minlength=n + 1)[1:] / area
    return np.stack([cy, cx], 1)


class _DeepLabVideo:
    """One video through a (Motion-)DeepLab network, frame by frame."""

    def __init__(self, model: nn.Module, labels: LabelSpace, options: InferenceOptions,
                 post: DeepLabPost) -> None:
        self.model, self.labels, self.options, self.post = model, labels, options, post
        self.motion = _config(model).motion
        self.device = next(model.parameters()).device
        self.previous: torch.Tensor | None = None  # the previous frame, network scale, padded
        self.heatmap: torch.Tensor | None = None  # its rendered centre heatmap

    @torch.no_grad()
    def predict(self, frame: np.ndarray) -> tuple[DeepLabPrediction, dict[str, torch.Tensor]]:
        """The prediction at the network's scale and the raw outputs (cropped to it)."""
        pixels = torch.from_numpy(np.require(frame, requirements=["C", "W"]))
        image = pixels.permute(2, 0, 1)[None].float() / 255.0
        x, (sh, sw) = to_network(image.to(self.device), self.options.scale(*frame.shape[:2]))
        if self.motion:
            previous = x if self.previous is None else self.previous
            heat = torch.zeros_like(x[:, :1]) if self.heatmap is None else self.heatmap
            self.previous = x
            x = torch.cat([x, previous, heat], 1)
        out = self.model(x)
        out = {k: v[0, :, :sh, :sw].float() for k, v in out.items() if isinstance(v, torch.Tensor)}
        pred = postprocess(out["semantic"], out["center"], out["offset"], self.labels, self.post)
        return pred, out

    def render_heatmap(self, pred: DeepLabPrediction, padded: tuple[int, int]) -> None:
        """The next frame's extra input: Gaussians at this prediction's instances, drawn from its
        panoptic map as the ground truth's are (deeplab2 renders the prediction the same way)."""
        heat = center_heatmap(torch.from_numpy(pred.panoptic(self.labels)), self.labels)
        h, w = heat.shape
        full = torch.zeros(1, 1, *padded)
        full[0, 0, :h, :w] = heat
        self.heatmap = full.to(self.device)


def _segmenter(model: nn.Module, labels: LabelSpace, options: InferenceOptions) -> Segmenter:
    def run(frames: Iterable[np.ndarray], tracker: str | Tracker) -> Iterator[np.ndarray]:
        video = _DeepLabVideo(model.eval(), labels, options, DeepLabPost())
        own = tracker == MOTION_TRACKER
        if own and not video.motion:
            raise ValueError(f"the {MOTION_TRACKER!r} association needs a Motion-DeepLab model")
        centres = CentreTracker()
        # with B4 the ids come from ``centres``; TrackedVideo then only writes the frames
        out = TrackedVideo(as_tracker("iou" if own else tracker), labels)
        for frame in frames:
            frame = np.asarray(frame)
            pred, raw = video.predict(frame)
            n = len(pred.category)
            if video.motion:
                assert video.previous is not None
                video.render_heatmap(pred, tuple(video.previous.shape[-2:]))  # type: ignore[arg-type]
            if own:  # B4 on the network's grid: centres of mass, previous-offsets there
                com = _centres_of_mass(pred.instance, n)
                at = np.rint(com).astype(np.int64)
                prev = raw["prev_offset"].cpu().numpy()[:, at[:, 0], at[:, 1]].T
                ids = centres.update(com, prev, pred.score, pred.category,
                                     instance_radius(pred.instance, n))
            size = frame.shape[:2]
            index, kept = resize_instances(pred.instance, n, size)
            semantic = resize_labels(pred.semantic, size)
            things = FrameSegments(index=index, category=pred.category[kept], score=pred.score[kept])
            if own:
                yield out.panoptic(things, ids[kept], semantic)
            else:
                yield from out.update([things], [semantic], [frame])

    return run


def _build(config: Any, num_classes: int) -> nn.Module:
    return PanopticDeepLab(config, num_classes)


def _example(config: Any, clip: int, height: int, width: int) -> torch.Tensor:
    """``clip`` frames as a batch (the network sees one frame at a time)."""
    return torch.rand(clip, 7 if config.motion else 3, height, width)


PANOPTIC_DEEPLAB = ModelFamily(
    name="panoptic-deeplab",
    configs={k: v for k, v in CONFIGS.items() if not v.motion}, config_type=DeepLabConfig,
    build=_build, criterion=_criterion, loss_options=DeepLabLossWeights, segmenter=_segmenter,
    example_input=_example,
    recipe=Recipe(clip=1, tracker="iou", lr=1e-3, batch_size=8, min_scale=0.75, max_scale=1.5),
    description="Panoptic-DeepLab (Cheng et al., CVPR 2020); STEP's B1-B3 with iou/sort/flow")
MOTION_DEEPLAB = ModelFamily(
    name="motion-deeplab",
    configs={k: v for k, v in CONFIGS.items() if v.motion}, config_type=DeepLabConfig,
    build=_build, criterion=_criterion, loss_options=DeepLabLossWeights, segmenter=_segmenter,
    example_input=_example,
    recipe=Recipe(clip=2, min_clip=2, tracker=MOTION_TRACKER, trackers=(MOTION_TRACKER,), lr=1e-3,
                  batch_size=8, min_scale=0.75, max_scale=1.5),
    description="Motion-DeepLab (STEP baseline B4, Weber et al., NeurIPS 2021)")
FAMILIES = (PANOPTIC_DEEPLAB, MOTION_DEEPLAB)
