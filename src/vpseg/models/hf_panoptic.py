"""Hugging Face transformers image panoptic models as vpseg segmenters.

``load_hf_model(PATH_OR_ID)`` loads a Mask2Former, OneFormer or DETR panoptic model and its
processor the way a user of transformers does (``from_pretrained``); ``segment`` runs it on a
video frame by frame, ``batch_size`` frames per forward pass, and a ``vpseg.tracking`` tracker
links the thing segments into tracks. Each segment carries the decoder feature of the query that
produced it, so the appearance trackers (``memory``, ``hila``) work with these models too.

The panoptic post-processing is the processors' own algorithm (``post_process_panoptic_segmentation``
of transformers' Mask2Former, OneFormer and DETR image processors), written out here because theirs
returns segments without the query each came from; the tests check both give the same segments.
transformers is imported only when a model is loaded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vpseg.core.labels import Category, LabelSpace, distinct_color, get_label_space
from vpseg.errors import InputError
from vpseg.models.video_output import TrackedVideo, as_tracker
from vpseg.tracking import FrameSegments, Tracker

__all__ = ["ARCHITECTURES", "HFPanopticModel", "Architecture", "PanopticResult", "load_hf_model",
           "panoptic_segments", "hf_label_space", "class_mapping"]


@dataclass(frozen=True)
class Architecture:
    """Where one architecture keeps what vpseg needs in its outputs: class logits
    ``(B, Q, C + 1)`` (the last class is "no object"), mask logits ``(B, Q, h, w)`` and the
    decoder's per-query features ``(B, Q, D)``. ``mask_size``: the size the processor's
    post-processing first resizes the mask logits to (Mask2Former: 384×384), None: none.
    ``task``: the model takes OneFormer's task tokens."""

    logits: str
    masks: str
    queries: str
    mask_size: tuple[int, int] | None = None
    task: bool = False


#: class name in transformers -> where its outputs are
ARCHITECTURES: dict[str, Architecture] = {
    "Mask2FormerForUniversalSegmentation": Architecture(
        "class_queries_logits", "masks_queries_logits", "transformer_decoder_last_hidden_state",
        mask_size=(384, 384)),
    "OneFormerForUniversalSegmentation": Architecture(
        "class_queries_logits", "masks_queries_logits", "transformer_decoder_object_queries",
        task=True),
    "DetrForSegmentation": Architecture("logits", "pred_masks", "last_hidden_state"),
}
_BY_MODEL_TYPE = {"mask2former": "Mask2FormerForUniversalSegmentation",
                  "oneformer": "OneFormerForUniversalSegmentation"}
_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")


# ---------------------------------------------------------------------------------------------
# the panoptic post-processing, with the query of every segment


@dataclass
class PanopticResult:
    """One frame's panoptic segments: ``segmentation`` ``(H, W)`` int32 (0: no segment, k:
    segment k - 1) and per segment its class ``label``, ``score`` and the ``query`` that produced
    it (the first one for stuff fused from several queries), all ``(N,)`` int64 / float64."""

    segmentation: np.ndarray
    label: np.ndarray
    score: np.ndarray
    query: np.ndarray


