"""Causal 3D convolution and the cache that lets a clip be processed in temporal chunks.

A causal convolution only looks at the current and past frames: it pads ``kernel_t - 1`` zero frames in
front of the clip and none behind, and pads "same" in space. Processing a clip chunk by chunk then gives
exactly the whole-clip result as long as each convolution sees the frames that preceded its chunk; those
are kept in a :class:`StreamCache`, keyed by module.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class StreamCache:
    """Per-module state carried between temporal chunks of one clip (one cache per clip and pass).

    A module that finds no entry is at the start of the clip. Whole-clip calls use a fresh cache too, so the
    chunked and the whole-clip path run the same code.
    """

    def __init__(self) -> None:
        self._state: dict[int, Any] = {}

    def get(self, module: nn.Module) -> Any:
        return self._state.get(id(module))

    def put(self, module: nn.Module, value: Any) -> None:
        self._state[id(module)] = value

    def __len__(self) -> int:
        return len(self._state)


def _triple(value: int | tuple[int, int, int]) -> tuple[int, int, int]:
    return (value, value, value) if isinstance(value, int) else tuple(value)


class CausalConv3d(nn.Conv3d):
    """``nn.Conv3d`` with past-only zero padding in time and "same" zero padding in space (stride 1).

    ``forward(x, past)`` takes the frames that came before ``x`` (``past``, up to ``kernel_t - 1`` of them);
    zero frames stand in for any that are missing, as at the start of a clip.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int, int]) -> None:
        kt, kh, kw = _triple(kernel_size)
        if kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(f"spatial kernel must be odd for 'same' padding, got {(kh, kw)}")
        # Space is padded by the convolution itself (no copy); time is padded by hand, in front only.
        super().__init__(in_channels, out_channels, (kt, kh, kw), padding=(0, kh // 2, kw // 2))
        self.time_padding = kt - 1

    def forward(self, x: torch.Tensor, past: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape[2] == 0:  # nothing new in this chunk (a strided stage upstream is still collecting frames)
            b, _, _, h, w = x.shape
            return x.new_zeros(b, self.out_channels, 0, h, w)
        front = self.time_padding
        pieces = []
        if past is not None and front > 0:
            past = past[:, :, -front:].to(x.dtype)
            front -= past.shape[2]
        if front > 0:
            b, c, _, h, w = x.shape
            pieces.append(x.new_zeros(b, c, front, h, w))
        if past is not None and self.time_padding > 0:
            pieces.append(past)
        if x.device.type == "cpu" and x.dtype == torch.float32:
            return self._conv_by_frames(torch.cat([p.transpose(1, 2) for p in (*pieces, x)], dim=1))
        return super().forward(torch.cat([*pieces, x], dim=2) if pieces else x)

    def _conv_by_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """The convolution as a sum over its temporal taps of 2D convolutions, on ``[B, T, C, H, W]``.

        On CPU, PyTorch runs fp32 ``conv3d`` through an im2col buffer of ``kernel volume x input`` size
        (27x for 3x3x3); 2D convolutions need none, which cuts the decoder's working memory several times
        at equal speed. The result keeps the frame-major memory layout (a transposed view), which the
        next layer's taps and per-frame ops then read without copying.
        """
        b, t_in, c, h, w = frames.shape
        t_out = t_in - self.kernel_size[0] + 1
        out = None
        for k in range(self.kernel_size[0]):
            tap = frames[:, k : k + t_out].reshape(b * t_out, c, h, w)
            y = F.conv2d(tap, self.weight[:, :, k], self.bias if k == 0 else None, padding=self.padding[1:])
            out = y if out is None else out.add_(y)
        return out.view(b, t_out, self.out_channels, h, w).transpose(1, 2)

    def stream(self, x: torch.Tensor, cache: StreamCache) -> torch.Tensor:
        """Convolve the next chunk ``x`` of a clip, reading and updating this layer's past frames in ``cache``."""
        keep = self.time_padding
        if keep == 0:
            return self(x)
        past = cache.get(self)
        out = self(x, past)
        if x.shape[2] >= keep or past is None:
            tail = x[:, :, -keep:]
        else:
            tail = torch.cat([past, x], dim=2)[:, :, -keep:]
        if x.shape[2] > 0:
            # clone: a view would keep the whole chunk's activation alive until the next chunk
            cache.put(self, tail.clone())
        return out
