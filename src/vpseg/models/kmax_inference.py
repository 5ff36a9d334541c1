"""Video-kMaX inference: online (clips of one frame) or near-online (clips of T
frames overlapping by one), each clip's segments handed to a ``vpseg.tracking`` tracker, panoptic
frames with video-consistent track ids out.

Post-processing of one clip is kMaX-DeepLab's mask-wise merge: the mask logits of the N queries
are upsampled to the input size and turned into probabilities by a softmax over the queries; a
query's mask is where its probability exceeds ``pixel_threshold``; a query is kept when its class
confidence (no-object excluded) exceeds ``thing_threshold`` / ``stuff_threshold``; kept queries
are pasted by ``score = class confidence × mean mask probability`` and dropped when better ones
took more than ``1 − overlap`` of their mask; stuff queries of one class merge. A query is one
*tube* over the clip: the same clip id in every frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vpseg.core.labels import LabelSpace
from vpseg.models.video_output import TrackedVideo, to_network
from vpseg.tracking import FrameSegments, Segment, Tracker, paste

__all__ = ["PostProcess", "ClipPrediction", "predict_clip", "segment_frames"]


@dataclass(frozen=True)
class PostProcess:
    thing_threshold: float = 0.7
    stuff_threshold: float = 0.5
    pixel_threshold: float = 0.4
    overlap: float = 0.8
    min_area: int = 0
    # frames are resized by this factor before the network; masks come back at the input size
    # (a model trained on scale jitter segments small objects better a little enlarged)
    input_scale: float = 1.0


@dataclass
class ClipPrediction:
    """One clip after post-processing: per frame, the thing segments (for the tracker) and the
    semantic map (stuff and things; ``ignore_label`` where no query was kept)."""

    things: list[FrameSegments]
    semantic: list[np.ndarray]


@torch.no_grad()
def predict_clip(model: torch.nn.Module, images: torch.Tensor, labels: LabelSpace,
                 post: PostProcess | None = None) -> ClipPrediction:
    """``images`` ``T×3×H×W`` in [0, 1] -> the clip's segments (one batch element)."""
    post = post or PostProcess()
    model.eval()
    t, _, h, w = images.shape
    device = next(model.parameters()).device
    images = images.to(device)
    padded, (sh, sw) = to_network(images, post.input_scale)
    ph, pw = padded.shape[-2:]
    out = model(padded[None])
    n_cls = out["class_logits"].shape[-1] - 1
    probs = out["class_logits"][0].float().softmax(-1)[:, :n_cls]
    score, category = probs.max(-1)
    # mask logits B×N×(T·h4)×w4 -> per frame at the padded size, cropped back
    logits = out["mask_logits"][0].float()
    n = logits.shape[0]
    frames = logits.reshape(n, t, logits.shape[1] // t, logits.shape[2]).permute(1, 0, 2, 3)
    frames = F.interpolate(frames, size=(ph, pw), mode="bilinear", align_corners=False)[:, :, :sh, :sw]
    if (sh, sw) != (h, w):
        frames = F.interpolate(frames, size=(h, w), mode="bilinear", align_corners=False)
    mask_probs = frames.softmax(1).permute(1, 0, 2, 3).reshape(n, t * h, w)  # N × T·h × w
    thing = torch.tensor([int(c) in labels and labels.is_thing(int(c)) for c in category.tolist()],
                         dtype=torch.bool)
    keep = score > torch.where(thing, post.thing_threshold, post.stuff_threshold)
    embeddings = F.normalize(out["query_embedding"][0].float(), dim=-1).cpu().numpy()
    segments: list[Segment] = []
    for q in torch.nonzero(keep).squeeze(1).tolist():
        prob = mask_probs[q]
        mask = prob > post.pixel_threshold  # a tube over the T stacked frames
        if not bool(mask.any()):
            continue
        segments.append(Segment(mask=mask.cpu().numpy(), category=int(category[q]),
                                score=float(score[q]) * float(prob[mask].mean()),
                                embedding=embeddings[q], clip_id=q))
    pasted, _ = paste(segments, (t * h, w), min_area=post.min_area, overlap=post.overlap)
    index = pasted.index.reshape(t, h, w)
    cats = pasted.category
    is_thing = np.array([labels.is_thing(int(c)) for c in cats], dtype=bool)
    sem_lut = np.concatenate([[labels.ignore_label], cats]).astype(np.int64)
    # thing segments renumbered per frame: k-th thing segment of the clip -> per-frame index
    thing_pos = np.flatnonzero(is_thing)
    lut = np.zeros(len(cats) + 1, dtype=np.int32)
    lut[thing_pos + 1] = np.arange(1, len(thing_pos) + 1)
    things, semantic = [], []
    emb = pasted.embedding
    for f in range(t):
        semantic.append(sem_lut[index[f]])
        local = lut[index[f]]
        present = np.unique(local[local > 0]) - 1  # positions in thing_pos
        remap = np.zeros(len(thing_pos) + 1, dtype=np.int32)
        remap[present + 1] = np.arange(1, len(present) + 1)
        sel = thing_pos[present]
        things.append(FrameSegments(
            index=remap[local], category=cats[sel], score=pasted.score[sel],
            embedding=None if emb is None else emb[sel],
            clip_id=None if pasted.clip_id is None else pasted.clip_id[sel]))
    return ClipPrediction(things=things, semantic=semantic)


def segment_frames(
    model: torch.nn.Module, frames: Iterable[np.ndarray], labels: LabelSpace, tracker: Tracker,
    *, clip: int = 2, post: PostProcess | None = None,
) -> Iterator[np.ndarray]:
    """Panoptic frames (``int32``, track ids as instances) for RGB frames ``(H, W, 3)`` uint8, read
    and produced in order. ``clip`` 1: online; ``clip`` T > 1: near-online, clips of T frames
    overlapping by one (a frame's output comes from the first clip it is segmented in; the
    overlapping frame only carries identities across, for trackers that take overlapping clips;
    frame-by-frame trackers get each clip's new frames)."""
    if clip < 1:
        raise ValueError("clip length must be >= 1")
    out = TrackedVideo(tracker, labels)

    def run(batch: Sequence[np.ndarray], overlap: int) -> list[np.ndarray]:
        images = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float() / 255.0
        pred = predict_clip(model, images, labels, post)
        return out.update(pred.things, pred.semantic, batch, overlap)

    window: list[np.ndarray] = []
    first = True
    for frame in frames:
        window.append(np.asarray(frame))
        if len(window) == clip:
            yield from run(window, 0 if first or clip == 1 else 1)
            first = False
            window = window[-1:] if clip > 1 else []
    if window and (first or len(window) > 1):  # the tail shorter than a clip
        yield from run(window, 0 if first else 1)
