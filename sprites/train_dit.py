"""Train the sprites DiTs by flow matching, and the shared byte-level text encoder with the first of them.

Stages (``python -m videocascade.sprites.train STAGE [--threads 1]``, listed in :data:`STAGES`):

- ``text``: the shared text encoder, a caption probe first and then trained jointly with a pixel-space
  DiT on captioned frames (that DiT is not shipped). Every other stage conditions on it, frozen.
- ``makeavideo``: the Make-A-Video base, a factorized DiT over ``vae-sprites-frame`` latents (9 frames of
  64x64 at 4 fps). Schedule of the seed paper: spatial layers on captioned single frames first (T=1, the
  temporal branch frozen and adding nothing), then every layer on clips, images mixed in (VDM).
- ``sora``: a full-attention DiT over ``vae-sprites-3d`` latents, the text encoder frozen.
- ``videoldm``: a factorized DiT over ``vae-sprites-frame`` latents (no temporal compression), images
  first then clips, the text encoder frozen.

The objective is rectified flow: ``x_s = (1 - s) x0 + s noise``, the model predicts ``noise - x0`` from
``timestep = 1000 s``, ``s`` drawn logit-normal (for clips optionally around a higher noise level, and with
a term on the error's frame-to-frame differences: ``Recipe.clip_logit_mean``, ``motion_loss_weight``).
Captions are the world's varied wording of clips from ``split="train"``, so the held-out colour x shape x
motion combinations are never seen; 10% of captions are dropped to the empty prompt for classifier-free
guidance. While the text encoder trains, a small probe reads each object's colour, shape and motion back
from its mean feature (an auxiliary loss that is not shipped): it makes the features carry the caption's
attributes long before the denoiser alone would teach that, which is what this CPU budget needs.

Runs are resumable: the state is saved under ``.train/<stage>/`` every few minutes and a rerun of the
same command continues from it. The EMA weights are written to ``weights/`` with a card.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..models.dit import DiTConfig, VideoDiT
from ..models.text_encoder import TextEncoder, TextEncoderConfig, encode_prompts, load_text_encoder
from ..runtime.checkpoints import save_checkpoint
from ..runtime.model_paths import EMBEDDED_DIR
from ..samplers import FlowPrediction, VPPrediction
from .captions import caption, image_caption
from .dataset import SpritesDataConfig, SpritesDataset, frames_to_video
from .train_common import (
    RUNS_DIR,
    StageArgs,
    code_revision,
    machine_description,
    reproducibility_note,
    write_card,
)
from .world import COLORS, MOTIONS, SHAPES, ClipSpec

TEXT_ENCODER_FILE = "text_encoder-sprites.safetensors"
TEXT_FAMILY = "sprites-text"
PIXEL_FORMAT = "pixels"  # the latent format of the pixel-space "VAE" (vae/pixels.py)


# ----------------------------------------------------------------------------------------------------------
# Recipes


@dataclass
class SamplerSettings:
    """The model's parametrisation and the sampler settings its metadata tells the sampler node (and that
    the evaluation used).

    ``prediction``: ``"flow"`` (rectified flow, velocity) or ``"vp-v"`` (variance-preserving cosine
    schedule rescaled to zero terminal SNR, v-prediction). At the noisiest level a v-model outputs the
    clean image itself, where a velocity model must reproduce its whole input noise: a pixel-space model
    with wide patches and a narrow width learns the former far sooner.
    """

    prediction: str = "flow"
    shift: float = 1.0  # flow only
    solver: str = "euler"
    steps: int = 20
    cfg: float = 4.0

    def __post_init__(self) -> None:
        if self.prediction not in ("flow", "vp-v"):
            raise ValueError(f"prediction must be 'flow' or 'vp-v', got {self.prediction!r}")

    def prediction_object(self) -> FlowPrediction | VPPrediction:
        if self.prediction == "flow":
            return FlowPrediction(shift=self.shift)
        return VPPrediction(
            target="v", beta_schedule="squaredcos_cap_v2", zero_terminal_snr=True, default_schedule="trailing"
        )

    def metadata(self) -> str:
        prediction = dataclasses.asdict(self.prediction_object())
        return json.dumps(
            {"prediction": prediction, "solver": self.solver, "steps": self.steps, "cfg": self.cfg}
        )


@dataclass
class Recipe:
    """Everything one training run depends on; written into the card."""

    name: str  # weights/dit-sprites-<name>.safetensors
    dit: DiTConfig
    latent: str  # PIXEL_FORMAT or an embedded VAE file name ("vae-sprites-3d.safetensors")
    height: int = 32
    width: int = 32
    frames: int = 9
    fps: float = 4.0
    image_steps: int = 0  # phase 1: single captioned frames, spatial layers only
    clip_steps: int = 1000  # phase 2: clips, every layer
    image_batch: int = 32
    clip_batch: int = 12
    mixed_images: int = 0  # images added to every clip step (VDM-style joint training)
    lr: float = 1e-3
    clip_lr: float = 0.0  # phase 2 learning rate (0: same as lr)
    spatial_lr_scale: float = 1.0  # phase 2 learning rate of the spatial layers, relative to lr
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1  # cosine decay to this fraction over the last `decay_fraction` of each phase
    decay_fraction: float = 0.3
    weight_decay: float = 0.0
    ema_decay: float = 0.998
    grad_clip: float = 1.0
    uncond_prob: float = 0.1
    two_object_prob: float = 0.15
    # One-object clips: path midpoints within this of the frame centre (0.5: anywhere). Two-object clips
    # and images always use the whole frame (two objects near the centre would overlap).
    clip_path_spread: float = 0.5
    cached_clips: int = 0  # latent models: encode this many clips once and reuse them (0: encode each batch)
    cached_images: int = 0
    background_kinds: tuple[str, ...] | None = ("plain",)
    logit_normal_std: float = 1.0
    motion_loss_weight: float = 0.0  # clips: weight of the frame-difference term of diffusion_loss
    clip_logit_mean: float = 0.0  # clips: noise levels drawn around sigmoid(this), above 0.5 when > 0
    clip_high_noise_fraction: float = 0.0  # clips: this fraction at noise levels in [HIGH_NOISE_START, 1]
    # Over the last `clip_focus_steps` clip steps, this fraction of the clips is drawn instead from the
    # cached one-object clips whose motion is one of `clip_focus_motions` (needs `cached_clips`).
    clip_focus_motions: tuple[str, ...] = ()
    clip_focus_fraction: float = 0.0
    clip_focus_steps: int = 0
    # 0: one learning-rate cycle over the clip phase. N: its first N steps are scheduled as a run of N clip
    # steps (warm-up, decay and focus at their end), and the rest continues that run with a second decay,
    # exactly as rerunning a finished N-step run with a larger clip_steps does, in one command.
    clip_first_cycle: int = 0
    # The attention backend of the DiT and text encoder while training. "sdpa", PyTorch's fused kernel, is
    # what the models trained before "auto" existed used, so their commands still reproduce them bit for
    # bit. "auto" runs the explicit math on the CPU where the keys are few (cuda_ext/dispatch.py): a
    # makeavideo step took 0.82x the time (bench/attention_training.py), rounding differently in the last
    # bits. The makeavideo recipe uses it.
    attention: str = "sdpa"
    train_text_encoder: bool = False
    ships_dit: bool = True  # False: the run exists for its text encoder; its DiT is not exported
    text: TextEncoderConfig = field(default_factory=lambda: TextEncoderConfig(dim=128, depth=2, num_heads=4))
    text_probe_steps: int = 0  # steps of the text probe alone before the DiT starts (joint stage only)
    text_probe_weight: float = 0.1
    text_batch: int = 32  # captions per probe step (text phase), and half that beside the image phase
    text_phases: tuple[str, ...] = ("text",)  # phases the encoder trains in; then it freezes (its EMA)
    text_lr: float = 1e-3
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    seed: int = 0

    @property
    def total_steps(self) -> int:
        return self.text_probe_steps + self.image_steps + self.clip_steps


def _dit(in_channels: int, layout: str, patch: tuple[int, int, int], **sizes: Any) -> DiTConfig:
    base = dict(
        hidden_size=96, depth=4, num_heads=3, ffn_dim=384, text_dim=128, frequency_dim=64, pooled_text=True
    )
    base.update(sizes)
    return DiTConfig(
        in_channels=in_channels,
        out_channels=in_channels,
        patch_size=patch,
        attention_layout=layout,
        **base,
    )


def text_recipe() -> Recipe:
    """The shared text encoder: a caption probe first, then trained jointly with a pixel-space DiT on
    captioned frames (that DiT only teaches the encoder what the images need; it is not shipped). Every
    shipped DiT conditions on this encoder, frozen."""
    return Recipe(
        name="text",
        dit=_dit(3, "factorized", (1, 4, 4)),
        latent=PIXEL_FORMAT,
        height=32,
        width=32,
        frames=9,
        fps=4.0,
        text_probe_steps=300,
        text_phases=("text", "image"),
        image_steps=1800,
        clip_steps=0,
        image_batch=32,
        clip_batch=8,
        mixed_images=8,
        lr=2e-3,
        clip_lr=1e-3,
        train_text_encoder=True,
        ships_dit=False,
        sampler=SamplerSettings(shift=1.0, solver="euler", steps=20, cfg=4.0),
    )


def makeavideo_recipe() -> Recipe:
    """The Make-A-Video base model: 9 frames at 4 fps that the TSR and SSR stages turn into 33 frames of
    128x128. It works on the per-frame VAE's latents (64x64 -> 16x16x4): the VAE decoder draws the shapes'
    crisp edges, which a pixel-space model of this size never learned to (its shapes stayed blobs). Spatial
    layers on captioned frames first, then every layer on clips with frames mixed in (Make-A-Video).

    The rest aims at the caption's motion, which a model trained on the plain loss ignored (its loss was
    the same with the opposite motion word): tokens carry their absolute place in the clip (rotary
    positions alone cannot say "first frame" or "left edge"), with joint features of each pair of axes
    (without them the base learned left and right but never up and down: a moving object is a product of
    frame and row features that the blocks had to learn themselves); clips are trained at higher noise with
    a frame-difference term, where the background cancels and the object's motion is what is left; and the
    flow skip, the high-noise share and the centred paths train the first sampling steps, where the motion
    is laid out. The last clip steps draw half their clips from growing, shrinking and still objects: the
    size change is a few latent pixels, and on the plain mix the base drew it too weakly (a growing object
    ended 1.3x its size where the clips have 1.9x; README, "Embedded text-to-video models: evaluation").

    Even so, whether a run learned growing and shrinking depended on the run (another seed, or another
    thread count, got them wrong), so tokens also carry features of their distance from the frame centre,
    which draw a growing or shrinking object directly, and a second learning-rate cycle of 2400 clip steps
    (with its own size focus) follows the first 8800. Training uses the explicit attention math on the CPU,
    which makes the longer run's steps about 0.82x as long."""
    return Recipe(
        name="makeavideo",
        dit=_dit(
            4,
            "factorized",
            (1, 2, 2),
            absolute_positions=True,
            position_pairs=True,
            position_radial=True,
            flow_skip=True,
        ),
        latent="vae-sprites-frame.safetensors",
        height=64,
        width=64,
        frames=9,
        fps=4.0,
        image_steps=3000,
        clip_steps=11200,
        clip_first_cycle=8800,
        image_batch=32,
        clip_batch=8,
        mixed_images=8,
        lr=2e-3,
        clip_lr=1e-3,
        attention="auto",
        cached_images=6000,
        cached_clips=3000,
        motion_loss_weight=3.0,
        clip_logit_mean=1.0,
        clip_high_noise_fraction=0.25,
        clip_path_spread=0.1,
        clip_focus_motions=("grow", "shrink", "still"),
        clip_focus_fraction=0.5,
        clip_focus_steps=1200,
        sampler=SamplerSettings(shift=1.0, solver="euler", steps=20, cfg=4.0),
    )


