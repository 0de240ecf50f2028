"""LATENT dicts between nodes: their format tag, checks with clear messages, seeded noise, sampler previews.

A LATENT is ``{"samples": float32 [B, C, T, H, W], "videocascade_format": "<vae family>"}`` with the
samples already normalised for the diffusion model (``vae.latents_to_model``). A latent made by another
node pack has no format tag; it is accepted when its channel count fits.
"""

from __future__ import annotations

from typing import Any

import torch

from .comfy import comfy_module

FORMAT_KEY = "videocascade_format"
FRAMES_KEY = "videocascade_frames"  # frame count of the encoded clip before padding (decode trims to it)


def make_latent(samples: torch.Tensor, latent_format: str, **extra: Any) -> dict[str, Any]:
    """A LATENT dict; ``extra`` keys (e.g. :data:`FRAMES_KEY`) travel along with it."""
    return {"samples": samples, FORMAT_KEY: latent_format, **extra}


def latent_samples(latent: Any, input_name: str = "latent") -> torch.Tensor:
    """The ``[B, C, T, H, W]`` samples of a LATENT, or a clear error for anything else."""
    if not isinstance(latent, dict) or not isinstance(latent.get("samples"), torch.Tensor):
        raise TypeError(
            f"'{input_name}' must be a LATENT dict with a 'samples' tensor, got {type(latent).__name__}"
        )
    samples = latent["samples"]
    if samples.ndim != 5:
        raise ValueError(
            f"'{input_name}' holds an image latent {tuple(samples.shape)}; video nodes need a video latent "
            "[B, C, T, H, W] (from VC Empty Video Latent or VC VAE Encode)"
        )
    return samples


def check_latent_fits(
    latent: dict[str, Any], expected_format: str, channels: int, consumer: str, fix: str
) -> torch.Tensor:
    """Refuse a latent of another family (format tag or channel count); return its samples.

    ``consumer`` names what reads it ("this VAE", "this DiT"), ``fix`` what the user should do instead.
    """
    samples = latent_samples(latent)
    found = latent.get(FORMAT_KEY)
    if found is not None and found != expected_format:
        raise ValueError(
            f"the latent is in the '{found}' format but {consumer} expects '{expected_format}' latents; {fix}"
        )
    if samples.shape[1] != channels:
        origin = f"'{found}' " if found else ""
        raise ValueError(
            f"the {origin}latent has {samples.shape[1]} channels but {consumer} ('{expected_format}') expects "
            f"{channels}; {fix}"
        )
    return samples


def seeded_noise(shape: tuple[int, ...] | torch.Size, seed: int) -> torch.Tensor:
    """Unit Gaussian noise drawn on the CPU from ``seed`` (as ComfyUI does): the same on every device."""
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float32, device="cpu")


# -- previews inside ComfyUI ------------------------------------------------------------------------------
def _latent_to_rgb(latent_format: str, channels: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A ``[3, C]`` projection of latent channels to RGB: ComfyUI's factors where it has them."""
    formats = comfy_module("comfy.latent_formats")
    known = {"wan2.1": "Wan21"}
    if formats is not None and latent_format in known and hasattr(formats, known[latent_format]):
        fmt = getattr(formats, known[latent_format])()
        factors = torch.tensor(fmt.latent_rgb_factors, dtype=torch.float32)
        if factors.shape[0] == channels:
            bias = getattr(fmt, "latent_rgb_factors_bias", None)
            return factors.T, torch.tensor(bias, dtype=torch.float32) if bias is not None else None
    # A rough view: the first three (normalised) channels as RGB.
    projection = torch.zeros(3, channels)
    for i in range(min(3, channels)):
        projection[i, i] = 0.5
    return projection, None


class SamplerPreview:
    """Sampler callback: ComfyUI's per-step preview image of the current x0 estimate, when previews are on.

    Outside ComfyUI, or with ``--preview-method none`` (ComfyUI's default), it does nothing; progress
    itself is reported by the sampler's own progress bar.
    """

    def __init__(self, latent_format: str, channels: int) -> None:
        self._bar = None
        args = getattr(comfy_module("comfy.cli_args"), "args", None)
        utils = comfy_module("comfy.utils")
        method = getattr(args, "preview_method", None)
        if utils is None or str(getattr(method, "value", method)).lower() in ("none", ""):
            return
        self._projection, self._bias = _latent_to_rgb(latent_format, channels)
        self._max_size = int(getattr(args, "preview_size", 512))
        self._bar_class = utils.ProgressBar
        self._total = 0

    @property
    def enabled(self) -> bool:
        return hasattr(self, "_bar_class")

    def __call__(self, step: int, x0: torch.Tensor, x: torch.Tensor, total: int) -> None:
        if not self.enabled:
            return
        if self._bar is None or self._total != total:
            self._bar, self._total = self._bar_class(total), total
        self._bar.update_absolute(step + 1, total, ("JPEG", self.image(x0), self._max_size))

    def image(self, x0: torch.Tensor):
        """The middle latent frame of the first clip as a PIL image."""
        from PIL import Image

        frame = x0[0, :, x0.shape[2] // 2].float().cpu()  # [C, H, W]
        rgb = torch.einsum("rc,chw->hwr", self._projection, frame)
        if self._bias is not None:
            rgb = rgb + self._bias
        pixels = ((rgb + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
        return Image.fromarray(pixels)
