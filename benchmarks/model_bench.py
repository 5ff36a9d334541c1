"""Forward speed and memory of any registered model on this machine's CPU (or a GPU with
--device cuda).

For each model and clip length T: the forward pass of T frames at 384×640 as the network takes
them (``ModelFamily.example_input``: one clip ``1×T×3×H×W`` for Video-kMaX, a batch of T frames
for the frame-by-frame models; eval mode, no gradients), in milliseconds per *frame* (median of
--repeats runs after one warm-up), and the peak memory of the process during the runs above what
the built model already held (each configuration runs in a fresh subprocess, so ``ru_maxrss`` is
its own; on CUDA the peak allocated memory). Ratios are against T = 1 of the same model,
measured in the same run: a Video-kMaX clip costs the backbone T times while the decoders run
once on a T·H×W image. Parameters are counted at inference (training-only heads excluded where
the model says so, ``inference_parameters``).

``--stream`` measures the video semantic models (psp/ocr/tcb-*) as they segment a video, one frame
after another (``TCBStream``), with the memory of the support frames' contexts (one backbone pass
a frame) and without it (every support frame recomputed): milliseconds per frame over
``--repeats`` × 4 frames after 10 warm-up frames (so every support frame is a real one).

    python benchmarks/model_bench.py [--models video-kmax-tiny,panoptic-deeplab-tiny --clips 1,2,4]
``--segment`` times the path ``vpseg segment`` takes for any model: the family's segmenter on
``--repeats`` × 4 random frames after 2 warm-up frames, association included (the model's own,
or ``cls-sort`` where it has none; untrained weights, so few detections), in ms per frame.

    python benchmarks/model_bench.py --stream --models tcb-ocr-tiny,tcb-psp-tiny,ocr-tiny
    python benchmarks/model_bench.py --segment --models vpsnet-tiny,vpsnet-tiny-base,vpsnet-r50
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def stream(model_name: str, memory: bool, height: int, width: int, repeats: int, device: str) -> dict:
    import torch

    from vpseg.models.layers import count_parameters
    from vpseg.models.registry import get_model
    from vpseg.models.tcb import TCBStream

    torch.manual_seed(0)
    model = get_model(model_name).build(124).eval().to(device)
    frames = [torch.rand(1, 3, height, width, device=device) for _ in range(10 + 4 * repeats)]
    run = TCBStream(model, memory=memory)  # type: ignore[arg-type]
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated()
    for f in frames[:10]:
        run(f)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for f in frames[10:]:
        run(f)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / (len(frames) - 10)
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    if device.startswith("cuda"):
        peak = (torch.cuda.max_memory_allocated() - base_cuda) / 2**20
    return {"model": model_name, "memory": memory, "params_M": count_parameters(model) / 1e6,
            "ms_per_frame": 1000 * seconds, "peak_MiB": peak}


def segment(model_name: str, height: int, width: int, repeats: int, device: str) -> dict:
    import numpy as np
    import torch

    from vpseg.core.labels import get_label_space
    from vpseg.models.layers import count_parameters
    from vpseg.models.registry import InferenceOptions, get_model

    torch.manual_seed(0)
    entry = get_model(model_name)
    labels = get_label_space("cityscapes-vps")
    model = entry.build(labels.max_id + 1).eval().to(device)
    recipe = entry.family.recipe
    tracker = recipe.tracker
    check = entry.family.tracker_error
    if check is not None and check(entry.config, tracker):
        tracker = "cls-sort"
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(2 + 4 * repeats)]
    run = entry.family.segmenter(model, labels, InferenceOptions(clip=recipe.clip))
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stamps = []
    with torch.no_grad():
        for _ in run(frames, tracker):
            stamps.append(time.perf_counter())
    per_frame = (stamps[-1] - stamps[1]) / (len(stamps) - 2)
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    return {"model": model_name, "tracker": tracker, "params_M": count_parameters(model) / 1e6,
            "ms_per_frame": 1000 * per_frame, "peak_MiB": peak}


def one(model_name: str, clip: int, height: int, width: int, repeats: int, device: str) -> dict:
    import torch

    from vpseg.models.layers import count_parameters
    from vpseg.models.registry import get_model

    torch.manual_seed(0)
    entry = get_model(model_name)
    model = entry.build(19).eval().to(device)
    assert entry.family.example_input is not None, f"{model_name} gives no example input"
    x = entry.family.example_input(entry.config, clip, height, width).to(device)
    # without training-only heads (Video-kMaX's auxiliary semantic head) where a model has them
    count = getattr(model, "inference_parameters", None)
    params = count() if callable(count) else count_parameters(model)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated()
    times = []
    with torch.no_grad():
        for i in range(repeats + 1):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(x)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if i:  # the first run is a warm-up
                times.append(time.perf_counter() - start)
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    if device.startswith("cuda"):
        peak = (torch.cuda.max_memory_allocated() - base_cuda) / 2**20
    return {"model": model_name, "T": clip, "params_M": params / 1e6,
            "ms_per_frame": 1000 * statistics.median(times) / clip, "peak_MiB": peak}


def child(args: argparse.Namespace, threads: int, name: str, mode: str, *flags: str) -> dict:
    """One measurement in a fresh process (so peak memory is this model's alone): its JSON line."""
    res = subprocess.run(
        [sys.executable, __file__, "--one", name, mode, *flags, "--size", args.size,
         "--repeats", str(args.repeats), "--device", args.device, "--threads", str(threads)],
        capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="video-kmax-tiny,video-kmax-r50")
    ap.add_argument("--clips", default="1,2,4")
    ap.add_argument("--size", default="384,640")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--stream", action="store_true",
                    help="video semantic models frame by frame, with and without the memory")
    ap.add_argument("--segment", action="store_true",
                    help="any model through its segmenter (the path of vpseg segment)")
    ap.add_argument("--one", nargs=2, metavar=("MODEL", "T"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split(","))
    if args.one:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        if args.segment:
            result = segment(args.one[0], h, w, args.repeats, args.device)
        elif args.stream:
            result = stream(args.one[0], args.one[1] == "memory", h, w, args.repeats, args.device)
        else:
            result = one(args.one[0], int(args.one[1]), h, w, args.repeats, args.device)
        print(json.dumps(result))
        return
    import torch

    if args.segment:
        threads = args.threads or torch.get_num_threads()
        print(f"segmenting random {h}x{w} frames, device {args.device}, {threads} threads")
        print(f"{'model':<24}{'params':>9}{'association':>13}{'ms/frame':>11}{'peak MiB':>10}")
        for name in args.models.split(","):
            r = child(args, threads, name, "0", "--segment")
            print(f"{name:<24}{r['params_M']:>8.1f}M{r['tracker']:>13}{r['ms_per_frame']:>11.1f}"
                  f"{r['peak_MiB']:>10.0f}", flush=True)
        return
    if args.stream:
        threads = args.threads or torch.get_num_threads()
        print(f"frame by frame at {h}x{w}, device {args.device}, {threads} threads")
        print(f"{'model':<20}{'params':>9}{'memory':>10}{'ms/frame':>11}{'vs memory':>11}{'peak MiB':>10}")
        for name in args.models.split(","):
            first = None
            for mode in ("memory", "recompute"):
                r = child(args, threads, name, mode, "--stream")
                first = first or r["ms_per_frame"]
                print(f"{name:<20}{r['params_M']:>8.1f}M{'on' if r['memory'] else 'off':>10}"
                      f"{r['ms_per_frame']:>11.1f}{r['ms_per_frame'] / first:>11.2f}"
                      f"{r['peak_MiB']:>10.0f}", flush=True)
        return

    threads = args.threads or torch.get_num_threads()
    print(f"forward pass, one clip at {h}x{w}, device {args.device}, {threads} threads, "
          f"median of {args.repeats}")
    print("params: at inference (training-only heads, as Video-kMaX's semantic head, excluded)")
    print(f"{'model':<24}{'params':>9}{'T':>3}{'ms/frame':>11}{'vs T=1':>8}{'peak MiB':>10}")
    for name in args.models.split(","):
        first = None
        for clip in (int(c) for c in args.clips.split(",")):
            r = child(args, threads, name, str(clip))
            first = first or r["ms_per_frame"]
            print(f"{name:<24}{r['params_M']:>8.1f}M{clip:>3}{r['ms_per_frame']:>11.1f}"
                  f"{r['ms_per_frame'] / first:>8.2f}{r['peak_MiB']:>10.0f}", flush=True)


if __name__ == "__main__":
    main()