def sora_recipe() -> Recipe:
    """Full 3D attention over the 3D VAE's latents (17 frames of 64x64 -> 5 x 16 x 16 x 8), images too."""
    return Recipe(
        name="sora",
        dit=_dit(8, "full", (1, 2, 2), hidden_size=128, num_heads=4, ffn_dim=512),
        latent="vae-sprites-3d.safetensors",
        height=64,
        width=64,
        frames=17,
        fps=8.0,
        image_steps=1200,
        clip_steps=2500,
        image_batch=32,
        clip_batch=8,
        mixed_images=8,
        lr=2e-3,
        clip_lr=1e-3,
        cached_clips=3000,
        cached_images=8000,
        sampler=SamplerSettings(shift=1.0, solver="euler", steps=20, cfg=4.0),
    )


def videoldm_recipe() -> Recipe:
    """Factorized attention over per-frame latents (17 frames of 64x64 -> 17 x 16 x 16 x 4): spatial
    layers on images first, then every layer on clips."""
    return Recipe(
        name="videoldm",
        dit=_dit(4, "factorized", (1, 2, 2)),
        latent="vae-sprites-frame.safetensors",
        height=64,
        width=64,
        frames=17,
        fps=8.0,
        image_steps=600,
        clip_steps=1000,
        image_batch=32,
        clip_batch=6,
        mixed_images=8,
        cached_clips=2000,
        cached_images=6000,
        sampler=SamplerSettings(shift=1.0, solver="euler", steps=20, cfg=4.0),
    )


# ----------------------------------------------------------------------------------------------------------
# Data


class CaptionedBatches:
    """Deterministic batches of ``(video [B, 3, T, H, W] in [-1, 1], captions, specs)``.

    Sample ``n`` of a kind (``"image"`` or ``"clip"``) is a pure function of ``(seed, kind, n)``, so a
    resumed run sees exactly the data it would have seen. A fraction of samples has two objects.
    """

    def __init__(self, recipe: Recipe, kind: str):
        spread = recipe.clip_path_spread if kind == "clip" else 0.5

        def data(objects: int) -> SpritesDataset:
            config = SpritesDataConfig(
                height=recipe.height,
                width=recipe.width,
                num_frames=recipe.frames,
                fps=recipe.fps,
                split="train",
                num_objects=objects,
                image_mode=kind == "image",
                background_kinds=recipe.background_kinds,
                path_spread=spread if objects == 1 else 0.5,
            )
            return SpritesDataset(2**40, config, seed=hash_seed(recipe.seed, kind, objects))

        self.sources = (data(1), data(2))
        self.two_object_prob = recipe.two_object_prob
        self.path_spread = spread
        self.seed = recipe.seed
        self.kind = kind

    def sample(self, n: int) -> tuple[torch.Tensor, str, ClipSpec]:
        two = random.Random(f"objects:{self.seed}:{self.kind}:{n}").random() < self.two_object_prob
        return self.sources[int(two)][n]

    def captions(self, start: int, size: int) -> tuple[list[str], list[ClipSpec]]:
        """Captions and specs only (no rendering), from a stream of their own: for the text probe."""
        texts, specs = [], []
        for n in range(start, start + size):
            two = random.Random(f"objects:{self.seed}:{self.kind}:{n}").random() < self.two_object_prob
            spec = self.sources[int(two)].spec(n)[0]
            rng = random.Random(f"caption:{self.seed}:{self.kind}:{n}")
            texts.append(image_caption(spec, rng) if self.kind == "image" else caption(spec, rng))
            specs.append(spec)
        return texts, specs

    def batch(self, start: int, size: int) -> tuple[torch.Tensor, list[str], list[ClipSpec]]:
        items = [self.sample(n) for n in range(start, start + size)]
        frames = torch.stack([item[0] for item in items])
        return frames_to_video(frames), [item[1] for item in items], [item[2] for item in items]


