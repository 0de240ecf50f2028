"""Train the Make-A-Video cascade's learned stages: stages ``tsr`` and ``ssr``, and the held-out
comparisons against the weight-free methods that their cards and ``bench/learned_cascade.py`` report.

* ``tsr`` -> ``weights/interpolator-sprites-tsr``: :class:`models.tsr.TSRNet`, a residual over the
  weight-free flow interpolation. Clips rendered at a low frame rate give the input frames; the same spec
  rendered at the in-between times gives the exact targets. Flow interpolation is the slow part of a
  sample, so the training pairs (with their flow frames) are generated once per seed into a cache under
  ``.train/tsr/`` and reused with random flips and rotations.
* ``ssr`` -> ``weights/upscaler-sprites-ssr``: :class:`models.ssr.SSRNet` (x2 and x4 tails), a residual
  over the weight-free upscaler (``upscaling.upscale``; ``--set base=bicubic`` for one over bicubic). The world
  renders at any resolution with area-like antialiasing, so the low-resolution input and its
  high-resolution target are two renders of one spec; each sample is three consecutive frames.
"""

from __future__ import annotations

import math
import os
import random
import time

import torch
import torch.nn.functional as F

from ..models.ssr import CHECKPOINT_KIND as SSR_KIND
from ..models.ssr import SSRConfig, SSRNet, learned_upscale, load_ssr
from ..models.tsr import CHECKPOINT_KIND as TSR_KIND
from ..models.tsr import TSRConfig, TSRNet, learned_interpolate, load_tsr
from ..runtime.checkpoints import save_checkpoint
from .train_common import (
    LoopConfig,
    StageArgs,
    Trainer,
    reproducibility_note,
    run_facts,
    seed_everything,
    weights_paths,
    write_card,
)
from .world import random_clip_spec, render_clip, render_frames_at

TSR_STEM = "interpolator-sprites-tsr"
SSR_STEM = "upscaler-sprites-ssr"

# TSR data: low frame rates and frame sizes of the input clips; targets at three times per pair.
TSR_FPS = (2.0, 3.0, 4.0, 6.0, 8.0)
TSR_SIZES = (32, 48, 64)
TSR_CROP = 32
TSR_TIMES_PER_PAIR = 3
# SSR data: (scale, low-resolution frame sizes, low-resolution crop); frame rates after TSR are high.
SSR_DATA = {4: ((24, 32, 40), 16), 2: ((32, 48, 64), 24)}
SSR_FPS = (8.0, 16.0, 32.0)

# Held-out evaluation (fixed clips, independent of the training seed): name -> (size, fps, factor).
TSR_EVAL = {
    "32px_4fps_x4": (32, 4.0, 4),
    "32px_8fps_x4": (32, 8.0, 4),
    "64px_4fps_x2": (64, 4.0, 2),
    "64px_4fps_x4": (64, 4.0, 4),  # the Make-A-Video cascade's base clip
}
SSR_EVAL = {"x4_32_to_128": (32, 4), "x2_64_to_128": (64, 2)}
EVAL_CLIPS = 12
EVAL_FRAMES = 9


# -- TSR data -----------------------------------------------------------------------------------------------
def _tsr_pair(seed: int, index: int) -> torch.Tensor:
    """One training pair ``[10, 3, crop, crop]``: prev, f0, f1, next, 3 flow frames, their 3 targets (at the
    times :func:`_tsr_times` gives)."""
    from ..interpolation import frames_at

    rng = random.Random(f"tsr:{seed}:{index}")
    fps, size = rng.choice(TSR_FPS), rng.choice(TSR_SIZES)
    spec = random_clip_spec(rng, split="train", duration=3.0 / fps)
    times = _tsr_times(seed, index)
    low = render_frames_at(spec, torch.arange(4, dtype=torch.float64) / fps, size, size)
    target = render_frames_at(spec, (1.0 + torch.tensor(times, dtype=torch.float64)) / fps, size, size)
    base = frames_at(low, [1.0 + t for t in times], "flow")
    top, left = rng.randrange(size - TSR_CROP + 1), rng.randrange(size - TSR_CROP + 1)
    stack = torch.cat([low, base, target])[:, top : top + TSR_CROP, left : left + TSR_CROP]
    return stack.permute(0, 3, 1, 2).contiguous()


def _tsr_times(seed: int, index: int) -> list[float]:
    """Times of the three targets of pair ``index``: near 1/4, 1/2, 3/4, jittered (covers x2, x3, x4, retime)."""
    rng = random.Random(f"tsr-times:{seed}:{index}")
    return [(k + 1) / 4 + rng.uniform(-0.09, 0.09) for k in range(TSR_TIMES_PER_PAIR)]


def tsr_cache(seed: int, pairs: int, folder: str, log=print) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``(stacks [pairs, 10, 3, crop, crop] fp16, times [pairs, 3], seconds it took to generate)``, generated
    once and kept in ``folder``."""
    path = os.path.join(folder, f"pairs-seed{seed}-n{pairs}.pt")
    if os.path.isfile(path):
        data = torch.load(path, weights_only=True)
        return data["stacks"], data["times"], float(data.get("seconds", float("nan")))
    start = time.monotonic()
    stacks = []
    for i in range(pairs):
        stacks.append(_tsr_pair(seed, i).half())
        if (i + 1) % 250 == 0:
            log(f"[tsr] generated {i + 1}/{pairs} training pairs ({(time.monotonic() - start) / 60:.1f} min)")
    data = {"stacks": torch.stack(stacks), "times": torch.tensor([_tsr_times(seed, i) for i in range(pairs)])}
    data["seconds"] = time.monotonic() - start
    os.makedirs(folder, exist_ok=True)
    torch.save(data, path + ".tmp")
    os.replace(path + ".tmp", path)
    return data["stacks"], data["times"], data["seconds"]


def _augment(x: torch.Tensor, rng: random.Random) -> torch.Tensor:
    """The same random flip / 90-degree rotation for every image of a sample (``[..., H, W]``)."""
    return _flip_rotate(x, rng.random() < 0.5, rng.randrange(4))


def _flip_rotate(x: torch.Tensor, flip: bool, quarter_turns: int) -> torch.Tensor:
    return torch.rot90(x.flip(-1) if flip else x, quarter_turns, dims=(-2, -1))


# -- SSR data -----------------------------------------------------------------------------------------------
def ssr_batch(seed: int, step: int, batch: int, scale: int, split: str = "train", with_base: bool = False):
    """``(low [B, 9, c, c], high [B, 3, c*s, c*s], base)`` in [0, 1]: three consecutive low-res frames
    stacked along channels, the middle frame rendered at ``scale`` times the size, and (``with_base``) the
    weight-free upscaling of the whole low-res middle frame cropped like ``high`` (else None). Fixed by
    ``(seed, step)``."""
    from ..upscaling import upscale

    sizes, crop = SSR_DATA[scale]
    hs = crop * scale
    samples = []
    for i in range(batch):
        rng = random.Random(f"ssr:{seed}:{step}:{scale}:{i}")
        size, fps = rng.choice(sizes), rng.choice(SSR_FPS)
        spec = random_clip_spec(rng, split=split, duration=2.0)
        t = rng.uniform(1.0 / fps, 2.0 - 1.0 / fps)
        times = torch.tensor([t - 1 / fps, t, t + 1 / fps], dtype=torch.float64)
        low = render_frames_at(spec, times, size, size)
        high = render_frames_at(spec, times[1:2], size * scale, size * scale)[0]
        top, left = rng.randrange(size - crop + 1), rng.randrange(size - crop + 1)
        flip, turns = rng.random() < 0.5, rng.randrange(4)
        samples.append((low, high, top, left, flip, turns))
    bases: dict[int, torch.Tensor] = {}
    if with_base:  # whole frames upscaled (crop borders see real neighbours), one call per frame size
        for size in {s[0].shape[1] for s in samples}:
            index = [k for k, s in enumerate(samples) if s[0].shape[1] == size]
            made = upscale(torch.stack([samples[k][0][1] for k in index]), scale=scale)
            bases.update(zip(index, made))
    lows, highs, crops = [], [], []
    for k, (low, high, top, left, flip, turns) in enumerate(samples):
        window = (slice(top * scale, top * scale + hs), slice(left * scale, left * scale + hs))
        low = low[:, top : top + crop, left : left + crop].permute(0, 3, 1, 2).reshape(9, crop, crop)
        lows.append(_flip_rotate(low, flip, turns))
        highs.append(_flip_rotate(high[window].permute(2, 0, 1), flip, turns))
        if with_base:
            crops.append(_flip_rotate(bases[k][window].permute(2, 0, 1), flip, turns))
    return torch.stack(lows), torch.stack(highs), torch.stack(crops) if with_base else None


def ssr_cache(seed: int, samples: int, folder: str, with_base: bool, log=print) -> tuple[dict, float]:
    """Per scale ``(low, high, base)`` fp16 stacks of ``samples`` training samples (batches of
    :func:`ssr_batch` for steps 0, 1, ...), generated once into ``folder``; and the seconds it took."""
    path = os.path.join(folder, f"samples-seed{seed}-n{samples}-base{int(with_base)}.pt")
    if os.path.isfile(path):
        data = torch.load(path, weights_only=True)
        return data["scales"], float(data["seconds"])
    start, chunk = time.monotonic(), 8
    scales = {}
    for scale in SSR_DATA:
        parts = [ssr_batch(seed, k, chunk, scale, with_base=with_base) for k in range(samples // chunk)]
        scales[scale] = tuple(
            torch.cat([p[i] for p in parts]).half() if parts[0][i] is not None else None for i in range(3)
        )
        log(f"[ssr] generated {samples} x{scale} samples ({(time.monotonic() - start) / 60:.1f} min)")
    seconds = time.monotonic() - start
    os.makedirs(folder, exist_ok=True)
    torch.save({"scales": scales, "seconds": seconds}, path + ".tmp")
    os.replace(path + ".tmp", path)
    return scales, seconds


# -- held-out evaluation ------------------------------------------------------------------------------------
def _heldout_spec(i: int, duration: float):
    return random_clip_spec(random.Random(f"cascade-eval:{i}"), split="heldout", duration=duration)


def tsr_eval_clips(size: int, fps: float, factor: int, count: int = EVAL_CLIPS):
    """``[(low [9, H, W, 3], high [(9 - 1) * factor + 1, H, W, 3])]``: held-out clips and their exact
    renders at ``factor`` times the frame rate."""
    clips = []
    for i in range(count):
        spec = _heldout_spec(i, (EVAL_FRAMES - 1) / fps)
        high = render_clip(spec, (EVAL_FRAMES - 1) * factor + 1, size, size, fps * factor)
        clips.append((high[::factor].contiguous(), high))
    return clips


def ssr_eval_clips(size: int, scale: int, count: int = EVAL_CLIPS, fps: float = 16.0):
    """``[(low [9, s, s, 3], high [9, s*scale, s*scale, 3])]``: held-out clips at both resolutions."""
    clips = []
    for i in range(count):
        spec = _heldout_spec(i, EVAL_FRAMES / fps)
        clips.append(
            (
                render_clip(spec, EVAL_FRAMES, size, size, fps),
                render_clip(spec, EVAL_FRAMES, size * scale, size * scale, fps),
            )
        )
    return clips


def _in_between_mse(made: torch.Tensor, high: torch.Tensor, factor: int) -> float:
    keep = [k for k in range(high.shape[0]) if k % factor]
    return float(((made[keep] - high[keep]) ** 2).mean())


def _pooled_row(errors: dict[str, list[float]], seconds: dict[str, float]) -> dict:
    """PSNR of the squared error pooled over the clips (a per-clip mean of PSNRs would be dominated by,
    or infinite on, clips that a method reproduces exactly), plus the learned method's gains."""
    row = {f"{k}_psnr_db": 10.0 * math.log10(1.0 / max(sum(v) / len(v), 1e-12)) for k, v in errors.items()}
    for other in errors:
        if other != "learned":
            row[f"learned_minus_{other}_db"] = row["learned_psnr_db"] - row[f"{other}_psnr_db"]
    row["clips"] = len(errors["learned"])
    for k, v in seconds.items():
        row[f"{k}_s_per_clip"] = v / max(1, len(errors["learned"]))
    return row


