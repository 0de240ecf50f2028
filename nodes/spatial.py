"""Spatial super-resolution (SSR): more pixels per frame, weight-free resampling plus detail restoration,
or a learned upscaler (``models/ssr.py``)."""

from __future__ import annotations

from ..runtime.loaders import check_handle, load_upscaler_handle, model_on_device, resolve_weights
from ..upscaling import RESAMPLE_METHODS, target_size
from ..upscaling import upscale as upscale_frames
from ..upscaling.spatial import check_image_batch
from .base import category, combo_input, float_input, int_input, link_input, node_mappings
from .loader_inputs import WeightsLoader, dtype_input, path_input, weights_inputs


class VCUpscalerLoader(WeightsLoader):
    DESCRIPTION = "Load a learned upscaler (SSR network) for VC Spatial Upscale."
    CATEGORY = category("spatial")
    RETURN_TYPES = ("VC_UPSCALER",)
    RETURN_NAMES = ("upscaler",)
    OUTPUT_TOOLTIPS = ("The upscaler; connect it to VC Spatial Upscale's 'upscaler' input.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {**weights_inputs("upscaler", "upscaler"), **dtype_input()},
            "optional": path_input("upscaler"),
        }

    def load(self, file, dtype, path=""):
        return (load_upscaler_handle(resolve_weights("upscaler", file, path), dtype),)


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
                    "VC_UPSCALER",
                    "A learned upscaler (VC Upscaler Loader); 'method' and 'sharpen' are then ignored (its "
                    "x2/x4 passes, then a Lanczos resize to sizes in between). Unconnected = weight-free.",
                ),
            },
        }

    def upscale(self, images, scale, width, height, method, sharpen, upscaler=None):
        if upscaler is not None:
            return (self._learned(images, scale, width, height, upscaler),)
        if width or height:
            return (
                upscale_frames(images, size=(height or None, width or None), method=method, sharpen=sharpen),
            )
        return (upscale_frames(images, scale=scale, method=method, sharpen=sharpen),)

    def _learned(self, images, scale, width, height, upscaler):
        from ..models.ssr import learned_upscale

        handle = check_handle(upscaler, "upscaler", "upscaler", "VC Upscaler Loader")
        check_image_batch(images, "images")
        h, w = images.shape[1:3]
        size = target_size(h, w, size=(height or None, width or None)) if width or height else None
        size = size or target_size(h, w, scale=scale)
        with model_on_device(handle) as model:
            return learned_upscale(model, images, size)


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = node_mappings(
    (VCUpscalerLoader, "VC Upscaler Loader"),
    (VCSpatialUpscale, "VC Spatial Upscale"),
)