def hash_seed(*parts: Any) -> int:
    """A stable integer seed from parts (``hash()`` of strings changes between runs)."""
    return random.Random(":".join(str(p) for p in parts)).randrange(2**31)


# ----------------------------------------------------------------------------------------------------------
# Text: encoder features and the attribute probe


class CaptionProbe(nn.Module):
    """Reads (colour, shape, motion) of up to two objects from the mean text feature (training aid only)."""

    SLOTS = 2
    CLASSES = (len(COLORS) + 1, len(SHAPES) + 1, len(MOTIONS) + 1)  # +1: "no such object / no motion"

    def __init__(self, dim: int):
        super().__init__()
        self.head = nn.Linear(dim, self.SLOTS * sum(self.CLASSES))

    def loss(self, features: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``targets [B, SLOTS, 3]`` class indices; rows with a negative first entry are skipped."""
        targets = targets.to(features.device)
        keep = targets[:, 0, 0] >= 0
        if not bool(keep.any()):
            return features.sum() * 0.0
        weights = mask.to(features.dtype).unsqueeze(-1)
        pooled = (features * weights).sum(1) / weights.sum(1)
        logits = self.head(pooled[keep]).unflatten(1, (self.SLOTS, sum(self.CLASSES)))
        total, offset = 0.0, 0
        for i, n in enumerate(self.CLASSES):
            part = logits[..., offset : offset + n]
            total = total + F.cross_entropy(part.reshape(-1, n), targets[keep][:, :, i].reshape(-1))
            offset += n
        return total / len(self.CLASSES)


def probe_targets(specs: list[ClipSpec], mention_motion: bool, dropped: list[bool]) -> torch.Tensor:
    """Class indices ``[B, 2, 3]`` for :class:`CaptionProbe`; dropped captions are marked -1."""
    colors, none = list(COLORS), CaptionProbe.CLASSES
    out = torch.empty(len(specs), CaptionProbe.SLOTS, 3, dtype=torch.long)
    for row, (spec, drop) in enumerate(zip(specs, dropped)):
        for slot in range(CaptionProbe.SLOTS):
            if slot < len(spec.objects):
                o = spec.objects[slot]
                motion = MOTIONS.index(o.motion) if mention_motion else none[2] - 1
                out[row, slot] = torch.tensor([colors.index(o.color), SHAPES.index(o.shape), motion])
            else:
                out[row, slot] = torch.tensor([none[0] - 1, none[1] - 1, none[2] - 1])
        if drop:
            out[row] = -1
    return out


def encode_captions(encoder: TextEncoder, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and mask padded to the longest caption of the batch (not to max_length: cheaper, and
    padding never changes real positions' features)."""
    longest = max(len(c.encode("utf-8")) for c in captions) + 2
    return encode_prompts(encoder, captions, min(longest, encoder.config.max_length))


# ----------------------------------------------------------------------------------------------------------
# Latent space


class PixelLatents:
    """The identity "VAE" of the pixel-space models: video in [-1, 1] is the latent."""

    latent_format = PIXEL_FORMAT

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        return video

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return latent.clamp(-1.0, 1.0)


class VAELatents:
    """Normalised latents of one of T1's embedded VAEs (frozen), as the DiT sampler node sees them."""

    def __init__(self, file: str, device: str | torch.device = "cpu"):
        from ..vae.loading import load_vae

        self.vae, self.latent_format = load_vae(vae_path(file))
        self.vae.requires_grad_(False).to(device)
        self.device = torch.device(device)

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        return self.vae.latents_to_model(self.vae.encode(video.to(self.device)))

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(self.vae.latents_from_model(latent.to(self.device))).clamp(-1.0, 1.0)


def vae_path(file: str) -> str:
    """An embedded VAE file name (``weights/<file>``) or a path."""
    return file if os.path.isabs(file) else os.path.join(EMBEDDED_DIR, file)


def latent_space(recipe: Recipe, device: str | torch.device = "cpu") -> PixelLatents | VAELatents:
    return PixelLatents() if recipe.latent == PIXEL_FORMAT else VAELatents(recipe.latent, device)


def _read_latent_cache(path: str) -> dict | None:
    """A saved latent cache (tensors, strings and plain dicts only), or None when there is none usable."""
    if not os.path.isfile(path):
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # written by an older version (pickled spec objects): encode again
        print(f"[cache] {path} is in an older format; encoding again", flush=True)
        return None


class LatentCache:
    """The first ``size`` samples of a stream, encoded once by a frozen VAE and reused epoch after epoch.

    Encoding costs a CPU about as much as a DiT step, so latent models train on a fixed set of encoded
    samples; each reuse gets a fresh wording of its caption (and fresh noise), sample ``n`` of epoch ``e``
    being ``(latent[n % size], caption drawn from (seed, n, e))``. Saved next to the run's state, so a
    resumed run does not encode again.
    """

    def __init__(self, data: CaptionedBatches, latents: VAELatents, size: int, path: str, chunk: int = 16):
        self.data, self.size = data, size
        self._focus_pools: dict[tuple[str, ...], list[int]] = {}
        saved = _read_latent_cache(path)
        # Caches from before the path setting existed were drawn from the whole frame (spread 0.5).
        if (
            saved is not None
            and saved["size"] == size
            and saved["format"] == latents.latent_format
            and saved.get("path_spread", 0.5) == data.path_spread
        ):
            self.latents, self.captions = saved["latents"], saved["captions"]
            self.specs = [ClipSpec.from_dict(d) for d in saved["specs"]]
            return
        parts, self.captions, self.specs = [], [], []
        start = time.perf_counter()
        for first in range(0, size, chunk):
            video, captions, specs = data.batch(first, min(chunk, size - first))
            parts.append(latents.encode(video).to("cpu", torch.float16))  # the cache lives in host memory
            self.captions += captions
            self.specs += specs
            if first // chunk % 25 == 0:
                print(
                    f"[cache] {data.kind}: {first + chunk}/{size} ({time.perf_counter() - start:.0f}s)",
                    flush=True,
                )
        self.latents = torch.cat(parts)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        torch.save(
            {"size": size, "format": latents.latent_format, "path_spread": data.path_spread,
             "latents": self.latents, "captions": self.captions, "specs": [spec.to_dict() for spec in self.specs]},
            path + ".tmp",
        )  # fmt: skip
        os.replace(path + ".tmp", path)

    def batch(self, start: int, size: int) -> tuple[torch.Tensor, list[str], list[ClipSpec]]:
        """``(latents [B, C, T', h, w] float32, captions, specs)`` of samples ``start .. start + size``."""
        rows, captions, specs = [], [], []
        for n in range(start, start + size):
            i, epoch = n % self.size, n // self.size
            spec = self.specs[i]
            if epoch == 0:
                text = self.captions[i]
            else:
                rng = random.Random(f"recaption:{self.data.seed}:{self.data.kind}:{n}")
                text = image_caption(spec, rng) if self.data.kind == "image" else caption(spec, rng)
            rows.append(i)
            captions.append(text)
            specs.append(spec)
        return self.latents[rows].float(), captions, specs

    def focused_batch(
        self, start: int, size: int, motions: tuple[str, ...], fraction: float
    ) -> tuple[torch.Tensor, list[str], list[ClipSpec]]:
        """``batch(start, size)`` with each sample, with probability ``fraction``, replaced by a cached
        one-object clip whose motion is in ``motions`` (drawn from the seed and the sample's index, with a
        fresh wording of its caption)."""
        pool = self._focus_pools.get(motions)
        if pool is None:  # once per motion set, not every step
            pool = [
                i
                for i, spec in enumerate(self.specs)
                if len(spec.objects) == 1 and spec.objects[0].motion in motions
            ]
            self._focus_pools[motions] = pool
        if not pool:
            raise ValueError(f"no cached one-object clip moves as {motions}: check Recipe.clip_focus_motions")
        x0, captions, specs = self.batch(start, size)
        for j in range(size):
            rng = random.Random(f"focus:{self.data.seed}:{self.data.kind}:{start + j}")
            if rng.random() < fraction:
                i = pool[rng.randrange(len(pool))]
                x0[j] = self.latents[i].float()
                specs[j] = self.specs[i]
                captions[j] = caption(specs[j], rng)
        return x0, captions, specs


class EncodedBatches:
    """Batches encoded on the fly (the pixel-space identity costs nothing)."""

    def __init__(self, data: CaptionedBatches, latents: PixelLatents | VAELatents):
        self.data, self.latents = data, latents

    def batch(self, start: int, size: int) -> tuple[torch.Tensor, list[str], list[ClipSpec]]:
        video, captions, specs = self.data.batch(start, size)
        return self.latents.encode(video), captions, specs


# ----------------------------------------------------------------------------------------------------------
# Training state


class EMA:
    """Exponential moving average of parameters, with the usual warm-up of the decay."""

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}
        self.updates = 0

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        shadows, values = [], []
        for name, value in module.state_dict().items():
            if value.is_floating_point():
                shadows.append(self.shadow[name])
                values.append(value)
            else:
                self.shadow[name].copy_(value)
        # One fused call: on a GPU, a lerp per tensor costs more in launches than the step's model.
        torch._foreach_lerp_(shadows, values, 1.0 - decay)

    def copy_to(self, module: nn.Module) -> nn.Module:
        module.load_state_dict(self.shadow)
        return module


