"""PanopticFCN and Clip-PanoFCN (VIPSeg, Miao et al., CVPR 2022, Sec. 4) in the model registry.

Both train as PanopticFCN, on single frames (the paper's clip-level aggregation has no
parameters). At inference a video is cut into non-overlapping
clips of C frames (``--clip``; PanopticFCN is C = 1): every frame gives its kernels and encoded
feature F_i; the clip's kernels are fused (``vpseg.models.clip_fusion``: things by cosine
similarity per category, stuff averaged) and the fused kernels applied to every F_i, so one
kernel is one object through the clip (its ``clip_id``); the fused kernels are also the
objects' embeddings, which the ``kernel`` tracker compares between adjacent clips (inter-clip
tracking: merged above its threshold, new ids below). Clips depend on nothing before them but
the tracker's memory, so they are segmented in parallel: ``InferenceOptions.parallel_clips``
clips go through the network as one batch, and the tracker then links them in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vpseg.core.labels import LabelSpace
from vpseg.models.clip_fusion import fuse_clip_kernels
from vpseg.models.panoptic_fcn import (
    CONFIGS,
    FrameKernels,
    PanopticFCN,
    PanopticFCNConfig,
    PanopticFCNLoss,
    PanopticFCNLossWeights,
    PanopticFCNPost,
    frame_kernels,
    fuse_kernels,
    masks_from_kernels,
    panoptic_fcn_targets,
    panoptic_from_masks,
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

__all__ = ["FAMILIES", "PANOPTIC_FCN", "CLIP_PANOFCN", "segment_clip", "segment_clips"]


def _config(model: nn.Module) -> PanopticFCNConfig:
    return unwrap(model).config  # type: ignore[return-value]


def _criterion(labels: LabelSpace, weights: PanopticFCNLossWeights) -> Criterion:
    criterion = PanopticFCNLoss(weights)

    def loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        device = next(model.parameters()).device
        images = batch["images"].flatten(0, 1).to(device, non_blocking=True)  # every frame alone
        panoptic = batch["panoptic"].flatten(0, 1).to(device, non_blocking=True)
        targets = panoptic_fcn_targets(panoptic, labels, _config(model))
        return criterion(model(images), targets)

    return loss


@torch.no_grad()
def segment_clips(model: nn.Module, clips: Sequence[Sequence[np.ndarray]], labels: LabelSpace,
                  options: InferenceOptions, post: PanopticFCNPost = PanopticFCNPost(),  # noqa: B008
                  ) -> list[tuple[list[FrameSegments], list[np.ndarray]]]:
    """Clips of RGB frames ``(H, W, 3)`` uint8 (all of one size), segmented in parallel: every
    frame of every clip goes through the network in one batch, then each clip's kernels are
    fused on their own. Per clip, per frame: the thing segments (clip id = the fused kernel,
    embedding = the fused kernel normalised) and the semantic map."""
    device = next(model.parameters()).device
    frames = [np.asarray(f) for clip in clips for f in clip]
    h, w = frames[0].shape[:2]
    images = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div_(255.0)
    x, (sh, sw) = to_network(images.to(device), options.scale(h, w))
    outputs = model(x)
    per_frame = [fuse_kernels(frame_kernels(outputs, i, labels, post), post.similarity_threshold)
                 for i in range(len(frames))]
    results, start = [], 0
    for clip in clips:
        frame_kernels_ = per_frame[start : start + len(clip)]
        start += len(clip)
        results.append(_segment_fused(frame_kernels_, labels, post, (x.shape[-2], x.shape[-1]),
                                      (sh, sw), (h, w)))
    return results


def segment_clip(model: nn.Module, frames: Sequence[np.ndarray], labels: LabelSpace,
                 options: InferenceOptions, post: PanopticFCNPost = PanopticFCNPost(),  # noqa: B008
                 ) -> tuple[list[FrameSegments], list[np.ndarray]]:
    """One clip: ``segment_clips`` of ``[frames]``."""
    return segment_clips(model, [frames], labels, options, post)[0]


def _segment_fused(per_frame: list[FrameKernels], labels: LabelSpace, post: PanopticFCNPost,
                   padded: tuple[int, int], valid: tuple[int, int], size: tuple[int, int],
                   ) -> tuple[list[FrameSegments], list[np.ndarray]]:
    """One clip's frames from their kernels: fuse them over the clip, apply the fused kernels to
    every frame's feature, map the result from the network's ``valid`` part of ``padded`` back
    to the frame ``size``."""
    fused = fuse_clip_kernels([k.kernels for k in per_frame], [k.classes for k in per_frame],
                              [k.scores for k in per_frame], [k.is_thing for k in per_frame],
                              post.similarity_threshold)
    embedding = F.normalize(fused.kernels.float(), dim=1).cpu().numpy()
    (sh, sw), (h, w) = valid, size
    things, semantic = [], []
    for k in per_frame:
        clip_k = FrameKernels(fused.kernels, fused.classes, fused.scores, fused.is_thing, k.feature)
        probs = masks_from_kernels(fused.kernels, k.feature, padded)[:, :sh, :sw]
        pred = panoptic_from_masks(clip_k, probs, labels, post)
        index, kept = resize_instances(pred.instance, len(pred.category), (h, w))
        sem = resize_labels(pred.semantic, (h, w))
        rows = pred.kernel_index[kept]
        things.append(FrameSegments(index=index, category=pred.category[kept],
                                    score=pred.score[kept], embedding=embedding[rows],
                                    clip_id=rows.astype(np.int64)))
        semantic.append(sem)
    return things, semantic


def _segmenter(model: nn.Module, labels: LabelSpace, options: InferenceOptions) -> Segmenter:
    per_call = options.clip * options.parallel_clips  # frames per network call

    def run(frames: Iterable[np.ndarray], tracker: str | Tracker) -> Iterator[np.ndarray]:
        model.eval()
        out = TrackedVideo(as_tracker(tracker), labels)
        pending: list[np.ndarray] = []

        def flush() -> Iterator[np.ndarray]:
            clips = [pending[i : i + options.clip] for i in range(0, len(pending), options.clip)]
            for clip, result in zip(clips, segment_clips(model, clips, labels, options), strict=True):
                yield from out.update(*result, clip)  # the tracker links clips in order
            pending.clear()

        for frame in frames:
            pending.append(np.asarray(frame))
            if len(pending) == per_call:
                yield from flush()
        if pending:
            yield from flush()

    return run


def _build(config: Any, num_classes: int) -> nn.Module:
    return PanopticFCN(config, num_classes)


def _example(config: Any, clip: int, height: int, width: int) -> torch.Tensor:
    """``clip`` frames as a batch (the network sees one frame at a time)."""
    return torch.rand(clip, 3, height, width)


_COMMON: dict[str, Any] = dict(config_type=PanopticFCNConfig, build=_build, criterion=_criterion,
                               loss_options=PanopticFCNLossWeights, segmenter=_segmenter,
                               example_input=_example)
PANOPTIC_FCN = ModelFamily(
    name="panoptic-fcn", configs=dict(CONFIGS), **_COMMON,
    recipe=Recipe(clip=1, tracker="kernel", lr=3e-3, batch_size=8, independent_clips=True),
    description="PanopticFCN (Li et al., CVPR 2021), frame by frame; `kernel` links its "
                "instances across frames (VIPSeg's +Track)")
CLIP_PANOFCN = ModelFamily(
    name="clip-panofcn", configs={"clip-" + k.replace("panopticfcn", "panofcn"): v
                                  for k, v in CONFIGS.items()}, **_COMMON,
    recipe=Recipe(clip=4, train_clip=1, tracker="kernel", lr=3e-3, batch_size=8,
                  independent_clips=True),
    description="Clip-PanoFCN (VIPSeg, Miao et al., CVPR 2022): clip-fused kernels within "
                "clips of --clip frames, kernel tracking between clips")
FAMILIES = (PANOPTIC_FCN, CLIP_PANOFCN)
