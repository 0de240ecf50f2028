"""Samplers: noise parametrisations, schedules, solvers and classifier-free guidance, kept apart from models.

The DiT sampler node calls :func:`sample`; ``SOLVERS`` and ``SCHEDULES`` name its dropdown choices and
``PRESETS`` hold each family's reference settings.
"""

from .guidance import cogvideox_dynamic_scale, concat_conds, guided_prediction
from .prediction import FlowPrediction, Step, VPPrediction
from .presets import PRESETS, SamplerPreset, get_preset, wan21_preset
from .sampling import sample, start_state
from .schedules import SCHEDULES, Schedule, make_schedule
from .solvers import SOLVERS, get_solver

__all__ = [
    "FlowPrediction",
    "PRESETS",
    "SCHEDULES",
    "SOLVERS",
    "SamplerPreset",
    "Schedule",
    "Step",
    "VPPrediction",
    "cogvideox_dynamic_scale",
    "concat_conds",
    "get_preset",
    "get_solver",
    "guided_prediction",
    "make_schedule",
    "sample",
    "start_state",
    "wan21_preset",
]