@dataclass
class Trainer:
    recipe: Recipe
    dit: VideoDiT
    encoder: TextEncoder
    probe: CaptionProbe | None
    optimizer: torch.optim.Optimizer
    dit_ema: EMA
    encoder_ema: EMA | None
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    extended_from: int | None = None  # clip_steps of the run this one continued


def phase_of(recipe: Recipe, step: int) -> tuple[str, int, int]:
    """``(phase, step within it, its length)`` for a global step."""
    bounds = (("text", recipe.text_probe_steps), ("image", recipe.image_steps), ("clip", recipe.clip_steps))
    for name, length in bounds:
        if step < length:
            return name, step, length
        step -= length
    return "done", 0, 0


def learning_rate_factor(recipe: Recipe, local: int, length: int) -> float:
    """Linear warm-up at the start of each phase, cosine decay over its last ``decay_fraction``."""
    warm = min(1.0, (local + 1) / max(1, recipe.warmup_steps))
    decay_start = length * (1.0 - recipe.decay_fraction)
    if local < decay_start:
        return warm
    progress = (local - decay_start) / max(1.0, length - decay_start)
    return warm * (recipe.min_lr_ratio + (1 - recipe.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def open_temporal_gates(dit: VideoDiT) -> None:
    """Gate 1 and a zero output projection instead of a zero gate: the temporal branch still adds
    nothing at first (the image model's function is unchanged), but its output projection gets gradients
    from the first clip step. Behind a zero gate nothing upstream of the gate learns until the gate has
    grown: measured here, the gates were still ~0.01 after 1000 clip steps and the frames of a clip were
    unrelated images."""
    with torch.no_grad():
        for block in dit.blocks:
            if getattr(block, "factorized", False):
                block.temporal_gate.fill_(1.0)
                block.temporal_attn.out.weight.zero_()
                block.temporal_attn.out.bias.zero_()


TRAINING_ATTENTION = ("sdpa", "auto")


def build_trainer(recipe: Recipe, encoder: TextEncoder, device: str | torch.device = "cpu") -> Trainer:
    """Models, optimiser and EMAs on ``device``; the initial weights are drawn on the CPU from the seed,
    so a run starts from the same weights on every device."""
    if recipe.attention not in TRAINING_ATTENTION:
        raise ValueError(f"attention must be one of {TRAINING_ATTENTION}, got {recipe.attention!r}")
    torch.manual_seed(recipe.seed)
    dit = VideoDiT(recipe.dit)
    dit.attention_backend = recipe.attention
    open_temporal_gates(dit)
    encoder.attention_backend = recipe.attention  # it trains in the text stage
    probe = CaptionProbe(encoder.config.dim) if recipe.train_text_encoder else None
    dit.to(device)
    encoder.to(device)
    if probe is not None:
        probe.to(device)
    temporal = {id(p) for p in dit.temporal_parameters()}
    groups = [
        {
            "name": "spatial",
            "params": [p for p in dit.parameters() if id(p) not in temporal],
            "lr": recipe.lr,
        },
        {"name": "temporal", "params": dit.temporal_parameters(), "lr": recipe.lr},
    ]
    if recipe.train_text_encoder:
        text_params = list(encoder.parameters()) + list(probe.parameters())
        groups.append({"name": "text", "params": text_params, "lr": recipe.text_lr})
    else:
        encoder.requires_grad_(False).eval()
    groups = [g for g in groups if g["params"]]
    optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.99), weight_decay=recipe.weight_decay)
    for group in optimizer.param_groups:
        group["base_lr"] = group["lr"]
    encoder_ema = EMA(encoder, recipe.ema_decay) if recipe.train_text_encoder else None
    return Trainer(recipe, dit, encoder, probe, optimizer, EMA(dit, recipe.ema_decay), encoder_ema)


def set_phase_learning_rates(trainer: Trainer, phase: str, factor: float) -> None:
    """Which groups train in each phase: text probe alone, then spatial (+text), then everything."""
    recipe = trainer.recipe
    for group in trainer.optimizer.param_groups:
        name = group["name"]
        active = {
            "text": name == "text",
            "image": name in ("spatial", "text"),
            "clip": name != "text",
        }[phase]
        if name == "text":
            active = text_trains(recipe, phase)
        scale = recipe.spatial_lr_scale if (phase == "clip" and name == "spatial") else 1.0
        if phase == "clip" and name != "text" and recipe.clip_lr:
            scale *= recipe.clip_lr / recipe.lr
        group["lr"] = group["base_lr"] * factor * scale if active else 0.0


