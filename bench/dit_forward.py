"""Benchmark: our VideoDiT forward vs diffusers' WanTransformer3DModel, same config and weights (CPU by default).

Prints the median time of each (interleaved repetitions, so background load hits both alike), the ratio
ours / diffusers (goal <= 0.9) and the max abs difference of the outputs.

    python bench/dit_forward.py [--hidden 512 --heads 4 --depth 4 --frames 5 --size 48 --reps 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--ffn", type=int, default=2048)
    parser.add_argument("--text-dim", type=int, default=256)
    parser.add_argument("--text-len", type=int, default=64)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--frames", type=int, default=5, help="latent frames")
    parser.add_argument("--size", type=int, default=48, help="latent height = width")
    parser.add_argument("--batch", type=int, default=2, help="2 = a CFG pair")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = leave as is)")
    parser.add_argument("--device", default="cpu", help="cpu (the reference comparison) or cuda")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    args = parser.parse_args()

    from diffusers import WanTransformer3DModel
    from videocascade.models.dit import DiTConfig, VideoDiT
    from videocascade.models.wan_keys import DIFFUSERS, wan_to_ours

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    reference = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=args.heads,
        attention_head_dim=args.hidden // args.heads,
        in_channels=args.channels,
        out_channels=args.channels,
        text_dim=args.text_dim,
        freq_dim=256,
        ffn_dim=args.ffn,
        num_layers=args.depth,
    ).eval()
    with torch.no_grad():
        for p in reference.parameters():
            p.normal_(0, 0.05)
    config = DiTConfig(
        in_channels=args.channels,
        out_channels=args.channels,
        hidden_size=args.hidden,
        depth=args.depth,
        num_heads=args.heads,
        ffn_dim=args.ffn,
        text_dim=args.text_dim,
        frequency_dim=256,
    )
    ours = VideoDiT(config).eval()
    state = {k: v.clone() for k, v in reference.state_dict().items()}
    ours.load_state_dict(wan_to_ours(state, DIFFUSERS, args.depth))

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    if (device.type, dtype) != ("cpu", torch.float32):
        ours.to(device, dtype)
        reference.to(device, dtype)  # diffusers warns that it keeps some modules in fp32 otherwise
    b = args.batch
    x = torch.randn(b, args.channels, args.frames, args.size, args.size, device=device, dtype=dtype)
    t = torch.linspace(900.0, 100.0, b, device=device)
    context = torch.randn(b, args.text_len, args.text_dim, device=device, dtype=dtype)
    tokens = args.frames * (args.size // 2) ** 2

    def synchronize():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def run_ours():
        out = ours(x, t, context)
        synchronize()
        return out

    def run_reference():
        out = reference(x, t, context, return_dict=False)[0]
        synchronize()
        return out

    with torch.inference_mode():
        out_ours, out_ref = run_ours(), run_reference()  # warm-up (allocator, oneDNN primitives, rope cache)
        times = {"ours": [], "diffusers": []}
        ratios, cpu_ratios = [], []
        for rep in range(args.reps):
            # Each repetition times both back to back (alternating who goes first), so a loaded machine's
            # drifting background load hits both alike; the ratio within each pair is the robust figure.
            wall, cpu = {}, {}
            order = [("ours", run_ours), ("diffusers", run_reference)]
            for name, fn in order if rep % 2 == 0 else order[::-1]:
                start, start_cpu = time.perf_counter(), time.process_time()
                fn()
                wall[name] = time.perf_counter() - start
                cpu[name] = time.process_time() - start_cpu
                times[name].append(wall[name])
            ratios.append(wall["ours"] / wall["diffusers"])
            cpu_ratios.append(cpu["ours"] / cpu["diffusers"])
    print(
        f"config: hidden {args.hidden}, heads {args.heads}, depth {args.depth}, ffn {args.ffn}; "
        f"batch {b} x {tokens} video tokens, {args.text_len} text tokens; {args.device} {args.dtype}, "
        f"threads {torch.get_num_threads()}"
    )
    for name in ("ours", "diffusers"):
        runs = ", ".join(f"{s * 1e3:.0f}" for s in times[name])
        print(f"{name:9s} median {statistics.median(times[name]) * 1e3:8.1f} ms  ({runs})")
    print(
        f"ratio ours/diffusers: {statistics.median(ratios):.3f}  (median of per-repetition wall-time ratios)"
    )
    # Process CPU time leaves out the time a loaded machine keeps us descheduled (exact with --threads 1).
    print(
        f"ratio ours/diffusers: {statistics.median(cpu_ratios):.3f}  (same with process CPU time; goal <= 0.9)"
    )
    diff = (out_ours.float() - out_ref.float()).abs().max().item()
    print(f"max abs difference: {diff:.3e}  (output max {out_ref.abs().max().item():.2f})")


if __name__ == "__main__":
    main()
