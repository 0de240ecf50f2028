"""Synthesise frames between two neighbours from their bidirectional flow.

Classic flow-based interpolation (after Baker et al., "A Database and Evaluation Methodology for Optical
Flow", 2011, section 3):
1. Forward-backward consistency of ``F01`` and ``F10`` gives each source pixel a soft reliability.
2. Both flows are forward-splatted to time ``t`` (frame 0's pixels move by ``t * F01``, frame 1's by
   ``(1 - t) * F10``), averaging everything that lands on a pixel with reliability weights; holes are filled
   push-pull. The result is the motion ``v`` (frame 0 -> frame 1) of whatever is at each pixel at time ``t``.
3. Frame 0 is sampled at ``x - t v`` and frame 1 at ``x + (1 - t) v`` (backward warps).
4. A sample counts as visible when the pixel it came from really moves by ``v`` (the source frame's own flow
   agrees); the two warps are blended with weights ``(1 - t) * visible0`` and ``t * visible1``, falling back to
   the plain ``(1 - t), t`` blend where neither is visible.
5. Where the motion is sub-pixel the plain cross-fade takes over (it is nearly exact there).
A pair that motion does not explain (a scene cut, a flash: most pixels still differ after warping one frame
onto the other) is cross-faded instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .warp import backward_warp, fill_holes, forward_splat


@dataclass
class SynthesisConfig:
    # Two flow vectors "agree" when |a - b|^2 < rel_tol * (|a|^2 + |b|^2) + abs_tol_px^2 (soft version of the
    # forward-backward test of Sundaram et al. 2010); errors are divided by this tolerance.
    rel_tol: float = 0.01
    abs_tol_px: float = 0.75
    # Softmax-splatting sharpness: a landing pixel's weight is exp(-splat_sharpness * normalised error).
    splat_sharpness: float = 4.0
    # A pair is a cut (cross-faded) when more than cut_fraction of the pixels still differ by more than
    # cut_residual after warping one frame onto the other with the flow: motion explains too little.
    # Measured on sprites: normal pairs stay below 0.03, cuts between clips are above 0.35.
    cut_residual: float = 0.1
    cut_fraction: float = 0.25
    # How frames are sampled when warped: "bicubic" keeps edges sharp under sub-pixel shifts.
    sample_mode: str = "bicubic"
    # Where the motion is below blend_below_px (ramping up over blend_ramp_px) the plain cross-fade is used:
    # for sub-pixel motion it is nearly exact (an anti-aliased edge moving within its pixel changes its
    # coverage linearly), while resampling a warp softens edges.
    blend_below_px: float = 0.5
    blend_ramp_px: float = 1.0


def _squared_norm(flow: torch.Tensor) -> torch.Tensor:
    return (flow * flow).sum(dim=1, keepdim=True)


def _normalised_disagreement(a: torch.Tensor, b_negated: torch.Tensor, cfg: SynthesisConfig) -> torch.Tensor:
    """|a + b|^2 over the tolerance, for flows ``a`` and ``b`` expected to cancel out."""
    err = _squared_norm(a + b_negated)
    tol = cfg.rel_tol * (_squared_norm(a) + _squared_norm(b_negated)) + cfg.abs_tol_px**2
    return err / tol


@dataclass
class PairMotion:
    """Everything about one frame pair that does not depend on the time ``t``."""

    frame0: torch.Tensor  # [1, 3, H, W]
    frame1: torch.Tensor
    flow01: torch.Tensor  # [1, 2, H, W] pixels
    flow10: torch.Tensor
    error0: torch.Tensor  # [1, 1, H, W] normalised forward-backward disagreement of frame 0's pixels
    error1: torch.Tensor
    is_cut: bool


def analyse_pair(
    frame0: torch.Tensor,
    frame1: torch.Tensor,
    flow01: torch.Tensor,
    flow10: torch.Tensor,
    cfg: SynthesisConfig,
) -> PairMotion:
    error0 = _normalised_disagreement(flow01, backward_warp(flow10, flow01), cfg)
    error1 = _normalised_disagreement(flow10, backward_warp(flow01, flow10), cfg)
    residual0 = (frame0 - backward_warp(frame1, flow01)).abs().amax(dim=1)
    residual1 = (frame1 - backward_warp(frame0, flow10)).abs().amax(dim=1)
    unexplained = 0.5 * (
        (residual0 > cfg.cut_residual).float().mean() + (residual1 > cfg.cut_residual).float().mean()
    )
    return PairMotion(frame0, frame1, flow01, flow10, error0, error1, bool(unexplained > cfg.cut_fraction))


def crossfade(frame0: torch.Tensor, frame1: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """[1, C, H, W] x2 and [T] times -> [T, C, H, W] linear blends."""
    t = times.view(-1, 1, 1, 1).to(frame0)
    return (1 - t) * frame0 + t * frame1


def synthesize(pair: PairMotion, times: torch.Tensor, cfg: SynthesisConfig) -> torch.Tensor:
    """Frames at ``times`` (each in (0, 1)) between the pair: [T, 3, H, W]."""
    if pair.is_cut:
        return crossfade(pair.frame0, pair.frame1, times)
    n = times.numel()
    t = times.view(n, 1, 1, 1).to(pair.frame0)
    flow01, flow10 = pair.flow01.expand(n, -1, -1, -1), pair.flow10.expand(n, -1, -1, -1)

    # Motion (0 -> 1 displacement) of what sits at each pixel at time t, from both directions at once.
    weight0 = torch.exp(-cfg.splat_sharpness * pair.error0).expand(n, -1, -1, -1)
    weight1 = torch.exp(-cfg.splat_sharpness * pair.error1).expand(n, -1, -1, -1)
    acc0, mass0 = forward_splat(flow01, t * flow01, weight0)
    acc1, mass1 = forward_splat(-flow10, (1 - t) * flow10, weight1)
    mass = mass0 + mass1
    motion = fill_holes((acc0 + acc1) / mass.clamp_min(1e-8), mass)

    warped0 = backward_warp(pair.frame0.expand(n, -1, -1, -1), -t * motion, cfg.sample_mode)
    warped1 = backward_warp(pair.frame1.expand(n, -1, -1, -1), (1 - t) * motion, cfg.sample_mode)

    # Visible in frame 0 when the frame-0 pixel we sampled itself moves by `motion` (not occluded by time t).
    visible0 = torch.exp(-_normalised_disagreement(backward_warp(flow01, -t * motion), -motion, cfg))
    visible1 = torch.exp(-_normalised_disagreement(backward_warp(flow10, (1 - t) * motion), motion, cfg))
    a0 = (1 - t) * (visible0 + 1e-3)
    a1 = t * (visible1 + 1e-3)
    warped = (a0 * warped0 + a1 * warped1) / (a0 + a1)
    if cfg.blend_below_px <= 0:
        return warped
    speed = _squared_norm(motion).sqrt()
    use_warp = ((speed - cfg.blend_below_px) / cfg.blend_ramp_px).clamp(0, 1)
    return use_warp * warped + (1 - use_warp) * crossfade(pair.frame0, pair.frame1, times)
