"""DiT stage: load a video DiT, make an empty video latent, sample a latent from text."""

from __future__ import annotations

import torch

from ..cuda_ext.dispatch import BACKENDS
from ..runtime.latents import SamplerPreview, check_latent_fits, make_latent, seeded_noise
from ..runtime.loaders import (
    check_conditioning_width,
    load_dit_handle,
    model_on_device,
    resolve_weights,
    sampler_preset,
)
from ..samplers import SCHEDULES, SOLVERS, sample
from .base import category, combo_input, float_input, int_input, link_input, node_mappings, seed_input
from .loader_inputs import WeightsLoader, dtype_input, path_input, weights_inputs


class VCDiTLoader(WeightsLoader):
    DESCRIPTION = (
        "Load a video DiT: VideoCascade's embedded models, Wan 2.1 or CogVideoX (detected from the file)."
    )
    CATEGORY = category("dit")
    RETURN_TYPES = ("VC_DIT",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The DiT with its family's sampler preset and the latent format it expects.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                **weights_inputs("dit", "diffusion transformer"),
                **dtype_input("Weights and compute precision; auto = bf16 on a GPU, fp32 on the CPU."),
                "attention": combo_input(
                    BACKENDS,
                    "Attention kernel; auto picks sageattention, then SDPA (the compiled kernel only where "
                    "a benchmark preference file names it; 'compiled' forces it).",
                ),
            },
            "optional": path_input("diffusion transformer"),
        }

    def load(self, file, dtype, attention, path=""):
        return (load_dit_handle(resolve_weights("dit", file, path), dtype, attention),)


