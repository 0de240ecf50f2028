"""ODE/SDE solvers: each a short function ``solver(denoise_fn, x, schedule, callback=None, ...) -> x``.

``denoise_fn(x, step) -> x0`` returns the model's estimate of clean data for the state ``x`` at
``step`` (a :class:`~.prediction.Step`); the solvers never see the model, its prediction type or CFG.
States are ``x = alpha * x0 + sigma * noise`` with the ``(alpha, sigma)`` levels of the schedule, so each
solver serves flow-matching and VP models alike. ``callback(step_index, x0, x, total_steps)`` runs after
every step (progress bars, previews). The last step always is first order, as in the references.

- ``euler``: Euler on the flow ODE; for every family this is DDIM with eta 0.
- ``ddim``: DDIM (Song et al. 2021), optionally stochastic with ``eta``.
- ``heun``: Heun's 2nd-order method on the flow ODE (2 model calls per step, 1 on the last).
- ``dpmpp_2m``: DPM-Solver++(2M) (Lu et al. 2022), midpoint form.
- ``dpmpp_2m_sde``: its SDE variant with eta 1, the update rule of diffusers' ``CogVideoXDPMScheduler``.
- ``unipc``: UniPC (Zhao et al. 2023), B(h) = expm1(h) ("bh2"), data prediction, as diffusers'
  ``UniPCMultistepScheduler`` runs it for Wan.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from .prediction import Step, log_snr
from .schedules import Schedule

DenoiseFn = Callable[[torch.Tensor, Step], torch.Tensor]
Callback = Callable[[int, torch.Tensor, torch.Tensor, int], None] | None
NoiseSampler = Callable[[torch.Tensor], torch.Tensor]


def _to_flow(alpha: float, sigma: float) -> tuple[float, float]:
    """Scale ``c`` and level ``s`` of the equivalent flow state ``x / c = (1 - s) x0 + s noise``.

    Every (alpha, sigma) family maps onto rectified flow this way, with no infinities at pure noise (unlike
    the sigma/alpha of variance-exploding form), so Euler and Heun are defined once for all families.
    """
    c = alpha + sigma
    return c, sigma / c


def _report(callback: Callback, i: int, x0: torch.Tensor, x: torch.Tensor, total: int) -> None:
    if callback is not None:
        callback(i, x0, x, total)


@torch.no_grad()
def euler(
    denoise_fn: DenoiseFn, x: torch.Tensor, schedule: Schedule, callback: Callback = None
) -> torch.Tensor:
    """Euler on the flow ODE ``dy/ds = (y - x0) / s``; for any family this equals DDIM (eta 0)."""
    for i in range(schedule.steps):
        x0 = denoise_fn(x, schedule.step(i))
        c, s = _to_flow(schedule.alphas[i], schedule.sigmas[i])
        c_next, s_next = _to_flow(schedule.alphas[i + 1], schedule.sigmas[i + 1])
        velocity = (x / c - x0) / s
        x = (x / c + (s_next - s) * velocity) * c_next
        _report(callback, i, x0, x, schedule.steps)
    return x


@torch.no_grad()
def ddim(
    denoise_fn: DenoiseFn,
    x: torch.Tensor,
    schedule: Schedule,
    callback: Callback = None,
    eta: float = 0.0,
    noise_sampler: NoiseSampler | None = None,
) -> torch.Tensor:
    """DDIM: keep the model's x0, re-noise with its implied noise; ``eta > 0`` adds fresh noise (eta 1 = DDPM)."""
    if eta < 0:
        raise ValueError(f"ddim eta must be >= 0, got {eta}")
    noise_sampler = noise_sampler or torch.randn_like
    for i in range(schedule.steps):
        x0 = denoise_fn(x, schedule.step(i))
        alpha, sigma = schedule.alphas[i], schedule.sigmas[i]
        alpha_next, sigma_next = schedule.alphas[i + 1], schedule.sigmas[i + 1]
        if eta == 0 or sigma_next == 0:
            # x_next = alpha_next * x0 + sigma_next * (x - alpha * x0) / sigma, gathered per tensor
            ratio = sigma_next / sigma
            x = ratio * x + (alpha_next - alpha * ratio) * x0
        else:
            eps = (x - alpha * x0) / sigma
            var = (sigma_next / sigma) ** 2 * (1 - (alpha / alpha_next) ** 2)
            std = eta * math.sqrt(max(var, 0.0))
            x = alpha_next * x0 + math.sqrt(max(sigma_next**2 - std**2, 0.0)) * eps + std * noise_sampler(x)
        _report(callback, i, x0, x, schedule.steps)
    return x


