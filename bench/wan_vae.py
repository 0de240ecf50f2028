"""Benchmark: Wan 2.1 VAE decode (real widths, random weights) — our exact-tiled streaming decode vs diffusers'.

Prints, from one run (each memory case in a fresh subprocess, see ``bench/vae_memory.py`` for how peak
memory is measured, including the fixed glibc mmap threshold; peak = peak RSS during the decode minus
RSS just before it, output video included; working = peak minus the output video; times come from one
more subprocess with glibc's defaults):

* our decode in exact spatial tiles (``tile_mode="exact"``: each tile reads a halo of real neighbouring
  data and streams through all of time with its own causal cache), 17 vs 81 frames: working-memory ratio
  (goal <= 1.1; the output video itself grows with the frames, so the raw peak ratio is printed too);
* the same at 49 frames vs ``diffusers.AutoencoderKLWan.decode`` (untiled, its own per-latent-frame
  cache): peak ratio (goal <= 0.3), the max abs difference of the two videos (goal: equal up to float
  rounding) and the time ratio;
* optionally (``--untiled``) our untiled streaming decode at 49 frames, for reference.

    python bench/wan_vae.py [--size 160x160 --tile 80 --chunk 1 --threads 1 --reps 1 --untiled]
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


def _decoders(impls: list[str], weights: str, chunk: int, tile: int) -> dict:
    decoders = {}
    if {"ours", "ours-exact"} & set(impls):
        from videocascade.vae import decode_video, load_vae

        vae, family = load_vae(weights)
        assert family == "wan2.1"
        decoders["ours"] = lambda latent: decode_video(vae, latent, chunk)
        decoders["ours-exact"] = lambda latent: decode_video(
            vae, latent, chunk, tile=(tile, tile), tile_mode="exact"
        )
        decoders["cache_mb"] = lambda latent: _cache_mb(vae, latent, chunk, tile)
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
    return {name: decoders[name] for name in [*impls, "cache_mb"] if name in decoders}


def _cache_mb(vae: torch.nn.Module, z: torch.Tensor, chunk: int, tile: int) -> dict:
    """Causal-conv cache carried between chunks: the whole frame's (untiled; diffusers' feat_cache holds
    the same frames) and the largest exact tile's (the only one alive at a time)."""
    from videocascade.vae.causal_conv import StreamCache
    from videocascade.vae.exact_tiling import iter_decode_window, tile_windows

    sizes = {}
    largest = max(
        tile_windows(tuple(z.shape[-2:]), (tile, tile), vae.spatial_factor),
        key=lambda w: (w[0][1] - w[0][0]) * (w[1][1] - w[1][0]),
    )
    for name, window in (("untiled", None), ("tile", largest)):
        cache = StreamCache()
        for _ in iter_decode_window(vae, z[:, :, :2], window, chunk, cache=cache):
            pass
        sizes[name] = cache.nbytes() / MB
    return sizes


