"""Spatial x2 and temporal x2 resampling stages, arranged like Wan 2.1's VAE.

Time is resampled around a first frame that stays alone, so a clip of ``T = 1 + 2k`` frames maps to
``1 + k`` and back (images are one-frame clips):

* downsample: ``[x0] + conv_t(x0..x_{T-1}, kernel 3, stride 2, no padding)``, i.e. output ``j >= 1`` sees
  frames ``2j-2, 2j-1, 2j``;
* upsample: ``[x0] + interleave(causal_conv_t(x1..x_{T-1}))``, where the causal conv starts its own stream
  at frame 1 and each output doubles into two frames (its channel halves).

Wan's reference code reaches the same numbers through per-chunk caches; both forms here stream too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import per_frame
from .causal_conv import CausalConv3d, StreamCache


class NearestUpsample2x(nn.Module):
    """Nearest-neighbour x2 upsampling of ``[N, C, H, W]``, computed in fp32 like the reference."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x.float(), scale_factor=2.0, mode="nearest-exact").to(x.dtype)


class Downsample(nn.Module):
    """Halve H and W (stride-2 3x3 conv, padded right/bottom), then optionally halve time (see module doc)."""

    def __init__(self, channels: int, temporal: bool) -> None:
        super().__init__()
        self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(channels, channels, 3, stride=2))
        self.time_conv = nn.Conv3d(channels, channels, (3, 1, 1), stride=(2, 1, 1)) if temporal else None

    def forward(self, x: torch.Tensor, cache: StreamCache) -> torch.Tensor:
        x = per_frame(self.resample, x)
        if self.time_conv is None:
            return x
        # The cache holds the frames not yet consumed by a stride-2 window; the first one is the previous
        # window's last frame (windows overlap by one). No entry yet means this chunk starts the clip.
        pending = cache.get(self)
        outputs = []
        if pending is None:
            if x.shape[2] == 0:
                return x
            outputs.append(x[:, :, :1])  # the first frame passes through alone
            pending = x
        else:
            pending = torch.cat([pending, x], dim=2)
        windows = (pending.shape[2] - 1) // 2
        if windows > 0:
            outputs.append(self.time_conv(pending[:, :, : 2 * windows + 1]))
        cache.put(self, pending[:, :, 2 * windows :].clone())
        return torch.cat(outputs, dim=2) if outputs else x[:, :, :0]


class Upsample(nn.Module):
    """Optionally double time (see module doc), then double H and W (nearest + 3x3 conv to ``out_channels``)."""

    def __init__(self, channels: int, out_channels: int, temporal: bool) -> None:
        super().__init__()
        self.resample = nn.Sequential(NearestUpsample2x(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.time_conv = CausalConv3d(channels, channels * 2, (3, 1, 1)) if temporal else None

    def forward(self, x: torch.Tensor, cache: StreamCache) -> torch.Tensor:
        if self.time_conv is not None:
            x = self._double_time(x, cache)
        return per_frame(self.resample, x)

    def _double_time(self, x: torch.Tensor, cache: StreamCache) -> torch.Tensor:
        first = None
        if cache.get(self) is None and x.shape[2] > 0:  # start of the clip: frame 0 stays single
            cache.put(self, True)
            first, x = x[:, :, :1], x[:, :, 1:]
        b, c, t, h, w = x.shape
        doubled = self.time_conv.stream(x, cache)  # [B, 2C, T, H, W]: channel halves are frames 2t, 2t+1
        doubled = doubled.view(b, 2, c, t, h, w).permute(0, 2, 3, 1, 4, 5).reshape(b, c, 2 * t, h, w)
        return doubled if first is None else torch.cat([first, doubled], dim=2)