@torch.no_grad()
def heun(
    denoise_fn: DenoiseFn, x: torch.Tensor, schedule: Schedule, callback: Callback = None
) -> torch.Tensor:
    """Heun's method (trapezoidal predictor-corrector) on the flow ODE; the last step is Euler."""
    n = schedule.steps
    for i in range(n):
        x0 = denoise_fn(x, schedule.step(i))
        c, s = _to_flow(schedule.alphas[i], schedule.sigmas[i])
        c_next, s_next = _to_flow(schedule.alphas[i + 1], schedule.sigmas[i + 1])
        y = x / c
        d = (y - x0) / s
        y_next = y + (s_next - s) * d
        if i < n - 1:
            x0_next = denoise_fn(y_next * c_next, schedule.step(i + 1))
            d_next = (y_next - x0_next) / s_next
            y_next = y + (s_next - s) * 0.5 * (d + d_next)
        x = y_next * c_next
        _report(callback, i, x0, x, schedule.steps)
    return x


@torch.no_grad()
def dpmpp_2m(
    denoise_fn: DenoiseFn, x: torch.Tensor, schedule: Schedule, callback: Callback = None
) -> torch.Tensor:
    """DPM-Solver++(2M): exponential integrator in log-SNR with a linear (midpoint) x0 extrapolation."""
    return _dpmpp_2m(denoise_fn, x, schedule, callback, sde=False, noise_sampler=None)


@torch.no_grad()
def dpmpp_2m_sde(
    denoise_fn: DenoiseFn,
    x: torch.Tensor,
    schedule: Schedule,
    callback: Callback = None,
    noise_sampler: NoiseSampler | None = None,
) -> torch.Tensor:
    """DPM-Solver++(2M) SDE (eta 1, midpoint): CogVideoXDPMScheduler's update, fresh noise every step."""
    return _dpmpp_2m(
        denoise_fn, x, schedule, callback, sde=True, noise_sampler=noise_sampler or torch.randn_like
    )


def _dpmpp_2m(
    denoise_fn: DenoiseFn,
    x: torch.Tensor,
    schedule: Schedule,
    callback: Callback,
    sde: bool,
    noise_sampler: NoiseSampler | None,
) -> torch.Tensor:
    n = schedule.steps
    lambdas = [log_snr(a, s) for a, s in zip(schedule.alphas, schedule.sigmas)]
    old_x0, h_last = None, math.inf
    for i in range(n):
        x0 = denoise_fn(x, schedule.step(i))
        sigma, alpha_next, sigma_next = schedule.sigmas[i], schedule.alphas[i + 1], schedule.sigmas[i + 1]
        h = lambdas[i + 1] - lambdas[i]
        x0_d = x0
        # Second order needs a finite previous step (not from pure noise) and is skipped on the last step.
        if old_x0 is not None and math.isfinite(h_last) and i < n - 1:
            r = h_last / h
            x0_d = x0 + (x0 - old_x0) / (2 * r)
        if sde:
            # exp(-h) damps the state twice as fast as the ODE; the difference is made up by fresh noise.
            x = (sigma_next / sigma * math.exp(-h)) * x - (alpha_next * math.expm1(-2 * h)) * x0_d
            if sigma_next > 0:
                x = x + (sigma_next * math.sqrt(-math.expm1(-2 * h))) * noise_sampler(x)
        else:
            x = (sigma_next / sigma) * x - (alpha_next * math.expm1(-h)) * x0_d
        old_x0, h_last = x0, h
        _report(callback, i, x0, x, n)
    return x


