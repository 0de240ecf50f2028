"""Separable image resampling (Lanczos-4, bicubic, bilinear, nearest) on any device.

Each axis is resampled by a small table: for every output row (column) the indices of the source rows it
reads and their weights. Upsampling uses the kernel as is, exactly like OpenCV's ``cv2.resize`` (half-pixel
centres, replicated border), so on CPU upsampling simply calls OpenCV (several times faster than gathering
taps); downsampling widens the kernel by the scale so it also antialiases.
"""

from __future__ import annotations

import math

import torch

RESAMPLE_METHODS = ("lanczos", "bicubic", "bilinear", "nearest")
_SUPPORT = {"lanczos": 4.0, "bicubic": 2.0, "bilinear": 1.0}


def _kernel(method: str, x: torch.Tensor) -> torch.Tensor:
    ax = x.abs()
    if method == "lanczos":  # sinc(x) * sinc(x / 4) on |x| < 4, as OpenCV's INTER_LANCZOS4
        return torch.where(ax < 4, torch.sinc(x) * torch.sinc(x / 4), torch.zeros_like(x))
    if method == "bicubic":  # Keys cubic with a = -0.75, as OpenCV's INTER_CUBIC and torch's bicubic
        a = -0.75
        near = ((a + 2) * ax - (a + 3)) * ax * ax + 1
        far = ((a * ax - 5 * a) * ax + 8 * a) * ax - 4 * a
        return torch.where(ax <= 1, near, torch.where(ax < 2, far, torch.zeros_like(x)))
    if method == "bilinear":
        return (1 - ax).clamp_min(0)
    raise ValueError(f"unknown kernel {method!r}")


def resample_taps(in_size: int, out_size: int, method: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Source indices [out, taps] (long) and weights [out, taps] (float64, rows sum to 1) for one axis."""
    if method not in RESAMPLE_METHODS:
        raise ValueError(f"method must be one of {', '.join(RESAMPLE_METHODS)}; got {method!r}")
    scale = in_size / out_size
    centre = (
        torch.arange(out_size, dtype=torch.float64) + 0.5
    ) * scale - 0.5  # source coordinate of each output
    if method == "nearest":
        index = (centre + 0.5).floor().clamp(0, in_size - 1).long()[:, None]
        return index, torch.ones(out_size, 1, dtype=torch.float64)
    stretch = max(scale, 1.0)  # widen the kernel when shrinking, so it averages instead of aliasing
    support = _SUPPORT[method] * stretch
    taps = int(math.ceil(support)) * 2
    first = (centre - support).floor() + 1
    index = first[:, None] + torch.arange(taps, dtype=torch.float64)[None]
    weight = _kernel(method, (index - centre[:, None]) / stretch)
    weight = weight / weight.sum(dim=1, keepdim=True)
    # Replicate the border: taps outside the image read the edge pixel.
    return index.clamp(0, in_size - 1).long(), weight


def _resample_axis(x: torch.Tensor, dim: int, out_size: int, method: str) -> torch.Tensor:
    in_size = x.shape[dim]
    if in_size == out_size:
        return x
    index, weight = resample_taps(in_size, out_size, method)
    index, weight = index.to(x.device), weight.to(x.device, x.dtype)
    shape = [1] * x.dim()
    shape[dim] = out_size
    out = None
    for k in range(index.shape[1]):
        term = x.index_select(dim, index[:, k]) * weight[:, k].view(shape)
        out = term if out is None else out + term
    return out


def resize_taps(frames: torch.Tensor, size: tuple[int, int], method: str = "lanczos") -> torch.Tensor:
    """``resize`` by gathered taps (any device, any scale)."""
    height, width = size
    out = _resample_axis(frames, 1, int(height), method)
    return _resample_axis(out, 2, int(width), method)


_CV2_FLAGS = {"lanczos": "INTER_LANCZOS4", "bicubic": "INTER_CUBIC", "bilinear": "INTER_LINEAR"}


def _resize_cv2(frames: torch.Tensor, size: tuple[int, int], method: str) -> torch.Tensor:
    import cv2

    flag = getattr(cv2, _CV2_FLAGS[method])
    height, width = size
    src = frames.detach().to(torch.float32).contiguous().numpy()
    out = torch.empty(frames.shape[0], height, width, frames.shape[3], dtype=torch.float32)
    for i in range(src.shape[0]):
        # cv2 drops a trailing channel axis of 1; reshape keeps [H, W, C] in every case.
        out[i] = torch.from_numpy(
            cv2.resize(src[i], (width, height), interpolation=flag).reshape(height, width, -1)
        )
    return out.to(frames.dtype)


def resize(frames: torch.Tensor, size: tuple[int, int], method: str = "lanczos") -> torch.Tensor:
    """Resize [N, H, W, C] frames to ``size`` = (height, width); values are not clamped (kernels overshoot)."""
    if method not in RESAMPLE_METHODS:
        raise ValueError(f"method must be one of {', '.join(RESAMPLE_METHODS)}; got {method!r}")
    height, width = int(size[0]), int(size[1])
    growing = height >= frames.shape[1] and width >= frames.shape[2]
    if frames.device.type == "cpu" and growing and method != "nearest" and frames.shape[3] <= 4:
        return _resize_cv2(frames, (height, width), method)
    return resize_taps(frames, (height, width), method)