class VCEmptyVideoLatent:
    DESCRIPTION = "An empty (zero) video latent of the VAE's format: the start of text-to-video sampling."
    CATEGORY = category("dit")
    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("Zeros [batch, C, 1 + (frames-1)//temporal factor, height/f, width/f].",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vae": link_input(
                    "VC_VAE", "The VAE that will decode the video: sets channels and compression."
                ),
                "width": int_input(
                    64, 16, 4096, "Video width in pixels; a multiple of the VAE's spatial factor.", 16
                ),
                "height": int_input(
                    64, 16, 4096, "Video height in pixels; a multiple of the VAE's spatial factor.", 16
                ),
                "frames": int_input(
                    17,
                    1,
                    1025,
                    "Video frames. Rounded down to 1 + k*temporal factor (4 for Wan/CogVideoX: 17, 21, ...): "
                    "the latent has 1 + (frames-1)//4 frames.",
                ),
                "batch_size": int_input(1, 1, 64, "Videos sampled at once (each gets its own noise)."),
            }
        }

    def make(self, vae, width, height, frames, batch_size):
        model = vae.model
        f, tf = model.spatial_factor, model.temporal_factor
        if width % f or height % f:
            raise ValueError(
                f"width x height {width}x{height} must be multiples of the {vae.family} VAE's spatial factor {f}; "
                f"use {width // f * f}x{height // f * f}"
            )
        latent_frames = 1 + (frames - 1) // tf
        shape = (batch_size, model.latent_channels, latent_frames, height // f, width // f)
        return (make_latent(torch.zeros(shape), vae.family),)


def _conditioning(conditioning, name: str, dit, batch: int) -> dict:
    """ComfyUI CONDITIONING (one ``[emb, extras]`` entry) -> the model's context and mask."""
    if not isinstance(conditioning, list) or len(conditioning) != 1:
        count = len(conditioning) if isinstance(conditioning, list) else type(conditioning).__name__
        raise ValueError(f"'{name}' must be one CONDITIONING entry (from VC Text Encode), got {count}")
    emb, extras = conditioning[0]
    if emb.ndim != 3:
        raise ValueError(f"'{name}' embeddings must be [B, L, D], got {tuple(emb.shape)}")
    check_conditioning_width(dit, emb.shape[-1], name)
    if emb.shape[0] not in (1, batch):
        raise ValueError(
            f"'{name}' holds {emb.shape[0]} prompts for a latent batch of {batch}; use one prompt"
        )
    mask = extras.get("attention_mask") if dit.options["use_context_mask"] else None
    # One row per video, so positive and negative batch into one model call.
    return {
        "context": emb.float().expand(batch, -1, -1),
        "mask": None if mask is None else mask.bool().expand(batch, -1),
    }


class VCDiTSampler:
    DESCRIPTION = "Denoise a video latent with the DiT from text conditioning (classifier-free guidance)."
    CATEGORY = category("dit")
    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("The denoised latent, for VC VAE Decode.",)
    FUNCTION = "sample"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": link_input("VC_DIT", "The DiT from VC DiT Loader."),
                "positive": link_input("CONDITIONING", "What the video should show (VC Text Encode)."),
                "negative": link_input(
                    "CONDITIONING", "What to steer away from; an empty prompt is typical."
                ),
                "latent": link_input(
                    "LATENT", "VC Empty Video Latent (text-to-video) or VC VAE Encode (video-to-video)."
                ),
                "seed": seed_input(
                    "Noise seed; drawn on the CPU, so a seed gives the same video on any device."
                ),
                "steps": int_input(30, 1, 1000, "Denoising steps run (Wan and CogVideoX references use 50)."),
                "cfg": float_input(
                    5.0, 0.0, 30.0, "Guidance scale; 1 skips the negative pass (Wan 5, CogVideoX 6).", 0.1
                ),
                "solver": combo_input(
                    ["default", *SOLVERS], "Solver; default = the model family's reference one."
                ),
                "schedule": combo_input(
                    SCHEDULES, "Noise level spacing; default = the model family's reference one."
                ),
                "shift": float_input(
                    0.0,
                    0.0,
                    100.0,
                    "Flow timestep shift (Wan, embedded models); 0 = the family default (Wan: 3 at 480p, 5 at 720p).",
                    0.1,
                ),
                "denoise": float_input(
                    1.0,
                    0.0,
                    1.0,
                    "How much of the input latent is replaced, as ComfyUI's KSampler: below 1 the 'steps' steps "
                    "are the last ones of a steps/denoise-step schedule. 1 = from pure noise.",
                ),
            }
        }

    def sample(self, model, positive, negative, latent, seed, steps, cfg, solver, schedule, shift, denoise):
        fix = f"make the latent with a {model.options['latent_format']} VAE (VC Empty Video Latent / VC VAE Encode)"
        x = check_latent_fits(
            latent, model.options["latent_format"], model.config.in_channels, "this DiT", fix
        )
        preset = sampler_preset(model, x.shape[-2], x.shape[-1])
        if shift and preset.prediction.kind != "flow":
            raise ValueError(
                f"'shift' applies to flow-matching models; this {model.family} DiT is not one: set it to 0"
            )
        cond = _conditioning(positive, "positive", model, x.shape[0])
        uncond = _conditioning(negative, "negative", model, x.shape[0])
        if denoise <= 0.0:
            return ({**latent},)
        # KSampler semantics: `steps` steps run, the tail of a longer schedule (the library's
        # denoise keeps round(total * denoise) steps of `total`).
        total = steps if denoise >= 1.0 else max(steps, int(steps / denoise))
        noise = seeded_noise(x.shape, seed)
        preview = SamplerPreview(model.options["latent_format"], x.shape[1])
        with model_on_device(model) as dit:
            device = next(dit.parameters()).device

            def model_fn(x_in, timestep, c):
                mask = None if c["mask"] is None else c["mask"].to(device)
                return dit(x_in.to(device), timestep.to(device), c["context"].to(device), mask).float()

            out = sample(
                model_fn,
                preset.prediction,
                noise.to(device),
                steps=total,
                solver=preset.solver if solver == "default" else solver,
                cfg=cfg,
                cond=cond,
                uncond=uncond,
                denoise=steps / total,
                latent=x.to(device),
                shift=shift or None,
                schedule=preset.schedule if schedule == "default" else schedule,
                dynamic_cfg=preset.dynamic_cfg,
                generator=torch.Generator(device="cpu").manual_seed(seed),
                callback=preview,
            )
        return ({**latent, "samples": out.float().cpu()},)


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = node_mappings(
    (VCDiTLoader, "VC DiT Loader"),
    (VCEmptyVideoLatent, "VC Empty Video Latent"),
    (VCDiTSampler, "VC DiT Sampler"),
)
