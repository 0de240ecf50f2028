"""What a diffusion model predicts, and how its noise levels are defined, in one formulation.

Every family here writes a noisy state as ``x = alpha * x0 + sigma * noise``:

- flow matching (Wan, our embedded models): ``alpha = 1 - s``, ``sigma = s`` for s in [0, 1]; the model
  predicts the velocity ``noise - x0`` and takes ``timestep = s * 1000``.
- discrete VP (DDPM betas, CogVideoX): ``alpha = sqrt(alphas_cumprod[t])``, ``sigma = sqrt(1 - alphas_cumprod[t])``
  for the training step t; the model predicts eps or v and takes ``timestep = t``.

Solvers only ever see ``(alpha, sigma)`` pairs and the model's x0 estimate, so one solver serves both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
VP_TARGETS = ("eps", "v")


@dataclass(frozen=True)
class Step:
    """One noise level as a solver hands it to the denoiser."""

    index: int  # position in the schedule (0 = noisiest)
    alpha: float  # signal coefficient
    sigma: float  # noise coefficient
    timestep: float  # what the model is conditioned on, in model units (0..1000)


def log_snr(alpha: float, sigma: float) -> float:
    """``log(alpha / sigma)``, with the infinities of pure noise and clean data made explicit."""
    if sigma == 0.0:
        return math.inf
    if alpha == 0.0:
        return -math.inf
    return math.log(alpha) - math.log(sigma)


def shift_levels(s: np.ndarray | float, shift: float) -> np.ndarray | float:
    """Flow-matching timestep shift ``s' = shift*s / (1 + (shift-1)*s)``: spends more steps at high noise."""
    return shift * s / (1 + (shift - 1) * s)


class _Prediction:
    """Shared by both families: the state algebra that does not depend on what the model outputs."""

    kind: str
    default_schedule: str

    def model_input(self, x: torch.Tensor, step: Step) -> torch.Tensor:
        # Both families feed the state unscaled (diffusers' ``scale_model_input`` is the identity for them).
        return x

    def noised(self, latent: torch.Tensor, noise: torch.Tensor, step: Step) -> torch.Tensor:
        """The state at ``step``'s level for a clean latent: the start point of video-to-video."""
        return step.alpha * latent + step.sigma * noise


@dataclass(frozen=True)
class FlowPrediction(_Prediction):
    """Rectified flow: ``x = (1 - s) * x0 + s * noise``, the model predicts ``noise - x0``.

    ``integer_timesteps`` feeds ``floor(s * 1000)`` as Wan's reference scheduler does (its UniPC hands the
    model int64 timesteps); otherwise the model gets ``s * 1000`` unrounded.
    """

    shift: float = 1.0
    num_train_timesteps: int = 1000
    integer_timesteps: bool = False
    default_schedule: str = "simple"
    kind: str = "flow"

    def __post_init__(self) -> None:
        if not self.shift > 0:
            raise ValueError(f"flow shift must be > 0, got {self.shift}")
        if self.num_train_timesteps < 2:
            raise ValueError(f"num_train_timesteps must be >= 2, got {self.num_train_timesteps}")

    def level(self, s: float) -> tuple[float, float]:
        """``(alpha, sigma)`` for the flow noise level s."""
        return 1.0 - s, s

    def timestep(self, s: float) -> float:
        t = s * self.num_train_timesteps
        return float(math.floor(t)) if self.integer_timesteps else t

    def denoised(self, x: torch.Tensor, raw: torch.Tensor, step: Step) -> torch.Tensor:
        # x = x0 + s * (noise - x0)  =>  x0 = x - s * v
        return x - step.sigma * raw


