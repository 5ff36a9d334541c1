"""VPSNet (``vpseg.models.vpsnet``) in the model registry, with its association.

A training sample is a pair of consecutive frames; either may be the target and the other its
reference (the official training takes the past or the future neighbour). Fuse needs the optical
flow from the target to the reference: DIS on the RGB frames (``vpseg.flow``; the official code
used a frozen FlowNet2), at stride 4. At inference every frame is segmented online with the
previous frame as its reference (the first frame: itself), keeping the previous frame's FPN
features so each frame costs one backbone pass.

Switches: ``vpsnet-tiny`` is FuseTrack; ``-base`` (neither), ``-fuse``, ``-track`` and
``-disjoined`` (Fuse for every head but the track head) are the paper's ablation variants.

Associations (``--tracker``):

* ``vpsnet`` (default; the model's own, as MaskTrack R-CNN with VPSNet's extra cue): detection i
  and remembered object j score ``log softmax_j([0, e_i·m_1, e_i·m_2, …]) + log s_i + 2·IoU(box) +
  10·[same class] + 2·IoU(mask)`` (the "new object" column: log softmax_0 + log s_i + 10); each
  detection takes its best, a remembered object claimed twice goes to the higher score and the
  other detection becomes new. Every object seen since the video's start is remembered; a match
  refreshes its embedding, box and mask. The box / class / affinity terms and their weights are
  the official code's; the mask IoU ("IoU of things logits", Sec. 5.1) is the paper's and not in
  the official code, its weight here is the box IoU's.
* ``cls-sort``: no association: in every frame the instances of a class are numbered by score
  (Table 4's Cls-Sort: ids by class and order).
* any ``vpseg.tracking`` tracker (``flow``, masks warped by optical flow and matched by IoU, is
  Table 4's IoU-Match); the track head's embeddings, normalised, are the segments' appearance.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from vpseg.core.labels import LabelSpace
from vpseg.flow import optical_flow
from vpseg.models.registry import (
    Criterion,
    InferenceOptions,
    ModelFamily,
    Recipe,
    Segmenter,
    total_and_parts,
    unwrap,
)
from vpseg.models.video_output import (
    TrackedVideo,
    as_tracker,
    resize_instances,
    resize_labels,
    to_network,
)
from vpseg.models.vpsnet import CONFIGS, Detections, FrameTargets, VPSNet, VPSNetConfig
from vpseg.tracking import FrameSegments
from vpseg.tracking.base import IdPool

__all__ = ["FAMILIES", "VPSNET", "frame_targets", "stride4_flow", "VPSNetTracker", "ClassSortTracker"]

OWN_TRACKER = "vpsnet"
CLS_SORT = "cls-sort"


@dataclass(frozen=True)
class VPSNetLossOptions:
    """No options yet: the loss weights are the official ones (all 1, panoptic and track 0.5)."""


def _config(model: nn.Module) -> VPSNetConfig:
    return unwrap(model).config  # type: ignore[return-value]


def frame_targets(panoptic: torch.Tensor, labels: LabelSpace) -> FrameTargets:
    """The detector's, semantic and panoptic targets of one ``H×W`` panoptic frame."""
    div = labels.label_divisor
    pan = panoptic.long()
    cls, inst = pan // div, pan % div
    size = int(max(int(cls.max()) + 1, labels.max_id + 1, labels.ignore_label + 1))
    known = torch.zeros(size, dtype=torch.bool, device=pan.device)
    known[list(labels.ids)] = True
    thing = torch.zeros(size, dtype=torch.bool, device=pan.device)
    thing[list(labels.thing_ids)] = True
    valid = known[cls]
    semantic = torch.where(valid, cls, torch.full_like(cls, -100))
    is_inst = valid & thing[cls] & (inst > 0)
    ids = torch.unique(pan[is_inst])
    h, w = pan.shape
    masks = (pan[None] == ids[:, None, None]) if len(ids) else torch.zeros(0, h, w, dtype=torch.bool)
    boxes = torch.zeros(len(ids), 4)
    for k in range(len(ids)):
        ys, xs = torch.nonzero(masks[k], as_tuple=True)
        boxes[k] = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
    stuff = torch.full((size,), -100, dtype=torch.long, device=pan.device)
    stuff[list(labels.stuff_ids)] = torch.arange(len(labels.stuff_ids), device=pan.device)
    small = pan[::4, ::4]
    small_cls = small // div
    target = torch.where(known[small_cls], stuff[small_cls], torch.full_like(small_cls, -100))
    for k, i in enumerate(ids.tolist()):
        target[small == i] = len(labels.stuff_ids) + k
    return FrameTargets(boxes=boxes.to(pan.device), labels=(ids // div) + 1, masks=masks.to(torch.uint8),
                        ids=ids, semantic=semantic, panoptic=target)


def stride4_flow(target: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """DIS flow ``2×H/4×W/4`` (pixels of the stride-4 map) from ``target`` to ``reference``,
    both ``3×H×W`` RGB in [0, 1]."""
    a = (target.detach().float().clamp(0, 1) * 255).byte().permute(1, 2, 0).cpu().numpy()
    b = (reference.detach().float().clamp(0, 1) * 255).byte().permute(1, 2, 0).cpu().numpy()
    flow = optical_flow(a, b, backend="dis", max_side=None)
    h, w = a.shape[:2]
    small = cv2.resize(flow, (w // 4, h // 4), interpolation=cv2.INTER_AREA) / 4.0
    return torch.from_numpy(small).permute(2, 0, 1).to(target.device)


def _criterion(labels: LabelSpace, options: VPSNetLossOptions) -> Criterion:
    stuff, things = list(labels.stuff_ids), list(labels.thing_ids)

    def loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = _config(model)
        device = next(model.parameters()).device
        images, panoptic = batch["images"], batch["panoptic"]
        if images.shape[1] < 2:
            raise ValueError("VPSNet trains on pairs of frames (a target and its reference)")
        swap = torch.rand(len(images)) < 0.5  # the reference is the past or the future neighbour
        t_idx = torch.where(swap, 0, 1)
        r_idx = 1 - t_idx
        rows = torch.arange(len(images))
        target, reference = images[rows, t_idx], images[rows, r_idx]
        flow = (torch.stack([stride4_flow(a, b) for a, b in zip(target, reference, strict=True)])
                if cfg.fuse else None)
        t_pan, r_pan = panoptic[rows, t_idx], panoptic[rows, r_idx]
        targets = [frame_targets(p.to(device), labels) for p in t_pan]
        refs = [frame_targets(p.to(device), labels) for p in r_pan] if cfg.track else None
        losses = model(target.to(device), reference.to(device),
                       None if flow is None else flow.to(device), targets, refs,
                       stuff=stuff, things=things)
        return total_and_parts(losses)

    return loss


# ---------------------------------------------------------------------------------------------
# associations


class VPSNetTracker:
    """VPSNet's / MaskTrack R-CNN's association (module docstring). Frame by frame."""

    accepts_overlap = False

    def __init__(self, box_weight: float = 2.0, class_weight: float = 10.0,
                 score_weight: float = 1.0, mask_weight: float = 2.0) -> None:
        self.box_weight, self.class_weight = box_weight, class_weight
        self.score_weight, self.mask_weight = score_weight, mask_weight
        self.reset()

    def reset(self) -> None:
        self.ids = IdPool()
        self.notes: list[str] = []
        self.memory: list[dict[str, Any]] = []

    def update(self, clip: Sequence[FrameSegments], *, rgb: Sequence[np.ndarray] | None = None,
               overlap: int = 0) -> list[np.ndarray]:
        if overlap:
            raise ValueError("this tracker takes clips without overlap")
        return [self._frame(f) for f in clip]

    def _frame(self, frame: FrameSegments) -> np.ndarray:
        n, m = len(frame), len(self.memory)
        ids = np.zeros(n, dtype=np.int64)
        if n == 0:
            return ids
        if frame.embedding is None:
            raise ValueError("the vpsnet association needs the track head's embeddings")
        masks = [frame.index == k + 1 for k in range(n)]
        best = np.zeros(n, dtype=np.int64)  # 0 = new, j + 1 = memory object j
        best_score = np.zeros(n)
        base = self.score_weight * np.log(np.maximum(frame.score, 1e-12))
        if m:
            mem_emb = np.stack([o["embedding"] for o in self.memory])
            dots = frame.embedding.astype(np.float64) @ mem_emb.T.astype(np.float64)
            logits = np.concatenate([np.zeros((n, 1)), dots], 1)
            logp = logits - logits.max(1, keepdims=True)
            logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
            box_iou = _box_iou(frame.box, np.stack([o["box"] for o in self.memory]))
            same = frame.category[:, None] == np.array([o["category"] for o in self.memory])[None]
            mask_iou = np.array([[_mask_iou(a, o["mask"]) for o in self.memory] for a in masks])
            comp = (logp[:, 1:] + base[:, None] + self.box_weight * box_iou
                    + self.class_weight * same + self.mask_weight * mask_iou)
            new = logp[:, 0] + base + self.class_weight
            full = np.concatenate([new[:, None], comp], 1)
            best = full.argmax(1)
            best_score = full.max(1)
        claimed: dict[int, int] = {}
        for i in np.argsort(-best_score, kind="stable"):  # a claimed object goes to the best score
            j = int(best[i]) - 1
            if j >= 0 and j not in claimed:
                claimed[j] = int(i)
        for i in range(n):
            j = int(best[i]) - 1
            record = {"embedding": frame.embedding[i], "box": frame.box[i], "mask": masks[i]}
            if j >= 0 and claimed.get(j) == i:
                ids[i] = self.memory[j]["id"]
                self.memory[j].update(record)
            else:
                ids[i] = self.ids.new()
                self.memory.append({"id": ids[i], "category": int(frame.category[i]), **record})
        return ids


class ClassSortTracker:
    """No association: in every frame a class's instances are numbered 1, 2, … by score."""

    accepts_overlap = False

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.notes: list[str] = []
        self.of: dict[tuple[int, int], int] = {}
        self.pool = IdPool()

    def update(self, clip: Sequence[FrameSegments], *, rgb: Sequence[np.ndarray] | None = None,
               overlap: int = 0) -> list[np.ndarray]:
        out = []
        for frame in clip:
            ids = np.zeros(len(frame), dtype=np.int64)
            rank: dict[int, int] = {}
            for i in np.argsort(-frame.score, kind="stable"):
                c = int(frame.category[i])
                rank[c] = rank.get(c, 0) + 1
                key = (c, rank[c])  # the same (class, rank) is the same id in every frame
                if key not in self.of:
                    self.of[key] = self.pool.new()
                ids[i] = self.of[key]
            out.append(ids)
        return out


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: np.clip(x[:, 2:] - x[:, :2], 0, None).prod(-1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return 0.0
    union = int((a | b).sum())
    return int((a & b).sum()) / union if union else 0.0


def _own_tracker(name: str) -> Any:
    return {OWN_TRACKER: VPSNetTracker, CLS_SORT: ClassSortTracker}[name]()


# ---------------------------------------------------------------------------------------------
# inference


def _segmenter(model: nn.Module, labels: LabelSpace, options: InferenceOptions) -> Segmenter:
    stuff, things = list(labels.stuff_ids), list(labels.thing_ids)

    def run(frames: Iterable[np.ndarray], tracker: Any) -> Iterator[np.ndarray]:
        model.eval()
        net: VPSNet = model  # type: ignore[assignment]
        cfg = net.config
        if isinstance(tracker, str) and (why := _tracker_error(cfg, tracker)):
            raise ValueError(f"this VPSNet {why}")
        chosen = _own_tracker(tracker) if tracker in (OWN_TRACKER, CLS_SORT) else as_tracker(tracker)
        out = TrackedVideo(chosen, labels)
        device = next(net.parameters()).device
        previous: tuple[Any, torch.Tensor] | None = None  # the last frame's FPN features, image
        for frame in frames:
            rgb = np.asarray(frame)
            h, w = rgb.shape[:2]
            image = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float().div_(255.0).to(device)
            x, (sh, sw) = to_network(image, options.scale(h, w))
            with torch.no_grad():
                raw = net.features(x)
                ref, flow = None, None
                if cfg.fuse:
                    ref_raw, ref_x = previous if previous is not None else (raw, x)
                    ref, flow = ref_raw, stride4_flow(x[0], ref_x[0])[None]
                det = net.detect(x, raw, ref, flow)
            previous = (raw, x)
            area = max(1, round(cfg.stuff_area * sh * sw / (1024 * 2048)))
            sem, inst, kept = net.panoptic(det, stuff, things, area)
            sem, inst = sem[:sh, :sw], inst[:sh, :sw]
            index, present = resize_instances(inst.astype(np.int32), len(kept), (h, w))
            sem = resize_labels(sem.astype(np.int32), (h, w))
            segments = _segments(det, kept, present, index, (sh, sw))
            semantic = np.where(sem < 0, labels.ignore_label, sem)
            yield from out.update([segments], [semantic], [rgb])

    return run


def _segments(det: Detections, kept: list[int], present: np.ndarray, index: np.ndarray,
              size: tuple[int, int]) -> FrameSegments:
    rows = [kept[int(k)] for k in present]
    category = (det.labels[rows] - 1).cpu().numpy().astype(np.int64) if rows else np.zeros(0, np.int64)
    score = det.scores[rows].cpu().numpy().astype(np.float64) if rows else np.zeros(0)
    embedding = None
    if det.embeddings is not None:
        embedding = det.embeddings[rows].float().cpu().numpy() if rows else np.zeros((0, det.embeddings.shape[1]), np.float32)
    return FrameSegments(index=index.astype(np.int32), category=category, score=score, embedding=embedding)


def _tracker_error(config: VPSNetConfig, tracker: str) -> str | None:
    if tracker == OWN_TRACKER and not config.track:
        return ("has no track head (Track off), so no vpsnet association: use --tracker "
                "cls-sort (the paper's Base and Fuse rows) or a vpseg tracker such as iou")
    return None


def _build(config: Any, num_classes: int) -> nn.Module:
    return VPSNet(config, num_classes)


def _example(config: Any, clip: int, height: int, width: int) -> torch.Tensor:
    return torch.rand(clip, 3, height, width)


def _variants(base: str, config: VPSNetConfig) -> dict[str, VPSNetConfig]:
    from dataclasses import replace

    return {base: config,
            f"{base}-base": replace(config, fuse=False, track=False),
            f"{base}-fuse": replace(config, track=False),
            f"{base}-track": replace(config, fuse=False),
            f"{base}-disjoined": replace(config, disjoined=True)}


VPSNET = ModelFamily(
    name="vpsnet",
    configs={**_variants("vpsnet-r50", CONFIGS["vpsnet-r50"]), **_variants("vpsnet-tiny", CONFIGS["vpsnet-tiny"])},
    config_type=VPSNetConfig, build=_build, criterion=_criterion, loss_options=VPSNetLossOptions,
    segmenter=_segmenter, example_input=_example, tracker_error=_tracker_error,
    recipe=Recipe(clip=2, min_clip=2, tracker=OWN_TRACKER, trackers=(OWN_TRACKER, CLS_SORT),
                  lr=1e-3, batch_size=4, demo_format="cityscapes-vps"),
    description="VPSNet (Kim et al., CVPR 2020): UPSNet on torchvision's Mask R-CNN with Fuse "
                "(flow-aligned, attended features of the previous frame) and Track (MaskTrack's "
                "head); -base/-fuse/-track/-disjoined are its ablation variants")
FAMILIES = [VPSNET]
