"""The sampler entry point the DiT sampler node calls: schedule + start state + CFG + solver."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from ..runtime.progress import Progress
from .guidance import BatchConds, ModelFn, cogvideox_dynamic_scale, concat_conds, guided_prediction
from .prediction import FlowPrediction, Step, VPPrediction
from .schedules import Schedule, make_schedule
from .solvers import STOCHASTIC_SOLVERS, Callback, get_solver


def start_state(
    prediction: FlowPrediction | VPPrediction,
    schedule: Schedule,
    noise: torch.Tensor,
    latent: torch.Tensor | None,
    denoise: float,
) -> torch.Tensor:
    """Where sampling starts: the noise itself for a full run, else the latent noised to the first level."""
    if denoise >= 1.0:
        # Reference pipelines start from unit noise, whatever the first level's alpha (0 or tiny).
        return noise
    if latent is None:
        raise ValueError(
            f"denoise={denoise} < 1 needs the input latent to noise (video-to-video); pass latent="
        )
    return prediction.noised(latent, noise, schedule.step(0))


def sample(
    model_fn: ModelFn,
    prediction: FlowPrediction | VPPrediction,
    noise: torch.Tensor,
    *,
    steps: int,
    solver: str,
    cfg: float,
    cond: Any,
    uncond: Any = None,
    denoise: float = 1.0,
    latent: torch.Tensor | None = None,
    shift: float | None = None,
    schedule: str = "default",
    dynamic_cfg: bool = False,
    generator: torch.Generator | None = None,
    solver_options: dict[str, Any] | None = None,
    batch_conds: BatchConds | None = concat_conds,
    callback: Callback = None,
    progress: bool = True,
) -> torch.Tensor:
    """Denoise ``noise`` with ``model_fn(x_in, timestep [B] float32, cond) -> raw prediction``; returns x0.

    ``cond`` / ``uncond`` are passed through to ``model_fn`` untouched (batched with :func:`concat_conds`
    when possible). ``cfg == 1`` skips the uncond pass. ``denoise < 1`` noises ``latent`` to the level of
    the last ``round(steps * denoise)`` steps and runs only those; ``denoise == 0`` returns ``latent``.
    ``shift`` overrides a flow model's timestep shift. ``generator`` seeds the noise of stochastic solvers.
    ``callback(step, x0, x, total_steps)`` runs after every step. Works in float32 (float64 if given).
    """
    if not isinstance(noise, torch.Tensor) or not noise.is_floating_point():
        raise TypeError("noise must be a floating-point tensor")
    if latent is not None and latent.shape != noise.shape:
        raise ValueError(f"latent shape {tuple(latent.shape)} differs from noise shape {tuple(noise.shape)}")
    if not cfg >= 0:
        raise ValueError(f"cfg must be >= 0, got {cfg}")
    solver_fn = get_solver(solver)
    plan = make_schedule(prediction, schedule, steps, denoise=denoise, shift=shift)

    dtype = torch.float64 if noise.dtype == torch.float64 else torch.float32
    noise = noise.to(dtype)
    latent = latent.to(device=noise.device, dtype=dtype) if latent is not None else None
    if plan.steps == 0:
        if latent is None:
            raise ValueError("denoise=0 returns the input latent unchanged; pass latent=")
        return latent.clone()
    x = start_state(prediction, plan, noise, latent, denoise)

    options = dict(solver_options or {})
    accepted = set(inspect.signature(solver_fn).parameters) - {"denoise_fn", "x", "schedule", "callback"}
    if unknown := set(options) - accepted:
        raise ValueError(f"solver {solver!r} takes options {sorted(accepted)}, not {sorted(unknown)}")
    if solver in STOCHASTIC_SOLVERS and "noise_sampler" not in options:
        options["noise_sampler"] = _noise_sampler(generator)

    def denoise_fn(x: torch.Tensor, step: Step) -> torch.Tensor:
        scale = cogvideox_dynamic_scale(cfg, step.timestep, plan.steps) if dynamic_cfg else cfg
        # The uncond pass is decided on the user's cfg, as the reference pipelines do with dynamic CFG.
        scale = 1.0 if cfg == 1.0 else scale
        timestep = torch.full((x.shape[0],), step.timestep, dtype=torch.float32, device=x.device)
        raw = guided_prediction(
            model_fn, prediction.model_input(x, step), timestep, cond, uncond, scale, batch_conds
        )
        return prediction.denoised(x, raw.to(x.dtype), step)

    with Progress(plan.steps, f"{solver} sampling") if progress else _NoProgress() as bar:

        def report(i: int, x0: torch.Tensor, x: torch.Tensor, total: int) -> None:
            bar.update()
            if callback is not None:
                callback(i, x0, x, total)

        return solver_fn(denoise_fn, x, plan, callback=report, **options)


def _noise_sampler(generator: torch.Generator | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """Fresh noise for stochastic solvers, drawn on the generator's device so seeds reproduce across devices."""

    def draw(x: torch.Tensor) -> torch.Tensor:
        if generator is None:
            return torch.randn_like(x)
        return torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)

    return draw


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass
