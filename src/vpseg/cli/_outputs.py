"""Where commands write: never into their input, and never a partial result under the final name.

A command that writes a folder (``synth``, ``convert``, ``track``, ``viz``, ``segment``) writes
it inside ``staged_folder``: everything goes into a hidden temporary folder beside the output,
and only when the command has finished is it moved into place — renamed as a whole when the
output does not exist yet, else merged into it file by file (sub-folders first, so the index
files that make a data set readable arrive last), with Ctrl-C held back during the move. A
failed or interrupted run removes its temporary folder and leaves the output as it was.

The checks here turn every mistake about an output path (an input named as output, an output
inside an input, a file where a folder is expected, a folder that cannot be written) into one
``InputError`` before anything is written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

from vpseg.errors import InputError

__all__ = ["check_output_file", "check_output_folder", "staged_folder"]

#: Files of an existing output root that writers merge with (index JSONs, split lists); they
#: are copied into the temporary folder first so that the merged version replaces them.
_MERGED_SUFFIXES = (".json", ".txt")


def _resolved(path: str | os.PathLike[str]) -> Path:
    return Path(path).expanduser().resolve()


def _overlap(out: Path, inputs: Sequence[str | os.PathLike[str]], flag: str) -> None:
    for given in inputs:
        source = _resolved(given)
        if out == source or source in out.parents:
            raise InputError(f"{flag} lies inside the input {given}; vpseg never writes into "
                             "its input: choose another output", path=out)
        if out in source.parents:
            raise InputError(f"{flag} contains the input {given}; vpseg never writes into its "
                             "input: choose another output", path=out)


def _writable_parent(path: Path, flag: str) -> None:
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{flag}: {parent} is a file, not a folder", path=path)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{flag}: cannot write into {parent} (permission denied)", path=path)


def check_output_file(path: str | os.PathLike[str], flag: str,
                      inputs: Sequence[str | os.PathLike[str]] = ()) -> None:
    """``path`` can be written as a file: not a folder, not an input, its folder writable."""
    out = _resolved(path)
    if out.is_dir():
        raise InputError(f"{flag} must name a file, not a folder", path=path)
    for given in inputs:
        source = _resolved(given)
        if out == source or source in out.parents:
            raise InputError(f"{flag} lies inside the input {given}; vpseg never writes into "
                             "its input", path=path)
    if out.exists() and not os.access(out, os.W_OK):
        raise InputError(f"{flag}: cannot overwrite (permission denied)", path=path)
    _writable_parent(out, flag)


def check_output_folder(path: str | os.PathLike[str], flag: str,
                        inputs: Sequence[str | os.PathLike[str]] = ()) -> Path:
    """``path`` can be written as a folder (module docstring); returns it resolved."""
    out = _resolved(path)
    if out.exists() and not out.is_dir():
        raise InputError(f"{flag} must name a folder, but a file is there", path=path)
    _overlap(out, inputs, flag)
    if out.exists() and not os.access(out, os.W_OK | os.X_OK):
        raise InputError(f"{flag}: cannot write into this folder (permission denied)", path=path)
    _writable_parent(out, flag)
    return out


@contextlib.contextmanager
def staged_folder(path: str | os.PathLike[str], flag: str,
                  inputs: Sequence[str | os.PathLike[str]] = ()) -> Iterator[Path]:
    """Yield a temporary folder to write ``path``'s contents into; move them into ``path`` when
    the block succeeds, remove them when it fails or is interrupted."""
    out = check_output_folder(path, flag, inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.vpseg-tmp-", dir=out.parent))
    try:
        if out.is_dir():
            for item in out.iterdir():
                if item.is_file() and item.suffix.lower() in _MERGED_SUFFIXES:
                    shutil.copy2(item, stage / item.name)
        yield stage
        with _sigint_held():
            if out.exists():
                _merge(stage, out)
            else:
                os.rename(stage, out)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def _merge(source: Path, target: Path) -> None:
    """Move ``source``'s tree into the existing folder ``target``: folders first, then files."""
    entries = sorted(source.iterdir(), key=lambda p: (not p.is_dir(), p.name))
    for item in entries:
        dest = target / item.name
        if item.is_dir() and dest.is_dir():
            _merge(item, dest)
        elif item.is_dir() and dest.exists():
            raise InputError("expected a folder here, found a file", path=dest)
        else:
            os.replace(item, dest)


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """Delay Ctrl-C until the block is done (the last step of a run must not be cut short)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt
