"""Train the embedded VAEs on sprites clips: stages ``vae3d``, ``vae-frame`` and ``vae-frame-temporal``.

* ``vae3d`` -> ``weights/vae-sprites-3d``: the causal video VAE of the Sora-style pipeline, 4x time and 4x
  space compression, 8 latent channels, trained on clips of ``1 + 4k`` frames.
* ``vae-frame`` -> ``.train/vae-frame/image-vae.safetensors``: a per-frame image autoencoder (temporal
  factor 1, 4x space, 4 latent channels) trained on single frames.
* ``vae-frame-temporal`` -> ``weights/vae-sprites-frame``: VideoLDM's decoder fine-tune: the image VAE
  above with temporal blocks added to its decoder; only those blocks train, on clips, with the encoder and
  every spatial layer frozen. Latents are perturbed independently per frame during the fine-tune (as a
  denoiser's output is), so the blocks learn to remove flicker; the card compares the decoder before and
  after on held-out clips.

All three are fully convolutional (no attention), so training on 32x32 crops serves any frame size that is
a multiple of 4. Losses: L1 + L2 + an L1 on image gradients (keeps edges sharp) + a small KL; the 3D VAE
also matches frame differences. After training, per-channel latent mean/std are measured on training clips
and stored in the config, so the DiT sees ~unit-variance latents (``latents_to_model``).
"""

from __future__ import annotations

import copy
import os
import random
from dataclasses import replace

import torch

from ..runtime.checkpoints import load_checkpoint, load_state_strict, save_checkpoint
from ..vae.autoencoder import CausalVAE, CausalVAEConfig
from .dataset import frames_to_video
from .train_common import (
    LoopConfig,
    StageArgs,
    Trainer,
    psnr,
    reproducibility_note,
    run_facts,
    seed_everything,
    step_generator,
    weights_paths,
    write_card,
)
from .world import random_clip_spec, render_clip

VAE3D_STEM = "vae-sprites-3d"
FRAME_STEM = "vae-sprites-frame"
IMAGE_VAE_FILE = "image-vae.safetensors"  # the un-fine-tuned image VAE, kept under .train/vae-frame/

# The commands that made the shipped weights, in order. A second command with a larger --steps resumes the
# first run's final state and continues on a fresh warmup/cosine schedule over the new total (a warm
# restart), with the options given; the cards list every phase.
_TRAIN = "python -m videocascade.sprites.train"
VAE3D_RECIPE = (
    f"{_TRAIN} vae3d --threads 1 --seed 0 --steps 1400",
    f"{_TRAIN} vae3d --threads 1 --seed 0 --steps 2400",
)
FRAME_RECIPE = (
    f"{_TRAIN} vae-frame --threads 1 --seed 0 --steps 800",
    f"{_TRAIN} vae-frame --threads 1 --seed 0 --steps 2400 --set object_weight=4 --set centred=true",
    f"{_TRAIN} vae-frame-temporal --threads 1 --seed 0",
)

VAE3D_CONFIG = CausalVAEConfig(
    family="sprites-vae3d",
    base_channels=16,
    channel_multipliers=(1, 2, 4),
    num_res_blocks=1,
    latent_channels=8,
    temporal_downsample=(True, True),
    middle_attention=False,
    # Time is mixed only by the two stride-2 time convs (encoder) and the two causal time-doubling convs
    # (decoder); every other layer is per-frame, which makes training three times cheaper.
    encoder_temporal_kernel=1,
    decoder_temporal_kernel=1,
)
FRAME_CONFIG = CausalVAEConfig(
    family="sprites-frame",
    base_channels=24,
    channel_multipliers=(1, 2, 4),
    num_res_blocks=1,
    latent_channels=4,
    temporal_downsample=(False, False),
    middle_attention=False,
    encoder_temporal_kernel=1,
    decoder_temporal_kernel=1,
)

# Data: square renders of these sizes, cropped to CROP, at these frame rates (motion of 1-8 px per frame).
RENDER_SIZES = (32, 48, 64)
CROP = 32
FPS_CHOICES = (4.0, 6.0, 8.0, 12.0)
# Held-out evaluation: fixed clips (independent of the training seed) of held-out combinations.
EVAL_CLIPS = 24
EVAL_FRAMES = 17
EVAL_SIZE = 64
EVAL_FPS = 8.0


