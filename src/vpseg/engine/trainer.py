"""A plain training loop: the model, a loss, batches by iteration number, and that is all.

The batch of iteration i is ``batches(i)``, a pure function of the iteration (and the run's
seed), so a resumed run sees exactly the data order it would have seen. Everything that changes
the future of a run is in the checkpoint: model, optimizer, AMP scaler, iteration, and the torch /
numpy / Python RNG states; in deterministic mode (``torch.use_deterministic_algorithms``) a
resumed run continues bit-identically. Anything fancier: write your own loop around these parts.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from vpseg.engine.checkpoint import load_checkpoint, save_checkpoint
from vpseg.engine.schedule import poly_lr
from vpseg.models.registry import unwrap

__all__ = ["TrainConfig", "Trainer", "seed_everything"]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (AdamW + poly LR, as kMaX-DeepLab and Video-kMaX train)."""

    max_iters: int
    lr: float = 1e-4
    weight_decay: float = 0.05
    poly_power: float = 0.9
    warmup_iters: int = 0
    grad_clip: float | None = 1.0
    amp: bool = False
    checkpoint_every: int = 0  # 0: only at the end
    seed: int = 0
    deterministic: bool = False


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


class Trainer:
    """``loss_fn(model, batch) -> scalar tensor``; ``batches(iteration) -> batch``."""

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[nn.Module, Any], torch.Tensor],
        batches: Callable[[int], Any],
        config: TrainConfig,
        *,
        out_dir: str | Path | None = None,
        progress: bool = False,
    ) -> None:
        self.model, self.loss_fn, self.batches, self.config = model, loss_fn, batches, config
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.progress = progress
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for name, p in model.named_parameters():
            if p.requires_grad:
                (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay},
             {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
        self.device_type = next(model.parameters()).device.type
        self.scaler = torch.amp.GradScaler(self.device_type, enabled=config.amp and self.device_type == "cuda")
        self.iteration = 0
        self.history: list[float] = []
        self.extra_state: dict[str, Any] = {}  # saved as "extra" (e.g. what rebuilds the model)
        self.loss_parts: dict[str, float] = {}  # filled by a loss function that reports parts

    # -- one step ---------------------------------------------------------------------------
    def step(self) -> float:
        """Train on ``batches(self.iteration)``; returns the loss before the update."""
        cfg = self.config
        lr = poly_lr(self.iteration, base_lr=cfg.lr, max_iters=cfg.max_iters,
                     power=cfg.poly_power, warmup_iters=cfg.warmup_iters)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        batch = self.batches(self.iteration)
        with torch.autocast(self.device_type, enabled=cfg.amp,
                            dtype=torch.float16 if self.device_type == "cuda" else torch.bfloat16):
            loss = self.loss_fn(self.model, batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if cfg.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.iteration += 1
        value = float(loss.detach())
        self.history.append(value)
        return value

    def train(self, until: int | None = None, *, seconds: float | None = None,
              refit_every: int = 20) -> list[float]:
        """Run to iteration ``until`` (default ``max_iters``), checkpointing as configured.

        With ``seconds``, train for about that much wall time instead: every ``refit_every``
        iterations ``max_iters`` is re-estimated from the speed measured so far (the poly schedule
        follows the estimate and ends with it). The iteration count then depends on the
        machine's speed; for a reproducible run, give ``max_iters`` and no ``seconds``."""
        end = self.config.max_iters if until is None else min(until, self.config.max_iters)
        bar = tqdm(total=end - self.iteration, disable=not self.progress, unit="it",
                   mininterval=0.5 if sys.stderr.isatty() else 30.0)
        start, first = time.perf_counter(), self.iteration
        while self.iteration < end:
            loss = self.step()
            bar.update(1)
            done, elapsed = self.iteration - first, time.perf_counter() - start
            bar.set_postfix(loss=f"{loss:.4f}", it_s=f"{done / max(elapsed, 1e-9):.2f}",
                            refresh=False)
            if seconds is not None and done % refit_every == 0:
                left = int(max(seconds - elapsed, 0.0) / (elapsed / done))
                self.config = replace(self.config, max_iters=self.iteration + left)
                end = self.config.max_iters if until is None else min(until, self.config.max_iters)
                bar.total = end - first
                bar.refresh()
            every = self.config.checkpoint_every
            if self.out_dir is not None and every and self.iteration % every == 0:
                self.save()
        bar.close()
        if self.out_dir is not None:
            self.save()
        return self.history

    # -- checkpoints --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "model": unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "iteration": self.iteration,
            "config": asdict(self.config),
            "history": list(self.history),
            "extra": dict(self.extra_state),
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                    "python": random.getstate()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.iteration = int(state["iteration"])
        self.history = list(state.get("history", []))
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])

    def save(self, path: str | Path | None = None) -> Path:
        """Write ``ckpt.pt`` in the run folder (or ``path``), atomically."""
        if path is None:
            if self.out_dir is None:
                raise ValueError("no run folder: give a path")
            path = self.out_dir / "ckpt.pt"
        save_checkpoint(path, self.state_dict())
        return Path(path)

    def resume(self, path: str | Path) -> None:
        self.load_state_dict(load_checkpoint(path))
