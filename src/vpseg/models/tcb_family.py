"""PSPNet, OCRNet and VSPW's TCB (``vpseg.models.tcb``) in the model registry: video semantic
segmentation, one class per pixel and no instances.

A training sample is a clip of max(d) + 1 consecutive frames (10 for the paper's 3, 6, 9): the
last is the target, the frames d before it its support frames (the image models take the last
frame alone). The loss is cross-entropy on the target's classes plus 0.4 × cross-entropy of the
auxiliary head on every frame of the sample, as the official code trains it (void ignored,
logits upsampled to the frame). At inference the frames are segmented one by one, each costing
one backbone pass (``TCBStream``); the output is the class map as panoptic ids (class × label
divisor), which any format writes and ``vpseg eval --metrics semantic,vc,tc`` scores.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vpseg.core.labels import LabelSpace
from vpseg.models.registry import (
    Criterion,
    InferenceOptions,
    ModelFamily,
    Recipe,
    Segmenter,
    total_and_parts,
    unwrap,
)
from vpseg.models.tcb import CONFIGS, TCBConfig, TCBNet, TCBStream
from vpseg.models.video_output import to_network

__all__ = ["FAMILIES", "TCBLossWeights", "semantic_targets", "PAPER_SPAN"]

PAPER_SPAN = CONFIGS["tcb-ocr-r50"].span  # frames per TCB training sample (10)


@dataclass(frozen=True)
class TCBLossWeights:
    aux: float = 0.4  # the auxiliary head's cross-entropy (the paper's and PSPNet's / OCRNet's)


def _config(model: nn.Module) -> TCBConfig:
    return unwrap(model).config  # type: ignore[return-value]


def semantic_targets(panoptic: torch.Tensor, labels: LabelSpace) -> torch.Tensor:
    """Class per pixel (int64), void and unknown ids as -100 (ignored by cross-entropy)."""
    classes = panoptic // labels.label_divisor
    known = torch.zeros(max(labels.max_id, labels.ignore_label, int(classes.max())) + 1, dtype=torch.bool)
    known[list(labels.ids)] = True
    return torch.where(known.to(classes.device)[classes], classes, torch.full_like(classes, -100))


def _ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    up = F.interpolate(logits.float(), size=target.shape[-2:], mode="bilinear", align_corners=False)
    if not (target >= 0).any():
        return up.sum() * 0.0  # nothing labelled: no gradient, not NaN
    return F.cross_entropy(up, target, ignore_index=-100)


def _criterion(labels: LabelSpace, weights: TCBLossWeights) -> Criterion:
    def loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        config = _config(model)
        device = next(model.parameters()).device
        images, panoptic = batch["images"], batch["panoptic"]
        span = images.shape[1]
        if span < config.span:
            raise ValueError(f"{config.context} with support frames at t - {config.dilations} "
                             f"needs samples of {config.span} frames, got {span}")
        pick = [span - 1 - d for d in config.dilations] + [span - 1]  # support frames, target
        images = images[:, pick].to(device, non_blocking=True)
        target = semantic_targets(panoptic[:, pick].to(device, non_blocking=True), labels)
        out = model(images)
        parts = {"ce": _ce(out["logits"], target[:, -1]),
                 "aux": weights.aux * _ce(out["aux"].flatten(0, 1), target.flatten(0, 1))}
        return total_and_parts(parts)

    return loss


def _segmenter(model: nn.Module, labels: LabelSpace, options: InferenceOptions) -> Segmenter:
    def run(frames: Iterable[np.ndarray], tracker: Any) -> Iterator[np.ndarray]:
        model.eval()
        stream = TCBStream(model)  # type: ignore[arg-type]
        device = next(model.parameters()).device
        for frame in frames:
            rgb = np.asarray(frame)
            h, w = rgb.shape[:2]
            image = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float().div_(255.0).to(device)
            x, (sh, sw) = to_network(image, options.scale(h, w), multiple=8)
            with torch.no_grad():
                logits = stream(x)
                logits = F.interpolate(logits.float(), size=x.shape[-2:], mode="bilinear",
                                       align_corners=False)[..., :sh, :sw]
                if (sh, sw) != (h, w):
                    logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
            classes = logits[0].argmax(0).cpu().numpy().astype(np.int32)
            yield classes * np.int32(labels.label_divisor)

    return run


def _build(config: Any, num_classes: int) -> nn.Module:
    return TCBNet(config, num_classes)


def _example(config: Any, clip: int, height: int, width: int) -> torch.Tensor:
    """One training sample: the target and its support frames."""
    return torch.rand(1, 1 + len(config.dilations), 3, height, width)


_COMMON: dict[str, Any] = dict(config_type=TCBConfig, build=_build, criterion=_criterion,
                               loss_options=TCBLossWeights, segmenter=_segmenter,
                               example_input=_example)
_IMAGE = Recipe(clip=1, tracker="none", lr=1e-3, batch_size=8, semantic=True)
PSP = ModelFamily(
    name="psp", configs={k: v for k, v in CONFIGS.items() if k.startswith("psp-")}, **_COMMON,
    recipe=_IMAGE, description="PSPNet (Zhao et al., CVPR 2017): pyramid pooling, frame by frame "
    "(video semantic segmentation, classes only)")
OCR = ModelFamily(
    name="ocr", configs={k: v for k, v in CONFIGS.items() if k.startswith("ocr-")}, **_COMMON,
    recipe=_IMAGE, description="OCRNet (Yuan et al., ECCV 2020): object-contextual "
    "representations, frame by frame (classes only)")
_TCB = Recipe(clip=1, train_clip=PAPER_SPAN, tracker="none", lr=1e-3, batch_size=8, semantic=True)
TCB_PSP = ModelFamily(
    name="tcb-psp", configs={k: v for k, v in CONFIGS.items() if k.startswith("tcb-psp-")},
    **_COMMON, recipe=_TCB, description="VSPW's TCB with ST-PPM (Miao et al., CVPR 2021): "
    "pyramid pooling over the frame and its support frames t-3, t-6, t-9 (classes only)")
TCB_OCR = ModelFamily(
    name="tcb-ocr", configs={k: v for k, v in CONFIGS.items() if k.startswith("tcb-ocr-")},
    **_COMMON, recipe=_TCB, description="VSPW's TCB with ST-OCR: object representations over "
    "the frame and its support frames t-3, t-6, t-9 (classes only)")
FAMILIES = [PSP, OCR, TCB_PSP, TCB_OCR]