def compare_tsr(model: TSRNet, count: int = EVAL_CLIPS) -> dict[str, dict[str, float]]:
    """PSNR (dB, squared error pooled over clips) of the in-between frames: learned vs flow vs blend, per
    evaluation case, plus seconds per clip. Clips where nothing moves are left out (every method is exact)."""
    from ..interpolation import interpolate

    results = {}
    for name, (size, fps, factor) in TSR_EVAL.items():
        errors: dict[str, list[float]] = {"learned": [], "flow": [], "blend": []}
        seconds = {"learned": 0.0, "flow": 0.0}
        for low, high in tsr_eval_clips(size, fps, factor, count):
            if torch.equal(low[:1].expand_as(low), low):
                continue
            start = time.perf_counter()
            learned = learned_interpolate(model, low, factor)
            seconds["learned"] += time.perf_counter() - start
            start = time.perf_counter()
            flow = interpolate(low, factor, "flow")
            seconds["flow"] += time.perf_counter() - start
            blend = interpolate(low, factor, "blend")
            for key, made in (("learned", learned), ("flow", flow), ("blend", blend)):
                errors[key].append(_in_between_mse(made, high, factor))
        results[name] = _pooled_row(errors, seconds)
    return results


def compare_ssr(model: SSRNet, count: int = EVAL_CLIPS) -> dict[str, dict[str, float]]:
    """PSNR (dB, squared error pooled over clips): learned vs the weight-free upscaler (Lanczos + detail
    restoration) vs bicubic, per evaluation case, plus seconds per clip."""
    from ..upscaling import upscale

    results = {}
    for name, (size, scale) in SSR_EVAL.items():
        errors: dict[str, list[float]] = {"learned": [], "weight_free": [], "bicubic": []}
        seconds = {"learned": 0.0, "weight_free": 0.0}
        for low, high in ssr_eval_clips(size, scale, count):
            out = (size * scale, size * scale)
            start = time.perf_counter()
            learned = learned_upscale(model, low, out)
            seconds["learned"] += time.perf_counter() - start
            start = time.perf_counter()
            weight_free = upscale(low, scale=scale)
            seconds["weight_free"] += time.perf_counter() - start
            bicubic = upscale(low, scale=scale, method="bicubic", sharpen=0.0)
            for key, made in (("learned", learned), ("weight_free", weight_free), ("bicubic", bicubic)):
                errors[key].append(float(((made - high) ** 2).mean()))
        results[name] = _pooled_row(errors, seconds)
    return results


