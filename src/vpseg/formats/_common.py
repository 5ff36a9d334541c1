"""Pieces shared by the format modules: frame listing, header checks, writers, label spaces."""

from __future__ import annotations

import functools
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from vpseg._atomic import write_json, write_text
from vpseg.core.labels import LabelSpace, load_label_space
from vpseg.core.video import LazyFrames, Video
from vpseg.errors import InputError, note
from vpseg.formats._png import png_header, read_image

__all__ = [
    "DatasetWriter",
    "LABEL_SPACE_FILE",
    "check_frame_sizes",
    "frame_files",
    "frame_number",
    "in_split",
    "numbered_frames",
    "read_split_list",
    "video_folders",
    "label_files",
    "lazy_frames",
    "match_frames",
    "pick_frames",
    "read_json",
    "resolve_label_space",
    "read_rgb",
    "rgb_files",
    "rgb_frames",
    "run_parallel",
    "save_label_space",
    "saved_label_space",
    "split_dir",
    "video_from_files",
    "write_split_file",
    "WriteQueue",
]

#: Written into a dataset root when its label space is not the format's built-in one.
LABEL_SPACE_FILE = "vpseg_label_space.json"

_DIGITS = re.compile(r"(\d+)(?!.*\d)")


class DatasetWriter:
    """Writes videos into a dataset root; ``close`` finishes shared files (e.g. an index JSON).

    Used as a context manager: ``close`` runs only when the ``with`` block succeeded, so an
    interrupted conversion never writes the files (index JSONs) that make a dataset look whole."""

    def write(self, video: Video) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()


def frame_number(name: str, default: int) -> int:
    """The last run of digits in a frame name (``000012`` -> 12), else ``default``."""
    match = _DIGITS.search(name)
    return int(match.group(1)) if match else default


def frame_files(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    """Files in ``folder`` with one of ``suffixes``, sorted by frame number then name."""
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.suffix.lower() in suffixes and not p.name.startswith(".")]
    return sorted(files, key=lambda p: (frame_number(p.stem, -1), p.name))


def numbered_frames(files: Sequence[Path], folder: Path) -> list[Path]:
    """``files`` (sorted by ``frame_files``), each of which must name its frame number: in the
    layouts whose order comes from the file names, a name without digits has no place in time."""
    for path in files:
        if _DIGITS.search(path.stem) is None:
            raise InputError("frame name has no frame number; frames are ordered by the number "
                             "in their names", path=path, frame=path.stem)
    return list(files)


def video_folders(base: Path, holds: Callable[[Path], bool]) -> list[str]:
    """Sorted names of the per-video folders in ``base``: folders for which ``holds`` is true
    (they have frames) or that are empty (a video without frames, an error when read). A folder
    or link that cannot be read is an error here."""
    try:
        entries = sorted(base.iterdir())
    except OSError as exc:
        raise InputError(f"cannot list folder: {exc.strerror or exc}", path=base) from None
    names = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_symlink() and not entry.exists():
            raise InputError("broken or looping link where a video folder is expected",
                             path=entry)
        if not entry.is_dir():
            continue
        try:
            empty = not any(entry.iterdir())
        except OSError as exc:
            raise InputError(f"cannot list video folder: {exc.strerror or exc}",
                             path=entry) from None
        if empty or holds(entry):
            names.append(entry.name)
    return names


