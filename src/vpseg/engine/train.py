"""Training any registered model (``vpseg.models.registry``): clips from a data set (or the
synthetic world, generated on the fly), the model's criterion, the plain ``Trainer`` loop; DDP
under ``torchrun``.

The run folder holds ``ckpt.pt`` (model, optimizer, schedule position, RNG states, and the
``run`` entry: model name, label space, clip length, crop, training scale, the network's full
configuration and the loss options — everything ``vpseg segment`` needs).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from vpseg._allocator import keep_freed_memory
from vpseg.core.labels import LabelSpace
from vpseg.engine import distributed
from vpseg.engine.data import collate
from vpseg.engine.trainer import TrainConfig, Trainer
from vpseg.models.registry import Criterion, get_model, parse_options

__all__ = ["RunSpec", "make_trainer", "time_steps", "calibrate_iterations", "num_classes_of"]


@dataclass(frozen=True)
class RunSpec:
    """What a checkpoint must remember to rebuild and use the model."""

    model: str
    clip: int
    batch_size: int
    crop: tuple[int, int]
    input_scale: float = 1.0  # inference scale relative to the training scale
    # short side of the frames trained on (before augmentation); inference brings every frame
    # to it (times ``input_scale``). None: frames are only resized by ``input_scale``.
    train_short_side: int | None = None
    loss: tuple[tuple[str, Any], ...] = ()  # the criterion's options that differ from its defaults


def num_classes_of(labels: LabelSpace) -> int:
    return labels.max_id + 1


class Prefetch:
    """``batches(i)`` computed one iteration ahead in a background thread (samples are pure
    functions of their index, so this changes nothing but the wall time)."""

    def __init__(self, batches: Callable[[int], dict[str, torch.Tensor]]) -> None:
        self.batches = batches
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.pending: tuple[int, Future[dict[str, torch.Tensor]]] | None = None

    def __call__(self, iteration: int) -> dict[str, torch.Tensor]:
        if self.pending is not None and self.pending[0] == iteration:
            batch = self.pending[1].result()
        else:
            batch = self.batches(iteration)
        self.pending = (iteration + 1, self.pool.submit(self.batches, iteration + 1))
        return batch


def spare_core(device: str) -> bool:
    """Whether a background data thread runs beside the training step without slowing it: on a
    GPU the CPU waits anyway; on a CPU only when a core is left over after PyTorch's threads.
    (On 2 cores with 2 PyTorch threads a prefetch thread made a step 1.4x slower, not faster:
    PyTorch's parallel regions wait at their barriers for the core the thread holds.)"""
    if device.startswith("cuda"):
        return True
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores > torch.get_num_threads()


def _batches(dataset: Dataset[dict[str, torch.Tensor]], batch_size: int,
             info: distributed.DistInfo) -> Callable[[int], dict[str, torch.Tensor]]:
    """Iteration i of process ``rank`` takes samples ``(i·world + rank)·B ...`` (mod the size)."""
    n = len(dataset)  # type: ignore[arg-type]

    def batch(iteration: int) -> dict[str, torch.Tensor]:
        first = (iteration * info.world + info.rank) * batch_size
        return collate([dataset[(first + k) % n] for k in range(batch_size)])

    return Prefetch(batch) if spare_core(info.device) else batch


def _loss_fn(criterion: Criterion, log: dict[str, float]) -> Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]:
    def loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        total, parts = criterion(model, batch)
        log.update(parts)
        return total

    return loss


def make_trainer(
    spec: RunSpec, labels: LabelSpace, dataset: Dataset[dict[str, torch.Tensor]],
    config: TrainConfig, *, out_dir: str | Path | None = None, progress: bool = False,
    device: str | None = None, backbone_weights: str | Path | None = None,
) -> Trainer:
    """A ``Trainer`` for ``spec.model`` on ``dataset`` (DDP-wrapped under ``torchrun``).
    Unknown model names raise ``KeyError``, unknown loss options ``ValueError``."""
    entry = get_model(spec.model)
    options = parse_options(entry.family.loss_options, dict(spec.loss))
    info = distributed.init(device)
    if info.device == "cpu":
        keep_freed_memory()  # no page faults for the same tensors every step (allocator.py)
    net = entry.build(num_classes_of(labels))
    model: nn.Module = net
    if backbone_weights is not None:
        from vpseg.models.backbones import load_backbone_weights

        load_backbone_weights(net.backbone, backbone_weights)  # type: ignore[arg-type]
    model = model.to(info.device)
    if info.device == "cpu":  # oneDNN convolutions run ~20 % faster on NHWC tensors
        model = model.to(memory_format=torch.channels_last)
    if info.distributed:
        if info.device.startswith("cuda"):
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[info.local_rank] if info.device.startswith("cuda") else None)
    log: dict[str, float] = {}
    trainer = Trainer(model, _loss_fn(entry.family.criterion(labels, options), log),
                      _batches(dataset, spec.batch_size, info), config,
                      out_dir=out_dir if distributed.is_main() else None,
                      progress=progress and distributed.is_main())
    # the network's full configuration travels with the weights: a checkpoint loads even after
    # the named configurations change
    trainer.extra_state = {"run": asdict(spec), "labels": labels.to_json(),
                           "model_config": asdict(entry.config)}
    trainer.loss_parts = log
    return trainer


def time_steps(spec: RunSpec, labels: LabelSpace, dataset: Dataset[dict[str, torch.Tensor]],
               *, amp: tuple[bool, ...] = (False,), probe: int = 4) -> dict[bool, float]:
    """Seconds per training iteration on this machine for each AMP setting in ``amp``: the
    median of ``probe`` steps of a throwaway copy of a fresh model, on data the real run never
    sees, the settings taking turns step by step (a machine whose speed drifts meanwhile slows
    all of them alike). The real run starts from its own seed afterwards."""
    state = torch.get_rng_state()
    trainer = make_trainer(spec, labels, dataset, TrainConfig(max_iters=10_000, seed=0))
    probe_batches = _batches(dataset, spec.batch_size, distributed.DistInfo())
    trainer.batches = lambda i: probe_batches(i + 1_000_000)
    times: dict[bool, list[float]] = {a: [] for a in amp}
    for rounds in (1, probe):  # the first round warms up (allocations, first-call overheads)
        for _ in range(rounds):
            for a in amp:
                trainer.config = replace(trainer.config, amp=a)
                start = time.perf_counter()
                trainer.step()
                if rounds == probe:
                    times[a].append(time.perf_counter() - start)
    torch.set_rng_state(state)
    del trainer
    return {a: statistics.median(t) for a, t in times.items()}


def calibrate_iterations(spec: RunSpec, labels: LabelSpace,
                         dataset: Dataset[dict[str, torch.Tensor]], seconds: float,
                         *, probe: int = 4, amp: bool = False) -> int:
    """How many iterations fit into ``seconds`` on this machine (``time_steps``)."""
    per_iter = time_steps(spec, labels, dataset, amp=(amp,), probe=probe)[amp]
    return max(1, int(seconds / per_iter))