# Sampling starts at pure noise (s = 1), and its first steps, where a clip's layout and motion are decided,
# lie above 0.9; a logit-normal draw almost never reaches there (P(s > 0.97) < 1% around sigmoid(1)).
HIGH_NOISE_START = 0.9


def noised_inputs(
    sampler: SamplerSettings,
    x0: torch.Tensor,
    generator: torch.Generator,
    logit_std: float,
    logit_mean: float = 0.0,
    high_noise_fraction: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_t, timestep [B] in model units, target)`` at random noise levels of the model's parametrisation.

    flow: ``s`` logit-normal, ``x_s = (1 - s) x0 + s noise``, target ``noise - x0``, timestep ``1000 s``;
    a ``high_noise_fraction`` of the samples instead draws ``s`` uniformly from ``[HIGH_NOISE_START, 1]``.
    vp-v: ``t`` uniform over the training steps, ``x_t = alpha x0 + sigma noise``, target
    ``alpha noise - sigma x0``, timestep ``t``.
    """
    b = x0.shape[0]
    # Drawn on the CPU generator whatever the device, so a run's random stream does not depend on it.
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    shape = (b,) + (1,) * (x0.ndim - 1)
    if sampler.prediction == "flow":
        s = torch.sigmoid(torch.randn(b, generator=generator) * logit_std + logit_mean)
        if high_noise_fraction > 0:  # only then: other recipes keep their random stream
            high = torch.rand(b, generator=generator) < high_noise_fraction
            top = HIGH_NOISE_START + (1.0 - HIGH_NOISE_START) * torch.rand(b, generator=generator)
            s = torch.where(high, top, s)
        s = s.to(x0.device)
        s_ = s.view(shape)
        return (1 - s_) * x0 + s_ * noise, s * 1000.0, noise - x0
    prediction = sampler.prediction_object()
    t = torch.randint(0, prediction.num_train_timesteps, (b,), generator=generator).to(x0.device)
    alphas_cumprod = torch.from_numpy(prediction.alphas_cumprod()).float().to(x0.device)
    alpha, sigma = alphas_cumprod[t].sqrt().view(shape), (1 - alphas_cumprod[t]).sqrt().view(shape)
    return alpha * x0 + sigma * noise, t.float(), alpha * noise - sigma * x0


def diffusion_loss(
    dit: VideoDiT,
    sampler: SamplerSettings,
    x0: torch.Tensor,
    context: torch.Tensor,
    mask: torch.Tensor,
    generator: torch.Generator,
    logit_std: float = 1.0,
    motion_weight: float = 0.0,
    logit_mean: float = 0.0,
    high_noise_fraction: float = 0.0,
) -> torch.Tensor:
    """MSE of the model's raw output against its parametrisation's target, plus ``motion_weight`` times the
    MSE of their frame-to-frame differences (clips only).

    The difference term is a fixed positive weighting of the error, so the best prediction is still the
    posterior mean (unlike weights that depend on the clip, which bias it). What it changes is where the
    gradient goes: the background, most of the plain loss, cancels in differences, and what is left is the
    object's motion, the part of a caption the plain loss barely rewards.
    """
    x_t, timestep, target = noised_inputs(sampler, x0, generator, logit_std, logit_mean, high_noise_fraction)
    error = dit(x_t, timestep, context, mask) - target
    loss = error.square().mean()
    if motion_weight and error.shape[2] > 1:
        loss = loss + motion_weight * error.diff(dim=2).square().mean()
    return loss


def drop_captions(captions: list[str], prob: float, generator: random.Random) -> tuple[list[str], list[bool]]:
    dropped = [generator.random() < prob for _ in captions]
    return ["" if d else c for c, d in zip(captions, dropped)], dropped


def text_trains(recipe: Recipe, phase: str) -> bool:
    return recipe.train_text_encoder and phase in recipe.text_phases


def freezes_text_now(recipe: Recipe, step: int) -> bool:
    """True at the first step after the encoder's last training phase (where it becomes the shipped one)."""
    if not recipe.train_text_encoder or step == 0:
        return False
    return text_trains(recipe, phase_of(recipe, step - 1)[0]) and not text_trains(
        recipe, phase_of(recipe, step)[0]
    )


def scheduled_length(recipe: Recipe, phase: str, local: int, length: int) -> int:
    """The length the learning rate and the focus of this step are scheduled over: the first cycle's
    within ``clip_first_cycle``, else the phase's."""
    first = recipe.clip_first_cycle
    if phase == "clip" and 0 < first < length and local < first:
        return first
    return length


def focuses_now(recipe: Recipe, local: int, length: int) -> bool:
    """True in the clip phase's last ``clip_focus_steps`` steps when the recipe focuses on some motions."""
    return recipe.clip_focus_fraction > 0 and local >= length - recipe.clip_focus_steps


def check_focus(recipe: Recipe) -> None:
    """Clear errors for focus settings that cannot work, before any training time is spent."""
    if recipe.clip_focus_fraction <= 0:
        return
    if not 0 < recipe.clip_focus_fraction <= 1:
        raise ValueError(f"clip_focus_fraction must be in (0, 1], got {recipe.clip_focus_fraction}")
    unknown = [m for m in recipe.clip_focus_motions if m not in MOTIONS]
    if unknown or not recipe.clip_focus_motions:
        raise ValueError(f"clip_focus_motions must name some of {MOTIONS}, got {recipe.clip_focus_motions}")
    if not recipe.cached_clips or recipe.latent == PIXEL_FORMAT:
        raise ValueError("clip focus draws from the latent cache: set cached_clips on a latent (VAE) recipe")


def train_step(trainer: Trainer, data: dict[str, EncodedBatches | LatentCache]) -> dict:
    """One optimiser step of the current phase; returns its losses for the log."""
    recipe = trainer.recipe
    phase, local, length = phase_of(recipe, trainer.step)
    length = scheduled_length(recipe, phase, local, length)
    if freezes_text_now(recipe, trainer.step):
        # The encoder freezes as the shipped one (its EMA): the DiT conditions on exactly that from here.
        trainer.encoder_ema.copy_to(trainer.encoder)
    set_phase_learning_rates(trainer, phase, learning_rate_factor(recipe, local, length))
    generator = torch.Generator().manual_seed(hash_seed(recipe.seed, "noise", trainer.step))
    caption_rng = random.Random(hash_seed(recipe.seed, "drop", trainer.step))
    text_grad = text_trains(recipe, phase)
    trainer.dit.train(phase != "text")
    trainer.encoder.train(text_grad)
    logs: dict[str, float] = {}
    device = trainer_device(trainer)
    total = torch.zeros((), device=device)

    if text_grad:
        # The probe reads captions of both kinds (clip captions carry the motion words); captions only.
        size = recipe.text_batch if phase == "text" else recipe.text_batch // 2
        for kind in ("clip", "image") if phase == "text" else ("clip",):
            texts, specs = data[kind].data.captions(trainer.step * size, size)
            features, mask = encode_captions(trainer.encoder, texts)
            probe_loss = trainer.probe.loss(
                features, mask, probe_targets(specs, kind == "clip", [False] * size)
            )
            total = total + recipe.text_probe_weight * probe_loss
            logs[f"probe_{kind}"] = float(probe_loss.detach())

    parts: list[tuple[str, int]] = []
    if phase == "image":
        parts.append(("image", recipe.image_batch))
    elif phase == "clip":
        parts.append(("clip", recipe.clip_batch))
        if recipe.mixed_images:
            parts.append(("image", recipe.mixed_images))
    for kind, size in parts:
        # Index the data by how many samples of this kind earlier steps used, so resuming is exact.
        start = samples_before(recipe, kind, trainer.step)
        if kind == "clip" and focuses_now(recipe, local, length):
            x0, captions, specs = data[kind].focused_batch(
                start, size, recipe.clip_focus_motions, recipe.clip_focus_fraction
            )
        else:
            x0, captions, specs = data[kind].batch(start, size)
        x0 = x0.to(device)
        captions, dropped = drop_captions(captions, recipe.uncond_prob, caption_rng)
        with torch.set_grad_enabled(text_grad):
            context, mask = encode_captions(trainer.encoder, captions)
        if text_grad and kind == "image":
            probe_loss = trainer.probe.loss(context, mask, probe_targets(specs, False, dropped))
            total = total + recipe.text_probe_weight * probe_loss
            logs["probe_image"] = float(probe_loss.detach())
        loss = diffusion_loss(
            trainer.dit,
            recipe.sampler,
            x0,
            context,
            mask,
            generator,
            logit_std=recipe.logit_normal_std,
            motion_weight=recipe.motion_loss_weight if kind == "clip" else 0.0,
            logit_mean=recipe.clip_logit_mean if kind == "clip" else 0.0,
            high_noise_fraction=recipe.clip_high_noise_fraction if kind == "clip" else 0.0,
        )
        total = total + loss
        logs[f"loss_{kind}"] = float(loss.detach())

    trainer.optimizer.zero_grad(set_to_none=True)
    total.backward()
    params = [p for g in trainer.optimizer.param_groups if g["lr"] > 0 for p in g["params"]]
    torch.nn.utils.clip_grad_norm_(params, recipe.grad_clip)
    trainer.optimizer.step()
    if phase != "text":
        trainer.dit_ema.update(trainer.dit)
    if text_grad:
        trainer.encoder_ema.update(trainer.encoder)
    trainer.step += 1
    logs["phase"] = phase
    return logs