def panoptic_segments(class_logits: torch.Tensor, mask_logits: torch.Tensor,
                      target_size: tuple[int, int], fuse: set[int], *,
                      mask_size: tuple[int, int] | None = None, threshold: float = 0.5,
                      mask_threshold: float = 0.5, overlap: float = 0.8) -> PanopticResult:
    """transformers' ``post_process_panoptic_segmentation`` for one image (``class_logits``
    ``(Q, C + 1)``, ``mask_logits`` ``(Q, h, w)``), step for step, keeping the query index of
    each segment: queries whose best class is not "no object" and scores above ``threshold``,
    masks to ``target_size`` (H, W), each pixel to the kept query of highest score × mask
    probability; a query keeps its pixels if they are over ``overlap`` of its own mask (≥
    ``mask_threshold``); queries of a class in ``fuse`` (stuff) merge into one segment."""
    if mask_size is not None:
        mask_logits = F.interpolate(mask_logits[None], size=mask_size, mode="bilinear",
                                    align_corners=False)[0]
    probs = mask_logits.sigmoid()
    scores, labels = F.softmax(class_logits, dim=-1).max(-1)
    keep = labels.ne(class_logits.shape[-1] - 1) & (scores > threshold)
    queries = torch.nonzero(keep).flatten()
    h, w = target_size
    segmentation = np.zeros((h, w), dtype=np.int32)
    if len(queries) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return PanopticResult(segmentation, empty, np.zeros(0), empty)
    probs, scores, labels = probs[keep], scores[keep], labels[keep]
    probs = F.interpolate(probs[None], size=target_size, mode="bilinear", align_corners=False)[0]
    probs = probs * scores.view(-1, 1, 1)
    winner = probs.argmax(0)  # (H, W) index into the kept queries
    area = torch.bincount(winner.flatten(), minlength=len(queries))
    own = (probs >= mask_threshold).flatten(1).sum(1)
    # transformers divides the two int64 tensors (float32 result): the same here, same ties
    valid = (area > 0) & (own > 0) & (area / own.clamp(min=1) > overlap)
    segment_of = np.zeros(len(queries), dtype=np.int32)  # kept query -> segment id (0: none)
    out_label: list[int] = []
    out_score: list[float] = []
    out_query: list[int] = []
    fused: dict[int, int] = {}
    for k in np.flatnonzero(valid.cpu().numpy()):
        cls = int(labels[k])
        if cls in fused:
            segment_of[k] = fused[cls]
            continue
        out_label.append(cls)
        out_score.append(float(scores[k]))
        out_query.append(int(queries[k]))
        segment_of[k] = len(out_label)
        if cls in fuse:
            fused[cls] = len(out_label)
    segmentation[...] = segment_of[winner.cpu().numpy()]
    return PanopticResult(segmentation, np.array(out_label, dtype=np.int64),
                          np.array(out_score, dtype=np.float64),
                          np.array(out_query, dtype=np.int64))


# ---------------------------------------------------------------------------------------------
# label spaces


def _key(name: str) -> str:
    """A class name compared across spellings: lower case, runs of spaces/dashes/underscores as
    one dash ("traffic light" = "traffic-light")."""
    return re.sub(r"[\s_\-]+", "-", name.strip().lower())


def _stem(key: str) -> str:
    """A name without COCO's suffixes ("sky-other-merged" -> "sky", "door-stuff" -> "door")."""
    return re.sub(r"(-(merged|other|stuff))+$", "", key)


def _placeholder(name: str) -> bool:
    """transformers' names for classes a checkpoint does not use ("N/A", "LABEL_7")."""
    return name.strip().upper() in ("N/A", "NA", "") or re.fullmatch(r"LABEL_\d+", name.strip()) is not None


def _lookup(space: LabelSpace) -> dict[str, Category]:
    """Name key -> category, full names first, then the suffix-free stems that are unambiguous."""
    full = {_key(c.name): c for c in space.categories}
    stems: dict[str, list[Category]] = {}
    for c in space.categories:
        stems.setdefault(_stem(_key(c.name)), []).append(c)
    out = {s: cs[0] for s, cs in stems.items() if len({c.isthing for c in cs}) == 1}
    out.update(full)
    return out


def _find(name: str, table: dict[str, Category]) -> Category | None:
    key = _key(name)
    return table.get(key) or table.get(_stem(key))


