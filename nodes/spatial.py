"""Spatial super-resolution (SSR): more pixels per frame, weight-free resampling with optional sharpening."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..upscaling.resample import RESAMPLE_METHODS, resize
from .base import category, combo_input, float_input, int_input, link_input, node_mappings


def target_size(height: int, width: int, scale: float, out_width: int, out_height: int) -> tuple[int, int]:
    """(height, width) to resize to: the given width/height (one of them 0 keeps the aspect), else scale."""
    if out_width and out_height:
        return out_height, out_width
    if out_width:
        return max(1, round(height * out_width / width)), out_width
    if out_height:
        return out_height, max(1, round(width * out_height / height))
    return max(1, round(height * scale)), max(1, round(width * scale))


def unsharp_mask(frames: torch.Tensor, amount: float, sigma: float = 1.0) -> torch.Tensor:
    """``frames + amount * (frames - blur(frames))`` with a Gaussian blur: restores edge contrast."""
    radius = max(1, round(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=frames.dtype, device=frames.device)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    planes = frames.permute(0, 3, 1, 2).reshape(-1, 1, *frames.shape[1:3])
    blurred = F.conv2d(F.pad(planes, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    blurred = F.conv2d(F.pad(blurred, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    blurred = blurred.reshape(frames.shape[0], 3, *frames.shape[1:3]).permute(0, 2, 3, 1)
    return frames + amount * (frames - blurred)


class VCSpatialUpscale:
    DESCRIPTION = (
        "Resize every frame (by a scale or to a width/height) with a resampling filter, then sharpen."
    )
    CATEGORY = category("spatial")
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("The resized frames, [N, H', W', 3] in [0, 1].",)
    FUNCTION = "upscale"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": link_input("IMAGE", "Frames to resize."),
                "scale": float_input(
                    2.0, 0.1, 16.0, "Size multiplier, used when width and height are 0.", 0.05
                ),
                "width": int_input(0, 0, 16384, "Target width; 0 = from scale (or height's aspect ratio)."),
                "height": int_input(0, 0, 16384, "Target height; 0 = from scale (or width's aspect ratio)."),
                "method": combo_input(
                    RESAMPLE_METHODS,
                    "Filter: lanczos (sharpest), bicubic, bilinear (softest), nearest (pixel art).",
                ),
                "sharpen": float_input(
                    0.0,
                    0.0,
                    3.0,
                    "Unsharp-mask strength after resizing; 0 = off, 0.3-1 restores edges.",
                    0.05,
                ),
            },
            "optional": {
                "upscaler": link_input(
                    "VC_UPSCALER", "A learned upscaling model (later versions); unconnected = weight-free."
                ),
            },
        }

    def upscale(self, images, scale, width, height, method, sharpen, upscaler=None):
        if upscaler is not None:
            raise NotImplementedError(
                "learned upscalers are not supported by this version; disconnect 'upscaler' to use the "
                f"weight-free '{method}' resampling"
            )
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"'images' must be an IMAGE batch [N, H, W, 3], got shape {tuple(images.shape)}")
        size = target_size(images.shape[1], images.shape[2], scale, width, height)
        out = resize(images.float(), size, method)
        if sharpen > 0:
            out = unsharp_mask(out, sharpen)
        return (out.clamp_(0.0, 1.0),)


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = node_mappings((VCSpatialUpscale, "VC Spatial Upscale"))
