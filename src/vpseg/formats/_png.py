"""PNG/JPEG reading and writing with the checks every format needs.

Reading names the file (and frame) in every error; writing is atomic (temporary name, rename).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from vpseg._atomic import atomic_path
from vpseg.errors import InputError

__all__ = ["read_image", "image_size", "write_png", "write_jpeg", "write_image", "rgb_to_id", "id_to_rgb"]

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
