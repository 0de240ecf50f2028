"""Benchmark: peak working memory of our streaming VAE decode, 17 vs 65 frames (goal: ratio <= 1.1).

Each case runs in a fresh subprocess. Just before the decode the process frees what it can (gc,
``malloc_trim``) and resets its RSS high-water mark (``/proc/self/clear_refs`` = 5; falls back to
``ru_maxrss`` where that is not allowed), so the figure is

    working memory = peak RSS during decode - RSS before decode - bytes of the output video

i.e. what the decode needs above the model, the input latent and the output video it returns (the
causal conv cache carried between chunks included). By default each case runs with a fixed glibc mmap
threshold so that RSS follows live memory (``--malloc default`` measures glibc's defaults, which keep
freed blocks resident and vary by tens of MB between runs).
The config (base width 64, 4x4x4 compression) and the resolution make activations dominate.

``--tile N`` decodes in exact spatial tiles of at most N px (``tile_mode="exact"``, same result).

    python bench/vae_memory.py [--size 192 --chunk 1 --threads 1 --tile 0]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import re
import resource
import subprocess
import sys
import time

import torch

MB = 1024 * 1024


# -- measuring (also used by bench/wan_vae.py) ---------------------------------------------------------------
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{field}:\s+(\d+)", f.read()).group(1))


def start_peak_window() -> tuple[int, bool]:
    """Free what can be freed, reset the high-water mark; returns (baseline RSS bytes, reset worked)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kb("VmRSS") * 1024, True
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, False


def peak_since_window(reset: bool) -> int:
    """Peak RSS bytes since :func:`start_peak_window`.

    With the reset, VmHWM; not ru_maxrss, which never drops below the RSS the process had when it was
    forked (the kernel carries the parent's high-water mark across exec).
    """
    if reset:
        return _status_kb("VmHWM") * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# glibc keeps freed heap blocks resident (up to 32 MB each once its dynamic mmap threshold has grown), so
# with its defaults the peak RSS of the same decode varies by tens of MB from run to run. A fixed mmap
# threshold returns every block >= 64 KiB to the system on free: RSS then follows live memory.
MALLOC_MODES = {"fixed": {"MALLOC_MMAP_THRESHOLD_": "65536"}, "default": {}}


def run_case(script: str, args: list[str], malloc: str = "fixed") -> dict:
    """Run ``script --case ...`` in a fresh interpreter and return the JSON it prints last."""
    env = {**os.environ, **MALLOC_MODES[malloc]}
    command = [sys.executable, script, *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"case {args} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- this benchmark -----------------------------------------------------------------------------------------
def _config():
    from videocascade.vae import vae_preset

    # wide enough at full resolution that activations, not weights, set the peak
    return vae_preset("sprites-t4", base_channels=64, num_res_blocks=2, latent_channels=8)


def case(args: argparse.Namespace) -> None:
    from videocascade.vae import CausalVAE, decode_video

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    vae = CausalVAE(_config()).eval()
    f, tf = vae.spatial_factor, vae.temporal_factor
    latent_frames = 1 + (args.frames - 1) // tf
    z = torch.randn(1, vae.latent_channels, latent_frames, args.size // f, args.size // f)
    tile = dict(tile=(args.tile, args.tile), tile_mode="exact") if args.tile else {}
    decode_video(vae, z[:, :, :2, :4, :4], args.chunk, **tile)  # warm-up: library init, allocator pools
    baseline, reset = start_peak_window()
    start = time.perf_counter()
    video = decode_video(vae, z, args.chunk, **tile)
    seconds = time.perf_counter() - start
    peak = peak_since_window(reset)
    out_bytes = video.numel() * video.element_size()
    print(
        json.dumps(
            {
                "frames": video.shape[2],
                "peak_above_baseline_mb": (peak - baseline) / MB,
                "output_mb": out_bytes / MB,
                "working_mb": (peak - baseline - out_bytes) / MB,
                "seconds": seconds,
                "hwm_reset": reset,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=192, help="output height = width (pixels)")
    parser.add_argument("--chunk", type=int, default=1, help="latent frames per decode chunk")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per case")
    parser.add_argument(
        "--tile", type=int, default=0, help="exact spatial tiles of at most this many px (0: none)"
    )
    parser.add_argument(
        "--malloc", choices=sorted(MALLOC_MODES), default="fixed", help="glibc settings per case"
    )
    parser.add_argument("--case", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=int, default=17, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        case(args)
        return
    common = ["--case", "--size", str(args.size), "--chunk", str(args.chunk), "--threads", str(args.threads)]
    common += ["--tile", str(args.tile)]
    results = {n: run_case(__file__, [*common, "--frames", str(n)], args.malloc) for n in (17, 65)}
    config = _config()
    print(
        f"streaming decode, {config.family} preset widened (base {config.base_channels}, "
        f"{config.num_res_blocks} res blocks), {args.size}x{args.size}, chunk {args.chunk} latent frame(s), "
        f"{args.threads} thread(s), malloc {args.malloc}, "
        + (f"exact tiles of <= {args.tile} px" if args.tile else "untiled")
    )
    print(f"{'frames':>6} {'peak-base MB':>13} {'output MB':>10} {'working MB':>11} {'seconds':>8}")
    for r in results.values():
        print(
            f"{r['frames']:>6} {r['peak_above_baseline_mb']:>13.1f} {r['output_mb']:>10.1f} "
            f"{r['working_mb']:>11.1f} {r['seconds']:>8.1f}"
        )
    ratio = results[65]["working_mb"] / results[17]["working_mb"]
    print(f"working memory 65 / 17 frames: {ratio:.3f} (goal <= 1.1)")
    if not all(r["hwm_reset"] for r in results.values()):
        print("note: /proc/self/clear_refs not writable; peaks include model setup (ru_maxrss)")


if __name__ == "__main__":
    main()
