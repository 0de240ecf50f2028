"""Benchmark: Wan 2.1 VAE decode (real widths, random weights) — our streaming decode vs diffusers'.

Prints, from one run (each case in a fresh subprocess, see ``bench/vae_memory.py`` for how peak memory
is measured, including the fixed glibc mmap threshold; figures are peak RSS above the RSS just before
the decode, output video included; times come from one more subprocess with glibc's defaults):

* our streaming decode peak, 17 vs 81 frames (goal: ratio <= 1.1);
* ours vs ``diffusers.AutoencoderKLWan.decode`` (untiled, its own per-latent-frame cache) at 49 frames:
  peak ratio (goal <= 0.3), time ratio, and the max abs difference of the two videos.

    python bench/wan_vae.py [--size 64 --chunk 1 --threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vae_memory import MALLOC_MODES, MB, peak_since_window, run_case, start_peak_window  # noqa: E402


def _make_weights(path: str) -> None:
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    reference = AutoencoderKLWan()  # Wan 2.1's default config: 127M parameters
    with torch.no_grad():
        for name, p in reference.named_parameters():
            if name.endswith("gamma"):
                p.uniform_(0.8, 1.2)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, path)


def _decoders(impls: list[str], weights: str, chunk: int, tile: int = 0) -> dict:
    decoders = {}
    if "ours" in impls:
        from videocascade.vae import decode_video, load_vae

        vae, family = load_vae(weights)
        assert family == "wan2.1"
        decoders["ours"] = lambda latent: decode_video(vae, latent, chunk)
        decoders["cache_mb"] = lambda latent: _cache_mb(vae, latent, chunk)
        decoders["ours-tiled"] = lambda latent: decode_video(
            vae, latent, chunk, tile=(tile, tile), tile_overlap=tile // 2
        )
    if "diffusers" in impls:
        from diffusers import AutoencoderKLWan
        from safetensors.torch import load_file

        with torch.device("meta"):
            reference = AutoencoderKLWan()
        reference.load_state_dict(load_file(weights), assign=True)
        reference.eval()

        def decode(latent: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return reference.decode(latent).sample

        decoders["diffusers"] = decode
    return decoders


def _cache_mb(vae: torch.nn.Module, z: torch.Tensor, chunk: int) -> float:
    """Size of the causal-conv cache our decoder carries between chunks (diffusers' feat_cache holds
    the same frames): a fixed cost that neither implementation can go below."""
    from videocascade.vae.causal_conv import StreamCache
    from videocascade.vae.streaming import iter_decode

    cache = StreamCache()
    for _ in iter_decode(vae, z[:, :, :2], chunk, cache=cache):
        pass
    return cache.nbytes() / MB


def case(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    z = torch.load(args.latent)
    if args.impl == "timing":  # both decoders, interleaved, so background load hits both alike
        decoders = _decoders(["ours", "diffusers"], args.weights, args.chunk)
        cache_mb = decoders.pop("cache_mb")(z)
        decoders.pop("ours-tiled")
        times: dict[str, list[float]] = {name: [] for name in decoders}
        videos = {}
        for _ in range(args.reps):
            for name, decode in decoders.items():
                start = time.perf_counter()
                videos[name] = decode(z)
                times[name].append(time.perf_counter() - start)
        ours, ref = videos["ours"], videos["diffusers"]
        print(json.dumps({
            "seconds": {name: statistics.median(t) for name, t in times.items()},
            "max_abs_diff": (ours - ref).abs().max().item(),
            "unclamped_fraction": ref.abs().lt(1).float().mean().item(),
            "cache_mb": cache_mb,
        }))  # fmt: skip
        return
    decode = _decoders([args.impl.split("-")[0]], args.weights, args.chunk, args.tile)[args.impl]
    decode(z[:, :, :2, :2, :2])  # warm-up: library init, allocator pools
    baseline, reset = start_peak_window()
    start = time.perf_counter()
    video = decode(z)
    seconds = time.perf_counter() - start
    peak = peak_since_window(reset)
    out_mb = video.numel() * video.element_size() / MB
    print(json.dumps({"frames": video.shape[2], "peak_mb": (peak - baseline) / MB, "output_mb": out_mb,
                      "seconds": seconds, "hwm_reset": reset}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="output height = width (pixels, multiple of 8)")
    parser.add_argument("--chunk", type=int, default=1, help="our decode: latent frames per chunk")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per case (same for both)")
    parser.add_argument(
        "--tile", type=int, default=32, help="also measure ours with tiles of this many px (0: no)"
    )
    parser.add_argument("--reps", type=int, default=2, help="interleaved timing repetitions at 49 frames")
    parser.add_argument(
        "--malloc", choices=sorted(MALLOC_MODES), default="fixed", help="glibc settings, memory cases"
    )
    for hidden in ("--impl", "--weights", "--latent"):
        parser.add_argument(hidden, default="", help=argparse.SUPPRESS)
    parser.add_argument("--case", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        case(args)
        return

    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "wan21_vae_random.safetensors")
        _make_weights(weights)
        torch.manual_seed(1)
        latent = args.size // 8
        z81 = torch.randn(1, 16, 21, latent, latent)
        paths = {}
        for frames in (17, 49, 81):
            paths[frames] = os.path.join(tmp, f"z{frames}.pt")
            torch.save(z81[:, :, : 1 + (frames - 1) // 4].clone(), paths[frames])
        common = ["--case", "--weights", weights, "--chunk", str(args.chunk), "--threads", str(args.threads)]
        common += ["--tile", str(args.tile)]

        def run(impl: str, frames: int) -> dict:
            return run_case(__file__, [*common, "--impl", impl, "--latent", paths[frames]], args.malloc)

        ours17, ours81, ours49, ref49 = (
            run("ours", 17),
            run("ours", 81),
            run("ours", 49),
            run("diffusers", 49),
        )
        tiled49 = run("ours-tiled", 49) if args.tile else None
        timing = run_case(  # glibc defaults: the fixed mmap threshold would slow both down
            __file__,
            [*common, "--impl", "timing", "--latent", paths[49], "--reps", str(args.reps)],
            "default",
        )

    print(f"Wan 2.1 VAE decode, random weights, {args.size}x{args.size}, {args.threads} thread(s), CPU")
    print(
        f"peak = peak RSS during the decode minus RSS just before it (output video included), "
        f"malloc {args.malloc}"
    )
    print(f"{'case':<24} {'peak MB':>9} {'output MB':>10} {'seconds':>8}")
    rows = [("ours, 17 frames", ours17), ("ours, 81 frames", ours81), ("ours, 49 frames", ours49),
            ("diffusers, 49 frames", ref49)]  # fmt: skip
    for name, r in rows:
        print(f"{name:<24} {r['peak_mb']:>9.1f} {r['output_mb']:>10.1f} {r['seconds']:>8.1f}")
    seconds = timing["seconds"]
    print(f"ours peak 81 / 17 frames:         {ours81['peak_mb'] / ours17['peak_mb']:.3f} (goal <= 1.1)")
    print(f"peak ours / diffusers, 49 frames: {ours49['peak_mb'] / ref49['peak_mb']:.3f} (goal <= 0.3)")
    print(
        f"time ours / diffusers, 49 frames: {seconds['ours'] / seconds['diffusers']:.3f} "
        f"(median of {args.reps} interleaved runs: {seconds['ours']:.1f} s vs {seconds['diffusers']:.1f} s)"
    )
    print(
        f"max abs difference of the videos: {timing['max_abs_diff']:.2e} "
        f"({timing['unclamped_fraction']:.0%} of diffusers' pixels inside (-1, 1))"
    )
    print(
        f"causal cache carried between chunks (same frames as diffusers' feat_cache): {timing['cache_mb']:.1f} MB"
    )
    if tiled49 is not None:
        print(
            f"ours with {args.tile} px tiles (overlap {args.tile // 2}), 49 frames: peak {tiled49['peak_mb']:.1f} MB, "
            f"{tiled49['peak_mb'] / ref49['peak_mb']:.3f} x diffusers', {tiled49['seconds']:.1f} s "
            "(tiles change the result near seams: not compared for equality)"
        )
    if not all(r["hwm_reset"] for _, r in rows):
        print("note: /proc/self/clear_refs not writable; peaks include model setup (ru_maxrss)")


if __name__ == "__main__":
    main()
