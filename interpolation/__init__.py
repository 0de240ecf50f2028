"""Weight-free temporal interpolation (TSR without a network): optical-flow warping or plain blending."""

from .flow import FlowConfig
from .synthesis import SynthesisConfig
from .temporal import METHODS, frames_at, interpolate, retime, retime_positions

__all__ = [
    "METHODS",
    "FlowConfig",
    "SynthesisConfig",
    "frames_at",
    "interpolate",
    "retime",
    "retime_positions",
]
