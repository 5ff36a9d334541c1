"""Checkpoints written atomically: a run killed while saving leaves the previous one readable."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from vpseg._atomic import atomic_path
from vpseg.errors import InputError

__all__ = ["save_checkpoint", "load_checkpoint"]


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save`` under a temporary name in the same folder, then rename onto ``path``."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint (on the CPU); a missing or unreadable file is an input error."""
    p = Path(path)
    if not p.is_file():
        raise InputError("checkpoint not found", path=p)
    try:
        state = torch.load(p, map_location="cpu", weights_only=False)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise InputError(f"cannot read checkpoint: {str(exc).splitlines()[0]}", path=p) from None
    if not isinstance(state, dict) or "model" not in state:
        raise InputError("not a vpseg checkpoint (no 'model' entry)", path=p)
    return state