def read_split_list(path: Path) -> list[str]:
    """The video names of a split list (one per line)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError("split list not found", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read split list: {exc}", path=path) from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def in_split(videos: Sequence[str], listed: Path) -> list[str]:
    """``videos`` that the split list names; a listed video that is not there is an error (a
    ground truth read without it would be scored partially)."""
    wanted = read_split_list(listed)
    have = set(videos)
    missing = [v for v in wanted if v not in have]
    if missing:
        raise InputError(f"lists video {missing[0]!r}, which the data set does not have"
                         + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                         path=listed)
    keep = set(wanted)
    return [v for v in videos if v in keep]


def match_frames(available: Sequence[str], wanted: Sequence[str], folder: Path,
                 suffix: str) -> list[int]:
    """Positions in ``available`` (a prediction video's frame names) of the ``wanted`` (ground
    truth) frames: by name; by position, as the official evaluation scripts pair frames, when
    no name matches and the counts agree; else an error naming the first missing frame. Frames
    left over are reported in a note."""
    where = {name: i for i, name in enumerate(available)}
    if all(name in where for name in wanted):
        picked = [where[name] for name in wanted]
        extra = len(available) - len(set(picked))
        if extra:
            note(f"{extra} prediction frame(s) that the ground truth does not have are ignored",
                 path=folder)
        return picked
    if len(available) == len(wanted) and not any(name in where for name in wanted):
        note(f"frame names differ from the ground truth's ({available[0]!r} vs {wanted[0]!r}); "
             "frames paired by position, as the official scripts do", path=folder)
        return list(range(len(wanted)))
    missing = next(name for name in wanted if name not in where)
    raise InputError("missing frame that the ground truth has", path=folder / f"{missing}{suffix}",
                     frame=missing)


def pick_frames(
    files: Sequence[Path], frame_names: Sequence[str] | None, folder: Path, suffix: str
) -> list[Path]:
    """``files``, or the frames that pair with ``frame_names`` (``match_frames``)."""
    if frame_names is None:
        return list(files)
    return [files[i] for i in match_frames([p.stem for p in files], frame_names, folder, suffix)]


def label_files(
    folder: Path,
    video: str,
    frame_names: Sequence[str] | None,
    modes: Sequence[str],
    what: str,
) -> list[Path]:
    """The PNG label files of one video folder (or exactly ``frame_names``), headers checked."""
    if not folder.is_dir():
        raise InputError(f"missing video {video!r}", path=folder)
    files = numbered_frames(frame_files(folder, (".png",)), folder)
    files = pick_frames(files, frame_names, folder, ".png")
    if not files:
        raise InputError(f"no PNG {what}s in video folder", path=folder)
    check_frame_sizes(files, modes, what)
    return files


def check_frame_sizes(
    files: Sequence[Path], modes: Sequence[str], what: str,
    stated: Sequence[tuple[int, int] | None] | None = None,
    frames: Sequence[str] | None = None,
) -> tuple[int, int]:
    """Read every PNG header; every frame must have an allowed mode, the size its index JSON
    states for it (``stated``, where known) and the size most frames of the video have (a frame
    that differs is named, whichever position it holds). ``frames`` names the frames in
    messages (default: the file stems). Returns the size."""
    sizes = []
    names = list(frames) if frames is not None else [p.stem for p in files]
    for i, path in enumerate(files):
        h, w, mode = png_header(path, frame=names[i])
        if mode not in modes:
            raise InputError(
                f"{what} has PNG mode {mode!r}, expected {' or '.join(map(repr, modes))}",
                path=path, frame=names[i],
            )
        expected = stated[i] if stated is not None else None
        if expected is not None and expected != (h, w):
            raise InputError(f"{what} is {h}x{w}, the JSON says {expected[0]}x{expected[1]}",
                             path=path, frame=names[i])
        sizes.append((h, w))
    if not sizes:
        return (0, 0)
    size, count = Counter(sizes).most_common(1)[0]
    for path, name, (h, w) in zip(files, names, sizes, strict=True):
        if (h, w) != size:
            first = sizes.index(size)
            others = (f"the other {count} frames" if count > 1
                      else f"frame {names[first]} ({files[first].name})")
            raise InputError(f"frame size {h}x{w} differs from {size[0]}x{size[1]} of {others}",
                             path=path, frame=name)
    return size


class FileFrames(LazyFrames):
    """Frames read from one file each, ``load(path)`` on every access. Only the paths are held,
    as strings: about 100 bytes a frame where a ``Path`` in a ``partial`` took about 1 KB, so
    the frame list of a long video stays small beside the frame being read."""

    def __init__(self, paths: Sequence[Path | str], load: Callable[[Path], np.ndarray]) -> None:
        self._paths = tuple(str(p) for p in paths)
        self._load = load

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return FileFrames(self._paths[index], self._load)
        return self._load(Path(self._paths[index]))

    def __iter__(self) -> Iterator[np.ndarray]:
        for path in self._paths:
            yield self._load(Path(path))


def lazy_frames(paths: Sequence[Path], load: Callable[[Path], np.ndarray]) -> LazyFrames:
    return FileFrames(paths, load)


def split_dir(base: Path, split: str | None, what: str) -> Path:
    """``base/split``; with no split, the only split folder there is (else a clear error)."""
    if split is not None:
        path = base / split
        if not path.is_dir():
            raise InputError(f"no split {split!r} in {what}", path=path)
        return path
    splits = sorted(p.name for p in base.iterdir() if p.is_dir())
    if len(splits) == 1:
        return base / splits[0]
    raise InputError(f"{what} holds splits {splits}; choose one with --split", path=base)


def saved_label_space(root: Path) -> LabelSpace | None:
    """The label space recorded in a dataset root (or the two folders above it), if any."""
    for folder in (root, root.parent, root.parent.parent):
        saved = folder / LABEL_SPACE_FILE
        if saved.is_file():
            return load_label_space(saved)
    return None


def resolve_label_space(root: Path, given: LabelSpace | None, default: LabelSpace) -> LabelSpace:
    """The label space given, else the one saved in the root, else the format's built-in one."""
    return given or saved_label_space(root) or default


def save_label_space(root: Path, labels: LabelSpace, default: LabelSpace) -> None:
    """Record a non-default label space in the root so that readers pick it up."""
    path = root / LABEL_SPACE_FILE
    if labels != default:
        write_json(path, labels.to_json(), indent=1)
    elif path.exists():
        path.unlink()


def read_json(path: Path, what: str) -> object:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{what} not found", path=path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read {what}: {exc}", path=path) from None


def run_parallel(jobs: Sequence[Callable[[], object]]) -> None:
    """Run independent file writes in a few threads (encoders release the GIL)."""
    workers = min(4, os.cpu_count() or 1)
    if workers == 1 or len(jobs) < 2:
        for job in jobs:
            job()
        return
    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()  # re-raise the first error


def rgb_frames(images: Path | None, files: Sequence[Path],
               size: tuple[int, int] | None = None) -> LazyFrames | None:
    """RGB frames in ``images`` with the same stems as ``files`` (PNG or JPEG), if all exist;
    each must be ``size`` (height, width) when given, else reading it is an error."""
    if images is None or not images.is_dir():
        return None
    by_stem = {p.stem: p for p in frame_files(images, (".png", ".jpg", ".jpeg"))}
    if not all(p.stem in by_stem for p in files):
        return None
    return rgb_files([by_stem[p.stem] for p in files], size)


def rgb_files(paths: Sequence[Path], size: tuple[int, int] | None = None) -> LazyFrames:
    """Lazily read RGB frames, each checked against ``size`` (height, width) when given."""
    return FileFrames(paths, functools.partial(read_rgb, size=size))


def read_rgb(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 RGB frame; its size must be ``size`` when given."""
    rgb = read_image(path, modes=("RGB",), frame=path.stem, what="RGB frame")
    if size is not None and rgb.shape[:2] != tuple(size):
        raise InputError(f"RGB frame is {rgb.shape[0]}x{rgb.shape[1]}, its panoptic frame "
                         f"{size[0]}x{size[1]}", path=path, frame=path.stem)
    return rgb


def write_split_file(path: Path, names: Sequence[str]) -> None:
    """Add ``names`` to a split list (one video name a line), keeping the names already there."""
    existing = read_split_list(path) if path.is_file() else []
    merged = list(dict.fromkeys([*existing, *names]))
    write_text(path, "".join(f"{n}\n" for n in merged))


def video_from_files(
    name: str,
    files: Sequence[Path],
    load: Callable[[Path], np.ndarray],
    labels: LabelSpace,
    images: Path | None,
) -> Video:
    """A lazily decoded video of one label file per frame, frame indices from the file names,
    RGB frames from ``images`` when that folder has every frame."""
    return Video(
        name=name,
        panoptic=lazy_frames(files, load),
        label_space=labels,
        frame_index=tuple(frame_number(p.stem, i) for i, p in enumerate(files)),
        frame_names=tuple(p.stem for p in files),
        rgb=rgb_frames(images, files, png_header(files[0])[:2] if files else None),
        sources=tuple(str(p) for p in files),
    )


class WriteQueue:
    """File writes run in a few threads, at most ``batch`` pending at once, so writing a long
    video holds a bounded number of encoded frames in memory. Call ``flush`` at the end."""

    def __init__(self, batch: int = 32) -> None:
        self.batch = batch
        self.jobs: list[Callable[[], object]] = []

    def add(self, job: Callable[[], object]) -> None:
        self.jobs.append(job)
        if len(self.jobs) >= self.batch:
            self.flush()

    def flush(self) -> None:
        run_parallel(self.jobs)
        self.jobs = []