def hf_label_space(id2label: dict[int, str], num_queries: int, *,
                   given: LabelSpace | None = None, source: str = "model") -> LabelSpace:
    """The vpseg label space of a model: its contiguous class ids 0..N-1 and ``id2label``
    names; things and colours from ``given`` (a user's label space, matched by name) or else
    from the built-in COCO-panoptic one. Classes named like transformers' placeholders ("N/A")
    are stuff; any other class not found is an ``InputError`` asking for ``--label-space``.
    Ignore label 255 (N when N > 255); label divisor 1000, or the next power of ten above the
    number of queries."""
    n = len(id2label)
    if sorted(id2label) != list(range(n)):
        raise InputError(f"config.json id2label must have the ids 0..{n - 1} (the model's class "
                         "indices)", path=source)
    table = _lookup(given if given is not None else get_label_space("coco-panoptic"))
    cats: list[Category] = []
    missing: list[str] = []
    for cid in range(n):
        name = str(id2label[cid])
        found = _find(name, table)
        if found is None and not _placeholder(name):
            missing.append(name)
        isthing = found is not None and found.isthing
        color = found.color if found is not None else distinct_color(cid)
        cats.append(Category(cid, name, isthing, color))
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
        if given is not None:
            raise InputError(f"--label-space {given.name!r} does not name {len(missing)} of the "
                             f"model's classes ({shown}); it must list every name of "
                             "config.json id2label", path=source)
        raise InputError(f"{len(missing)} classes of the model are not COCO-panoptic classes "
                         f"({shown}): give --label-space JSON saying which are things",
                         path=source)
    if not any(c.isthing for c in cats) and all(_placeholder(c.name) for c in cats):
        raise InputError("config.json id2label has no class names: give --label-space",
                         path=source)
    divisor = 1000
    while divisor <= num_queries:
        divisor *= 10
    ignore = 255 if n <= 255 else n
    if given is not None:
        divisor = max(divisor, given.label_divisor)
        if given.ignore_label >= n:
            ignore = given.ignore_label
    name = given.name if given is not None else f"hf-{n}"
    return LabelSpace(name=name, categories=tuple(cats), ignore_label=ignore,
                      label_divisor=divisor)


def class_mapping(model_labels: LabelSpace, target: LabelSpace,
                  overrides: Mapping[str, str | None] | None = None, *,
                  source: str = "--class-map") -> tuple[np.ndarray, list[str]]:
    """Map a model's classes onto a data set's label space ``target`` (to score the model on
    that data set): ``(lut, unmapped)``, ``lut[model id]`` the target id or the target's ignore
    label (void), ``unmapped`` the model's class names that became void. ``overrides`` (model
    class name -> target class name, or None for void) come first; the other classes are
    matched by name as in ``hf_label_space`` ("sky-other-merged" -> "sky")."""
    table = _lookup(target)
    own = {_key(c.name): c for c in model_labels.categories}
    chosen: dict[int, int] = {}
    for name, to in (overrides or {}).items():
        cat = own.get(_key(name))
        if cat is None:
            raise InputError(f"{name!r} is not a class of the model (config.json id2label)",
                             path=source)
        if to is None:
            chosen[cat.id] = target.ignore_label
            continue
        found = table.get(_key(to))
        if found is None:
            raise InputError(f"{to!r} (for {name!r}) is not a class of label space "
                             f"{target.name!r}", path=source)
        chosen[cat.id] = found.id
    lut = np.full(model_labels.max_id + 1, target.ignore_label, dtype=np.int64)
    unmapped = []
    for cat in model_labels.categories:
        if cat.id in chosen:
            lut[cat.id] = chosen[cat.id]
            continue
        found = _find(cat.name, table)
        if found is None:
            unmapped.append(cat.name)
        else:
            lut[cat.id] = found.id
    return lut, unmapped


# ---------------------------------------------------------------------------------------------
# the model


