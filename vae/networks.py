"""Encoder and decoder of the causal VAE (Wan 2.1's layout, made configurable).

Every temporal operation is causal, so both networks accept a :class:`StreamCache` and can run a clip in
temporal chunks with the same result as in one pass. The decoder exposes its :meth:`Decoder.stages` so
the streaming decoder can split frames between stages (see ``streaming.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import MidBlock, ResidualBlock, RMSNorm, TemporalResidualBlock
from .causal_conv import CausalConv3d, StreamCache
from .resample import Downsample, Upsample

Stage = Callable[[torch.Tensor, StreamCache], torch.Tensor]


class Encoder(nn.Module):
    """Video ``[B, 3, T, H, W]`` → posterior parameters ``[B, out_channels, T', H/f, W/f]``."""

    def __init__(
        self,
        in_channels: int,
        base_channels: int,
        channel_multipliers: Sequence[int],
        num_res_blocks: int,
        out_channels: int,
        temporal_downsample: Sequence[bool],
        middle_attention: bool,
        temporal_kernel: int,
    ) -> None:
        super().__init__()
        widths = [base_channels * m for m in (1, *channel_multipliers)]
        self.conv_in = CausalConv3d(in_channels, widths[0], (temporal_kernel, 3, 3))
        layers: list[nn.Module] = []
        for stage, (width_in, width_out) in enumerate(zip(widths[:-1], widths[1:])):
            for _ in range(num_res_blocks):
                layers.append(ResidualBlock(width_in, width_out, temporal_kernel))
                width_in = width_out
            if stage < len(channel_multipliers) - 1:
                layers.append(Downsample(width_out, temporal=temporal_downsample[stage]))
        self.down_blocks = nn.ModuleList(layers)
        self.mid_block = MidBlock(widths[-1], middle_attention, temporal_kernel)
        self.norm_out = RMSNorm(widths[-1])
        self.conv_out = CausalConv3d(widths[-1], out_channels, (temporal_kernel, 3, 3))
        self.spatial_factor = 2 ** (len(channel_multipliers) - 1)

    def forward(self, x: torch.Tensor, cache: StreamCache | None = None) -> torch.Tensor:
        cache = StreamCache() if cache is None else cache
        b, _, _, h, w = x.shape
        x = self.conv_in.stream(x, cache)
        for layer in self.down_blocks:
            x = layer(x, cache)
            if x.shape[2] == 0:  # a temporal stage is still collecting frames: nothing to emit yet
                f = self.spatial_factor
                return x.new_zeros(b, self.conv_out.out_channels, 0, h // f, w // f)
        x = self.mid_block(x, cache)
        return self.conv_out.stream(F.silu(self.norm_out(x)), cache)


class UpBlock(nn.Module):
    """``num_res_blocks + 1`` residual blocks (each optionally followed by a temporal block), then an upsample."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_res_blocks: int,
        upsample: str | None,
        temporal_kernel: int,
        temporal_blocks: bool,
    ) -> None:
        super().__init__()
        widths = [in_channels] + [out_channels] * (num_res_blocks + 1)
        self.resnets = nn.ModuleList(
            [ResidualBlock(a, b, temporal_kernel) for a, b in zip(widths[:-1], widths[1:])]
        )
        self.temporal_blocks = (
            nn.ModuleList([TemporalResidualBlock(out_channels) for _ in self.resnets])
            if temporal_blocks
            else None
        )
        # Wan 2.1 halves the width in the upsampling conv; the next block widens it again.
        self.upsamplers = nn.ModuleList(
            [Upsample(out_channels, out_channels // 2, temporal=upsample == "3d")] if upsample else []
        )

    def forward(self, x: torch.Tensor, cache: StreamCache) -> torch.Tensor:
        for i, resnet in enumerate(self.resnets):
            x = resnet(x, cache)
            if self.temporal_blocks is not None:
                x = self.temporal_blocks[i](x, cache)
        for upsampler in self.upsamplers:
            x = upsampler(x, cache)
        return x


class Decoder(nn.Module):
    """Latent ``[B, C, T', h, w]`` → video ``[B, 3, 1 + tf * (T' - 1), h * f, w * f]`` (not clamped)."""

    def __init__(
        self,
        latent_channels: int,
        base_channels: int,
        channel_multipliers: Sequence[int],
        num_res_blocks: int,
        out_channels: int,
        temporal_upsample: Sequence[bool],
        middle_attention: bool,
        temporal_kernel: int,
        temporal_blocks: bool = False,
    ) -> None:
        super().__init__()
        mults = list(channel_multipliers)
        widths = [base_channels * m for m in (mults[-1], *reversed(mults))]
        self.conv_in = CausalConv3d(latent_channels, widths[0], (temporal_kernel, 3, 3))
        self.mid_block = MidBlock(widths[0], middle_attention, temporal_kernel, temporal_blocks)
        blocks = []
        for stage, (width_in, width_out) in enumerate(zip(widths[:-1], widths[1:])):
            if stage > 0:
                width_in //= 2  # the previous stage's upsampling conv halved it
            last = stage == len(mults) - 1
            upsample = None if last else ("3d" if temporal_upsample[stage] else "2d")
            blocks.append(
                UpBlock(width_in, width_out, num_res_blocks, upsample, temporal_kernel, temporal_blocks)
            )
        self.up_blocks = nn.ModuleList(blocks)
        self.norm_out = RMSNorm(widths[-1])
        self.conv_out = CausalConv3d(widths[-1], out_channels, (temporal_kernel, 3, 3))

    def _input(self, x: torch.Tensor, cache: StreamCache) -> torch.Tensor:
        return self.mid_block(self.conv_in.stream(x, cache), cache)

    def _head(self, x: torch.Tensor, cache: StreamCache) -> torch.Tensor:
        return self.conv_out.stream(F.silu(self.norm_out(x)), cache)

    def stages(self) -> list[Stage]:
        """The decoder as a chain of causal stages, lowest resolution first."""
        return [self._input, *self.up_blocks, self._head]

    def forward(self, z: torch.Tensor, cache: StreamCache | None = None) -> torch.Tensor:
        cache = StreamCache() if cache is None else cache
        for stage in self.stages():
            z = stage(z, cache)
        return z
