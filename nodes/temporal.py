"""Temporal super-resolution (TSR): more frames per second by interpolating between neighbours."""

from __future__ import annotations

from ..interpolation import METHODS, interpolate, retime
from .base import category, combo_input, float_input, link_input, node_mappings

MULTIPLIERS = {"x2": 2, "x3": 3, "x4": 4}
TARGET_FPS = "target fps"


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
                    "A learned interpolation model (later versions); unconnected = weight-free.",
                ),
            },
        }

    def interpolate(self, images, mode, fps, target_fps, method, interpolator=None):
        if interpolator is not None:
            raise NotImplementedError(
                "learned interpolators are not supported by this version; disconnect 'interpolator' to use "
                f"the weight-free '{method}' method"
            )
        if mode == TARGET_FPS:
            return (retime(images, fps, target_fps, method), float(target_fps))
        multiplier = MULTIPLIERS[mode]
        return (interpolate(images, multiplier, method), float(fps) * multiplier)


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = node_mappings(
    (VCTemporalInterpolate, "VC Temporal Interpolate"),
)