@torch.no_grad()
def unipc(
    denoise_fn: DenoiseFn,
    x: torch.Tensor,
    schedule: Schedule,
    callback: Callback = None,
    order: int = 2,
    corrector: bool = True,
) -> torch.Tensor:
    """UniPC: a multistep predictor (UniP) and, after each model call, a corrector (UniC) using that call.

    The corrector re-does the previous step with the new x0 included, at no extra model cost. Orders ramp
    up from 1 as history accumulates and drop back on the last steps (diffusers' ``lower_order_final``).
    """
    if order < 1:
        raise ValueError(f"unipc order must be >= 1, got {order}")
    n = schedule.steps
    lambdas = [log_snr(a, s) for a, s in zip(schedule.alphas, schedule.sigmas)]
    history: list[torch.Tensor] = []  # x0 at levels i - len(history) + 1 .. i, newest last
    x_before, last_order = x, 0
    for i in range(n):
        x0 = denoise_fn(x, schedule.step(i))
        if corrector and i > 0:
            x = _unipc_update(x_before, history, schedule, lambdas, i - 1, last_order, x0_next=x0)
        history = (history + [x0])[-order:]
        # Levels at pure noise have log-SNR -inf and cannot serve as history (only the first can be one).
        finite = sum(1 for j in range(i - len(history) + 1, i + 1) if math.isfinite(lambdas[j]))
        this_order = max(1, min(order, n - i, finite))
        x_before, last_order = x, this_order
        x = _unipc_update(x, history, schedule, lambdas, i, this_order)
        _report(callback, i, x0, x, n)
    return x


def _unipc_update(
    x: torch.Tensor,
    history: list[torch.Tensor],
    schedule: Schedule,
    lambdas: list[float],
    i: int,
    order: int,
    x0_next: torch.Tensor | None = None,
) -> torch.Tensor:
    """One UniP step from level i to i+1 using ``order`` history x0s; UniC when ``x0_next`` is given."""
    m0 = history[-1]
    sigma, alpha_next, sigma_next = schedule.sigmas[i], schedule.alphas[i + 1], schedule.sigmas[i + 1]
    h = lambdas[i + 1] - lambdas[i]
    # Earlier x0s as divided differences along log-SNR, scaled by the step (r_k = relative position).
    rks = [(lambdas[i - k] - lambdas[i]) / h for k in range(1, order)]
    diffs = [(history[-1 - k] - m0) / rk for k, rk in enumerate(rks, start=1)]
    rks.append(1.0)

    hh = -h  # data prediction integrates e^{-h}
    h_phi_1 = math.expm1(hh)
    b_h = math.expm1(hh)  # "bh2"
    # Right-hand side b_k = h*phi_{k+1}(h) * k! / B(h), from the recursion phi_{k+1} = (phi_k - 1/k!) / h.
    h_phi_k, factorial = h_phi_1 / hh - 1, 1
    rows, b = [], []
    for k in range(1, order + 1):
        rows.append([rk ** (k - 1) for rk in rks])
        b.append(h_phi_k * factorial / b_h)
        factorial *= k + 1
        h_phi_k = h_phi_k / hh - 1 / factorial

    x_next = (sigma_next / sigma) * x - (alpha_next * h_phi_1) * m0
    if x0_next is None:  # predictor
        if order == 2:
            rhos = [0.5]  # UniPC's fixed 2nd-order coefficient (the solve would give b_1)
        elif order > 2:
            rhos = np.linalg.solve(np.array(rows)[:-1, :-1], np.array(b[:-1])).tolist()
        else:
            rhos = []
        residual = sum((rho * d for rho, d in zip(rhos, diffs)), torch.zeros_like(x))
    else:  # corrector: the new x0 enters as the last divided difference
        rhos = [0.5] if order == 1 else np.linalg.solve(np.array(rows), np.array(b)).tolist()
        residual = sum((rho * d for rho, d in zip(rhos[:-1], diffs)), torch.zeros_like(x))
        residual = residual + rhos[-1] * (x0_next - m0)
    return x_next - (alpha_next * b_h) * residual


SOLVERS: dict[str, Callable[..., torch.Tensor]] = {
    "euler": euler,
    "heun": heun,
    "dpmpp_2m": dpmpp_2m,
    "dpmpp_2m_sde": dpmpp_2m_sde,
    "unipc": unipc,
    "ddim": ddim,
}
STOCHASTIC_SOLVERS = ("dpmpp_2m_sde", "ddim")  # take a noise_sampler


def get_solver(name: str) -> Callable[..., torch.Tensor]:
    if name not in SOLVERS:
        raise ValueError(f"unknown solver {name!r}; choose one of {tuple(SOLVERS)}")
    return SOLVERS[name]
