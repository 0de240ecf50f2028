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

    def nbytes(self) -> int:
        """Memory held by the cached frames."""
        return sum(v.numel() * v.element_size() for v in self._state.values() if isinstance(v, torch.Tensor))


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
        if past is not None:
            keep = self.time_padding
            past = past[:, :, -keep:].to(x.dtype) if keep > 0 and past.shape[2] > 0 else None
        if x.device.type == "cpu" and x.dtype == torch.float32:
            # PyTorch runs fp32 conv3d on CPU through an im2col buffer of kernel-volume x input size
            # (27x for 3x3x3); 2D convolutions avoid it. Per tap when activations are large (no copy of
            # them), as one conv over time-stacked frames when the weight is larger (no copy of it).
            if self.kernel_size[0] == 1 or x.numel() * self.kernel_size[0] > self.weight.numel():
                return self._conv_by_taps(x, past)
            return self._conv_by_stacking(x, past)
        return super().forward(self._pad_time(x, past))

    def _pad_time(self, x: torch.Tensor, past: torch.Tensor | None) -> torch.Tensor:
        """``zeros ++ past ++ x`` along time, ``kernel_t - 1`` frames longer than ``x``."""
        front = self.time_padding - (0 if past is None else past.shape[2])
        pieces = [] if past is None else [past]
        if front > 0:
            b, c, _, h, w = x.shape
            pieces.insert(0, x.new_zeros(b, c, front, h, w))
        return torch.cat([*pieces, x], dim=2) if pieces else x

    def _conv_by_stacking(self, x: torch.Tensor, past: torch.Tensor | None) -> torch.Tensor:
        """One 2D convolution whose input channels are each output frame's ``kernel_t`` input frames.

        The weight ``[O, I, kt, kh, kw]`` is viewed as ``[O, I*kt, kh, kw]`` (channel ``i*kt + k``), so only
        the (small) activations are rearranged.
        """
        b, c, t, h, w = x.shape
        kt, kh, kw = self.kernel_size
        windows = self._pad_time(x, past).unfold(2, kt, 1)  # [B, C, T, H, W, kt]
        stacked = windows.permute(0, 2, 1, 5, 3, 4).reshape(b * t, c * kt, h, w)
        if stacked.numel() * kh * kw <= self.weight.numel():
            # Tiny frames, big weight (the lowest resolutions): an explicit im2col of the input is smaller
            # than the re-blocked copy of the weight the conv kernel makes on every call.
            columns = F.unfold(stacked, (kh, kw), padding=self.padding[1:])  # [N, C*kt*kh*kw, H*W]
            y = torch.matmul(self.weight.reshape(self.out_channels, -1), columns)
            y = y.add_(self.bias.view(1, -1, 1)) if self.bias is not None else y
        else:
            weight = self.weight.reshape(self.out_channels, c * kt, kh, kw)
            y = F.conv2d(stacked, weight, self.bias, padding=self.padding[1:])
        return y.view(b, t, self.out_channels, h, w).transpose(1, 2)

    def _conv_by_taps(self, x: torch.Tensor, past: torch.Tensor | None) -> torch.Tensor:
        """The convolution as a sum over temporal taps of 2D convolutions of whole frames. Output
        frame ``t`` is ``bias + sum_k W_k * S[t + k]`` over the sequence ``S = zeros ++ past ++ x`` of
        ``kernel_t - 1 + T`` frames; zero frames contribute nothing, so they are skipped, not built. The
        result has a frame-major memory layout (a transposed view), which per-frame layers read for free.
        """
        b, c, t, h, w = x.shape
        kt = self.kernel_size[0]
        kept = 0 if past is None else past.shape[2]
        front = kt - 1 - kept  # zero frames before ``past``
        x_frames = x.transpose(1, 2)  # [B, T, C, H, W]
        past_frames = None if past is None else past.transpose(1, 2)

        def conv(frames: torch.Tensor, k: int, bias: torch.Tensor | None = None) -> torch.Tensor:
            n = frames.shape[1]
            y = F.conv2d(frames.reshape(b * n, c, h, w), self.weight[:, :, k], bias, padding=self.padding[1:])
            return y.view(b, n, self.out_channels, h, w)

        # the last tap reads exactly x: it starts the output (with the bias)
        out = conv(x_frames, kt - 1, self.bias)
        for k in range(kt - 1):
            # output frame i reads S[i + k]: from x when i + k >= kt - 1, from past when front <= i + k
            first_x = kt - 1 - k
            if first_x < t:
                out[:, first_x:] += conv(x_frames[:, : t - first_x], k)
            if past_frames is not None:
                start, stop = max(0, front - k), min(t, kt - 1 - k)
                if start < stop:
                    out[:, start:stop] += conv(past_frames[:, start + k - front : stop + k - front], k)
        return out.transpose(1, 2)

    def stream(self, x: torch.Tensor, cache: StreamCache) -> torch.Tensor:
        """Convolve the next chunk ``x`` of a clip, reading and updating this layer's past frames in ``cache``."""
        keep = self.time_padding
        if keep == 0:
            return self(x)
        past = cache.get(self)
        out = self(x, past)
        t = x.shape[2]
        if t == 0:
            return out
        if t >= keep or past is None:
            tail, fresh = x[:, :, -keep:], False  # a view into the chunk
        else:
            tail, fresh = torch.cat([past[:, :, t - keep :], x], dim=2), True
        if past is not None and past.shape == tail.shape and not torch.is_grad_enabled():
            # overwrite in place: the cache is allocated once per clip, so streaming does not scatter
            # short-lived and long-lived buffers across the heap (which keeps freed memory resident)
            past.copy_(tail)
        else:
            # clone a view: it would keep the whole chunk's activation alive until the next chunk
            cache.put(self, tail if fresh else tail.clone())
        return out
