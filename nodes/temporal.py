"""Temporal super-resolution (TSR): more frames per second by interpolating between neighbours, weight-free
or with a learned interpolator (``models/tsr.py``) that refines the flow interpolation."""

from __future__ import annotations

from ..interpolation import METHODS, interpolate, retime, retime_positions
from ..interpolation.temporal import check_frames
from ..runtime.loaders import check_handle, load_interpolator_handle, model_on_device, resolve_weights
from .base import category, combo_input, float_input, link_input, node_mappings
from .loader_inputs import WeightsLoader, dtype_input, path_input, weights_inputs

MULTIPLIERS = {"x2": 2, "x3": 3, "x4": 4}
TARGET_FPS = "target fps"


class VCInterpolatorLoader(WeightsLoader):
    DESCRIPTION = "Load a learned frame interpolator (TSR network) for VC Temporal Interpolate."
    CATEGORY = category("temporal")
    RETURN_TYPES = ("VC_INTERPOLATOR",)
    RETURN_NAMES = ("interpolator",)
    OUTPUT_TOOLTIPS = ("The interpolator; connect it to VC Temporal Interpolate's 'interpolator' input.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {**weights_inputs("interpolator", "interpolator"), **dtype_input()},
            "optional": path_input("interpolator"),
        }

    def load(self, file, dtype, path=""):
        return (load_interpolator_handle(resolve_weights("interpolator", file, path), dtype),)


class VCTemporalInterpolate:
    DESCRIPTION = (
        "Raise a clip's frame rate: insert frames between neighbours (x2/x3/x4) or resample to a target fps. "
        "Source frames are kept exactly; the new ones follow the motion (flow) or cross-fade (blend)."
    )
    CATEGORY = category("temporal")
    RETURN_TYPES = ("IMAGE", "FLOAT")
    RETURN_NAMES = ("images", "fps")
    OUTPUT_TOOLTIPS = (
        "The interpolated frames.",
        "Their frame rate (source fps x multiplier, or the target).",
    )
    FUNCTION = "interpolate"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": link_input("IMAGE", "Frames of one clip (at least 2)."),
                "mode": combo_input(
                    [*MULTIPLIERS, TARGET_FPS],
                    "x2/x3/x4: (N-1)*m+1 frames; target fps: floor((N-1)*target/fps)+1 frames at target_fps.",
                ),
                "fps": float_input(
                    8.0,
                    0.1,
                    1000.0,
                    "Frame rate of the source clip; link the fps output of the source node.",
                    0.1,
                ),
                "target_fps": float_input(24.0, 0.1, 1000.0, "Frame rate wanted in 'target fps' mode.", 0.1),
                "method": combo_input(
                    METHODS, "flow: optical-flow warping (sharp motion); blend: cross-fade."
                ),
            },
            "optional": {
                "interpolator": link_input(
                    "VC_INTERPOLATOR",
                    "A learned interpolator (VC Interpolator Loader): refines its own weight-free base "
                    "(flow), so 'method' is ignored. Unconnected = weight-free 'method'.",
                ),
            },
        }

    def interpolate(self, images, mode, fps, target_fps, method, interpolator=None):
        if interpolator is not None:
            return self._learned(images, mode, fps, target_fps, interpolator)
        if mode == TARGET_FPS:
            return (retime(images, fps, target_fps, method), float(target_fps))
        multiplier = MULTIPLIERS[mode]
        return (interpolate(images, multiplier, method), float(fps) * multiplier)

    def _learned(self, images, mode, fps, target_fps, interpolator):
        from ..models.tsr import learned_frames_at, learned_interpolate

        handle = check_handle(interpolator, "interpolator", "interpolator", "VC Interpolator Loader")
        check_frames(images, "images", min_frames=2)
        with model_on_device(handle) as model:
            if mode == TARGET_FPS:
                positions = retime_positions(images.shape[0], fps, target_fps)
                return (learned_frames_at(model, images, positions), float(target_fps))
            multiplier = MULTIPLIERS[mode]
            return (learned_interpolate(model, images, multiplier), float(fps) * multiplier)


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = node_mappings(
    (VCInterpolatorLoader, "VC Interpolator Loader"),
    (VCTemporalInterpolate, "VC Temporal Interpolate"),
)
