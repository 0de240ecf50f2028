"""Building blocks of the CogVideoX VAE: causal 3D convs with a frame cache, spatial norm, resnets, samplers.

Parameter names follow the diffusers layout (``conv.weight``, ``norm_layer``, ``conv_y``, ...) so released
checkpoints load without a key map. Every block takes and returns a ``cache`` dict: the last input frames of
each causal convolution, so a clip can be processed in temporal chunks with the same result as one pass.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

Cache = dict  # nested dict of tensors, one entry per causal conv (or sub-block)

# Above this many elements a conv input is cut along time (same result, lower peak memory).
# Matches the ~2 GiB-of-fp16 threshold CogVideoX uses to stay inside cuDNN's workspace limits.
_CONV_SPLIT_ELEMENTS = 2 * 1024**3 // 2


def conv3d_in_time_slices(
    conv: nn.Conv3d, x: torch.Tensor, max_elements: int = _CONV_SPLIT_ELEMENTS
) -> torch.Tensor:
    """``conv(x)`` for a conv with no temporal padding and stride 1 in time, computed in time slices when large."""
    if x.numel() <= max_elements:
        return conv(x)
    k = conv.kernel_size[0]
    out_frames = x.shape[2] - k + 1
    parts = x.numel() // max_elements + 1
    step = max(1, -(-out_frames // parts))
    outs = [conv(x[:, :, s : min(s + step, out_frames) + k - 1]) for s in range(0, out_frames, step)]
    return torch.cat(outs, dim=2)


class CausalConv3d(nn.Module):
    """3D conv, causal in time: the first frame is repeated to pad the past, or the cached frames are used."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.time_kernel = kernel_size
        pad = (kernel_size - 1) // 2
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, padding=(0, pad, pad))

    def forward(
        self, x: torch.Tensor, cache: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        k = self.time_kernel
        if k == 1:
            return conv3d_in_time_slices(self.conv, x), None
        past = cache if cache is not None else x[:, :, :1].expand(-1, -1, k - 1, -1, -1)
        x = torch.cat([past, x], dim=2)
        return conv3d_in_time_slices(self.conv, x), x[:, :, -(k - 1) :].clone()


def _interpolate_first_frame_apart(z: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
    """Nearest resize of ``z`` to ``size``; an odd frame count > 1 keeps frame 0 apart (the causal first frame)."""
    t = size[0]
    if t > 1 and t % 2 == 1:
        first = F.interpolate(z[:, :, :1], size=(1, *size[1:]))
        rest = F.interpolate(z[:, :, 1:], size=(t - 1, *size[1:]))
        return torch.cat([first, rest], dim=2)
    return F.interpolate(z, size=size)


class SpatialNorm3D(nn.Module):
    """GroupNorm modulated by the latent ``zq`` (resized to the features): ``norm(f) * conv_y(zq) + conv_b(zq)``."""

    def __init__(self, channels: int, latent_channels: int, groups: int) -> None:
        super().__init__()
        self.norm_layer = nn.GroupNorm(groups, channels, eps=1e-6)
        self.conv_y = CausalConv3d(latent_channels, channels, kernel_size=1)
        self.conv_b = CausalConv3d(latent_channels, channels, kernel_size=1)

    def forward(self, f: torch.Tensor, zq: torch.Tensor) -> torch.Tensor:
        zq = _interpolate_first_frame_apart(zq, tuple(f.shape[-3:]))
        return self.norm_layer(f) * self.conv_y(zq)[0] + self.conv_b(zq)[0]


class ResnetBlock3D(nn.Module):
    """Two causal 3x3x3 convs with (spatial) group norm and SiLU, plus a 1x1x1 shortcut when channels change."""

    def __init__(
        self, in_channels: int, out_channels: int, groups: int, eps: float, latent_channels: int | None = None
    ) -> None:
        super().__init__()
        self.spatial = latent_channels is not None
        if self.spatial:
            self.norm1 = SpatialNorm3D(in_channels, latent_channels, groups)
            self.norm2 = SpatialNorm3D(out_channels, latent_channels, groups)
        else:
            self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
            self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        self.conv1 = CausalConv3d(in_channels, out_channels)
        self.conv2 = CausalConv3d(out_channels, out_channels)
        self.conv_shortcut = nn.Conv3d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def _norm(self, norm: nn.Module, x: torch.Tensor, zq: torch.Tensor | None) -> torch.Tensor:
        return norm(x, zq) if self.spatial else norm(x)

    def forward(self, x: torch.Tensor, zq: torch.Tensor | None, cache: Cache) -> tuple[torch.Tensor, Cache]:
        new: Cache = {}
        h = F.silu(self._norm(self.norm1, x, zq))
        h, new["conv1"] = self.conv1(h, cache.get("conv1"))
        h = F.silu(self._norm(self.norm2, h, zq))
        h, new["conv2"] = self.conv2(h, cache.get("conv2"))
        if self.conv_shortcut is not None:
            x = conv3d_in_time_slices(self.conv_shortcut, x)
        return h + x, new


class Downsample3D(nn.Module):
    """Halve H and W with a stride-2 conv; with ``compress_time`` first average frame pairs (frame 0 kept alone)."""

    def __init__(self, channels: int, compress_time: bool) -> None:
        super().__init__()
        self.compress_time = compress_time
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.compress_time:
            t = x.shape[2]
            if t % 2 == 1:
                rest = x[:, :, 1:]
                if rest.shape[2] > 0:
                    rest = _average_frame_pairs(rest)
                x = torch.cat([x[:, :, :1], rest], dim=2)
            else:
                x = _average_frame_pairs(x)
        x = F.pad(x, (0, 1, 0, 1))  # right/bottom only, as the released weights expect
        return _per_frame(self.conv, x)


def _average_frame_pairs(x: torch.Tensor) -> torch.Tensor:
    b, c, t, h, w = x.shape
    return x.reshape(b, c, t // 2, 2, h, w).mean(dim=3)


def _per_frame(conv2d: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    b, c, t, h, w = x.shape
    y = conv2d(x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w))
    return y.reshape(b, t, *y.shape[1:]).permute(0, 2, 1, 3, 4)


class Upsample3D(nn.Module):
    """Double H and W (nearest) then a 3x3 conv; with ``compress_time`` also double frames (frame 0 kept single)."""

    def __init__(self, channels: int, compress_time: bool) -> None:
        super().__init__()
        self.compress_time = compress_time
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[2]
        if self.compress_time and t > 1:
            if t % 2 == 1:
                first = F.interpolate(x[:, :, 0], scale_factor=2.0)[:, :, None]
                x = torch.cat([first, F.interpolate(x[:, :, 1:], scale_factor=2.0)], dim=2)
            else:
                x = F.interpolate(x, scale_factor=2.0)
        else:
            b, c, _, h, w = x.shape
            x = F.interpolate(x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w), scale_factor=2.0)
            x = x.reshape(b, t, c, 2 * h, 2 * w).permute(0, 2, 1, 3, 4)
        return _per_frame(self.conv, x)


class ResnetStage(nn.Module):
    """A run of resnets followed by an optional down- or upsampler (diffusers' Down/Mid/UpBlock3D)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_layers: int,
        groups: int,
        eps: float,
        latent_channels: int | None = None,
        sampler: str | None = None,
        compress_time: bool = False,
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock3D(in_channels if i == 0 else out_channels, out_channels, groups, eps, latent_channels)
            for i in range(num_layers)
        )
        if sampler == "down":
            self.downsamplers = nn.ModuleList([Downsample3D(out_channels, compress_time)])
        elif sampler == "up":
            self.upsamplers = nn.ModuleList([Upsample3D(out_channels, compress_time)])

    def forward(self, x: torch.Tensor, zq: torch.Tensor | None, cache: Cache) -> tuple[torch.Tensor, Cache]:
        new: Cache = {}
        for i, resnet in enumerate(self.resnets):
            x, new[f"resnet_{i}"] = resnet(x, zq, cache.get(f"resnet_{i}", {}))
        for sampler in getattr(self, "downsamplers", None) or getattr(self, "upsamplers", None) or []:
            x = sampler(x)
        return x, new


class Encoder3D(nn.Module):
    """Video ``[B, 3, T, H, W]`` -> posterior moments ``[B, 2C, T', H/f, W/f]`` (mean then logvar)."""

    def __init__(
        self,
        in_channels: int,
        latent_channels: int,
        block_out_channels: tuple[int, ...],
        layers_per_block: int,
        groups: int,
        eps: float,
        temporal_levels: int,
    ) -> None:
        super().__init__()
        self.conv_in = CausalConv3d(in_channels, block_out_channels[0])
        last = len(block_out_channels) - 1
        self.down_blocks = nn.ModuleList(
            ResnetStage(
                block_out_channels[max(i - 1, 0)],
                ch,
                layers_per_block,
                groups,
                eps,
                sampler=None if i == last else "down",
                compress_time=i < temporal_levels,
            )
            for i, ch in enumerate(block_out_channels)
        )
        top = block_out_channels[-1]
        self.mid_block = ResnetStage(top, top, 2, groups, eps)
        self.norm_out = nn.GroupNorm(groups, top, eps=1e-6)
        self.conv_out = CausalConv3d(top, 2 * latent_channels)

    def forward(self, x: torch.Tensor, cache: Cache) -> tuple[torch.Tensor, Cache]:
        new: Cache = {}
        x, new["conv_in"] = self.conv_in(x, cache.get("conv_in"))
        for i, block in enumerate(self.down_blocks):
            x, new[f"down_block_{i}"] = block(x, None, cache.get(f"down_block_{i}", {}))
        x, new["mid_block"] = self.mid_block(x, None, cache.get("mid_block", {}))
        x = F.silu(self.norm_out(x))
        x, new["conv_out"] = self.conv_out(x, cache.get("conv_out"))
        return x, new


class Decoder3D(nn.Module):
    """Latent ``[B, C, T', h, w]`` -> video ``[B, 3, T, h*f, w*f]``; every norm is conditioned on the latent."""

    def __init__(
        self,
        latent_channels: int,
        out_channels: int,
        block_out_channels: tuple[int, ...],
        layers_per_block: int,
        groups: int,
        eps: float,
        temporal_levels: int,
    ) -> None:
        super().__init__()
        chans = list(reversed(block_out_channels))
        self.conv_in = CausalConv3d(latent_channels, chans[0])
        self.mid_block = ResnetStage(chans[0], chans[0], 2, groups, eps, latent_channels)
        last = len(chans) - 1
        self.up_blocks = nn.ModuleList(
            ResnetStage(
                chans[max(i - 1, 0)],
                ch,
                layers_per_block + 1,
                groups,
                eps,
                latent_channels,
                sampler=None if i == last else "up",
                compress_time=i < temporal_levels,
            )
            for i, ch in enumerate(chans)
        )
        self.norm_out = SpatialNorm3D(chans[-1], latent_channels, groups)
        self.conv_out = CausalConv3d(chans[-1], out_channels)

    def forward(self, z: torch.Tensor, cache: Cache) -> tuple[torch.Tensor, Cache]:
        new: Cache = {}
        x, new["conv_in"] = self.conv_in(z, cache.get("conv_in"))
        x, new["mid_block"] = self.mid_block(x, z, cache.get("mid_block", {}))
        for i, block in enumerate(self.up_blocks):
            x, new[f"up_block_{i}"] = block(x, z, cache.get(f"up_block_{i}", {}))
        x = F.silu(self.norm_out(x, z))
        x, new["conv_out"] = self.conv_out(x, cache.get("conv_out"))
        return x, new
