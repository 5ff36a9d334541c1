"""Errors that describe a user's mistake (bad input files, bad arguments), and notes.

The CLI prints an ``InputError`` as one line and exits with code 2; everything else is a bug and
keeps its traceback. A ``Note`` is something the user should know that does not stop the run
(ids renumbered, extra prediction frames ignored, a metric that is 0 by definition); it is a
warning of its own category, so library users see it through ``warnings`` and the CLI prints it
as one ``note:`` line.
"""

from __future__ import annotations

import warnings
from os import PathLike

__all__ = ["InputError", "Note", "note", "where"]


def where(path: str | PathLike[str] | None, frame: str | int | None = None) -> str:
    """Format the location part of a message: ``path`` or ``path (frame F)``."""
    if path is None:
        return "" if frame is None else f"frame {frame}"
    text = str(path)
    return text if frame is None else f"{text} (frame {frame})"


class InputError(ValueError):
    """A problem with the user's input: names the file (and frame) and what was expected.

    >>> str(InputError("expected an RGB PNG, got mode 'L'", path="a/b.png", frame=3))
    'a/b.png (frame 3): expected an RGB PNG, got mode \\'L\\''
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | PathLike[str] | None = None,
        frame: str | int | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.frame = frame
        self.detail = message
        location = where(path, frame)
        super().__init__(f"{location}: {message}" if location else message)


class Note(UserWarning):
    """Something about the input that the user should know and that does not stop the run."""


def note(message: str, *, path: str | PathLike[str] | None = None,
         frame: str | int | None = None) -> None:
    """Emit a ``Note`` (a warning) naming ``path`` (and ``frame``) when given."""
    location = where(path, frame)
    warnings.warn(Note(f"{location}: {message}" if location else message), stacklevel=2)
