"""The pixel-space "VAE": the identity on video, for DiTs that denoise pixels (the Make-A-Video base).

It offers the same interface as the real VAEs (factors, channel count, encode/decode, model
normalisation), so the loader, Empty Video Latent, VAE Encode/Decode and the sampler treat a pixel-space
pipeline like any other: the "latent" is the video itself, ``[B, 3, T, H, W]`` in [-1, 1].
"""

from __future__ import annotations

import torch
from torch import nn

PIXEL_SPACE_FAMILY = "pixels"
PIXEL_SPACE_CHOICE = "builtin/pixel-space"  # the VAE loader's dropdown entry (no file behind it)


class PixelSpace(nn.Module):
    """Identity encode/decode with temporal and spatial factor 1 and 3 "latent" channels."""

    temporal_factor = 1
    spatial_factor = 1
    latent_channels = 3
    family = PIXEL_SPACE_FAMILY
    config = None

    def __init__(self) -> None:
        super().__init__()
        # No weights; this empty parameter only tells generic code (devices, dtype) where the module lives.
        self.anchor = nn.Parameter(torch.zeros(0), requires_grad=False)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Video ``[B, 3, T, H, W]`` in [-1, 1] -> the same tensor as a latent (a copy)."""
        self._check(video, "video")
        return video.clone()

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent -> video, clamped to [-1, 1] (a sampler's output may overshoot slightly)."""
        self._check(latent, "latent")
        return latent.clamp(-1.0, 1.0)

    def latents_to_model(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def latents_from_model(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def video_frames(self, latent_frames: int) -> int:
        return latent_frames

    @staticmethod
    def _check(x: torch.Tensor, name: str) -> None:
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"pixel-space {name} must be [B, 3, T, H, W] in [-1, 1], got {tuple(x.shape)}")
