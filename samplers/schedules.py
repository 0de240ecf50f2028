"""Noise schedules: which levels a sampler visits for a number of steps, kept apart from the solvers.

A :class:`Schedule` holds ``steps + 1`` levels (``alpha``, ``sigma``), noisiest first, ending at the
level the result is returned at (clean data, ``sigma = 0``, unless a VP family says otherwise), and the
``steps`` model timesteps of the levels the model is evaluated at.

Names (``SCHEDULES``), each as diffusers or ComfyUI defines it so reference settings reproduce exactly:

- ``default``: the family's own (``prediction.default_schedule``).
- ``simple``: flow: ``shift(linspace(1, 1/T, steps + 1)[:-1])`` with the first level kept 1e-6 below pure
  noise, as Wan's UniPC scheduler (diffusers ``use_flow_sigmas``); VP: ComfyUI's "simple",
  ``t = T-1 - floor(i*T/steps)``.
- ``linspace``: flow: diffusers' ``FlowMatchEulerDiscreteScheduler`` (timesteps linearly spaced from pure
  noise to the shifted training minimum, then shifted); VP: diffusers ``timestep_spacing="linspace"``.
- ``leading`` / ``trailing``: VP only, diffusers ``timestep_spacing``.

VP ``linspace`` / ``leading`` follow diffusers' DDIM-family schedulers (``DDIMScheduler``, CogVideoX's);
its UniPC and DPM-Solver schedulers space those two slightly differently (``trailing`` is the same in all).
Each step here lands on the next scheduled level. diffusers' DDIM-family ``step`` instead lands on
``t - T // steps``, which is the same level for ``leading`` and for ``trailing`` when ``steps`` divides
``T`` (CogVideoX's 50 steps), but not otherwise: there the two differ by design (at 30 steps about 1%).
- ``karras``: Karras et al. (2022) rho=7 spacing between the family's largest and smallest noise level,
  in flow ``s`` for flow models and in ``sigma/alpha`` for VP models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .prediction import FlowPrediction, Step, VPPrediction, shift_levels

SCHEDULES = ("default", "simple", "linspace", "trailing", "leading", "karras")
FLOW_SCHEDULES = ("simple", "linspace", "karras")
VP_SCHEDULES = ("simple", "linspace", "trailing", "leading", "karras")

Prediction = FlowPrediction | VPPrediction


@dataclass(frozen=True)
class Schedule:
    """``steps + 1`` noise levels (noisiest first) and the model timesteps of the first ``steps``."""

    alphas: tuple[float, ...]
    sigmas: tuple[float, ...]
    timesteps: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.alphas) != len(self.sigmas) or len(self.timesteps) != len(self.sigmas) - 1:
            raise ValueError("a schedule needs steps + 1 alphas and sigmas and steps timesteps")
        if any(s <= 0 for s in self.sigmas[:-1]):
            raise ValueError("every level a model is evaluated at must have sigma > 0")

    @property
    def steps(self) -> int:
        return len(self.timesteps)

    def step(self, i: int) -> Step:
        return Step(i, self.alphas[i], self.sigmas[i], self.timesteps[i])

    def tail(self, steps: int) -> Schedule:
        """The last ``steps`` steps: what ``denoise < 1`` runs."""
        if not 0 <= steps <= self.steps:
            raise ValueError(f"cannot keep {steps} steps of a {self.steps}-step schedule")
        first = self.steps - steps
        return Schedule(self.alphas[first:], self.sigmas[first:], self.timesteps[first:])


def flow_levels(name: str, steps: int, shift: float, num_train_timesteps: int = 1000) -> np.ndarray:
    """Flow noise levels ``s`` for ``steps`` steps, ending with 0."""
    T = num_train_timesteps
    if name == "simple":
        s = shift_levels(np.linspace(1.0, 1.0 / T, steps + 1)[:-1], shift)
        # Keep the first level just below pure noise so its log-SNR is finite (Wan's reference does this;
        # the multistep solvers then use it as history like any other level).
        if abs(s[0] - 1.0) < 1e-6:
            s[0] -= 1e-6
    elif name == "linspace":
        # FlowMatchEulerDiscreteScheduler: its end point is the *shifted* smallest training level, and the
        # whole linspace is shifted again afterwards. Reproduced as is so reference runs match.
        s_min = shift_levels(1.0 / T, shift)
        s = shift_levels(np.linspace(T, s_min * T, steps) / T, shift)
    elif name == "karras":
        s = karras(1.0, shift_levels(1.0 / T, shift), steps)
    else:
        raise ValueError(f"schedule {name!r} is not defined for flow models; use one of {FLOW_SCHEDULES}")
    return np.append(s, 0.0)


def vp_timesteps(name: str, steps: int, num_train_timesteps: int = 1000, steps_offset: int = 0) -> np.ndarray:
    """Discrete training steps (noisiest first) for a VP spacing, as diffusers' DDIM schedulers make them."""
    T = num_train_timesteps
    if steps > T:
        raise ValueError(f"steps ({steps}) cannot exceed the model's {T} training timesteps")
    if name == "linspace":
        t = np.linspace(0, T - 1, steps).round()[::-1]
    elif name == "leading":
        t = np.arange(0, steps) * (T // steps) + steps_offset
        t = t[::-1]
    elif name == "trailing":
        t = np.round(np.arange(T, 0, -T / steps)) - 1
    elif name == "simple":
        t = T - 1 - np.floor(np.arange(steps) * T / steps)
    else:
        raise ValueError(f"schedule {name!r} is not defined for VP models; use one of {VP_SCHEDULES}")
    return t.astype(np.int64)


def karras(sigma_max: float, sigma_min: float, steps: int, rho: float = 7.0) -> np.ndarray:
    """Karras et al. (2022) levels: uniform in ``sigma ** (1/rho)`` from ``sigma_max`` to ``sigma_min``."""
    ramp = np.linspace(0, 1, steps)
    hi, lo = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return (hi + ramp * (lo - hi)) ** rho


def make_schedule(
    prediction: Prediction, name: str, steps: int, *, denoise: float = 1.0, shift: float | None = None
) -> Schedule:
    """The schedule ``name`` for ``steps`` steps; ``denoise < 1`` keeps its last ``round(steps * denoise)``."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not 0.0 <= denoise <= 1.0:
        raise ValueError(f"denoise must be in [0, 1], got {denoise}")
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose one of {SCHEDULES}")
    if name == "default":
        name = prediction.default_schedule
    if isinstance(prediction, FlowPrediction):
        schedule = _flow_schedule(prediction, name, steps, prediction.shift if shift is None else shift)
    elif isinstance(prediction, VPPrediction):
        if shift is not None:
            raise ValueError("shift applies to flow-matching models only; pass shift=None for a VP model")
        schedule = _vp_schedule(prediction, name, steps)
    else:
        raise TypeError(
            f"prediction must be a FlowPrediction or VPPrediction, got {type(prediction).__name__}"
        )
    if denoise >= 1.0:
        return schedule
    # Like img2img "strength": the tail of the full schedule, starting at a partly noised latent.
    # At least one step runs for any denoise > 0, so a small value still does something.
    keep = 0 if denoise == 0.0 else max(1, math.floor(steps * denoise + 0.5))
    return schedule.tail(keep)


def _flow_schedule(prediction: FlowPrediction, name: str, steps: int, shift: float) -> Schedule:
    if not shift > 0:
        raise ValueError(f"flow shift must be > 0, got {shift}")
    levels = [float(s) for s in flow_levels(name, steps, shift, prediction.num_train_timesteps)]
    alphas, sigmas = zip(*(prediction.level(s) for s in levels))
    return Schedule(alphas, sigmas, tuple(prediction.timestep(s) for s in levels[:-1]))


def _vp_schedule(prediction: VPPrediction, name: str, steps: int) -> Schedule:
    T = prediction.num_train_timesteps
    if name == "karras":
        return _vp_karras(prediction, steps)
    t = vp_timesteps(name, steps, T, prediction.steps_offset)
    if t.min() < 0 or t.max() >= T:
        raise ValueError(f"schedule {name!r} with {steps} steps leaves the training range 0..{T - 1}: {t}")
    levels = [prediction.level_at(int(i)) for i in t] + [prediction.final_level()]
    alphas, sigmas = zip(*levels)
    return Schedule(alphas, sigmas, tuple(float(i) for i in t))


def _vp_karras(prediction: VPPrediction, steps: int) -> Schedule:
    a = prediction.alphas_cumprod()
    finite = a > 0  # a zero-terminal-SNR model's last step has no finite sigma/alpha
    ve = np.sqrt((1 - a[finite]) / a[finite])  # increasing with t
    ve_levels = karras(float(ve[-1]), float(ve[0]), steps)
    # Fractional timesteps by interpolating log(sigma/alpha) over the training steps (as diffusers does).
    t = np.interp(np.log(ve_levels), np.log(ve), np.arange(len(ve)))
    alphas = [1 / math.sqrt(1 + v * v) for v in ve_levels]
    sigmas = [v / math.sqrt(1 + v * v) for v in ve_levels]
    end_alpha, end_sigma = prediction.final_level()
    return Schedule((*alphas, end_alpha), (*sigmas, end_sigma), tuple(float(i) for i in t))
