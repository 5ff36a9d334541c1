"""Per-pixel kernels compiled with numba when it is installed, with numpy versions beside them.

A ``Kernel`` pairs a loop written for numba (one pass over the pixels, no temporaries) with a
vectorised numpy function that computes the same result. The first call picks one: numba's
compiled loop (cached on disk, so later processes load it in ~0.1 s) unless numba cannot be
imported or ``VPSEG_NO_NUMBA=1`` is set. Importing this module does not import numba, so
commands that never run a kernel pay nothing for it.

Tests run both versions against each other (``use_numba(False)``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

__all__ = ["Kernel", "use_numba", "numba_enabled"]

_ENABLED: bool | None = None  # None: decide on first use


def numba_enabled() -> bool:
    """Whether kernels run compiled (numba importable and not switched off)."""
    global _ENABLED
    if _ENABLED is None:
        if os.environ.get("VPSEG_NO_NUMBA", "") not in ("", "0"):
            _ENABLED = False
        else:
            try:
                import numba  # noqa: F401
            except ImportError:
                _ENABLED = False
            else:
                _ENABLED = True
    return _ENABLED


def use_numba(enabled: bool) -> None:
    """Switch every kernel between its compiled loop and its numpy version (for tests)."""
    global _ENABLED
    _ENABLED = bool(enabled) and _numba_importable()


def _numba_importable() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


class Kernel:
    """``loop`` compiled by numba, or ``fallback`` (same signature and results) without it."""

    def __init__(self, loop: Callable[..., Any], fallback: Callable[..., Any]) -> None:
        self.loop = loop
        self.fallback = fallback
        self._compiled: Callable[..., Any] | None = None
        self.__name__ = loop.__name__
        self.__doc__ = fallback.__doc__

    def __call__(self, *args: Any) -> Any:
        if not numba_enabled():
            return self.fallback(*args)
        if self._compiled is None:
            import numba

            try:
                self._compiled = numba.njit(cache=True, nogil=True)(self.loop)
            except RuntimeError:  # no writable cache folder here: compile in every process
                self._compiled = numba.njit(nogil=True)(self.loop)
        return self._compiled(*args)