class HFPanopticModel:
    """A loaded transformers panoptic model, its processor and its vpseg label space.
    ``segment`` is stateless across calls (each call is one video)."""

    default_tracker = "hila"  # the queries' features give appearance; boxes give location

    def __init__(self, model: Any, processor: Any, architecture: str, labels: LabelSpace, *,
                 batch_size: int = 4, threshold: float = 0.5,
                 mapped: tuple[LabelSpace, np.ndarray] | None = None) -> None:
        """``labels``: the model's own classes; ``mapped``: a data set's label space and the
        ``class_mapping`` lut onto it, when the output is to be in that data set's classes."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model, self.processor, self.architecture = model, processor, architecture
        self.arch = ARCHITECTURES[architecture]
        self.model_labels, self.batch_size, self.threshold = labels, batch_size, threshold
        self.fuse = set(labels.stuff_ids)  # post-processing merges stuff by the model's class
        self.labels, self.lut = mapped or (labels, np.arange(labels.max_id + 1, dtype=np.int64))
        self.unmapped: list[str] = []  # the model's classes that map to none of ``labels``
        self.device = next(model.parameters()).device

    def predict(self, frames: Sequence[np.ndarray]) -> list[tuple[PanopticResult, np.ndarray]]:
        """Per frame (``(H, W, 3)`` uint8 RGB) its segments and the ``(Q, D)`` float32 features of
        every query, from one forward pass over the batch."""
        # frames read from files may be read-only views; torch wants to own writable memory
        images = [np.require(f, requirements=["W"]) for f in frames]
        kwargs: dict[str, Any] = {"images": images, "return_tensors": "pt"}
        if self.arch.task:
            kwargs["task_inputs"] = ["panoptic"] * len(frames)
        inputs = self.processor(**kwargs)
        inputs = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v
                  for k, v in inputs.items()}
        with torch.inference_mode():
            out = self.model(**inputs)
            logits, masks = getattr(out, self.arch.logits), getattr(out, self.arch.masks)
            feats = getattr(out, self.arch.queries)
            results = []
            for i, frame in enumerate(frames):
                seg = panoptic_segments(logits[i].float(), masks[i].float(),
                                        (int(frame.shape[0]), int(frame.shape[1])), self.fuse,
                                        mask_size=self.arch.mask_size, threshold=self.threshold)
                results.append((seg, feats[i].float().cpu().numpy()))
        return results

    def frame_segments(self, result: PanopticResult, queries: np.ndarray) -> tuple[FrameSegments, np.ndarray]:
        """Thing segments (with their queries' features as embeddings) and the ``(H, W)``
        semantic map, in ``self.labels``' classes: stuff and things by class, pixels of no
        segment (or of a class that maps to none) void."""
        ignore = self.labels.ignore_label
        category = self.lut[result.label]  # the output's class of each segment (or ignore)
        semantic = np.array([ignore, *category.tolist()], dtype=np.int64)[result.segmentation]
        thing = (category != ignore) & self.labels.thing_lut()[category]
        index_of = np.zeros(len(result.label) + 1, dtype=np.int32)
        index_of[1:][thing] = np.arange(1, int(thing.sum()) + 1)
        things = FrameSegments(index=index_of[result.segmentation], category=category[thing],
                               score=result.score[thing],
                               embedding=queries[result.query[thing]].astype(np.float32))
        return things, semantic

    def segment(self, frames: Iterable[np.ndarray], tracker: str | Tracker) -> Iterator[np.ndarray]:
        """``(H, W)`` int32 panoptic frames (class × label divisor + track id), one per RGB
        frame, in order; ``tracker``: a ``vpseg.tracking`` name or tracker."""
        video = TrackedVideo(as_tracker(tracker), self.labels)
        batch: list[np.ndarray] = []
        for frame in frames:
            batch.append(np.asarray(frame))
            if len(batch) == self.batch_size:
                yield from self._track(video, batch)
                batch = []
        if batch:
            yield from self._track(video, batch)

    def _track(self, video: TrackedVideo, batch: list[np.ndarray]) -> Iterator[np.ndarray]:
        for frame, (result, queries) in zip(batch, self.predict(batch), strict=True):
            things, semantic = self.frame_segments(result, queries)
            yield from video.update([things], [semantic], [frame])


# ---------------------------------------------------------------------------------------------
# loading


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise InputError("--hf-model needs Hugging Face transformers, which is not importable "
                         "here: pip install 'vpseg[hf]'") from None
    return transformers


def _local(path_or_id: str) -> Path | None:
    """The local folder meant by ``path_or_id``, None for a hub id ("org/name"). A path that
    cannot be a hub id and does not exist is an error."""
    p = Path(path_or_id).expanduser()
    if p.exists():
        if not p.is_dir():
            raise InputError("not a folder: --hf-model takes a model folder (save_pretrained) "
                             "or a hub id", path=path_or_id)
        return p
    hub_like = re.fullmatch(r"[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?", path_or_id)
    if hub_like is None or path_or_id.startswith((".", "~")):
        raise InputError("no such folder", path=path_or_id)
    return None


def _architecture(config: Any, source: str) -> str:
    names = list(getattr(config, "architectures", None) or [])
    for name in names:
        if name in ARCHITECTURES:
            return name
    if not names and getattr(config, "model_type", None) in _BY_MODEL_TYPE:
        return _BY_MODEL_TYPE[config.model_type]
    got = ", ".join(names) or f"model_type {getattr(config, 'model_type', '?')!r}"
    raise InputError(f"{got} is not a supported panoptic architecture; supported: "
                     f"{', '.join(ARCHITECTURES)}", path=source)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _class_info_here(folder: Path | None) -> bool:
    """Whether OneFormer's ``class_info_file`` lies in the model folder: then it is read from
    there instead of its ``repo_path`` on the hub (a saved model works offline)."""
    if folder is None:
        return False
    for name in _PROCESSOR_FILES:
        try:
            config = json.loads((folder / name).read_text())
        except (OSError, ValueError):
            continue
        config = config.get("image_processor", config) if isinstance(config, dict) else {}
        info = config.get("class_info_file") if isinstance(config, dict) else None
        if isinstance(info, str) and (folder / info).is_file():
            return True
    return False


def _processor(tf: Any, architecture: str, source: str, folder: Path | None) -> Any:
    """The image processor (OneFormer: the processor with its tokenizer for the task text)."""
    if folder is not None and not any((folder / f).is_file() for f in _PROCESSOR_FILES):
        raise InputError("no preprocessor_config.json: save the model's processor beside it "
                         "(processor.save_pretrained(PATH))", path=source)
    task = ARCHITECTURES[architecture].task
    local_info = _class_info_here(folder) if task else None
    try:
        if task:
            extra = {"repo_path": str(folder)} if local_info else {}
            processor = tf.AutoProcessor.from_pretrained(source, **extra)
        else:
            processor = tf.AutoImageProcessor.from_pretrained(source)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        hint = (" (OneFormer's processor reads its class_info_file from repo_path: put that "
                "file in the model folder)" if task and folder is not None else "")
        raise InputError(f"cannot load the processor{hint}: {_first_line(exc)}",
                         path=source) from None
    if task and getattr(processor, "tokenizer", None) is None:
        raise InputError("OneFormer needs its processor's tokenizer (for \"the task is "
                         "panoptic\"): save the OneFormerProcessor with its tokenizer beside "
                         "the model", path=source)
    return processor


def load_hf_model(path_or_id: str, *, label_space: LabelSpace | None = None,
                  batch_size: int = 4, threshold: float = 0.5,
                  device: str | torch.device | None = None, map_to: LabelSpace | None = None,
                  class_map: Mapping[str, str | None] | None = None,
                  class_map_source: str = "--class-map") -> HFPanopticModel:
    """A transformers panoptic model from a ``save_pretrained`` folder or a hub id, in eval mode
    on the GPU when there is one. ``label_space`` says which classes are things when they are
    not COCO-panoptic classes; ``map_to`` (with ``class_map`` overrides) puts the output in a
    data set's classes instead of the model's (``class_mapping``; the classes that map to none
    become void and are listed in ``unmapped``). User mistakes (no such folder, no config.json,
    an unsupported architecture, no processor, unknown classes) are one-line ``InputError``s
    naming the path."""
    tf = _transformers()
    source = str(path_or_id)
    folder = _local(source)
    if folder is not None and not (folder / "config.json").is_file():
        raise InputError("no config.json: not a Hugging Face model folder (save_pretrained)",
                         path=source)
    try:
        config = tf.AutoConfig.from_pretrained(source)
    except (OSError, ValueError, KeyError) as exc:
        where = "" if folder is not None else " (no such folder; tried as a hub id)"
        raise InputError(f"cannot load the model's config{where}: {_first_line(exc)}",
                         path=source) from None
    architecture = _architecture(config, source)
    labels = hf_label_space({int(k): v for k, v in config.id2label.items()},
                            int(getattr(config, "num_queries", 100)), given=label_space,
                            source=source)
    mapped: tuple[LabelSpace, np.ndarray] | None = None  # checked before the weights load
    unmapped: list[str] = []
    if map_to is not None:
        lut, unmapped = class_mapping(labels, map_to, class_map, source=class_map_source)
        mapped = (map_to, lut)
    processor = _processor(tf, architecture, source, folder)
    try:
        model = getattr(tf, architecture).from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load the model's weights: {_first_line(exc)}", path=source) from None
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model.to(device).eval()
    loaded = HFPanopticModel(model, processor, architecture, labels, batch_size=batch_size,
                             threshold=threshold, mapped=mapped)
    loaded.unmapped = unmapped
    return loaded
