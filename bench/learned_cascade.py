"""Benchmark: the learned cascade stages against the weight-free ones, on held-out sprites clips.

* TSR: ``weights/interpolator-sprites-tsr`` vs the weight-free flow interpolation (and plain blending):
  clips rendered at ``factor x`` the frame rate are subsampled, interpolated back, and the in-between
  frames compared with the rendered truth.
* SSR: ``weights/upscaler-sprites-ssr`` vs the weight-free upscaler (Lanczos + detail restoration) and
  bicubic: the same clip rendered at low and at high resolution.

Every method runs on the same clips in the same run; PSNR (dB) is the mean over clips, differences are
learned minus reference, and speed is seconds per clip (9 source frames) on this machine. The clips are
the held-out colour x shape x motion combinations, fixed (the same as in the weights' cards).

    python bench/learned_cascade.py             # 12 clips per case
    python bench/learned_cascade.py --clips 4   # quicker
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars would drown the table; set before tqdm loads

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
from package import ensure_package  # noqa: E402


def _print_table(title: str, rows: dict[str, dict[str, float]], reference: str) -> None:
    print(f"\n{title}")
    methods = [k.removesuffix("_psnr_db") for k in next(iter(rows.values())) if k.endswith("_psnr_db")]
    header = f"{'case':<16}" + "".join(f"{m + ' dB':>16}" for m in methods)
    header += f"{'learned-' + reference:>22}{'MSE ratio':>11}{'learned s':>11}{reference + ' s':>16}"
    print(header)
    for name, row in rows.items():
        diff = row[f"learned_minus_{reference}_db"]
        line = f"{name:<16}" + "".join(f"{row[m + '_psnr_db']:>16.2f}" for m in methods)
        line += f"{diff:>+22.2f}{10 ** (-diff / 10):>11.3f}"
        line += f"{row['learned_s_per_clip']:>11.3f}{row[reference + '_s_per_clip']:>16.3f}"
        print(line)


def _cascade_throughput(tsr, ssr) -> None:
    """Seconds for the Make-A-Video cascade's sizes: 9 frames of 64x64 -> x4 frames -> x2 pixels."""
    from videocascade.interpolation import interpolate
    from videocascade.models.ssr import learned_upscale
    from videocascade.models.tsr import learned_interpolate
    from videocascade.sprites.train_cascade import tsr_eval_clips
    from videocascade.upscaling import upscale

    low, _ = tsr_eval_clips(64, 4.0, 4, count=1)[0]
    timings = {}
    start = time.perf_counter()
    frames = interpolate(low, 4, "flow")
    timings["TSR weight-free (9 -> 33 frames, 64 px)"] = time.perf_counter() - start
    if tsr is not None:
        start = time.perf_counter()
        frames = learned_interpolate(tsr, low, 4)
        timings["TSR learned (9 -> 33 frames, 64 px)"] = time.perf_counter() - start
    start = time.perf_counter()
    upscale(frames, scale=2)
    timings["SSR weight-free (33 frames, 64 -> 128 px)"] = time.perf_counter() - start
    if ssr is not None:
        start = time.perf_counter()
        learned_upscale(ssr, frames, (128, 128))
        timings["SSR learned (33 frames, 64 -> 128 px)"] = time.perf_counter() - start
    print("\nThroughput at the Make-A-Video cascade's sizes")
    for name, seconds in timings.items():
        print(f"{name:<44}{seconds:>8.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=int, default=12, help="held-out clips per case")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    ensure_package()
    if args.threads:
        torch.set_num_threads(args.threads)
    from videocascade.models.ssr import load_ssr
    from videocascade.models.tsr import load_tsr
    from videocascade.runtime.model_paths import EMBEDDED_DIR
    from videocascade.sprites.train_cascade import SSR_STEM, TSR_STEM, compare_ssr, compare_tsr

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} cores")
    models = {}
    for stem, loader, compare, reference, title in (
        (TSR_STEM, load_tsr, compare_tsr, "flow", "TSR: learned vs weight-free flow (in-between frames)"),
        (SSR_STEM, load_ssr, compare_ssr, "weight_free", "SSR: learned vs weight-free upscaling"),
    ):
        path = os.path.join(EMBEDDED_DIR, f"{stem}.safetensors")
        if not os.path.isfile(path):
            print(f"\n{title}: {path} missing; train it with python -m videocascade.sprites.train")
            continue
        model, _ = loader(path)
        models[stem] = model
        start = time.perf_counter()
        rows = compare(model, args.clips)
        _print_table(f"{title} [{args.clips} held-out clips per case]", rows, reference)
        print(f"({time.perf_counter() - start:.1f} s)")
    _cascade_throughput(models.get(TSR_STEM), models.get(SSR_STEM))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
