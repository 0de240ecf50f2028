"""Benchmark: weight-free temporal interpolation vs plain frame blending on sprites clips.

Each clip is rendered at k x the base frame rate; every k-th frame is kept and interpolated back ×k, and
the in-between frames are compared with the rendered truth (PSNR, dB). Blending is measured in the same run
on the same frames, so the gain is a like-for-like difference. PSNR columns pool the squared error over
the clips; gains are per clip (mean and minimum). Clips where nothing moves are left out. Clips: several seeds, plain and textured
backgrounds. Speed: output frames per second of ``interpolate`` (flow method) on CPU or --device.

    python bench/interpolation.py                 # 32 and 64 px, x2 and x4, 8 seeds each
    python bench/interpolation.py --quick         # 64 px, 4 seeds
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars would drown the table; set before tqdm loads

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
from package import ensure_package  # noqa: E402

TEXTURED = ["stripes", "checker", "noise", "gradient"]


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b) ** 2).mean())


def psnr_of(mean_squared_error: float) -> float:
    return 10 * math.log10(1 / max(mean_squared_error, 1e-12))


def measure(size: int, k: int, fps: float, seeds: int, frames: int, device: str | None) -> dict:
    """PSNR of the pooled squared error per background kind, and the per-clip PSNR gains.

    Clips whose in-betweens blending already reproduces exactly (nothing moves) are skipped: their PSNR is
    infinite for both methods and says nothing.
    """
    from videocascade.interpolation import interpolate
    from videocascade.sprites.world import random_clip_spec, render_clip

    rows = {"plain": [], "textured": []}
    flow_time = blend_time = 0.0
    out_frames = 0
    for seed in range(seeds):
        for name, kinds in (("plain", ["plain"]), ("textured", TEXTURED)):
            spec = random_clip_spec(seed, split="all", background_kinds=kinds)
            truth = render_clip(spec, (frames - 1) * k + 1, size, size, fps * k)
            source = truth[::k]
            in_between = [i for i in range(truth.shape[0]) if i % k]
            start = time.perf_counter()
            flow = interpolate(source, k, device=device)
            flow_time += time.perf_counter() - start
            start = time.perf_counter()
            blend = interpolate(source, k, method="blend")
            blend_time += time.perf_counter() - start
            out_frames += flow.shape[0]
            e_flow, e_blend = (
                mse(flow[in_between], truth[in_between]),
                mse(blend[in_between], truth[in_between]),
            )
            if e_blend > 1e-10:
                rows[name].append((e_flow, e_blend))
    result = {"size": size, "k": k}
    for name, pairs in rows.items():
        gains = [psnr_of(f) - psnr_of(b) for f, b in pairs]
        result[f"{name}_clips"] = len(pairs)
        result[f"{name}_flow"] = psnr_of(sum(f for f, _ in pairs) / len(pairs))
        result[f"{name}_blend"] = psnr_of(sum(b for _, b in pairs) / len(pairs))
        result[f"{name}_gain"] = sum(gains) / len(gains)
        result[f"{name}_min_gain"] = min(gains)
    result["flow_fps"] = out_frames / flow_time
    result["blend_fps"] = out_frames / blend_time
    return result


def speed_at(size: int, k: int, device: str | None) -> float:
    from videocascade.interpolation import interpolate
    from videocascade.sprites.world import random_clip_spec, render_clip

    clip = render_clip(random_clip_spec(0, background_kinds=["noise"]), 9, size, size, 8.0)
    interpolate(clip[:2], k, device=device)  # warm-up (OpenCV, allocator)
    start = time.perf_counter()
    out = interpolate(clip, k, device=device)
    return out.shape[0] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="32,64", help="frame sizes (square), comma separated")
    parser.add_argument("--factors", default="2,4", help="interpolation factors k")
    parser.add_argument("--fps", type=float, default=8.0, help="base (kept) frame rate of the clips")
    parser.add_argument("--seeds", type=int, default=8, help="clips per background kind")
    parser.add_argument("--frames", type=int, default=5, help="kept frames per clip")
    parser.add_argument("--speed-sizes", default="256,512", help="extra frame sizes timed for frames/s")
    parser.add_argument("--device", default=None, help="where warping runs (flow is OpenCV on CPU)")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch and OpenCV threads (0: library default)"
    )
    parser.add_argument("--quick", action="store_true", help="64 px, 4 seeds, no extra speed sizes")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.seeds, args.speed_sizes = "64", 4, ""
    ensure_package()
    if args.threads > 0:  # on a shared, busy CPU one thread avoids OpenMP barrier stalls on small tensors
        import cv2

        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    torch.manual_seed(0)

    print(
        f"# Temporal interpolation vs blending (sprites, base {args.fps:g} fps, {args.seeds} seeds per kind)"
    )
    print(f"torch threads: {torch.get_num_threads()}, device: {args.device or 'cpu'}\n")
    print("| size | k | clips | plain flow / blend (dB) | plain gain (min) | textured flow / blend | textured gain (min) "
          "| flow frames/s | blend frames/s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    gains = []
    for size in (int(s) for s in args.sizes.split(",") if s):
        for k in (int(f) for f in args.factors.split(",") if f):
            r = measure(size, k, args.fps, args.seeds, args.frames, args.device)
            gains += [r["plain_gain"], r["textured_gain"]]
            clips = f"{r['plain_clips']}+{r['textured_clips']}"
            print(
                f"| {size} | {k} | {clips} | {r['plain_flow']:.2f} / {r['plain_blend']:.2f} | "
                f"{r['plain_gain']:+.2f} ({r['plain_min_gain']:+.2f}) | "
                f"{r['textured_flow']:.2f} / {r['textured_blend']:.2f} | "
                f"{r['textured_gain']:+.2f} ({r['textured_min_gain']:+.2f}) | "
                f"{r['flow_fps']:.1f} | {r['blend_fps']:.0f} |",
                flush=True,
            )
    if gains:
        print(f"\nmean per-clip PSNR gain over blending: {sum(gains) / len(gains):+.2f} dB")
    for size in (int(s) for s in args.speed_sizes.split(",") if s):
        print(f"speed at {size}x{size}, x2: {speed_at(size, 2, args.device):.1f} output frames/s", flush=True)


if __name__ == "__main__":
    main()