def trainer_device(trainer: Trainer) -> torch.device:
    return next(trainer.dit.parameters()).device


def samples_before(recipe: Recipe, kind: str, step: int) -> int:
    """How many samples of ``kind`` the steps before ``step`` consumed."""
    image = min(max(0, step - recipe.text_probe_steps), recipe.image_steps)
    clip = max(0, step - recipe.text_probe_steps - recipe.image_steps)
    if kind == "clip":
        return clip * recipe.clip_batch
    return image * recipe.image_batch + clip * recipe.mixed_images


# ----------------------------------------------------------------------------------------------------------
# Checkpoints (resumable state) and outputs


def save_state(trainer: Trainer, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    state = {
        "step": trainer.step,
        "dit": trainer.dit.state_dict(),
        "encoder": trainer.encoder.state_dict(),
        "probe": None if trainer.probe is None else trainer.probe.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "dit_ema": trainer.dit_ema.shadow,
        "dit_ema_updates": trainer.dit_ema.updates,
        "encoder_ema": None if trainer.encoder_ema is None else trainer.encoder_ema.shadow,
        "encoder_ema_updates": 0 if trainer.encoder_ema is None else trainer.encoder_ema.updates,
        "history": trainer.history,
        "wall_seconds": trainer.wall_seconds,
        "cpu_seconds": trainer.cpu_seconds,
        "extended_from": trainer.extended_from,
        "recipe": recipe_dict(trainer.recipe),
    }
    torch.save(state, path + ".tmp")
    os.replace(path + ".tmp", path)  # atomic: a run cut off mid-save keeps the previous state


def with_new_fields(saved: dict[str, Any], current: Any) -> dict[str, Any]:
    """A saved recipe dict with the fields the code gained since it was saved set to their defaults (a
    new option that is off changes nothing), at every level (the DiT config too)."""
    filled = dict(saved)
    for f in dataclasses.fields(current):
        value = getattr(current, f.name)
        if f.name in filled:
            if dataclasses.is_dataclass(value) and isinstance(filled[f.name], dict):
                filled[f.name] = with_new_fields(filled[f.name], value)
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            continue
        plain = dataclasses.asdict(default) if dataclasses.is_dataclass(default) else default
        filled[f.name] = json.loads(json.dumps(plain))
    return filled


def load_state(trainer: Trainer, path: str) -> bool:
    if not os.path.isfile(path):
        return False
    state = torch.load(path, map_location="cpu", weights_only=True)
    state["recipe"] = with_new_fields(state["recipe"], trainer.recipe)
    saved, current = dict(state["recipe"]), recipe_dict(trainer.recipe)
    # A longer last phase may continue a run (its learning rate schedule restarts its decay).
    extended = saved.pop("clip_steps") <= current.pop("clip_steps") and state["step"] > (
        trainer.recipe.text_probe_steps + trainer.recipe.image_steps
    )
    if saved != current or not (extended or state["recipe"] == recipe_dict(trainer.recipe)):
        raise RuntimeError(
            f"{path} was saved by a different recipe; delete it to start over, or restore the recipe"
        )
    if state["recipe"] != recipe_dict(trainer.recipe):
        print(f"continuing {path} with clip_steps={trainer.recipe.clip_steps}", flush=True)
        trainer.extended_from = state["recipe"]["clip_steps"]
    trainer.extended_from = trainer.extended_from or state.get("extended_from")
    trainer.step = state["step"]
    trainer.dit.load_state_dict(state["dit"])
    trainer.encoder.load_state_dict(state["encoder"])
    if trainer.probe is not None:
        trainer.probe.load_state_dict(state["probe"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    device = trainer_device(trainer)
    on_device = lambda shadow: {k: v.to(device) for k, v in shadow.items()}  # noqa: E731
    trainer.dit_ema.shadow, trainer.dit_ema.updates = on_device(state["dit_ema"]), state["dit_ema_updates"]
    if trainer.encoder_ema is not None:
        trainer.encoder_ema.shadow = on_device(state["encoder_ema"])
        trainer.encoder_ema.updates = state["encoder_ema_updates"]
    trainer.history = state["history"]
    trainer.wall_seconds = state["wall_seconds"]
    trainer.cpu_seconds = state["cpu_seconds"]
    return True


def recipe_dict(recipe: Recipe) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(recipe)))


def dit_file(recipe: Recipe) -> str:
    return f"dit-sprites-{recipe.name}.safetensors"


def export_weights(trainer: Trainer, out_dir: str, dtype: torch.dtype = torch.float16) -> dict[str, str]:
    """Write the EMA weights (``dtype``) of the DiT, and of the text encoder when it trained here."""
    written = {"dit": export_dit(trainer, out_dir, dtype)} if trainer.recipe.ships_dit else {}
    if trainer.encoder_ema is not None:
        written["text_encoder"] = export_text_encoder(trainer, out_dir, dtype)
    return written


def export_dit(trainer: Trainer, out_dir: str, dtype: torch.dtype = torch.float16) -> str:
    recipe = trainer.recipe
    dit = trainer.dit_ema.copy_to(VideoDiT(recipe.dit)).to(dtype)
    path = os.path.join(out_dir, dit_file(recipe))
    metadata = {
        "videocascade.latent_format": latent_format_of(recipe),
        "videocascade.sampler": recipe.sampler.metadata(),
    }
    save_checkpoint(path, dit, recipe.dit, "dit", f"sprites-{recipe.name}", metadata)
    return path


def export_text_encoder(trainer: Trainer, out_dir: str, dtype: torch.dtype = torch.float16) -> str:
    """The encoder's EMA: once it froze, exactly the encoder the DiT was conditioned on."""
    encoder = trainer.encoder_ema.copy_to(TextEncoder(trainer.encoder.config)).to(dtype)
    path = os.path.join(out_dir, TEXT_ENCODER_FILE)
    save_checkpoint(path, encoder, trainer.encoder.config, "text_encoder", TEXT_FAMILY)
    return path


def set_sampler_preset(path: str, sampler: SamplerSettings) -> None:
    """Rewrite a DiT file's sampler preset (metadata only; the weights are untouched) and its card's.

    For settings chosen after training by evaluating through the workflow (steps, CFG scale, solver)."""
    from safetensors.torch import save_file

    from ..runtime.checkpoints import read_safetensors

    tensors, metadata = read_safetensors(path)
    metadata["videocascade.sampler"] = sampler.metadata()
    save_file(tensors, path, metadata=metadata)
    card = path.removesuffix(".safetensors") + ".card.json"
    if os.path.isfile(card):
        with open(card, encoding="utf-8") as f:
            data = json.load(f)
        data["sampler"] = json.loads(sampler.metadata())
        write_card(card, data)


def latent_format_of(recipe: Recipe) -> str:
    if recipe.latent == PIXEL_FORMAT:
        return PIXEL_FORMAT
    from ..runtime.checkpoints import FAMILY_KEY, read_safetensors

    return read_safetensors(vae_path(recipe.latent))[1][FAMILY_KEY]


def ema_models(trainer: Trainer) -> tuple[VideoDiT, TextEncoder]:
    """The EMA DiT and the encoder it conditions on, on the trainer's device."""
    device = trainer_device(trainer)
    dit = trainer.dit_ema.copy_to(VideoDiT(trainer.recipe.dit)).to(device).eval()
    if trainer.encoder_ema is not None:
        encoder = trainer.encoder_ema.copy_to(TextEncoder(trainer.encoder.config)).to(device).eval()
    else:
        encoder = trainer.encoder
    return dit, encoder


# ----------------------------------------------------------------------------------------------------------
# Quick evaluation straight from the models (the shipped figures come from sprites/evaluate.py)


@torch.no_grad()
def sample_videos(
    dit: VideoDiT,
    encoder: TextEncoder,
    latents: PixelLatents | VAELatents,
    prompts: list[str],
    latent_shape: tuple[int, int, int, int],
    sampler: SamplerSettings,
    seed: int,
) -> torch.Tensor:
    """Videos ``[B, 3, T, H, W]`` in [-1, 1] for ``prompts`` (negative prompt: the empty one)."""
    from ..samplers import sample

    cond = encode_prompts(encoder, prompts)
    uncond = encode_prompts(encoder, [""] * len(prompts))
    noise = torch.randn((len(prompts), *latent_shape), generator=torch.Generator().manual_seed(seed))
    noise = noise.to(next(dit.parameters()).device)

    def model_fn(x, timestep, c):
        return dit(x, timestep, c[0], c[1])

    out = sample(
        model_fn,
        sampler.prediction_object(),
        noise,
        steps=sampler.steps,
        solver=sampler.solver,
        cfg=sampler.cfg,
        cond=cond,
        uncond=uncond,
        progress=False,
    )
    return latents.decode(out).cpu()


def latent_shape_of(recipe: Recipe, latents: PixelLatents | VAELatents) -> tuple[int, int, int, int]:
    probe = torch.zeros(1, 3, recipe.frames, recipe.height, recipe.width)
    return tuple(latents.encode(probe).shape[1:])


def quick_eval(trainer: Trainer, latents, count: int = 24, split: str = "heldout") -> dict[str, float]:
    from .evaluate import evaluation_prompts, score_clip, summarize

    recipe = trainer.recipe
    dit, encoder = ema_models(trainer)
    prompts = evaluation_prompts(split, count, seed=1234, fps=recipe.fps, frames=recipe.frames)
    videos = sample_videos(
        dit, encoder, latents, [p.prompt for p in prompts], latent_shape_of(recipe, latents),
        recipe.sampler, seed=99,
    )  # fmt: skip
    frames = videos.add(1).mul(0.5).clamp(0, 1).permute(0, 2, 3, 4, 1)
    scores = [score_clip(f, p.prompt) for f, p in zip(frames, prompts)]
    return summarize(scores)


# ----------------------------------------------------------------------------------------------------------
# Runs


def train(
    recipe: Recipe,
    out_dir: str = EMBEDDED_DIR,
    state_dir: str | None = None,
    resume: bool = True,
    checkpoint_minutes: float = 4.0,
    log_every: int = 10,
    eval_every: int = 0,
    final_eval: int = 48,
    command: str = "",
    device: str | torch.device = "cpu",
) -> dict[str, str]:
    """Train (resuming from ``state_dir/state.pt`` when it exists and ``resume``) on ``device``, export the
    EMA weights and their cards into ``out_dir``; return the written weight paths by kind."""
    state = os.path.join(state_dir or os.path.join(RUNS_DIR, stage_of(recipe)), "state.pt")
    torch.manual_seed(recipe.seed)
    if recipe.train_text_encoder:
        recipe.dit.text_dim = recipe.text.dim
        encoder = TextEncoder(recipe.text)
    else:  # frozen: the shared encoder trained with the first DiT
        encoder, _ = load_text_encoder(os.path.join(out_dir, TEXT_ENCODER_FILE))
        recipe.dit.text_dim = encoder.config.dim
        recipe.text = encoder.config
    check_focus(recipe)
    trainer = build_trainer(recipe, encoder, device)
    resumed = resume and load_state(trainer, state)
    print(
        f"[{recipe.name}] {'resumed at step ' + str(trainer.step) if resumed else 'fresh start'}", flush=True
    )
    latents = latent_space(recipe, device)
    data = {}
    for kind, cached in (("image", recipe.cached_images), ("clip", recipe.cached_clips)):
        stream = CaptionedBatches(recipe, kind)
        if cached and isinstance(latents, VAELatents):
            cache = os.path.join(os.path.dirname(state), f"latents-{kind}-{cached}.pt")
            data[kind] = LatentCache(stream, latents, cached, cache)
        else:
            data[kind] = EncodedBatches(stream, latents)
    last_save = time.monotonic()
    window: list[dict] = []
    while trainer.step < recipe.total_steps:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        froze = freezes_text_now(recipe, trainer.step)
        logs = train_step(trainer, data)
        if froze:  # the shared encoder is final from here: other stages may start with it
            print(f"[{recipe.name}] text encoder frozen: {export_text_encoder(trainer, out_dir)}", flush=True)
        trainer.wall_seconds += time.perf_counter() - wall0
        trainer.cpu_seconds += time.process_time() - cpu0
        window.append(logs)
        if trainer.step % log_every == 0 or trainer.step == recipe.total_steps:
            summary = _mean_logs(window)
            summary.update(step=trainer.step, wall_min=round(trainer.wall_seconds / 60, 2))
            trainer.history.append(summary)
            print(json.dumps(summary), flush=True)
            window = []
        if eval_every and trainer.step % eval_every == 0 and phase_of(recipe, trainer.step - 1)[0] == "clip":
            print(json.dumps({"step": trainer.step, "quick_eval": quick_eval(trainer, latents)}), flush=True)
        if time.monotonic() - last_save > checkpoint_minutes * 60:
            save_state(trainer, state)
            last_save = time.monotonic()
    save_state(trainer, state)
    written = export_weights(trainer, out_dir)
    # Only a shipped DiT is worth sampling: the text stage's DiT exists to teach its encoder.
    evaluation = quick_eval(trainer, latents, count=final_eval) if final_eval and recipe.ships_dit else {}
    print(json.dumps({"final_quick_eval": evaluation}), flush=True)
    write_cards(trainer, written, evaluation, command)
    return written


def _mean_logs(window: list[dict]) -> dict[str, Any]:
    out: dict[str, Any] = {"phase": window[-1]["phase"]}
    keys = {k for w in window for k in w if k != "phase"}
    for key in sorted(keys):
        values = [w[key] for w in window if key in w]
        out[key] = round(sum(values) / len(values), 5)
    return out


# Measured runs of the makeavideo recipes (README, "Embedded text-to-video models: evaluation").
MAKEAVIDEO_THREADS_NOTE = (
    ". Measured for makeavideo: the earlier recipe (no radial position features, one learning-rate cycle) "
    "was not within noise across runs (--seed 1, or the same seed with --threads 1, got the size motions "
    "wrong: held-out all three 84%); this recipe scored held-out all three 94% and 96% (seeds 0 and 1, "
    "--threads 1, attention=sdpa) and 97% (seed 0, --threads 2, the shipped run)"
)


def write_cards(trainer: Trainer, written: dict[str, str], evaluation: dict, command: str) -> None:
    """A card next to each written file: config, seed, steps, data, command, time, losses, evaluation."""
    recipe = trainer.recipe
    common = {
        "seed": recipe.seed,
        "steps": recipe.total_steps,
        "command": command or f"python -m videocascade.sprites.train {stage_of(recipe)} --threads 1",
        "resume": "rerun the same command: it continues from .train/<stage>/state.pt",
        "continued_from_clip_steps": trainer.extended_from,
        "wall_minutes": round(trainer.wall_seconds / 60, 1),
        "cpu_minutes": round(trainer.cpu_seconds / 60, 1),
        "machine": machine_description(trainer_device(trainer)),
        "code_revision": code_revision("sprites", "models", "samplers"),
        "final_losses": trainer.history[-1] if trainer.history else {},
        "data": {
            "world": "sprites, split='train' (held-out colour x shape x motion combinations never seen)",
            "clips": f"{recipe.frames} frames of {recipe.height}x{recipe.width} at {recipe.fps} fps",
            "captions": "sprites.captions.caption (varied wording); images: image_caption",
            "two_object_prob": recipe.two_object_prob,
            "clip_path_spread": recipe.clip_path_spread,
            "clip_focus": {
                "motions": recipe.clip_focus_motions,
                "fraction": recipe.clip_focus_fraction,
                "last_clip_steps": recipe.clip_focus_steps,
            },
            "clip_first_cycle": recipe.clip_first_cycle,
            "background_kinds": recipe.background_kinds,
            "uncond_prob": recipe.uncond_prob,
        },
        "recipe": recipe_dict(recipe),
        "quick_evaluation_at_training_resolution": evaluation,
        "reproducibility": reproducibility_note(
            "the evaluator's accuracies within about +-5 points (the binomial noise of 100 prompts)"
            + (MAKEAVIDEO_THREADS_NOTE if stage_of(recipe) == "makeavideo" else "")
        ),
    }
    for kind, path in written.items():
        card = {"file": os.path.basename(path), "kind": kind, **common}
        if kind == "text_encoder":
            card["config"] = dataclasses.asdict(trainer.encoder.config)
            card["trained_with"] = (
                dit_file(recipe)
                if recipe.ships_dit
                else "this stage's DiT (not shipped: it teaches the encoder)"
            )
        else:
            card["config"] = dataclasses.asdict(recipe.dit)
            card["latent_format"] = latent_format_of(recipe)
            card["sampler"] = json.loads(recipe.sampler.metadata())
        write_card(path.removesuffix(".safetensors") + ".card.json", card)


STAGE_RECIPES: dict[str, Callable[[], Recipe]] = {
    "text": text_recipe,
    "makeavideo": makeavideo_recipe,
    "sora": sora_recipe,
    "videoldm": videoldm_recipe,
}


def stage_of(recipe: Recipe) -> str:
    return {v().name: k for k, v in STAGE_RECIPES.items()}.get(recipe.name, recipe.name)


SCALAR_TYPES = ("int", "float", "bool", "str")


def recipe_for(args: StageArgs) -> Recipe:
    """The stage's recipe with the command line applied: ``--seed``, ``--steps`` (all phases scaled to
    that total), ``--quick`` (a tiny smoke run), ``--set field=value`` for any scalar recipe field and
    ``--set dit.field=value`` for any scalar field of the DiT's config."""
    recipe = STAGE_RECIPES[args.stage]()
    recipe.seed = args.seed
    scalar = {f.name for f in dataclasses.fields(Recipe) if f.type in SCALAR_TYPES}
    dit_scalar = {f"dit.{f.name}" for f in dataclasses.fields(DiTConfig) if f.type in SCALAR_TYPES}
    phases = ("text_probe_steps", "image_steps", "clip_steps")
    if args.quick:
        recipe.dit = dataclasses.replace(recipe.dit, hidden_size=32, depth=1, num_heads=2, ffn_dim=64)
        recipe.text = dataclasses.replace(recipe.text, dim=32, depth=1, num_heads=2)
        recipe.image_batch, recipe.clip_batch, recipe.mixed_images = 4, 2, min(recipe.mixed_images, 2)
        recipe.text_batch = 8
        for name in phases:
            setattr(recipe, name, min(getattr(recipe, name), 3))
    # After --quick, so what the command line sets explicitly wins.
    for name in args.options:
        if name in ("eval_every", "final_eval"):
            continue
        if name in dit_scalar:
            field_name = name.removeprefix("dit.")
            value = args.option(name, getattr(recipe.dit, field_name))
            recipe.dit = dataclasses.replace(recipe.dit, **{field_name: value})
            continue
        if name not in scalar:
            known = ", ".join(sorted(scalar) + ["dit.<field>"])
            raise ValueError(f"--set {name}=...: not a recipe or DiT config field; known: {known}")
        setattr(recipe, name, args.option(name, getattr(recipe, name)))
    if args.steps is not None:
        scale = args.steps / max(1, recipe.total_steps)
        for name in phases:
            value = getattr(recipe, name)
            setattr(recipe, name, max(1, round(value * scale)) if value else 0)
        # The focus window and the first learning-rate cycle are shares of the clip phase: they scale with it.
        recipe.clip_focus_steps = round(recipe.clip_focus_steps * scale)
        recipe.clip_first_cycle = round(recipe.clip_first_cycle * scale)
    return recipe


def run_stage(args: StageArgs) -> dict[str, Any]:
    """A stage as ``sprites/train.py`` runs it: train (resuming), export, write cards; returns a summary."""
    recipe = recipe_for(args)
    written = train(
        recipe,
        out_dir=args.out_dir,
        state_dir=args.state_dir,
        resume=args.resume,
        eval_every=args.option("eval_every", 0),
        final_eval=args.option("final_eval", 0 if args.quick else 48),
        command=args.command,
        device=args.device,
    )
    return {kind: path for kind, path in written.items()}


STAGES: dict[str, Callable[[StageArgs], dict[str, Any]]] = {name: run_stage for name in STAGE_RECIPES}
DEVICE_STAGES = frozenset(STAGES)  # stages that train on --device cuda
