"""Building blocks of the causal VAE: RMS norm, residual blocks, per-frame attention, the middle block.

Parameter names follow the diffusers layout of Wan 2.1's VAE (``norm1.gamma``, ``conv1.weight``, ...), so
those checkpoints load without renaming; ``wan_keys.py`` maps the original Wan names.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .causal_conv import CausalConv3d, StreamCache


class RMSNorm(nn.Module):
    """Normalise each position's channel vector to unit RMS, then scale per channel (no mean subtraction).

    ``spatial_dims`` is 3 for ``[B, C, T, H, W]`` and 2 for ``[B, C, H, W]``: it only shapes ``gamma``
    (Wan stores it as ``[C, 1, 1, 1]`` or ``[C, 1, 1]``).
    """

    def __init__(self, channels: int, spatial_dims: int = 3) -> None:
        super().__init__()
        self.scale = channels**0.5
        self.gamma = nn.Parameter(torch.ones(channels, *([1] * spatial_dims)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # F.normalize divides by the L2 norm, i.e. RMS * sqrt(C); ``scale`` restores unit RMS.
        # Half precision would lose the sum of squares, so normalise in fp32.
        normalized = F.normalize(x.float() if x.dtype in (torch.float16, torch.bfloat16) else x, dim=1)
        return normalized.to(x.dtype) * (self.scale * self.gamma)  # one full-size multiply, not two


class ResidualBlock(nn.Module):
    """norm → SiLU → conv → norm → SiLU → conv, plus a 1x1x1 shortcut when the width changes."""

    def __init__(self, in_channels: int, out_channels: int, temporal_kernel: int = 3) -> None:
        super().__init__()
        self.norm1 = RMSNorm(in_channels)
        self.conv1 = CausalConv3d(in_channels, out_channels, (temporal_kernel, 3, 3))
        self.norm2 = RMSNorm(out_channels)
        self.conv2 = CausalConv3d(out_channels, out_channels, (temporal_kernel, 3, 3))
        self.conv_shortcut = (
            CausalConv3d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        )

    def forward(self, x: torch.Tensor, cache: StreamCache) -> torch.Tensor:
        shortcut = self.conv_shortcut(x)
        x = self.conv1.stream(F.silu(self.norm1(x)), cache)
        x = self.conv2.stream(F.silu(self.norm2(x)), cache)
        return x + shortcut


class TemporalResidualBlock(nn.Module):
    """A residual block over time only (causal (3, 1, 1) convs), mixed in by a learned factor.

    VideoLDM adds such blocks to a per-frame image decoder so it learns temporal consistency; ``mix`` starts
    at 0, so a fresh block is the identity and the decoder starts out equal to the image decoder.
    """

    def __init__(self, channels: int, kernel_t: int = 3) -> None:
        super().__init__()
        self.norm1 = RMSNorm(channels)
        self.conv1 = CausalConv3d(channels, channels, (kernel_t, 1, 1))
        self.norm2 = RMSNorm(channels)
        self.conv2 = CausalConv3d(channels, channels, (kernel_t, 1, 1))
        self.mix = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, cache: StreamCache) -> torch.Tensor:
        h = self.conv1.stream(F.silu(self.norm1(x)), cache)
        h = self.conv2.stream(F.silu(self.norm2(h)), cache)
        return x + self.mix.to(h.dtype) * h


def per_frame(fn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a 2D module to every frame of ``[B, C, T, H, W]``."""
    b, _, t = x.shape[:3]
    frames = x.transpose(1, 2).flatten(0, 1)
    out = fn(frames)
    return out.unflatten(0, (b, t)).transpose(1, 2)


class FrameAttention(nn.Module):
    """Single-head self-attention over the pixels of each frame separately (no mixing across time)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = RMSNorm(channels, spatial_dims=2)
        self.to_qkv = nn.Conv2d(channels, channels * 3, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def _attend(self, frames: torch.Tensor) -> torch.Tensor:
        n, c, h, w = frames.shape
        qkv = self.to_qkv(self.norm(frames))  # [N, 3C, H, W]
        q, k, v = qkv.flatten(2).transpose(1, 2).unsqueeze(1).chunk(3, dim=-1)  # each [N, 1, HW, C]
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.squeeze(1).transpose(1, 2).reshape(n, c, h, w)
        return frames + self.proj(out)

    def forward(self, x: torch.Tensor, cache: StreamCache | None = None) -> torch.Tensor:
        return per_frame(self._attend, x)


class MidBlock(nn.Module):
    """residual → (attention) → residual at the lowest resolution; optional temporal blocks (decoder)."""

    def __init__(
        self, channels: int, attention: bool, temporal_kernel: int = 3, temporal_blocks: bool = False
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList([ResidualBlock(channels, channels, temporal_kernel) for _ in range(2)])
        self.attentions = nn.ModuleList([FrameAttention(channels)] if attention else [])
        self.temporal_blocks = (
            nn.ModuleList([TemporalResidualBlock(channels) for _ in range(2)]) if temporal_blocks else None
        )

    def forward(self, x: torch.Tensor, cache: StreamCache) -> torch.Tensor:
        for i, resnet in enumerate(self.resnets):
            if i == 1:
                for attention in self.attentions:
                    x = attention(x)
            x = resnet(x, cache)
            if self.temporal_blocks is not None:
                x = self.temporal_blocks[i](x, cache)
        return x
