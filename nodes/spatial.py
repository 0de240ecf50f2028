"""Spatial super-resolution (SSR): more pixels per frame, weight-free resampling plus detail restoration."""

from __future__ import annotations

from ..upscaling import RESAMPLE_METHODS
from ..upscaling import upscale as upscale_frames
from .base import category, combo_input, float_input, int_input, link_input, node_mappings


class VCSpatialUpscale:
    DESCRIPTION = (
        "Resize every frame (by a scale or to a width/height) with a resampling filter, then restore detail "
        "(edge-aware sharpening kept consistent with the input)."
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
                    1.0,
                    0.0,
                    3.0,
                    "Detail restoration when upscaling; 0 = plain resampling, above ~2 posterises.",
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
        if width or height:
            return (
                upscale_frames(images, size=(height or None, width or None), method=method, sharpen=sharpen),
            )
        return (upscale_frames(images, scale=scale, method=method, sharpen=sharpen),)


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = node_mappings((VCSpatialUpscale, "VC Spatial Upscale"))
