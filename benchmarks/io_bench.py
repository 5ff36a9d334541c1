"""Dataset I/O speed: `vpseg synth` + `vpseg info` at the issue's size, and the cost of vpseg's
validated frame reading against a bare Pillow decode of the same PNGs (same run, same files).

    python benchmarks/io_bench.py [--videos 8 --frames 30 --height 256 --width 512]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from vpseg.cli.main import main as vpseg
from vpseg.formats import get_format


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--width", type=int, default=512)
    args = ap.parse_args()
    size = ["--videos", str(args.videos), "--frames", str(args.frames),
            "--height", str(args.height), "--width", str(args.width)]
    fmt = get_format("kitti-step")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        t_synth = _time(lambda: vpseg(["synth", str(root), "--format", "kitti-step", *size]))
        t_info = _time(lambda: vpseg(["info", str(root), "--format", "kitti-step"]))
        files = sorted((root / "panoptic_maps" / "train").glob("*/*.png"))

        def bare() -> None:  # what a hand-written script does: decode and combine, no checks
            for f in files:
                rgb = np.asarray(Image.open(f)).astype(np.int32)
                _ = rgb[..., 0] * 1000 + rgb[..., 1] * 256 + rgb[..., 2]

        def validated() -> None:
            for name in fmt.list_videos(root, split="train"):
                for _ in fmt.read_video(root, name, split="train").panoptic:
                    pass

        t_bare, t_vpseg = min(_time(bare) for _ in range(3)), min(_time(validated) for _ in range(3))
    n = len(files)
    print(f"\n{args.videos} videos x {args.frames} frames at {args.height}x{args.width} ({n} frames)")
    print(f"vpseg synth: {t_synth:.2f} s   vpseg info: {t_info:.2f} s")
    print(f"read: vpseg {n / t_vpseg:.0f} frames/s (validated), bare Pillow {n / t_bare:.0f} frames/s;"
          f" vpseg/bare time ratio {t_vpseg / t_bare:.2f}")


if __name__ == "__main__":
    main()
