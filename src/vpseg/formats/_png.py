"""PNG/JPEG reading and writing with the checks every format needs.

Reading names the file (and frame) in every error; writing is atomic (temporary name, rename).
Label PNGs (panoptic maps, masks) are read by ``read_label_png``: the PNG header is parsed from
the file's first bytes (mode and size checked before decoding), OpenCV decodes (about 1.3x
faster than Pillow here), and Pillow decodes only palette images and explains a file OpenCV
cannot read.
"""

from __future__ import annotations

import contextlib
import io
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from vpseg._atomic import atomic_path
from vpseg.errors import InputError

__all__ = ["read_image", "image_size", "png_header", "PngHeader", "read_label_png", "write_png",
           "write_jpeg", "write_image", "rgb_to_id", "id_to_rgb"]

Image.MAX_IMAGE_PIXELS = None  # panoptic maps of large frames are legitimate


def _open(path: Path, frame: str | int | None) -> Image.Image:
    try:
        return Image.open(path)
    except FileNotFoundError:
        raise InputError("file not found", path=path, frame=frame) from None
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"cannot read image: {exc}", path=path, frame=frame) from None


def image_size(path: Path, frame: str | int | None = None) -> tuple[int, int, str]:
    """``(height, width, mode)`` from the file header only."""
    with _open(path, frame) as img:
        return img.height, img.width, img.mode


def read_image(
    path: Path,
    *,
    modes: Sequence[str],
    frame: str | int | None = None,
    what: str = "image",
) -> np.ndarray:
    """Decode ``path`` to a numpy array; its PIL mode must be one of ``modes``.

    ``"RGB"`` gives ``(H, W, 3)`` uint8; ``"L"``/``"P"`` give ``(H, W)`` uint8 (palette indices
    are the stored values, not colours); ``"I;16"``/``"I"`` give ``(H, W)`` int32.
    """
    with _open(path, frame) as img:
        if img.mode not in modes:
            raise InputError(
                f"{what} has PNG mode {img.mode!r}, expected {' or '.join(map(repr, modes))}",
                path=path,
                frame=frame,
            )
        try:
            arr = np.asarray(img)
        except (OSError, ValueError) as exc:  # truncated or corrupt data
            raise InputError(f"cannot decode {what}: {exc}", path=path, frame=frame) from None
    if arr.dtype != np.uint8:
        arr = arr.astype(np.int32)
    return arr


class PngHeader(NamedTuple):
    height: int
    width: int
    mode: str  # Pillow's name for the pixel layout: "RGB", "L", "P", "I;16", ...


_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# (colour type, bit depth) -> Pillow's mode name (16-bit colour has none; named for messages)
_MODES = {(0, 1): "1", (0, 2): "L;2", (0, 4): "L;4", (0, 8): "L", (0, 16): "I;16",
          (2, 8): "RGB", (2, 16): "RGB;16", (3, 1): "P", (3, 2): "P", (3, 4): "P", (3, 8): "P",
          (4, 8): "LA", (4, 16): "LA;16", (6, 8): "RGBA", (6, 16): "RGBA;16"}


def _read_bytes(path: Path, frame: str | int | None, count: int = -1) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(count)
    except FileNotFoundError:
        raise InputError("file not found", path=path, frame=frame) from None
    except IsADirectoryError:
        raise InputError("expected a PNG file, found a folder", path=path, frame=frame) from None
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", path=path, frame=frame) from None


def _parse_header(data: bytes, path: Path, frame: str | int | None) -> PngHeader:
    if len(data) < 33 or data[:8] != _SIGNATURE or data[12:16] != b"IHDR":
        raise InputError("not a PNG file", path=path, frame=frame)
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    mode = _MODES.get((colour, depth))
    if mode is None:
        raise InputError(f"invalid PNG header (colour type {colour}, bit depth {depth})",
                         path=path, frame=frame)
    return PngHeader(height, width, mode)


def png_header(path: Path, frame: str | int | None = None) -> PngHeader:
    """Size and mode of a PNG from its first 33 bytes (the IHDR chunk)."""
    return _parse_header(_read_bytes(path, frame, 33), path, frame)


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """OpenCV prints decoder warnings to stderr; vpseg reports a failed decode itself."""
    logging = cv2.utils.logging
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(level)


