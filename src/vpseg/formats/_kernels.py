"""One pass from decoded PNG bytes to ``(H, W)`` int32 panoptic ids, for every encoding.

No kernel sorts a frame or calls ``np.unique``: the ids a frame may hold are known beforehand
(the segments listed in its JSON, or a lookup table over every value of a channel), so each
pixel costs one lookup, skipped when it repeats the previous pixel's value (segments come in runs
along a row). A pixel whose value is not known stops the pass and is returned for the error
message, so unknown ids are checked in the same pass.

Inputs are C-contiguous arrays as OpenCV decodes them: 8-bit colour images in B, G, R channel
order; ``out`` is a C-contiguous int32 array of the frame's size.
"""

from __future__ import annotations

import numpy as np

from vpseg._jit import Kernel

__all__ = ["coco_decode", "lut_decode", "step_decode"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing multiplier


# --- COCO RGB ids: R + 256 G + 256² B, looked up in the frame's segment list -------------------


def _coco_loop(bgr: np.ndarray, keys: np.ndarray, values: np.ndarray, out: np.ndarray) -> int:
    bits = 1
    while (1 << bits) < 2 * keys.size + 2:
        bits += 1
    size = 1 << bits
    shift = np.uint64(64 - bits)
    table_key = np.full(size, -1, np.int64)
    table_value = np.zeros(size, np.int32)
    for j in range(keys.size):
        s = np.int64((np.uint64(keys[j]) * _GOLDEN) >> shift)
        while table_key[s] != -1 and table_key[s] != keys[j]:
            s = (s + 1) & (size - 1)
        table_key[s] = keys[j]
        table_value[s] = values[j]
    src = bgr.reshape(-1)  # flat indexing: ~1.4x faster than [y, x, c] here
    dst = out.reshape(-1)
    last = np.int64(-1)
    value = np.int32(0)
    for i in range(dst.size):
        v = (np.int64(src[3 * i + 2]) | (np.int64(src[3 * i + 1]) << 8)
             | (np.int64(src[3 * i]) << 16))
        if v != last:
            s = np.int64((np.uint64(v) * _GOLDEN) >> shift)
            while True:
                k = table_key[s]
                if k == v:
                    value = table_value[s]
                    break
                if k == -1:
                    return v
                s = (s + 1) & (size - 1)
            last = v
        dst[i] = value
    return -1


def _coco_numpy(bgr: np.ndarray, keys: np.ndarray, values: np.ndarray, out: np.ndarray) -> int:
    """``out[y, x] = values[j]`` where ``keys[j]`` is the RGB id of pixel (y, x); returns the
    first unknown id in raster order (nothing written), or -1. ``bgr``: ``(H, W, 3)`` uint8 in
    B, G, R order; ``keys``: ``(K,)`` int64 distinct ids; ``values``: ``(K,)`` int32."""
    ids = (bgr[..., 2].astype(np.int64) | (bgr[..., 1].astype(np.int64) << 8)
           | (bgr[..., 0].astype(np.int64) << 16))
    order = np.argsort(keys)
    sorted_keys, sorted_values = keys[order], values[order]
    index = np.minimum(np.searchsorted(sorted_keys, ids), max(len(keys) - 1, 0))
    if len(keys) == 0:
        return int(ids.flat[0]) if ids.size else -1
    unknown = sorted_keys[index] != ids
    if unknown.any():
        return int(ids[unknown][0])
    out[...] = sorted_values[index]
    return -1


coco_decode = Kernel(_coco_loop, _coco_numpy)


# --- one channel through a lookup table (VSPW masks, VIPSeg raw masks) ------------------------


def _lut_loop(values: np.ndarray, lut: np.ndarray, out: np.ndarray) -> int:
    src = values.reshape(-1)
    dst = out.reshape(-1)
    last = np.int64(-1)
    current = np.int32(0)
    for i in range(dst.size):
        v = np.int64(src[i])
        if v != last:
            current = lut[v]
            if current < 0:
                return v
            last = v
        dst[i] = current
    return -1


def _lut_numpy(values: np.ndarray, lut: np.ndarray, out: np.ndarray) -> int:
    """``out = lut[values]``; returns the first value (raster order) whose entry is negative,
    or -1. ``values``: ``(H, W)`` uint8 or uint16; ``lut``: int32 covering every value."""
    mapped = lut[values]
    bad = mapped < 0
    if bad.any():
        return int(values[bad][0])
    out[...] = mapped
    return -1


lut_decode = Kernel(_lut_loop, _lut_numpy)


# --- STEP: R = semantic, G * 256 + B = instance -----------------------------------------------


def _step_loop(bgr: np.ndarray, valid: np.ndarray, divisor: int,
               out: np.ndarray) -> tuple[int, int]:
    src = bgr.reshape(-1)
    dst = out.reshape(-1)
    last = np.int64(-1)
    current = np.int32(0)
    top = np.int64(0)
    for i in range(dst.size):
        b, g, r = np.int64(src[3 * i]), np.int64(src[3 * i + 1]), np.int64(src[3 * i + 2])
        v = (r << 16) | (g << 8) | b
        if v != last:
            if not valid[r]:
                return r, top
            instance = (g << 8) | b
            if instance > top:
                top = instance
            current = np.int32(r * divisor + instance)
            last = v
        dst[i] = current
    return -1, top


def _step_numpy(bgr: np.ndarray, valid: np.ndarray, divisor: int,
                out: np.ndarray) -> tuple[int, int]:
    """``out = R * divisor + (G * 256 + B)``; returns (first class id in raster order that
    ``valid`` refuses, or -1; the largest instance id). ``out`` is meaningless where the
    instance does not fit below ``divisor`` (the caller renumbers such frames)."""
    red = bgr[..., 2]
    instance = (bgr[..., 1].astype(np.int32) << 8) | bgr[..., 0]
    bad = ~valid[red]
    top = int(instance.max(initial=0))
    if bad.any():
        return int(red[bad][0]), top
    out[...] = red.astype(np.int32) * divisor + instance
    return -1, top


step_decode = Kernel(_step_loop, _step_numpy)
