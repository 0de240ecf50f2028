"""The causal video VAE: Wan 2.1's architecture with the knobs our embedded models need.

One class serves the real Wan 2.1 weights (preset ``"wan2.1"``), video VAEs with temporal factor 4 and
per-frame image autoencoders (temporal factor 1, temporal kernel 1) whose decoder may carry VideoLDM-style
temporal blocks. Whole-clip methods live here; memory-bounded chunked and tiled versions are in
``streaming.py`` and ``tiling.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch
from torch import nn

from .blocks import TemporalResidualBlock
from .causal_conv import CausalConv3d
from .networks import Decoder, Encoder
from .posterior import DiagonalGaussian
from .resample import Downsample, Upsample

WAN21_LATENTS_MEAN = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)  # fmt: skip
WAN21_LATENTS_STD = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
)  # fmt: skip


@dataclass
class CausalVAEConfig:
    """Shape of a :class:`CausalVAE`. Saved in our checkpoints, so fields only get added with defaults.

    ``temporal_downsample[i]`` says whether encoder stage ``i`` also halves time (the decoder mirrors it);
    there is one flag per downsampling stage, i.e. ``len(channel_multipliers) - 1``. A temporal kernel of 1
    makes that network per-frame. Latents are normalised for the diffusion model as
    ``(z - latents_mean) / latents_std * scaling_factor`` (mean 0 / std 1 when not given).
    """

    family: str = "sprites-t4"
    image_channels: int = 3
    base_channels: int = 32
    channel_multipliers: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 1
    latent_channels: int = 8
    temporal_downsample: tuple[bool, ...] = (True, True)
    middle_attention: bool = True
    encoder_temporal_kernel: int = 3
    decoder_temporal_kernel: int = 3
    decoder_temporal_blocks: bool = False
    latents_mean: tuple[float, ...] | None = None
    latents_std: tuple[float, ...] | None = None
    scaling_factor: float = 1.0

    def __post_init__(self) -> None:
        stages = len(self.channel_multipliers) - 1
        if len(self.temporal_downsample) != stages:
            raise ValueError(
                f"temporal_downsample needs one flag per downsampling stage ({stages}), "
                f"got {self.temporal_downsample}"
            )
        for name in ("latents_mean", "latents_std"):
            values = getattr(self, name)
            if values is not None and len(values) != self.latent_channels:
                raise ValueError(
                    f"{name} has {len(values)} values for {self.latent_channels} latent channels"
                )
        if self.encoder_temporal_kernel < 1 or self.decoder_temporal_kernel < 1:
            raise ValueError("temporal kernels must be >= 1")

    @property
    def temporal_factor(self) -> int:
        return 2 ** sum(bool(flag) for flag in self.temporal_downsample)

    @property
    def spatial_factor(self) -> int:
        return 2 ** (len(self.channel_multipliers) - 1)


VAE_PRESETS: dict[str, CausalVAEConfig] = {
    # The real Wan 2.1 VAE (127M parameters): 16 latent channels, 4x8x8 compression.
    "wan2.1": CausalVAEConfig(
        family="wan2.1",
        base_channels=96,
        channel_multipliers=(1, 2, 4, 4),
        num_res_blocks=2,
        latent_channels=16,
        temporal_downsample=(False, True, True),
        latents_mean=WAN21_LATENTS_MEAN,
        latents_std=WAN21_LATENTS_STD,
    ),
    # Embedded video VAE for the sprites world: 4x4x4 compression, like Wan/CogVideoX in time.
    "sprites-t4": CausalVAEConfig(),
    # Per-frame image autoencoder (VideoLDM-style latents, no temporal compression).
    "sprites-t1": CausalVAEConfig(
        family="sprites-t1",
        latent_channels=4,
        temporal_downsample=(False, False),
        encoder_temporal_kernel=1,
        decoder_temporal_kernel=1,
    ),
    # The same latent space, decoded with temporal blocks added to the per-frame decoder (VideoLDM).
    "sprites-t1-temporal": CausalVAEConfig(
        family="sprites-t1",
        latent_channels=4,
        temporal_downsample=(False, False),
        encoder_temporal_kernel=1,
        decoder_temporal_kernel=1,
        decoder_temporal_blocks=True,
    ),
}


def vae_preset(name: str, **overrides: object) -> CausalVAEConfig:
    """A copy of a named preset, with fields optionally overridden."""
    if name not in VAE_PRESETS:
        raise KeyError(f"unknown VAE preset {name!r}; known presets: {sorted(VAE_PRESETS)}")
    return replace(VAE_PRESETS[name], **overrides)


class CausalVAE(nn.Module):
    """KL video autoencoder. Video ``[B, 3, T, H, W]`` in [-1, 1] ↔ latent ``[B, C, 1 + (T-1)/tf, H/f, W/f]``."""

    def __init__(self, config: CausalVAEConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.encoder = Encoder(
            in_channels=c.image_channels,
            base_channels=c.base_channels,
            channel_multipliers=c.channel_multipliers,
            num_res_blocks=c.num_res_blocks,
            out_channels=2 * c.latent_channels,
            temporal_downsample=c.temporal_downsample,
            middle_attention=c.middle_attention,
            temporal_kernel=c.encoder_temporal_kernel,
        )
        self.quant_conv = CausalConv3d(2 * c.latent_channels, 2 * c.latent_channels, 1)
        self.post_quant_conv = CausalConv3d(c.latent_channels, c.latent_channels, 1)
        self.decoder = Decoder(
            latent_channels=c.latent_channels,
            base_channels=c.base_channels,
            channel_multipliers=c.channel_multipliers,
            num_res_blocks=c.num_res_blocks,
            out_channels=c.image_channels,
            temporal_upsample=tuple(reversed(c.temporal_downsample)),
            middle_attention=c.middle_attention,
            temporal_kernel=c.decoder_temporal_kernel,
            temporal_blocks=c.decoder_temporal_blocks,
        )
        shape = (1, c.latent_channels, 1, 1, 1)
        mean = torch.tensor(c.latents_mean or [0.0] * c.latent_channels).view(shape)
        std = torch.tensor(c.latents_std or [1.0] * c.latent_channels).view(shape)
        # Not persistent: they come from the config, and Wan/diffusers files do not hold them.
        self.register_buffer("latents_mean", mean, persistent=False)
        self.register_buffer("latents_std", std, persistent=False)

    # -- shape facts -------------------------------------------------------------------------------
    @property
    def family(self) -> str:
        return self.config.family

    @property
    def temporal_factor(self) -> int:
        return self.config.temporal_factor

    @property
    def spatial_factor(self) -> int:
        return self.config.spatial_factor

    @property
    def latent_channels(self) -> int:
        return self.config.latent_channels

    def latent_frames(self, frames: int) -> int:
        return 1 + (frames - 1) // self.temporal_factor

    def video_frames(self, latent_frames: int) -> int:
        return 1 + (latent_frames - 1) * self.temporal_factor

    def check_video(self, video: torch.Tensor) -> None:
        """Raise a clear error unless ``video`` is ``[B, 3, 1 + k*tf, H, W]`` with H, W multiples of f."""
        if video.ndim != 5 or video.shape[1] != self.config.image_channels:
            raise ValueError(
                f"expected a video [B, {self.config.image_channels}, T, H, W], got shape {tuple(video.shape)}"
            )
        t, h, w = video.shape[2:]
        tf, f = self.temporal_factor, self.spatial_factor
        if t < 1 or (t - 1) % tf:
            raise ValueError(
                f"{self.family} VAE encodes 1 + {tf}*k frames, got {t}; pad the clip (encode_video() in "
                f"vae/streaming.py repeats the last frame) or trim it to {1 + (t - 1) // tf * tf} frames"
            )
        if h % f or w % f:
            raise ValueError(
                f"{self.family} VAE needs height and width divisible by {f}, got {h}x{w}; "
                f"resize or crop to {h // f * f}x{w // f * f}"
            )

    # -- whole-clip encode / decode ---------------------------------------------------------------
    def encode_posterior(self, video: torch.Tensor) -> DiagonalGaussian:
        self.check_video(video)
        # contiguous: the CPU convolutions return a frame-major layout (see CausalConv3d)
        return DiagonalGaussian(self.quant_conv(self.encoder(video)).contiguous())

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Raw latent mean (not normalised for the diffusion model)."""
        return self.encode_posterior(video).mean

    def decode(self, z: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """Raw latent → video; ``clamp=False`` keeps gradients outside [-1, 1] for training."""
        if z.ndim != 5 or z.shape[1] != self.latent_channels:
            raise ValueError(
                f"{self.family} VAE decodes latents [B, {self.latent_channels}, T, h, w], got {tuple(z.shape)}"
            )
        video = self.decoder(self.post_quant_conv(z))
        return (video.clamp(-1.0, 1.0) if clamp else video).contiguous()

    def forward(
        self, video: torch.Tensor, sample: bool = True, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, DiagonalGaussian]:
        """Reconstruction (unclamped) and posterior, for training."""
        posterior = self.encode_posterior(video)
        z = posterior.sample(generator) if sample else posterior.mode()
        return self.decode(z, clamp=False), posterior

    # -- latent normalisation for the diffusion model ---------------------------------------------
    def latents_to_model(self, z: torch.Tensor) -> torch.Tensor:
        mean, std = self.latents_mean.to(z), self.latents_std.to(z)
        return (z - mean) / std * self.config.scaling_factor

    def latents_from_model(self, z: torch.Tensor) -> torch.Tensor:
        mean, std = self.latents_mean.to(z), self.latents_std.to(z)
        return z / self.config.scaling_factor * std + mean

    # -- parameter groups ---------------------------------------------------------------------------
    def temporal_parameters(self) -> Iterator[nn.Parameter]:
        """Layers that act along time only: resampling time convs and decoder temporal blocks.

        With ``spatial_parameters()`` frozen, these are what VideoLDM fine-tunes on video.
        """
        for module in self.modules():
            if isinstance(module, TemporalResidualBlock):
                yield from module.parameters()
            elif isinstance(module, (Downsample, Upsample)) and module.time_conv is not None:
                yield from module.time_conv.parameters()

    def spatial_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter not in :meth:`temporal_parameters` (3D convs count here)."""
        temporal = {id(p) for p in self.temporal_parameters()}
        return (p for p in self.parameters() if id(p) not in temporal)