# -- data ---------------------------------------------------------------------------------------------------
def _render_crop(
    rng: random.Random, frames: int, split: str, sizes=RENDER_SIZES, crop=CROP, centred: bool = False
) -> torch.Tensor:
    """One clip ``[T, crop, crop, 3]`` in [0, 1]: a random spec rendered at a random size, fps and crop.

    ``centred`` puts the first object's mid-clip position near the crop's centre (within +-crop/4), so
    every sample shows an object instead of background only (faster training).
    """
    size, fps = rng.choice(sizes), rng.choice(FPS_CHOICES)
    duration = max((frames - 1) / fps, 0.5)
    spec = random_clip_spec(rng, split=split, duration=duration)
    clip = render_clip(spec, frames, size, size, fps)
    if centred:
        x, y = (float(v[0]) for v in spec.objects[0].center_at([0.5 * (frames - 1) / fps]))
        jitter = crop // 4
        top = round(y * size - crop / 2) + rng.randint(-jitter, jitter)
        left = round(x * size - crop / 2) + rng.randint(-jitter, jitter)
        top, left = min(max(top, 0), size - crop), min(max(left, 0), size - crop)
    else:
        top, left = rng.randrange(size - crop + 1), rng.randrange(size - crop + 1)
    return clip[:, top : top + crop, left : left + crop]


def clip_batch(
    seed: int, step: int, batch: int, frames: int, split: str = "train", centred: bool = True
) -> torch.Tensor:
    """Training clips ``[B, 3, frames, CROP, CROP]`` in [-1, 1], fixed by ``(seed, step)``."""
    clips = [
        _render_crop(random.Random(f"vae:{seed}:{step}:{i}"), frames, split, centred=centred)
        for i in range(batch)
    ]
    return frames_to_video(torch.stack(clips))


def frame_batch(seed: int, step: int, batch: int, centred: bool = False) -> torch.Tensor:
    """Single frames ``[B, 3, 1, CROP, CROP]`` at random times of random clips, fixed by ``(seed, step)``."""
    frames = []
    for i in range(batch):
        rng = random.Random(f"frame:{seed}:{step}:{i}")
        clip = _render_crop(rng, 9, "train", centred=centred)
        frames.append(clip[rng.randrange(clip.shape[0])][None])
    return frames_to_video(torch.stack(frames))


def eval_clips(count: int = EVAL_CLIPS, frames: int = EVAL_FRAMES, size: int = EVAL_SIZE) -> torch.Tensor:
    """Held-out evaluation clips ``[count, 3, frames, size, size]`` in [-1, 1] (the same in every run)."""
    clips = []
    for i in range(count):
        spec = random_clip_spec(random.Random(f"vae-eval:{i}"), split="heldout", duration=frames / EVAL_FPS)
        clips.append(render_clip(spec, frames, size, size, EVAL_FPS))
    return frames_to_video(torch.stack(clips))


# -- losses and measures ------------------------------------------------------------------------------------
def _gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]


def object_weights(target: torch.Tensor, weight: float) -> torch.Tensor:
    """Per-pixel loss weights ``1 + weight`` on objects, 1 elsewhere, normalised to mean 1.

    Object colours are bright or saturated and backgrounds dark (see ``world.py``), so a pixel whose
    brightest channel exceeds 0.42 (in [0, 1]) is taken as object. Objects cover a few percent of a frame;
    without the weight an autoencoder learns backgrounds long before it learns objects' colours.
    """
    brightest = target.amax(dim=1, keepdim=True) * 0.5 + 0.5
    w = 1.0 + weight * (brightest > 0.42).to(target.dtype)
    return w / w.mean()


def reconstruction_loss(
    rec: torch.Tensor, target: torch.Tensor, temporal: bool, object_weight: float = 0.0
) -> dict[str, torch.Tensor]:
    """L1 + L2 on pixels (objects weighted up by ``object_weight``), L1 on spatial gradients (edges) and,
    for clips, on frame differences."""
    error = rec - target
    if object_weight:
        w = object_weights(target, object_weight)
        terms = {"l1": (w * error.abs()).mean(), "l2": (w * error.square()).mean()}
    else:
        terms = {"l1": error.abs().mean(), "l2": error.square().mean()}
    (ry, rx), (ty, tx) = _gradients(rec), _gradients(target)
    terms["edge"] = 0.5 * ((ry - ty).abs().mean() + (rx - tx).abs().mean())
    if temporal and rec.shape[2] > 1:
        terms["dt"] = (rec.diff(dim=2) - target.diff(dim=2)).abs().mean()
    return terms


