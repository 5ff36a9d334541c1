"""Peak memory against video length: `vpseg segment`, `track`, `eval` and `viz` on one synthetic
video of 100, 1,000 and 10,000 frames, each command run as a user runs it (a child process
reading and writing files), its peak resident set size read from the kernel (``wait4``'s
``ru_maxrss`` of that child alone).

A command that streams (frames decoded when needed, predictions written as they come, bounded
tracker state) has the same peak at every length; one that holds a video in memory grows with
it. The last column is the peak at the longest length over the peak at the shortest.

    python benchmarks/stream_bench.py [--frames 100,1000,10000 --height 64 --width 128]

Setup (not measured): `vpseg synth` writes the video in KITTI-STEP layout, its RGB frames are
encoded to an MP4 (what `segment` reads), and `vpseg train --iters 1` makes a video-kmax-tiny
checkpoint (memory does not depend on how well it is trained). `segment` reads the MP4 and
writes KITTI-STEP PNGs plus its overlay MP4 (tracker: the model's own, HiLA-MB); `track` re-tracks
the ground truth with the default tracker; `eval` scores the tracked video against the ground
truth (STQ, VPQ at k = 1, 2, 4, 6, mIoU); `viz` writes coloured PNGs and a side-by-side MP4.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vpseg.formats import get_format
from vpseg.viz import write_mp4

VPSEG = [sys.executable, "-m", "vpseg"]


def peak_rss(argv: list[str]) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of one child process running ``argv``."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()  # the child cannot block on a full pipe
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{err.decode()[-2000:]}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start  # Linux: ru_maxrss in KiB


def run(args: list[str]) -> None:
    subprocess.run([*VPSEG, *args], check=True, stdout=subprocess.DEVNULL)


def setup(tmp: Path, frames: int, height: int, width: int, ckpt: Path) -> dict[str, list[str]]:
    """Write the video (data set + MP4) and return the measured commands."""
    root, mp4 = tmp / f"data{frames}", tmp / f"video{frames}.mp4"
    run(["synth", str(root), "--format", "kitti-step", "--videos", "1", "--frames", str(frames),
         "--height", str(height), "--width", str(width), "--split", "val"])
    fmt = get_format("kitti-step")
    video = fmt.read_video(root, fmt.list_videos(root, split="val")[0], split="val")
    assert video.rgb is not None
    write_mp4(mp4, (np.asarray(f) for f in video.rgb), fps=10)
    seg, tracked, viz = tmp / f"seg{frames}", tmp / f"track{frames}", tmp / f"viz{frames}"
    return {
        "segment": [*VPSEG, "segment", str(mp4), "--checkpoint", str(ckpt), "--out", str(seg),
                    "--format", "kitti-step"],
        "track": [*VPSEG, "track", str(root), str(tracked), "--format", "kitti-step",
                  "--split", "val"],
        "eval": [*VPSEG, "eval", str(root), str(tracked), "--format", "kitti-step",
                 "--split", "val"],
        "viz": [*VPSEG, "viz", str(root), "--format", "kitti-step", "--split", "val",
                "--out", str(viz), "--mp4", "--side-by-side", str(tracked)],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", default="100,1000,10000")
    ap.add_argument("--height", type=int, default=64)
    ap.add_argument("--width", type=int, default=128)
    args = ap.parse_args()
    lengths = [int(v) for v in args.frames.split(",")]
    peaks: dict[str, dict[int, tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        run(["train", "--model", "video-kmax-tiny", "--iters", "1", "--batch-size", "1",
             "--crop", f"{args.height},{args.width}", "--format", "kitti-step",
             "--out", str(tmp / "run"), "--device", "cpu"])
        for n in lengths:
            commands = setup(tmp, n, args.height, args.width, tmp / "run" / "ckpt.pt")
            for name, argv in commands.items():  # in order: eval reads what track wrote
                peaks.setdefault(name, {})[n] = peak_rss(argv)
                mib, sec = peaks[name][n]
                print(f"  {name:8s} {n:>6} frames: peak RSS {mib:7.1f} MiB ({sec:.0f} s)",
                      file=sys.stderr)
    print(f"\none synthetic video, {args.height}x{args.width}; peak RSS of the command (MiB)\n")
    print("| command | " + " | ".join(f"{n:,} frames" for n in lengths)
          + f" | {lengths[-1]:,} / {lengths[0]:,} |")
    print("|---|" + "---:|" * (len(lengths) + 1))
    for name, row in peaks.items():
        cells = " | ".join(f"{row[n][0]:.0f}" for n in lengths)
        print(f"| `vpseg {name}` | {cells} | {row[lengths[-1]][0] / row[lengths[0]][0]:.2f} |")
    print("\nseconds: " + "; ".join(
        f"{name} " + ", ".join(f"{row[n][1]:.0f}" for n in lengths) for name, row in peaks.items()))


if __name__ == "__main__":
    main()
