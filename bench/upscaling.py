"""Benchmark: weight-free spatial upscaling vs plain bicubic on area-downsampled sprites frames.

High-resolution sprites frames (several seeds, plain and textured backgrounds) are area-downsampled by the
factor and upscaled back; PSNR (dB) against the original. The reference is OpenCV's bicubic
(``cv2.INTER_CUBIC``) measured in the same run on the same frames; ``upscale`` is shown with its default
detail restoration (Lanczos, sharpen=1) and as plain Lanczos (sharpen=0). Speed: output frames per second.

    python bench/upscaling.py              # 128 px targets, x2 x3 x4, 12 seeds; speed at 512 -> 2048
    python bench/upscaling.py --quick      # x2 and x4, 4 seeds
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars would drown the table; set before tqdm loads

import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from package import ensure_package  # noqa: E402

TEXTURED = ["stripes", "checker", "noise", "gradient"]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean().clamp_min(1e-12)))


def cv2_bicubic(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    out = [cv2.resize(f.numpy(), (size[1], size[0]), interpolation=cv2.INTER_CUBIC) for f in frames]
    return torch.from_numpy(np.stack(out)).clamp(0, 1)


def sprites_frames(size: int, seeds: int, kinds: list[str]) -> torch.Tensor:
    from videocascade.sprites.world import random_clip_spec, render_clip

    frames = []
    for seed in range(seeds):
        spec = random_clip_spec(seed, split="all", background_kinds=kinds)
        frames.append(render_clip(spec, 2, size, size, 8.0))  # two moments of each clip
    return torch.cat(frames)


def timed(fn, *args, **kwargs) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=128, help="high-resolution (target) frame size")
    parser.add_argument("--factors", default="2,3,4", help="upscaling factors")
    parser.add_argument("--seeds", type=int, default=12, help="clips per background kind")
    parser.add_argument("--speed", default="512,4", help="'low_size,factor' timed for frames/s ('' to skip)")
    parser.add_argument("--device", default=None, help="where upscale computes (default: CPU)")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch and OpenCV threads (0: library default)"
    )
    parser.add_argument("--quick", action="store_true", help="x2 and x4, 4 seeds, no speed run")
    args = parser.parse_args()
    if args.quick:
        args.factors, args.seeds, args.speed = "2,4", 4, ""
    ensure_package()
    from videocascade.upscaling import upscale

    if args.threads > 0:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)

    sets = {"plain": sprites_frames(args.size, args.seeds, ["plain"])}
    sets["textured"] = sprites_frames(args.size, args.seeds, TEXTURED)
    upscale(sets["plain"][:1, ::4, ::4], scale=2, device=args.device)  # warm-up (kornia import)

    print(f"# Spatial upscaling vs OpenCV bicubic (sprites, {args.size} px targets, area-downsampled)")
    print(f"torch threads: {torch.get_num_threads()}, device: {args.device or 'cpu'}\n")
    print("| factor | frames | bicubic (dB) | lanczos (dB) | ours (dB) | gain vs bicubic (min) | ours frames/s "
          "| bicubic frames/s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    gains = {}
    for factor in (int(f) for f in args.factors.split(",") if f):
        for name, high in sets.items():
            size = (high.shape[1] // factor * factor, high.shape[2] // factor * factor)
            high = high[:, : size[0], : size[1]]
            low = F.avg_pool2d(high.permute(0, 3, 1, 2), factor).permute(0, 2, 3, 1)
            bicubic, t_bicubic = timed(cv2_bicubic, low, size)
            lanczos = upscale(low, size=size, sharpen=0)
            ours, t_ours = timed(upscale, low, size=size, device=args.device)
            per_frame = [psnr(ours[i], high[i]) - psnr(bicubic[i], high[i]) for i in range(high.shape[0])]
            gain = psnr(ours, high) - psnr(bicubic, high)
            gains.setdefault(factor, []).append(gain)
            print(
                f"| x{factor} | {name} x{high.shape[0]} | {psnr(bicubic, high):.2f} | {psnr(lanczos, high):.2f} | "
                f"{psnr(ours, high):.2f} | {gain:+.2f} ({min(per_frame):+.2f}) | "
                f"{high.shape[0] / t_ours:.0f} | {high.shape[0] / t_bicubic:.0f} |",
                flush=True,
            )
    print()
    for factor, values in gains.items():
        print(f"x{factor}: mean PSNR gain over bicubic {sum(values) / len(values):+.2f} dB")

    if args.speed:
        low_size, factor = (int(v) for v in args.speed.split(","))
        low = torch.rand(4, low_size, low_size, 3)
        out, seconds = timed(upscale, low, scale=factor, device=args.device)
        _, seconds_bicubic = timed(cv2_bicubic, low, tuple(out.shape[1:3]))
        print(
            f"speed {low_size}->{out.shape[1]} px (x{factor}): ours {low.shape[0] / seconds:.2f} frames/s, "
            f"OpenCV bicubic {low.shape[0] / seconds_bicubic:.1f} frames/s"
        )


if __name__ == "__main__":
    main()