@dataclass(frozen=True)
class VPPrediction(_Prediction):
    """Discrete variance-preserving diffusion (DDPM betas) with eps- or v-prediction.

    ``snr_shift_scale`` divides the SNR of every training step (CogVideoX); ``zero_terminal_snr`` rescales the
    last step to pure noise (Lin et al. 2023; needs v-prediction). ``final_alpha_one`` makes the end of
    every schedule clean data, as diffusers' ``set_alpha_to_one``; otherwise it is training step 0.
    ``steps_offset`` is added to "leading" timesteps (diffusers' ``steps_offset``).
    """

    target: str = "eps"
    beta_schedule: str = "scaled_linear"
    beta_start: float = 0.00085
    beta_end: float = 0.012
    num_train_timesteps: int = 1000
    zero_terminal_snr: bool = False
    snr_shift_scale: float = 1.0
    final_alpha_one: bool = True
    steps_offset: int = 0
    default_schedule: str = "leading"
    kind: str = "vp"

    def __post_init__(self) -> None:
        if self.target not in VP_TARGETS:
            raise ValueError(f"VP prediction target must be one of {VP_TARGETS}, got {self.target!r}")
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"beta_schedule must be one of {BETA_SCHEDULES}, got {self.beta_schedule!r}")
        if not self.snr_shift_scale > 0:
            raise ValueError(f"snr_shift_scale must be > 0, got {self.snr_shift_scale}")
        if self.num_train_timesteps < 2:
            raise ValueError(f"num_train_timesteps must be >= 2, got {self.num_train_timesteps}")
        if self.zero_terminal_snr and self.target == "eps":
            # At zero SNR the state is pure noise, so an eps prediction says nothing about x0.
            raise ValueError(
                "zero_terminal_snr needs target='v': eps-prediction cannot recover x0 from pure noise"
            )

    def alphas_cumprod(self) -> np.ndarray:
        """``alphas_cumprod`` per training step (float64, read-only)."""
        return _alphas_cumprod(
            self.beta_schedule,
            self.beta_start,
            self.beta_end,
            self.num_train_timesteps,
            self.snr_shift_scale,
            self.zero_terminal_snr,
        )

    def level_at(self, t: int) -> tuple[float, float]:
        """``(alpha, sigma)`` at training step t."""
        a = float(self.alphas_cumprod()[t])
        return math.sqrt(a), math.sqrt(1.0 - a)

    def final_level(self) -> tuple[float, float]:
        return (1.0, 0.0) if self.final_alpha_one else self.level_at(0)

    def denoised(self, x: torch.Tensor, raw: torch.Tensor, step: Step) -> torch.Tensor:
        if self.target == "v":
            return step.alpha * x - step.sigma * raw
        return (x - step.sigma * raw) / step.alpha


@lru_cache(maxsize=16)
def _alphas_cumprod(
    beta_schedule: str, beta_start: float, beta_end: float, steps: int, snr_shift_scale: float, zero_snr: bool
) -> np.ndarray:
    if beta_schedule == "linear":
        betas = np.linspace(beta_start, beta_end, steps, dtype=np.float64)
    elif beta_schedule == "scaled_linear":  # linear in sqrt(beta), Stable Diffusion's and CogVideoX's
        betas = np.linspace(beta_start**0.5, beta_end**0.5, steps, dtype=np.float64) ** 2
    else:  # squaredcos_cap_v2: the cosine schedule of Nichol & Dhariwal, betas capped at 0.999

        def alpha_bar(u: float) -> float:
            return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

        betas = np.array(
            [min(1 - alpha_bar((i + 1) / steps) / alpha_bar(i / steps), 0.999) for i in range(steps)]
        )
    a = np.cumprod(1.0 - betas)
    # CogVideoX: SNR / scale, i.e. a / (1 - a) divided by snr_shift_scale, solved for a.
    a = a / (snr_shift_scale + (1 - snr_shift_scale) * a)
    if zero_snr:
        # Shift and stretch sqrt(a) so the last step is exactly 0 and the first is unchanged.
        root = np.sqrt(a)
        first, last = root[0], root[-1]
        a = ((root - last) * (first / (first - last))) ** 2
    a.setflags(write=False)
    return a
