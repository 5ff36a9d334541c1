"""Video-kMaX in the model registry: clip-kMaX trained on clips with the kMaX losses, segmenting
near-online (clips of T overlapping by one) with HiLA-MB by default."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Any

import numpy as np
import torch
from torch import nn

from vpseg.core.labels import LabelSpace
from vpseg.models.kmax_inference import PostProcess, segment_frames
from vpseg.models.losses import KMaXLoss, LossWeights, make_targets
from vpseg.models.registry import Criterion, InferenceOptions, ModelFamily, Recipe, Segmenter
from vpseg.models.video_kmax import MODEL_CONFIGS, KMaXConfig, VideoKMaX
from vpseg.models.video_output import as_tracker
from vpseg.tracking import Tracker

__all__ = ["FAMILIES", "VIDEO_KMAX"]


def _criterion(labels: LabelSpace, weights: LossWeights) -> Criterion:
    criterion = KMaXLoss(labels.max_id + 1, weights)

    def loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        device = next(model.parameters()).device
        images = batch["images"].to(device, non_blocking=True)
        out = model(images)
        # targets at the final mask logits' resolution, per frame
        hs, ws = out["mask_logits"].shape[-2] // images.shape[1], out["mask_logits"].shape[-1]
        targets = [t.to(device) for t in make_targets(batch["panoptic"], labels, (hs, ws))]
        return criterion(out, targets)

    return loss


def _segmenter(model: nn.Module, labels: LabelSpace, options: InferenceOptions) -> Segmenter:
    def run(frames: Iterable[np.ndarray], tracker: str | Tracker) -> Iterator[np.ndarray]:
        frames = iter(frames)
        first = next(frames, None)
        if first is None:
            return
        post = PostProcess(input_scale=options.scale(*np.asarray(first).shape[:2]))
        yield from segment_frames(model, chain([first], frames), labels, as_tracker(tracker),
                                  clip=options.clip, post=post)

    return run


def _build(config: Any, num_classes: int) -> nn.Module:
    return VideoKMaX(config, num_classes)


def _example(config: Any, clip: int, height: int, width: int) -> torch.Tensor:
    return torch.rand(1, clip, 3, height, width)  # one clip


VIDEO_KMAX = ModelFamily(
    name="video-kmax", configs=MODEL_CONFIGS, config_type=KMaXConfig, build=_build,
    criterion=_criterion, loss_options=LossWeights, segmenter=_segmenter, example_input=_example,
    recipe=Recipe(clip=2, tracker="hila", lr=8e-3, batch_size=8, min_scale=1.0, max_scale=1.6,
                  input_scale=1.25, loss={"sample_pixels": 512}),
    description="Video-kMaX (clip-kMaX + HiLA-MB; Shin et al., WACV 2024)")
FAMILIES = (VIDEO_KMAX,)
