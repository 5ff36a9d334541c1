"""`vpseg eval` end to end against merely decoding its PNGs, in each official layout.

For each format a synthetic workload is written in the format's own layout (ground truth as
`vpseg synth` writes it, predictions in the benchmark's submission layout, as `--submission`
writes them): the ground truth shifted by a few pixels, track ids renamed, some ids switched.
Then, in the same run and on the same files:

* decode only: every ground-truth and prediction PNG decoded by OpenCV (the fastest decoder
  here) in this already-started process, with freed memory kept for reuse as `vpseg eval`
  keeps it (``vpseg._allocator``); nothing else;
* `vpseg eval GT PRED --format F` with the default metrics, as a user runs it: a new process,
  interpreter start and imports included, with `--workers 1` and `--workers 2`.

Printed per format: ms per annotated frame of each, their ratio (goal: <= 2 on one worker) and
the speed-up of two workers; the same once the process runs (a further frame) with the start
cost. Then peak RSS of `vpseg eval` on one video of 200 and of 2,000 frames (flat in video
length). With ``--official-vipseg DIR``, VIPSeg's own VPQ and STQ scripts are timed on the VIPSeg
workload too, and their numbers compared with vpseg's. Repeats alternate the measurements;
medians are printed.

    python benchmarks/eval_bench.py [--repeats 3] [--formats vipseg,kitti-step,...] [--quick]
                                    [--official-vipseg VIPSeg-Dataset/ClipPanoFCN]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from vpseg._allocator import keep_freed_memory
from vpseg.core.labels import LabelSpace
from vpseg.core.synthetic import SynthConfig, generate_video
from vpseg.core.video import Video
from vpseg.formats import get_format


@dataclass(frozen=True)
class Workload:
    format: str
    videos: int
    frames: int  # frames per video (Cityscapes-VPS annotates every 5th)
    height: int
    width: int
    objects: int


WORKLOADS = {
    "vipseg": Workload("vipseg", 10, 24, 720, 1280, 32),  # the 720p VIPSeg workload
    "kitti-step": Workload("kitti-step", 6, 30, 375, 1242, 16),
    "cityscapes-vps": Workload("cityscapes-vps", 6, 30, 1024, 2048, 24),
    "vspw": Workload("vspw", 8, 24, 480, 853, 16),
}


def damaged(video: Video, rng: np.random.Generator) -> Video:
    """The ground truth shifted by a few pixels, thing ids renamed, some ids switched."""
    div = video.label_space.label_divisor
    frames = []
    for t, gt in enumerate(video.panoptic):
        pred = np.roll(np.asarray(gt), (t % 3, 2 + t % 2), axis=(0, 1))
        thing = (pred % div) > 0
        pred = np.where(thing, pred + 7, pred)
        if t % 5 == 4 and rng.random() < 0.5:
            pred = np.where(thing, pred + 1, pred)
        frames.append(pred.astype(np.int32))
    return replace(video, panoptic=frames, rgb=None, all_rgb=None, all_rgb_names=())


def _sparse(video: Video, stride: int) -> Video:
    if stride == 1:
        return video
    keep = [i for i in range(len(video)) if i % stride == stride - 1]
    return replace(video, panoptic=[video.panoptic[i] for i in keep],
                   frame_index=tuple(video.frame_index[i] for i in keep),
                   frame_names=tuple(video.frame_names[i] for i in keep),
                   rgb=None if video.rgb is None else [video.rgb[i] for i in keep])


def write_workload(w: Workload, root: Path, small: int = 2) -> dict[str, tuple[Path, Path, int]]:
    """Ground truth and predictions of the whole workload ("all") and of its first ``small``
    videos ("small"): name -> (ground-truth root, prediction root, annotated frames)."""
    fmt = get_format(w.format)
    labels: LabelSpace = fmt.default_label_space()
    cfg = SynthConfig(height=w.height, width=w.width, frames=w.frames, objects=w.objects)
    rng = np.random.default_rng(0)
    sets = {"all": (root / "gt", root / "pred"), "small": (root / "gt_small", root / "pred_small")}
    frames = {"all": 0, "small": 0}
    with contextlib.ExitStack() as stack:
        writers = {name: (stack.enter_context(fmt.open_writer(gt, split="val")),
                          stack.enter_context(fmt.open_writer(pred, split="val", submission=True)))
                   for name, (gt, pred) in sets.items()}
        for i in range(w.videos):
            video = generate_video(cfg, labels, 0, i).materialize()
            if not fmt.holds_instances:
                video = replace(video, panoptic=[p - p % labels.label_divisor for p in video.panoptic])
            video = _sparse(video, fmt.annotation_stride)
            prediction = damaged(video, rng)
            for name in ("all", "small") if i < small else ("all",):
                writers[name][0].write(video)
                writers[name][1].write(prediction)
                frames[name] += len(video)
    return {name: (gt, pred, frames[name]) for name, (gt, pred) in sets.items()}


def label_pngs(gt: Path, pred: Path) -> list[Path]:
    """Every panoptic PNG of a ground-truth and a prediction root (no RGB frames)."""
    return [p for root in (gt, pred) for p in sorted(root.rglob("*.png"))
            if not any(part in ("images", "img", "img_all", "origin") for part in p.parts)]


def decode_only(files: list[Path]) -> float:
    keep_freed_memory()  # decoding at its fastest: no page faults for each new frame
    start = time.perf_counter()
    for f in files:
        if cv2.imread(str(f), cv2.IMREAD_UNCHANGED) is None:
            raise RuntimeError(f"cannot decode {f}")
    return time.perf_counter() - start


# `vpseg eval` itself, then its peak RSS from /proc (VmHWM counts this program only: the
# rusage of a child also counts the parent's pages it was forked with).
_PEAK = ("import sys; from vpseg.cli.main import main; rc = main(sys.argv[1:]); "
         "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')]; "
         "print(hwm[0].split()[1] if hwm else -1, file=sys.stderr); sys.exit(rc)")


def run_eval(gt: Path, pred: Path, fmt: str, workers: int, *, peak: bool = False
             ) -> tuple[float, int]:
    """(wall seconds, peak RSS in KiB or -1) of `vpseg eval` in a fresh process."""
    args = ["eval", str(gt), str(pred), "--format", fmt, "--split", "val",
            "--workers", str(workers)]
    cmd = [sys.executable, "-c", _PEAK, *args] if peak else [
        sys.executable, "-m", "vpseg.cli.main", *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"vpseg {' '.join(args)} failed:\n{proc.stderr}")
    return wall, int(proc.stderr.split()[-1]) if peak else -1


def measure(w: Workload, repeats: int) -> dict[str, float]:
    """Medians over ``repeats``: per-frame times of the whole workload, and the cost of a
    further frame once the process runs (from the whole workload and its first videos)."""
    with tempfile.TemporaryDirectory() as tmp:
        sets = write_workload(w, Path(tmp), small=max(1, w.videos // 5))
        gt, pred, frames = sets["all"]
        small_gt, small_pred, small_frames = sets["small"]
        pngs = label_pngs(gt, pred)
        decode_only(pngs)  # warm the page cache for both measurements
        run_eval(gt, pred, w.format, 1)  # and numba's compile cache
        dec, one, two, one_small, two_small = [], [], [], [], []
        for _ in range(repeats):
            dec.append(decode_only(pngs))
            one.append(run_eval(gt, pred, w.format, 1)[0])
            two.append(run_eval(gt, pred, w.format, 2)[0])
            one_small.append(run_eval(small_gt, small_pred, w.format, 1)[0])
            two_small.append(run_eval(small_gt, small_pred, w.format, 2)[0])
    t = {name: statistics.median(v) for name, v in
         (("dec", dec), ("one", one), ("two", two), ("one_s", one_small), ("two_s", two_small))}
    extra = frames - small_frames
    ms = 1000 / frames
    more1 = 1000 * (t["one"] - t["one_s"]) / extra  # ms per further frame, one worker
    more2 = 1000 * (t["two"] - t["two_s"]) / extra
    return {"frames": frames, "decode": t["dec"] * ms, "eval1": t["one"] * ms,
            "eval2": t["two"] * ms, "ratio": t["one"] / t["dec"], "speedup": t["one"] / t["two"],
            "more1": more1, "more_ratio": more1 / (t["dec"] * ms), "more2": more2,
            "more_speedup": more1 / more2, "start": t["one_s"] - small_frames * more1 / 1000}


def rss_by_length(lengths: list[int]) -> list[tuple[int, int]]:
    """Peak RSS (KiB) of `vpseg eval` on one KITTI-STEP video of each length (128x256)."""
    out = []
    fmt = get_format("kitti-step")
    labels = fmt.default_label_space()
    for n in lengths:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            video = generate_video(SynthConfig(height=128, width=256, frames=n), labels, 0, 0)
            with fmt.open_writer(root / "gt", split="val") as g, \
                    fmt.open_writer(root / "pred", split="val", submission=True) as p:
                g.write(replace(video, rgb=None))
                p.write(damaged(video, np.random.default_rng(0)))
            out.append((n, run_eval(root / "gt", root / "pred", "kitti-step", 1, peak=True)[1]))
    return out


def official_vipseg(scripts: Path, repeats: int) -> list[tuple[str, float, float, float]]:
    """Time VIPSeg's own scripts (``ClipPanoFCN/eval_vpq_vspw.py`` with 2 processes and
    ``eval_stq_vspw.py``, from a checkout the user gives; vpseg ships none of their code) and
    vpseg on the same VIPSeg workload: (what, official ms/frame, vpseg ms/frame, |difference| of
    the headline number)."""
    w = WORKLOADS["vipseg"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        gt, pred, frames = write_workload(w, Path(tmp))["all"]
        truth = ["--truth_dir", str(gt / "panomasksRGB"), "--pan_gt_json_file",
                 str(gt / "panoptic_gt_VIPSeg.json")]
        for what, script, extra, ours in (
                ("VPQ (k = 1,2,4,6,8), 2 processes", "eval_vpq_vspw.py", ["--num_processes", "2"],
                 ["--metrics", "vpq", "--vpq-preset", "vipseg-script", "--workers", "2"]),
                ("STQ, 1 process", "eval_stq_vspw.py", [],
                 ["--metrics", "stq", "--stq-vipseg-wrapper"])):
            theirs, value = [], 0.0
            for _ in range(repeats):
                submit = Path(tmp) / "submit"  # the scripts write their results into it
                shutil.rmtree(submit, ignore_errors=True)
                shutil.copytree(pred, submit)
                start = time.perf_counter()
                done = subprocess.run([sys.executable, script, "--submit_dir", str(submit), *truth,
                                       *extra], cwd=scripts, capture_output=True, text=True)
                theirs.append(time.perf_counter() - start)
                if done.returncode != 0:
                    raise RuntimeError(f"{script} failed:\n{done.stderr[-2000:]}")
                value = _official_number(submit, done.stdout)
            mine, result = [], {}
            for _ in range(repeats):
                out = Path(tmp) / "r.json"
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "vpseg.cli.main", "eval", str(gt),
                                str(pred), "--format", "vipseg", "--split", "val", *ours,
                                "--json", str(out)], check=True, capture_output=True)
                mine.append(time.perf_counter() - start)
                result = json.loads(out.read_text())
            headline = result["vpq"]["VPQ"] if "vpq" in result else result["stq"]["STQ"]
            rows.append((what, 1000 * statistics.median(theirs) / frames,
                         1000 * statistics.median(mine) / frames, abs(headline - value)))
    return rows


def _official_number(submit: Path, stdout: str) -> float:
    """The headline fraction an official script printed (VPQ from vpq-final.txt, STQ from its
    output)."""
    final = submit / "vpq-final.txt"
    if final.is_file():
        text = final.read_text()
        return float(text.split("vpq_all:")[1].split()[0]) / 100
    return float(stdout.split("STQ :")[1].split()[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--formats", default=",".join(WORKLOADS))
    ap.add_argument("--lengths", default="200,2000", help="video lengths for the RSS check")
    ap.add_argument("--quick", action="store_true", help="a quarter of the videos (a smoke run)")
    ap.add_argument("--official-vipseg", metavar="DIR", type=Path,
                    help="also time VIPSeg's eval_vpq_vspw.py and eval_stq_vspw.py from DIR "
                         "(ClipPanoFCN/ of a VIPSeg-Dataset checkout) on the VIPSeg workload")
    args = ap.parse_args()
    rows = []
    for name in args.formats.split(","):
        w = WORKLOADS[name]
        if args.quick:
            w = replace(w, videos=max(2, w.videos // 4))
        print(f"{name}: {w.videos} videos x {w.frames} frames at {w.height}x{w.width} ...",
              file=sys.stderr, flush=True)
        rows.append((w, measure(w, args.repeats)))
    print("\nWhole workload, `vpseg eval` end to end (process start included):\n")
    print("| format | annotated frames | size | decode only, ms/frame | vpseg eval, ms/frame "
          "| ratio | --workers 2, ms/frame | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for w, r in rows:
        print(f"| {w.format} | {r['frames']:.0f} | {w.height}x{w.width} | {r['decode']:.1f} | "
              f"{r['eval1']:.1f} | {r['ratio']:.2f} | {r['eval2']:.1f} | {r['speedup']:.2f}x |")
    print("\nOnce the process runs (a further frame; the start is Python, imports and numba "
          "loading its compiled kernels):\n")
    print("| format | vpseg eval, ms/frame | ratio to decoding | --workers 2, ms/frame "
          "| speed-up | start, s |")
    print("|---|---|---|---|---|---|")
    for w, r in rows:
        print(f"| {w.format} | {r['more1']:.1f} | {r['more_ratio']:.2f} | {r['more2']:.1f} | "
              f"{r['more_speedup']:.2f}x | {r['start']:.2f} |")
    if args.official_vipseg:
        print("\nThe official VIPSeg scripts on the VIPSeg workload, against vpseg eval with the "
              "same metric and processes (and the difference of their headline numbers):\n")
        print("| metric | official script, ms/frame | vpseg eval, ms/frame | speed-up | "
              "difference |")
        print("|---|---|---|---|---|")
        for what, theirs, mine, diff in official_vipseg(args.official_vipseg, args.repeats):
            print(f"| {what} | {theirs:.0f} | {mine:.1f} | {theirs / mine:.0f}x | {diff:.1e} |")
    lengths = [int(v) for v in args.lengths.split(",") if v]
    if lengths:
        print("\n| frames in the video | peak RSS of vpseg eval, MiB |")
        print("|---|---|")
        for n, kib in rss_by_length(lengths):
            print(f"| {n} | {kib / 1024:.0f} |")


if __name__ == "__main__":
    main()
