"""Benchmark: attention backends at video-DiT shapes: TFLOP/s, speed vs SDPA, accuracy vs an fp32 reference.

Backends: our compiled kernel (default tile shape and every variant), PyTorch SDPA as it picks by itself and
forced to each of its flash / cuDNN / efficient kernels, sageattention when importable, and our dispatcher's
``auto`` (which adds the non-finite check). Shapes: CogVideoX-2b-like (B=1, 30 heads, head_dim 64,
L=17776) and Wan-1.3B-like (B=1, 12 heads, head_dim 128, L=32760), in bf16 and fp16.

Accuracy: cosine similarity and relative L1 of each output against a float32 reference (TF32 off) computed
chunk by chunk on the first --ref-heads heads. Writes ``bench/results/attention_<gpu>_<time>.{md,json}``;
the JSON's ``preferences`` (fastest accurate dispatcher backend per shape) loads with
``cuda_ext.dispatch.load_preferences`` or ``VIDEOCASCADE_ATTENTION_PREFERENCES=<file>``.

    python bench/attention.py            # everything, about two minutes on an H100 (first run compiles)
    python bench/attention.py --quick    # bf16, default tile shapes only
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch
import torch.nn.functional as F
from package import ensure_package  # noqa: E402

SHAPES = {
    # name: (batch, heads, q_len, kv_len, head_dim)
    "cogvideox-2b": (1, 30, 17776, 17776, 64),  # 13 x 30 x 45 video tokens + 226 text tokens
    "wan2.1-1.3b": (1, 12, 32760, 32760, 128),  # 21 x 30 x 52 video tokens
}
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
ACCURATE_COSINE = 0.999  # a backend below this is not put in the preference table, however fast


@dataclass
class Row:
    shape: str
    dtype: str
    backend: str
    ms: float | None = None
    tflops: float | None = None
    speedup_vs_sdpa: float | None = None
    cosine: float | None = None
    rel_l1: float | None = None
    max_abs: float | None = None
    note: str = ""


def _median_ms(fn, warmup: int, reps: int) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    events = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        events.append((start, end))
    torch.cuda.synchronize()
    return statistics.median(start.elapsed_time(end) for start, end in events)


def _reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, chunk: int = 2048
) -> torch.Tensor:
    """float32 softmax attention of the first `heads` heads, chunked over queries to bound memory."""
    q, k, v = q[:, :heads].float(), k[:, :heads].float(), v[:, :heads].float()
    out = torch.empty_like(q)
    scale = q.shape[-1] ** -0.5
    for start in range(0, q.shape[2], chunk):
        scores = q[:, :, start : start + chunk] @ k.transpose(-1, -2) * scale
        out[:, :, start : start + chunk] = torch.softmax(scores, dim=-1) @ v
    return out


def _accuracy(out: torch.Tensor, ref: torch.Tensor) -> tuple[float, float, float]:
    diff = out[:, : ref.shape[1]].float() - ref
    cosine = F.cosine_similarity(out[:, : ref.shape[1]].float().flatten(), ref.flatten(), dim=0).item()
    return cosine, (diff.abs().sum() / ref.abs().sum()).item(), diff.abs().max().item()


def _sdpa_kernels() -> dict[str, object]:
    from torch.nn.attention import SDPBackend

    names = {
        "sdpa[flash]": "FLASH_ATTENTION",
        "sdpa[cudnn]": "CUDNN_ATTENTION",
        "sdpa[efficient]": "EFFICIENT_ATTENTION",
    }
    return {label: getattr(SDPBackend, attr) for label, attr in names.items() if hasattr(SDPBackend, attr)}


def _backends(extension, sage, dtype_name: str, head_dim: int, all_variants: bool) -> dict[str, object]:
    """label -> callable(q, k, v) (or a string saying why the backend is missing)."""
    from torch.nn.attention import sdpa_kernel
    from videocascade.cuda_ext.dispatch import attention

    backends: dict[str, object] = {"sdpa": lambda q, k, v: F.scaled_dot_product_attention(q, k, v)}
    for label, kernel in _sdpa_kernels().items():

        def forced(q, k, v, kernel=kernel):
            with sdpa_kernel(kernel):
                return F.scaled_dot_product_attention(q, k, v)

        backends[label] = forced
    if isinstance(extension, str):
        backends["compiled"] = extension
    else:
        scale = head_dim**-0.5
        default = extension.default_variant(head_dim)
        names = extension.variant_names()
        backends[f"compiled[{names[default - 1]}] (default)"] = lambda q, k, v: extension.forward(
            q, k, v, None, scale, 0
        )
        if all_variants:
            for index, name in enumerate(names, start=1):
                if index != default:
                    backends[f"compiled[{name}]"] = lambda q, k, v, index=index: extension.forward(
                        q, k, v, None, scale, index
                    )
    if isinstance(sage, str):
        backends["sage"] = sage
    else:
        backends["sage"] = lambda q, k, v: sage.sageattn(q, k, v, tensor_layout="HND", is_causal=False)
    backends["auto (dispatcher)"] = lambda q, k, v: attention(q, k, v, backend="auto")
    return backends


def _load_extension():
    from videocascade.cuda_ext import build

    try:
        started = time.perf_counter()
        extension = build.load_extension()
        print(f"compiled kernel ready in {time.perf_counter() - started:.1f} s")
        return extension
    except build.ExtensionUnavailable as exc:
        print(f"compiled kernel unavailable: {exc}")
        return f"unavailable: {exc}"


def _load_sage():
    try:
        import sageattention

        return sageattention
    except Exception as exc:  # not installed, or installed but broken
        return f"unavailable: {type(exc).__name__}: {exc}"


def _markdown(rows: list[Row], header: str) -> str:
    lines = [
        header,
        "",
        "| shape | dtype | backend | ms | TFLOP/s | vs sdpa | cosine | rel L1 | max abs | note |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]

    def fmt(value, spec, suffix=""):
        return "" if value is None else format(value, spec) + suffix

    for r in rows:
        lines.append(
            f"| {r.shape} | {r.dtype} | {r.backend} | {fmt(r.ms, '.2f')} | {fmt(r.tflops, '.1f')} | "
            f"{fmt(r.speedup_vs_sdpa, '.2f', 'x')} | {fmt(r.cosine, '.6f')} | {fmt(r.rel_l1, '.2e')} | "
            f"{fmt(r.max_abs, '.2e')} | {r.note} |"
        )
    return "\n".join(lines) + "\n"


def _preferences(rows: list[Row], device: str) -> list[dict]:
    """Per shape and dtype: the dispatcher backends that were accurate, fastest first, SDPA last-resort."""
    table = []
    for (shape, dtype_name), group in _group(rows).items():
        batch, heads, q_len, kv_len, head_dim = SHAPES[shape]
        timed = {}
        for r in group:
            if r.ms is None or (r.cosine is not None and r.cosine < ACCURATE_COSINE):
                continue
            if r.backend.endswith("(default)"):
                timed["compiled"] = r.ms
            elif r.backend in ("sage", "sdpa"):
                timed[r.backend] = r.ms
        order = sorted(timed, key=timed.get)
        table.append(
            {
                "device": device,
                "dtype": dtype_name,
                "head_dim": head_dim,
                "q_len": q_len,
                "kv_len": kv_len,
                "order": order,
            }
        )
    return table


def _group(rows: list[Row]) -> dict[tuple[str, str], list[Row]]:
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.shape, r.dtype), []).append(r)
    return groups


def _run_group(shape: str, dtype_name: str, extension, sage, args) -> list[Row]:
    """Time and check every backend on one shape and dtype (fresh random inputs, one fp32 reference)."""
    batch, heads, q_len, kv_len, head_dim = SHAPES[shape]
    flops = 4 * batch * heads * q_len * kv_len * head_dim
    dtype = DTYPES[dtype_name]
    torch.manual_seed(0)
    q = torch.randn(batch, heads, q_len, head_dim, device="cuda", dtype=dtype)
    k = torch.randn(batch, heads, kv_len, head_dim, device="cuda", dtype=dtype)
    v = torch.randn(batch, heads, kv_len, head_dim, device="cuda", dtype=dtype)
    ref = _reference(q, k, v, min(args.ref_heads, heads))
    rows, sdpa_ms = [], None
    for label, fn in _backends(extension, sage, dtype_name, head_dim, not args.quick).items():
        row = Row(shape, dtype_name, label)
        rows.append(row)
        if isinstance(fn, str):
            row.note = fn
            continue
        try:
            out = fn(q, k, v)
            row.cosine, row.rel_l1, row.max_abs = _accuracy(out, ref)
            if not torch.isfinite(out).all():
                row.note = "NaN/Inf in output"
            del out
            row.ms = _median_ms(lambda fn=fn: fn(q, k, v), args.warmup, args.reps)
        except Exception as exc:  # e.g. an SDPA kernel that does not take this shape/dtype
            row.note = f"failed: {str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}"
            continue
        row.tflops = flops / (row.ms * 1e-3) / 1e12
        if label == "sdpa":
            sdpa_ms = row.ms
        row.speedup_vs_sdpa = None if sdpa_ms is None else sdpa_ms / row.ms
        print(
            f"{shape:13s} {dtype_name} {label:34s} {row.ms:8.2f} ms {row.tflops:6.1f} TFLOP/s "
            f"cos {row.cosine:.6f} relL1 {row.rel_l1:.2e} {row.note}",
            flush=True,
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="bf16 only, default tile shape only")
    parser.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated, from {list(SHAPES)}")
    parser.add_argument("--dtypes", default="bf16,fp16")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--ref-heads", type=int, default=2, help="heads checked against the fp32 reference")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()

    if not torch.cuda.is_available():
        print(
            f"bench/attention.py needs a CUDA GPU; this machine has none visible (torch {torch.__version__}, "
            f"CUDA {torch.version.cuda or 'none'}). Run it in a GPU session.",
            file=sys.stderr,
        )
        return 2

    torch.backends.cuda.matmul.allow_tf32 = False  # the reference must be real float32
    torch.backends.cudnn.allow_tf32 = False
    device_name = torch.cuda.get_device_name()
    major, minor = torch.cuda.get_device_capability()
    print(f"{device_name} (sm_{major}{minor}), torch {torch.__version__}, CUDA {torch.version.cuda}")

    ensure_package()
    extension = _load_extension()
    sage = _load_sage()
    dtypes = ["bf16"] if args.quick else args.dtypes.split(",")
    rows: list[Row] = []
    for shape in args.shapes.split(","):
        for dtype_name in dtypes:
            rows += _run_group(shape, dtype_name, extension, sage, args)
            torch.cuda.empty_cache()

    stamp = time.strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9]+", "-", device_name).strip("-").lower()
    args.out.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Attention benchmark: {device_name} (sm_{major}{minor}), torch {torch.__version__}, "
        f"CUDA {torch.version.cuda}, {time.strftime('%Y-%m-%d %H:%M')}\n\n"
        f"Median of {args.reps} runs after {args.warmup} warm-ups; TFLOP/s counts 4·B·H·Lq·Lk·D. "
        f"Accuracy on the first {args.ref_heads} heads against float32. 'vs sdpa' = SDPA's time / this time."
    )
    markdown = _markdown(rows, header)
    result = {
        "gpu": device_name,
        "capability": f"{major}.{minor}",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "shapes": {
            name: dict(zip(("batch", "heads", "q_len", "kv_len", "head_dim"), SHAPES[name]))
            for name in SHAPES
        },
        "results": [asdict(r) for r in rows],
        "preferences": _preferences(rows, device_name),
    }
    md_path = args.out / f"attention_{slug}_{stamp}.md"
    json_path = md_path.with_suffix(".json")
    md_path.write_text(markdown)
    json_path.write_text(json.dumps(result, indent=2))
    print()
    print(markdown)
    print(f"wrote {md_path} and {json_path}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
