"""Benchmark: attention while training on the CPU, the explicit math vs PyTorch's fused SDPA kernel.

With autograd recording, ``cuda_ext.dispatch.attention(backend="auto")`` on CPU tensors runs the explicit
math (two matmuls and a softmax) when the keys are few (``MATH_MAX_KEYS``) and SDPA otherwise. This
measures that choice: forward + backward of each attention shape the embedded recipes train (and longer
ones, past the threshold), then one whole training step of the makeavideo base (its clip batch with the
mixed images, on random latents and text features of the real shapes) with ``attention_backend`` "auto"
against "sdpa". Repetitions are interleaved so background load hits both alike; prints medians and the
ratio auto / sdpa (below 1: the dispatcher's choice is faster).

    python bench/attention_training.py [--threads 2 --reps 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch
import torch.nn.functional as F
from package import ensure_package  # noqa: E402

ensure_package()

from videocascade.cuda_ext.dispatch import MATH_MAX_KEYS, math_attention  # noqa: E402

# name: (batch, heads, queries, keys, head_dim), as the embedded recipes' training steps call attention.
SHAPES = {
    "makeavideo temporal (9 frames)": (512, 3, 9, 9, 32),
    "makeavideo spatial (8x8 patches)": (72, 3, 64, 64, 32),
    "makeavideo cross (40 text tokens)": (8, 3, 576, 40, 32),
    "128 keys": (8, 4, 128, 128, 32),
    "256 keys": (8, 4, 256, 256, 32),
    "sora full 3D (5x8x8)": (12, 4, 320, 320, 32),
    "longer: 1024 keys": (2, 4, 1024, 1024, 32),
}


def _forward_backward(fn, inputs: tuple[torch.Tensor, ...]) -> None:
    out = fn(*inputs)
    out.square().sum().backward()


def _interleaved(candidates: dict[str, Callable[[], None]], reps: int, inner: int) -> dict[str, float]:
    """Median seconds per call of each candidate, repetitions taken in turn."""
    times = {name: [] for name in candidates}
    for fn in candidates.values():  # warm-up
        fn()
    for _ in range(reps):
        for name, fn in candidates.items():
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            times[name].append((time.perf_counter() - start) / inner)
    return {name: statistics.median(values) for name, values in times.items()}


def bench_shapes(reps: int) -> None:
    print("| attention call (forward + backward) | keys | math ms | SDPA ms | math / SDPA | auto takes |")
    print("|---|---|---|---|---|---|")
    for name, (b, h, lq, lk, d) in SHAPES.items():
        inputs = tuple(torch.randn(b, h, n, d, requires_grad=True) for n in (lq, lk, lk))
        result = _interleaved(
            {
                "math": partial(_forward_backward, math_attention, inputs),
                "sdpa": partial(_forward_backward, F.scaled_dot_product_attention, inputs),
            },
            reps,
            inner=3,
        )
        chosen = "math" if lk <= MATH_MAX_KEYS else "sdpa"
        print(
            f"| {name} | {lk} | {result['math'] * 1e3:.2f} | {result['sdpa'] * 1e3:.2f} | "
            f"{result['math'] / result['sdpa']:.2f} | {chosen} |"
        )


def bench_training_step(reps: int) -> None:
    from videocascade.models.dit import VideoDiT
    from videocascade.sprites.train_dit import diffusion_loss, makeavideo_recipe

    recipe = makeavideo_recipe()
    recipe.dit.text_dim = 128
    torch.manual_seed(0)
    dit = VideoDiT(recipe.dit)
    optimizer = torch.optim.AdamW(dit.parameters(), lr=1e-4)
    clips = torch.randn(recipe.clip_batch, 4, recipe.frames, 16, 16)
    images = torch.randn(recipe.mixed_images, 4, 1, 16, 16)
    context = torch.randn(recipe.clip_batch, 40, 128)
    mask = torch.ones(recipe.clip_batch, 40, dtype=torch.bool)
    mask[:, 30:] = False  # padded captions, as in a real batch

    def step(backend: str) -> None:
        dit.attention_backend = backend
        generator = torch.Generator().manual_seed(0)
        loss = diffusion_loss(dit, recipe.sampler, clips, context, mask, generator, motion_weight=3.0)
        loss = loss + diffusion_loss(dit, recipe.sampler, images, context, mask, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()

    result = _interleaved({"auto": lambda: step("auto"), "sdpa": lambda: step("sdpa")}, reps, inner=2)
    print()
    print("makeavideo training step (8 clips of 9 x 16 x 16 latents + 8 images, forward + backward):")
    print(f"  attention auto (math on these short sequences): {result['auto'] * 1e3:.0f} ms")
    print(f"  attention sdpa (fused CPU kernel):              {result['sdpa'] * 1e3:.0f} ms")
    print(f"  ratio auto / sdpa: {result['auto'] / result['sdpa']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print()
    bench_shapes(args.reps)
    bench_training_step(args.reps)


if __name__ == "__main__":
    main()
