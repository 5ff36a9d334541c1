"""Learning-rate schedule of the papers: linear warmup, then poly decay."""

from __future__ import annotations

__all__ = ["poly_lr"]


def poly_lr(iteration: int, *, base_lr: float, max_iters: int, power: float = 0.9,
            warmup_iters: int = 0, warmup_factor: float = 0.001) -> float:
    """``base_lr * (1 - it / max_iters) ** power`` after a linear warmup from
    ``warmup_factor * base_lr`` over ``warmup_iters`` iterations."""
    if max_iters <= 0:
        raise ValueError("max_iters must be positive")
    poly = base_lr * max(0.0, 1.0 - iteration / max_iters) ** power
    if iteration < warmup_iters:
        alpha = iteration / warmup_iters
        return poly * (warmup_factor * (1 - alpha) + alpha)
    return poly