# -- stages -------------------------------------------------------------------------------------------------
def _loop(args: StageArgs, steps: int, lr: float) -> LoopConfig:
    steps = 4 if args.quick else (args.steps or steps)
    return LoopConfig(steps=steps, lr=lr, warmup_steps=min(100, steps // 10), ema_decay=0.999, log_every=50)


def _card(args: StageArgs, loop: LoopConfig, result, config, stem: str, what: str) -> dict:
    code = ("models", "sprites", "interpolation", "upscaling")
    return {
        "name": stem,
        "what": what,
        "family": config.family,
        **run_facts(args, loop, result, config, code, "fp32 safetensors"),
    }


def train_tsr(args: StageArgs) -> dict:
    seed_everything(args.seed)
    pairs = 8 if args.quick else args.option("pairs", 1600)
    batch = args.option("batch", 16)
    config = TSRConfig()
    model = TSRNet(config)
    loop = _loop(args, 2500, args.option("lr", 1e-3))
    trainer = Trainer("tsr", model, loop, args.state_dir, resume=args.resume, command=args.command)
    stacks, times, cache_s = tsr_cache(args.seed, pairs, args.state_dir, trainer.log)

    def batch_loss(step: int) -> dict[str, torch.Tensor]:
        rng = random.Random(f"tsr-batch:{args.seed}:{step}")
        items, ts = [], []
        for _ in range(batch):
            i, k = rng.randrange(pairs), rng.randrange(TSR_TIMES_PER_PAIR)
            s = stacks[i].float()
            items.append(_augment(torch.stack([s[0], s[1], s[2], s[3], s[4 + k], s[7 + k]]), rng))
            ts.append(float(times[i, k]))
        x = torch.stack(items)  # [B, 6, 3, h, w]
        made = model(x[:, 0], x[:, 1], x[:, 2], x[:, 3], x[:, 4], torch.tensor(ts))
        # Pure L2: the flow frames are exact almost everywhere, and an L1 term's constant-size gradient on
        # those pixels would pin the residual at zero (the median) instead of fixing the sparse errors.
        l2 = F.mse_loss(made, x[:, 5])
        return {"loss": l2, "l2": l2, "base_l2": F.mse_loss(x[:, 4], x[:, 5])}

    result = trainer.run(batch_loss)
    weights, card_path = weights_paths(args.out_dir, TSR_STEM)
    save_checkpoint(weights, result.model, config, TSR_KIND, config.family)
    saved, _ = load_tsr(weights)
    figures = compare_tsr(saved, 2 if args.quick else EVAL_CLIPS)
    card = _card(
        args, loop, result, config, TSR_STEM,
        "learned temporal super-resolution: U-Net residual over the weight-free flow interpolation",
    )  # fmt: skip
    card["data"] = {
        "pairs": f"{pairs} training pairs (split 'train'), cached with their flow frames",
        "pair": "frames at times -1, 0, 1, 2 (x 1/fps) and targets at 3 times near 1/4, 1/2, 3/4 of the pair",
        "fps_choices": TSR_FPS,
        "render_sizes": TSR_SIZES,
        "crop": TSR_CROP,
        "batch": f"{batch} (pair, time) samples per step with random flips / 90-degree rotations",
        "cache_generation_s": round(cache_s, 1),
    }
    card["losses"] = "L2 on the predicted frame"
    card["evaluation"] = {
        "clips": (
            f"{EVAL_CLIPS} held-out clips of {EVAL_FRAMES} frames per case (motionless ones left out); PSNR of "
            "the squared error of the in-between frames pooled over the clips"
        ),
        "cases": "name: frame size, source fps, multiplier",
        **figures,
    }
    card["reproduce"] = args.command or "python -m videocascade.sprites.train tsr --seed 0"
    card["within_noise"] = reproducibility_note("each case's learned-minus-flow PSNR within 0.3 dB")
    write_card(card_path, card)
    return {
        "weights": weights,
        "card": card_path,
        **{k: v["learned_minus_flow_db"] for k, v in figures.items()},
    }


def train_ssr(args: StageArgs) -> dict:
    seed_everything(args.seed)
    batch = args.option("batch", 8)
    samples = 16 if args.quick else args.option("samples", 4000)
    config = SSRConfig(base=args.option("base", "weight_free"))
    model = SSRNet(config)
    loop = _loop(args, 2500, args.option("lr", 1e-3))
    with_base = config.base == "weight_free"
    trainer = Trainer("ssr", model, loop, args.state_dir, resume=args.resume, command=args.command)
    cache, cache_s = ssr_cache(args.seed, samples, args.state_dir, with_base, trainer.log)

    def batch_loss(step: int) -> dict[str, torch.Tensor]:
        # Pure L2, summed over scales: most pixels are flat and already right in the base, and an L1
        # term's constant-size gradient there would pin the residual at zero (see train_tsr).
        rng = random.Random(f"ssr-batch:{args.seed}:{step}")
        terms = {}
        total = 0.0
        for scale in config.scales:
            pick = torch.tensor([rng.randrange(samples) for _ in range(batch)])
            flip, turns = rng.random() < 0.5, rng.randrange(4)
            low, high, base = (
                None if t is None else _flip_rotate(t[pick].float(), flip, turns) for t in cache[scale]
            )
            l2 = F.mse_loss(model(low, scale, base), high)
            terms[f"l2_x{scale}"] = l2
            if base is not None:
                terms[f"base_l2_x{scale}"] = F.mse_loss(base, high)
            total = total + l2
        terms["loss"] = total
        return terms

    result = trainer.run(batch_loss)
    weights, card_path = weights_paths(args.out_dir, SSR_STEM)
    save_checkpoint(weights, result.model, config, SSR_KIND, config.family)
    saved, _ = load_ssr(weights)
    figures = compare_ssr(saved, 2 if args.quick else EVAL_CLIPS)
    card = _card(
        args, loop, result, config, SSR_STEM,
        "learned spatial super-resolution (x2, x4): residual CNN over the weight-free upscaler, with neighbouring frames",
    )  # fmt: skip
    card["data"] = {
        "samples": (
            f"{samples} cached samples per scale (split 'train'), each three consecutive frames, drawn "
            "with random flips / 90-degree rotations"
        ),
        "cache_generation_s": round(cache_s, 1),
        "batch": f"{batch} per scale and step",
        "scales": {str(s): {"low_sizes": v[0], "low_crop": v[1]} for s, v in SSR_DATA.items()},
        "fps_choices": SSR_FPS,
        "stream": "cached sample 8k+i from random.Random(f'ssr:{seed}:{k}:{scale}:{i}')",
    }
    card["losses"] = "L2 per scale, summed over scales"
    card["evaluation"] = {
        "clips": (
            f"{EVAL_CLIPS} held-out clips of {EVAL_FRAMES} frames at 16 fps per case; PSNR of the squared "
            "error pooled over the clips"
        ),
        "weight_free": "upscaling.upscale defaults: Lanczos + edge-aware detail restoration (sharpen 1.0)",
        **figures,
    }
    card["reproduce"] = args.command or "python -m videocascade.sprites.train ssr --seed 0"
    card["within_noise"] = reproducibility_note("each case's learned-minus-weight-free PSNR within 0.3 dB")
    write_card(card_path, card)
    return {
        "weights": weights,
        "card": card_path,
        **{k: v["learned_minus_weight_free_db"] for k, v in figures.items()},
    }


STAGES = {"tsr": train_tsr, "ssr": train_ssr}