def case(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    z = torch.load(args.latent, weights_only=True)
    if args.impl == "timing":  # the decoders, interleaved, so background load hits them alike
        impls = ["ours-exact", "diffusers", *(["ours"] if args.untiled else [])]
        decoders = _decoders(impls, args.weights, args.chunk, args.tile)
        cache_mb = decoders.pop("cache_mb")(z)
        times: dict[str, list[float]] = {name: [] for name in decoders}
        for _ in range(args.reps):
            for name, decode in decoders.items():
                start = time.perf_counter()
                decode(z)
                times[name].append(time.perf_counter() - start)
        print(json.dumps({"seconds": {name: statistics.median(t) for name, t in times.items()},
                          "cache_mb": cache_mb}))  # fmt: skip
        return
    decode = _decoders([args.impl], args.weights, args.chunk, args.tile)[args.impl]
    decode(z[:, :, :2, :2, :2])  # warm-up: library init, allocator pools
    baseline, reset = start_peak_window()
    start = time.perf_counter()
    video = decode(z)
    seconds = time.perf_counter() - start
    peak = peak_since_window(reset)
    if args.save:  # after the measurement: the parent compares the videos
        torch.save(video, args.save)
    out_mb = video.numel() * video.element_size() / MB
    print(json.dumps({"frames": video.shape[2], "peak_mb": (peak - baseline) / MB, "output_mb": out_mb,
                      "seconds": seconds, "hwm_reset": reset}))  # fmt: skip


def _size(text: str) -> tuple[int, int]:
    height, _, width = text.partition("x")
    size = (int(height), int(width or height))
    if size[0] % 8 or size[1] % 8:
        raise argparse.ArgumentTypeError(
            f"--size must be multiples of 8 (the VAE's spatial factor), got {text}"
        )
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=_size, default=(160, 160), help="output HxW (or H for a square)")
    parser.add_argument(
        "--tile", type=int, default=80, help="our decode: exact tiles of at most this many px"
    )
    parser.add_argument("--chunk", type=int, default=1, help="our decode: latent frames per chunk")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per case (same for both)")
    parser.add_argument("--reps", type=int, default=1, help="interleaved timing repetitions at 49 frames")
    parser.add_argument("--untiled", action="store_true", help="also measure our untiled streaming decode")
    parser.add_argument(
        "--malloc", choices=sorted(MALLOC_MODES), default="fixed", help="glibc settings, memory cases"
    )
    for hidden in ("--impl", "--weights", "--latent", "--save"):
        parser.add_argument(hidden, default="", help=argparse.SUPPRESS)
    parser.add_argument("--case", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        case(args)
        return

    height, width = args.size
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "wan21_vae_random.safetensors")
        _make_weights(weights)
        torch.manual_seed(1)
        z81 = torch.randn(1, 16, 21, height // 8, width // 8)
        paths = {}
        for frames in (17, 49, 81):
            paths[frames] = os.path.join(tmp, f"z{frames}.pt")
            torch.save(z81[:, :, : 1 + (frames - 1) // 4].clone(), paths[frames])
        common = ["--case", "--weights", weights, "--chunk", str(args.chunk), "--threads", str(args.threads)]
        common += ["--tile", str(args.tile), *(["--untiled"] if args.untiled else [])]

        def run(impl: str, frames: int) -> dict:
            save = os.path.join(tmp, f"{impl}{frames}.video.pt")
            result = run_case(
                __file__, [*common, "--impl", impl, "--latent", paths[frames], "--save", save], args.malloc
            )
            return {**result, "video": save}

        exact17, exact81, exact49, ref49 = (
            run("ours-exact", 17),
            run("ours-exact", 81),
            run("ours-exact", 49),
            run("diffusers", 49),
        )
        untiled49 = run("ours", 49) if args.untiled else None
        reference = torch.load(ref49["video"], weights_only=True)
        for r in (exact49, untiled49):
            if r is not None:
                r["max_abs_diff"] = (torch.load(r["video"], weights_only=True) - reference).abs().max().item()
        inside = reference.abs().lt(1).float().mean().item()
        del reference
        timing = run_case(  # glibc defaults: the fixed mmap threshold would slow both down
            __file__,
            [*common, "--impl", "timing", "--latent", paths[49], "--reps", str(args.reps)],
            "default",
        )

    for r in (exact17, exact81, exact49, ref49, untiled49):
        if r is not None:
            r["working_mb"] = r["peak_mb"] - r["output_mb"]
    print(
        f"Wan 2.1 VAE decode, random weights, {height}x{width}, {args.threads} thread(s), CPU; ours: exact "
        f"tiles of <= {args.tile} px, chunks of {args.chunk} latent frame(s)"
    )
    print(
        f"peak = peak RSS during the decode minus RSS just before it, malloc {args.malloc}; working = peak - output"
    )
    print(f"{'case':<30} {'peak MB':>9} {'output MB':>10} {'working MB':>11} {'seconds':>8}")
    rows = [("ours exact tiles, 17 frames", exact17), ("ours exact tiles, 81 frames", exact81),
            ("ours exact tiles, 49 frames", exact49), ("diffusers, 49 frames", ref49)]  # fmt: skip
    if untiled49 is not None:
        rows.append(("ours untiled, 49 frames", untiled49))
    for name, r in rows:
        print(
            f"{name:<30} {r['peak_mb']:>9.1f} {r['output_mb']:>10.1f} {r['working_mb']:>11.1f} "
            f"{r['seconds']:>8.1f}"
        )
    print(
        f"ours working memory 81 / 17 frames: {exact81['working_mb'] / exact17['working_mb']:.3f} (goal <= 1.1; "
        f"peak incl. the growing output: {exact81['peak_mb'] / exact17['peak_mb']:.3f})"
    )
    print(
        f"peak ours / diffusers, 49 frames:  {exact49['peak_mb'] / ref49['peak_mb']:.3f} (goal <= 0.3; "
        f"working memory: {exact49['working_mb'] / ref49['working_mb']:.3f})"
    )
    seconds = timing["seconds"]
    print(
        f"time ours / diffusers, 49 frames:  {seconds['ours-exact'] / seconds['diffusers']:.3f} (median of "
        f"{args.reps} interleaved run(s), glibc defaults: {seconds['ours-exact']:.1f} s vs "
        f"{seconds['diffusers']:.1f} s)"
    )
    print(
        f"max abs difference of the videos, ours exact tiles vs diffusers: {exact49['max_abs_diff']:.2e} "
        f"({inside:.0%} of diffusers' pixels inside (-1, 1))"
    )
    cache = timing["cache_mb"]
    print(
        f"causal cache carried between chunks: {cache['untiled']:.1f} MB for the whole frame (the frames "
        f"diffusers' feat_cache holds), {cache['tile']:.1f} MB for the largest tile"
    )
    if untiled49 is not None:
        print(
            f"ours untiled, 49 frames: peak {untiled49['peak_mb'] / ref49['peak_mb']:.3f} x diffusers', "
            f"time {seconds['ours'] / seconds['diffusers']:.3f} x, max abs diff {untiled49['max_abs_diff']:.2e}"
        )
    if not all(r["hwm_reset"] for _, r in rows):
        print("note: /proc/self/clear_refs not writable; peaks include model setup (ru_maxrss)")


if __name__ == "__main__":
    main()