def read_label_png(
    path: Path,
    *,
    modes: Sequence[str],
    frame: str | int | None = None,
    what: str = "PNG",
) -> np.ndarray:
    """Decode a label PNG whose mode is one of ``modes`` (``"RGB"``, ``"L"``, ``"P"``, ``"I;16"``).

    ``"RGB"`` gives ``(H, W, 3)`` uint8 in **B, G, R order** (as OpenCV decodes; the format
    decoders read the channels they need); ``"L"`` and ``"P"`` give ``(H, W)`` uint8 (palette
    indices, not colours); ``"I;16"`` gives ``(H, W)`` uint16.
    """
    data = _read_bytes(path, frame)
    header = _parse_header(data, path, frame)
    if header.mode not in modes:
        raise InputError(f"{what} has PNG mode {header.mode!r}, expected "
                         f"{' or '.join(map(repr, modes))}", path=path, frame=frame)
    array: np.ndarray | None = None
    if header.mode != "P":  # OpenCV would expand a palette into colours
        with _quiet_opencv():
            array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        try:
            with Image.open(io.BytesIO(data)) as img:
                array = np.asarray(img)
        except (OSError, ValueError, SyntaxError) as exc:
            raise InputError(f"cannot decode {what}: {exc}", path=path, frame=frame) from None
        if header.mode == "RGB":
            array = np.ascontiguousarray(array[..., ::-1])
    if array.shape[:2] != (header.height, header.width):
        raise InputError(f"cannot decode {what}: decoded {array.shape[0]}x{array.shape[1]}, "
                         f"header says {header.height}x{header.width}", path=path, frame=frame)
    return array


def write_png(path: Path, array: np.ndarray, *, palette: np.ndarray | None = None) -> None:
    """Write ``array`` as PNG, atomically: ``(H, W, 3)`` uint8 RGB, ``(H, W)`` uint8 grey, or,
    with ``palette`` (``(N, 3)`` uint8), ``(H, W)`` uint8 palette indices (mode ``P``)."""
    array = np.ascontiguousarray(array)
    with atomic_path(path) as tmp:
        if palette is not None:
            img = Image.frombytes("P", (array.shape[1], array.shape[0]), array.tobytes())
            img.putpalette(np.asarray(palette, dtype=np.uint8).ravel().tolist())
            img.save(tmp, format="PNG", compress_level=1)
            return
        # OpenCV's encoder (RLE strategy, level 1) is ~2x faster than Pillow's here and
        # releases the GIL, so writers can encode frames in threads.
        bgr = array[..., ::-1] if array.ndim == 3 else array
        ok, buf = cv2.imencode(
            ".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY,
                          cv2.IMWRITE_PNG_STRATEGY_RLE]
        )
        if not ok:
            raise RuntimeError(f"PNG encoding failed for {path}")
        tmp.write_bytes(buf.tobytes())


def write_jpeg(path: Path, array: np.ndarray, *, quality: int = 95) -> None:
    """Write an ``(H, W, 3)`` uint8 image as JPEG, atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="JPEG", quality=quality)


def write_image(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB frame with the encoder its suffix asks for (JPEG or PNG), atomically."""
    if Path(path).suffix.lower() in (".jpg", ".jpeg"):
        write_jpeg(path, rgb)
    else:
        write_png(path, rgb)


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """COCO panoptic id encoding: ``(H, W, 3)`` uint8 -> ``(H, W)`` int32 ``R + 256 G + 256² B``."""
    rgb = rgb.astype(np.int32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """Inverse of ``rgb_to_id``: ``(H, W)`` ids in ``[0, 2^24)`` -> ``(H, W, 3)`` uint8."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= 1 << 24):
        raise ValueError("segment ids must lie in [0, 2^24) to fit the RGB id encoding")
    out = np.empty(ids.shape + (3,), dtype=np.uint8)
    out[..., 0] = ids % 256
    out[..., 1] = (ids // 256) % 256
    out[..., 2] = ids // 65536
    return out
