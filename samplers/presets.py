"""Reference sampler settings per model family, attached by the loaders so defaults reproduce the originals.

Sources: diffusers' ``WanPipeline`` docs and the Wan 2.1 scheduler config (UniPC, flow prediction,
``flow_shift`` 3.0 at 480p / 5.0 at 720p, 50 steps, guidance 5.0); the CogVideoX-2b / -5b scheduler
configs (v-prediction, zero terminal SNR, ``snr_shift_scale`` 3.0 / 1.0, trailing spacing) with
diffusers' ``CogVideoXPipeline`` defaults (50 steps, guidance 6.0) and the schedulers the CogVideoX authors
recommend: ``CogVideoXDDIMScheduler`` for 2b, ``CogVideoXDPMScheduler`` for 5b.
"""

from __future__ import annotations

from dataclasses import dataclass

from .prediction import FlowPrediction, VPPrediction


@dataclass(frozen=True)
class SamplerPreset:
    """What a user who changes nothing gets: the family's prediction and its reference sampler settings."""

    prediction: FlowPrediction | VPPrediction
    solver: str
    steps: int
    cfg: float
    schedule: str = "default"
    dynamic_cfg: bool = False


def _wan21(shift: float) -> SamplerPreset:
    # Wan's UniPC hands the model int64 timesteps, floor(1000 * s).
    return SamplerPreset(FlowPrediction(shift=shift, integer_timesteps=True), "unipc", 50, 5.0)


def _cogvideox(snr_shift_scale: float, solver: str) -> SamplerPreset:
    prediction = VPPrediction(
        target="v",
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        zero_terminal_snr=True,
        snr_shift_scale=snr_shift_scale,
        final_alpha_one=True,
        default_schedule="trailing",
    )
    return SamplerPreset(prediction, solver, 50, 6.0)


PRESETS: dict[str, SamplerPreset] = {
    "wan2.1-480p": _wan21(3.0),
    "wan2.1-720p": _wan21(5.0),
    "cogvideox-2b": _cogvideox(3.0, "ddim"),
    "cogvideox-5b": _cogvideox(1.0, "dpmpp_2m_sde"),
}


def wan21_preset(height: int, width: int) -> SamplerPreset:
    """Wan 2.1's settings for a resolution: shift 5.0 from 1280x720 up, else 3.0 (480p)."""
    return PRESETS["wan2.1-720p" if height * width >= 1280 * 720 else "wan2.1-480p"]


def get_preset(name: str) -> SamplerPreset:
    if name not in PRESETS:
        raise ValueError(f"unknown sampler preset {name!r}; choose one of {tuple(PRESETS)}")
    return PRESETS[name]