def flicker(video: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean absolute error of frame-to-frame changes (in [0, 1] units): 0 when the motion is exactly right,
    large when frames jitter independently."""
    return float((video.diff(dim=2) - reference.diff(dim=2)).abs().mean() * 0.5)


@torch.no_grad()
def reconstruct(
    vae: CausalVAE, video: torch.Tensor, latent_noise: float = 0.0, seed: int = 0
) -> torch.Tensor:
    """Decode the posterior mean; ``latent_noise`` adds independent per-frame noise in model units."""
    out = []
    for i in range(video.shape[0]):
        z = vae.encode(video[i : i + 1])
        if latent_noise:
            zm = vae.latents_to_model(z)
            zm = zm + latent_noise * torch.randn(zm.shape, generator=step_generator(seed, i, 99))
            z = vae.latents_from_model(zm)
        out.append(vae.decode(z))
    return torch.cat(out)


def evaluate(vae: CausalVAE, video: torch.Tensor, latent_noise: float = 0.0) -> dict[str, float]:
    """PSNR (dB, frames in [0, 1]) and flicker of reconstructions of ``video``."""
    rec = reconstruct(vae.eval(), video, latent_noise)
    a, b = rec * 0.5 + 0.5, video * 0.5 + 0.5
    return {"psnr_db": psnr(a, b), "flicker": flicker(a, b)}


@torch.no_grad()
def latent_statistics(vae: CausalVAE, video: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of the raw latent means of ``video``."""
    z = torch.cat([vae.encode(video[i : i + 4]) for i in range(0, video.shape[0], 4)])
    z = z.transpose(0, 1).flatten(1)
    return tuple(round(float(v), 5) for v in z.mean(1)), tuple(round(float(v), 5) for v in z.std(1))


def _stats_clips(seed: int, frames: int, count: int = 64) -> torch.Tensor:
    """Training clips at the full render size, for the latent statistics."""
    clips = [
        _render_crop(random.Random(f"stats:{seed}:{i}"), frames, "train", sizes=(64,), crop=64)
        for i in range(count)
    ]
    return frames_to_video(torch.stack(clips))


def _with_latent_statistics(vae: CausalVAE, video: torch.Tensor) -> CausalVAE:
    """Measure the latent statistics on ``video`` and store them in the config (and the live buffers)."""
    mean, std = latent_statistics(vae, video)
    vae.config = replace(vae.config, latents_mean=mean, latents_std=std)
    vae.latents_mean = torch.tensor(mean).view(1, -1, 1, 1, 1)
    vae.latents_std = torch.tensor(std).view(1, -1, 1, 1, 1)
    return vae


def _eval_count(args: StageArgs) -> int:
    return 2 if args.quick else EVAL_CLIPS


def _save_half(path: str, vae: CausalVAE, kind_family: str) -> CausalVAE:
    """Save in fp16 (half the size; the card reports the PSNR of the saved weights) and reload it."""
    half = copy.deepcopy(vae).half()
    save_checkpoint(path, half, vae.config, "vae", kind_family)
    state, _, _ = load_checkpoint(path, "vae")
    loaded = CausalVAE(vae.config)
    load_state_strict(loaded, state, path)
    return loaded.eval()


def _loop(args: StageArgs, steps: int, lr: float) -> LoopConfig:
    steps = args.steps or steps
    if args.quick:
        steps = min(steps, 4)
    return LoopConfig(
        steps=steps,
        lr=lr,
        warmup_steps=min(100, steps // 10),
        weight_decay=0.0,
        ema_decay=0.995,
        log_every=25,
    )


def _card_common(args: StageArgs, loop: LoopConfig, result, config: CausalVAEConfig) -> dict:
    return run_facts(args, loop, result, config, ("vae", "sprites"), "fp16 safetensors")


# -- stages -------------------------------------------------------------------------------------------------
def train_vae3d(args: StageArgs) -> dict:
    """The 3D causal VAE: clips of 9 frames (1 + 4*2), batch 4, 32x32 crops."""
    seed_everything(args.seed)
    batch, frames = args.option("batch", 4), args.option("frames", 9)
    kl_weight = args.option("kl_weight", 1e-5)
    object_weight = args.option("object_weight", 4.0)
    config = VAE3D_CONFIG
    vae = CausalVAE(config)
    loop = _loop(args, 900, args.option("lr", 2e-3))
    gen = torch.Generator()

    def batch_loss(step: int) -> dict[str, torch.Tensor]:
        video = clip_batch(args.seed, step, batch, frames)
        gen.manual_seed(args.seed * 100_003 + step)
        rec, posterior = vae(video, generator=gen)
        terms = reconstruction_loss(rec, video, temporal=True, object_weight=object_weight)
        terms["kl"] = posterior.kl().mean() / video[0].numel()
        terms["loss"] = (
            terms["l1"] + terms["l2"] + terms["edge"] + 0.5 * terms["dt"] + kl_weight * terms["kl"]
        )
        return terms

    trainer = Trainer("vae3d", vae, loop, args.state_dir, resume=args.resume, command=args.command)
    result = trainer.run(batch_loss)
    vae = result.model
    vae = _with_latent_statistics(vae, _stats_clips(args.seed, 9, 4 if args.quick else 64))
    weights, card_path = weights_paths(args.out_dir, VAE3D_STEM)
    saved = _save_half(weights, vae, config.family)
    figures = evaluate(saved, eval_clips(_eval_count(args)))
    card = {
        "name": VAE3D_STEM,
        "what": "3D causal VAE of the Sora-style pipeline (4x time, 4x space, 8 latent channels)",
        "family": config.family,
        **_card_common(args, loop, result, vae.config),
        "data": {
            "clips": f"batch {batch} x {frames} frames, split 'train' (held-out combinations never seen)",
            "crops": "centred on the first object (+-crop/4 jitter)",
            "render_sizes": RENDER_SIZES,
            "crop": CROP,
            "fps_choices": FPS_CHOICES,
            "stream": "clip i of step s drawn from random.Random(f'vae:{seed}:{s}:{i}')",
        },
        "losses": (
            f"l1 + l2 (object pixels weighted 1 + {object_weight}) + edge + 0.5 * frame-difference L1 + "
            f"{kl_weight} * KL per element"
        ),
        "latent_statistics": "per-channel mean/std of posterior means of 64 training clips at 64x64",
        "evaluation": {
            "clips": f"{EVAL_CLIPS} held-out clips, {EVAL_FRAMES} frames {EVAL_SIZE}x{EVAL_SIZE} at {EVAL_FPS} fps",
            **figures,
        },
        "reproduce": " && ".join(VAE3D_RECIPE),
        "within_noise": reproducibility_note("held-out PSNR within 0.5 dB of the figure above"),
    }
    write_card(card_path, card)
    return {"weights": weights, "card": card_path, **figures}


def train_vae_frame(args: StageArgs) -> dict:
    """The per-frame image VAE (spatial layers of the VideoLDM decoder), trained on single frames."""
    seed_everything(args.seed)
    batch = args.option("batch", 16)
    kl_weight = args.option("kl_weight", 1e-5)
    object_weight = args.option("object_weight", 0.0)
    centred = args.option("centred", False)
    vae = CausalVAE(FRAME_CONFIG)
    loop = _loop(args, 1500, args.option("lr", 2e-3))
    gen = torch.Generator()

    def batch_loss(step: int) -> dict[str, torch.Tensor]:
        video = frame_batch(args.seed, step, batch, centred)
        gen.manual_seed(args.seed * 100_003 + step)
        rec, posterior = vae(video, generator=gen)
        terms = reconstruction_loss(rec, video, temporal=False, object_weight=object_weight)
        terms["kl"] = posterior.kl().mean() / video[0].numel()
        terms["loss"] = terms["l1"] + terms["l2"] + terms["edge"] + kl_weight * terms["kl"]
        return terms

    result = Trainer("vae-frame", vae, loop, args.state_dir, resume=args.resume, command=args.command).run(
        batch_loss
    )
    vae = result.model
    vae = _with_latent_statistics(vae, _stats_clips(args.seed, 5, 4 if args.quick else 64))
    path = os.path.join(args.state_dir, IMAGE_VAE_FILE)
    save_checkpoint(path, vae, vae.config, "vae", vae.config.family)
    figures = evaluate(vae, eval_clips(_eval_count(args)))
    write_card(
        os.path.join(args.state_dir, "image-vae.card.json"),
        {"name": "image VAE (before the temporal fine-tune)", **_card_common(args, loop, result, vae.config),
         "evaluation": figures},
    )  # fmt: skip
    return {"image_vae": path, **figures}


def train_vae_frame_temporal(args: StageArgs) -> dict:
    """VideoLDM: add temporal blocks to the image VAE's decoder and train only them, on clips."""
    seed_everything(args.seed)
    source = args.option(
        "image_vae", os.path.join(os.path.dirname(args.state_dir), "vae-frame", IMAGE_VAE_FILE)
    )
    if not os.path.isfile(source):
        raise FileNotFoundError(
            f"the image VAE {source} does not exist: run 'python -m videocascade.sprites.train vae-frame' "
            "first (or pass --set image_vae=PATH)"
        )
    batch, frames = args.option("batch", 4), args.option("frames", 8)
    noise_max = args.option("latent_noise", 0.3)
    object_weight = args.option("object_weight", 4.0)
    state, config_dict, _ = load_checkpoint(source, "vae")
    image_config = CausalVAEConfig(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in config_dict.items()}
    )
    image_vae = CausalVAE(image_config)
    load_state_strict(image_vae, state, source)
    video_config = replace(image_config, decoder_temporal_blocks=True)
    vae = CausalVAE(video_config)
    missing, unexpected = vae.load_state_dict(state, strict=False)
    if unexpected or any("temporal_blocks" not in k for k in missing):
        raise RuntimeError(f"{source} does not fit the temporal decoder: {missing=} {unexpected=}")
    vae.requires_grad_(False)
    temporal = list(vae.temporal_parameters())
    for p in temporal:
        p.requires_grad_(True)
    loop = _loop(args, 600, args.option("lr", 1e-3))

    def batch_loss(step: int) -> dict[str, torch.Tensor]:
        video = clip_batch(args.seed, step, batch, frames)
        g = step_generator(args.seed, step, 1)
        with torch.no_grad():
            zm = vae.latents_to_model(vae.encode(video))
            # Per-clip noise level in [0, noise_max], independent per frame: a denoiser's frame-wise errors.
            level = noise_max * torch.rand(batch, 1, 1, 1, 1, generator=g)
            z = vae.latents_from_model(zm + level * torch.randn(zm.shape, generator=g))
        rec = vae.decode(z, clamp=False)
        terms = reconstruction_loss(rec, video, temporal=True, object_weight=object_weight)
        terms["loss"] = terms["l1"] + terms["l2"] + terms["edge"] + terms["dt"]
        return terms

    trainer = Trainer(
        "vae-frame-temporal",
        vae,
        loop,
        args.state_dir,
        params=temporal,
        resume=args.resume,
        command=args.command,
    )
    result = trainer.run(batch_loss)
    vae = result.model
    for name, p in vae.state_dict().items():  # the frozen layers really are the image VAE's
        if "temporal_blocks" not in name and not torch.equal(p, state[name]):
            raise RuntimeError(f"spatial layer {name} changed during the temporal fine-tune")
    weights, card_path = weights_paths(args.out_dir, FRAME_STEM)
    saved = _save_half(weights, vae, video_config.family)
    clips = eval_clips(_eval_count(args))
    comparison = {}
    for noise in (0.0, 0.1, 0.2):
        before, after = evaluate(image_vae, clips, noise), evaluate(saved, clips, noise)
        comparison[f"latent_noise_{noise}"] = {
            "image_decoder": before,
            "temporal_decoder": after,
            "flicker_ratio": after["flicker"] / before["flicker"],
            "psnr_gain_db": after["psnr_db"] - before["psnr_db"],
        }
    image_card = os.path.join(os.path.dirname(source), "image-vae.card.json")
    card = {
        "name": FRAME_STEM,
        "what": (
            "per-frame latent VAE of the VideoLDM pipeline (temporal factor 1, 4x space, 4 latent channels); "
            "image VAE trained on single frames, then decoder temporal blocks fine-tuned on clips with every "
            "spatial layer frozen"
        ),
        "family": video_config.family,
        **_card_common(args, loop, result, video_config),
        "trainable_parameters": sum(p.numel() for p in temporal),
        "image_stage": _read_json(image_card),
        "data": {
            "clips": f"batch {batch} x {frames} frames, split 'train'",
            "latent_noise": f"per clip U(0, {noise_max}) x N(0, 1) per frame, in normalised latent units",
            "render_sizes": RENDER_SIZES,
            "crop": CROP,
            "fps_choices": FPS_CHOICES,
        },
        "evaluation": {
            "clips": f"{EVAL_CLIPS} held-out clips, {EVAL_FRAMES} frames {EVAL_SIZE}x{EVAL_SIZE} at {EVAL_FPS} fps",
            "note": "flicker = mean |frame difference error| in [0, 1] units; lower is better",
            **comparison,
        },
        "reproduce": " && ".join(FRAME_RECIPE),
        "within_noise": reproducibility_note("held-out PSNR within 0.5 dB and flicker ratios within 0.05"),
    }
    write_card(card_path, card)
    return {"weights": weights, "card": card_path, **comparison["latent_noise_0.1"]}


def _read_json(path: str) -> dict:
    import json

    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


STAGES = {
    "vae3d": train_vae3d,
    "vae-frame": train_vae_frame,
    "vae-frame-temporal": train_vae_frame_temporal,
}
