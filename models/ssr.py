"""Learned spatial super-resolution (SSR): a small residual CNN over a base upsampling, x2 and x4.

Each output frame is predicted from the low-resolution frame, its two neighbours in time (temporal context
keeps detail consistent from frame to frame) and the base upsampling of the frame: bicubic, or the
weight-free upscaler of ``upscaling/`` (Lanczos + detail restoration), which the network then sees too
(folded to the low resolution by pixel-unshuffle) so it can correct it. All convolutions run at the low
resolution; one pixel-shuffle tail per scale turns features into the high-resolution residual added to the
base. The tails start at zero, so an untrained network is exactly its base.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..runtime.checkpoints import config_from_dict, load_checkpoint, load_state_strict
from ..runtime.progress import Progress

CHECKPOINT_KIND = "upscaler"


@dataclass
class SSRConfig:
    """Shape of an :class:`SSRNet`: scales it has a tail for, feature width, residual blocks."""

    family: str = "sprites-ssr"
    scales: tuple[int, ...] = (2, 4)
    width: int = 32
    num_blocks: int = 6
    context_frames: int = 1  # neighbours on each side fed with every frame
    base: str = "bicubic"  # or "weight_free": upscaling.upscale with its defaults

    def __post_init__(self) -> None:
        if not self.scales or any(s < 2 for s in self.scales):
            raise ValueError(f"SSRConfig.scales must be integers >= 2, got {self.scales}")
        if self.base not in ("bicubic", "weight_free"):
            raise ValueError(f"SSRConfig.base must be 'bicubic' or 'weight_free', got {self.base!r}")


class ResidualBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(x)))


class SSRNet(nn.Module):
    """``forward(frames [N, 3 * (2c + 1), h, w] in [0, 1], scale, base=None) -> [N, 3, h * scale, w * scale]``.

    The input stacks each frame's neighbours (previous ..., the frame, ... next) along channels. ``base`` is
    the weight-free upscaling of the middle frame ``[N, 3, h * scale, w * scale]`` when the config's base is
    ``"weight_free"`` (see :func:`base_upscale`); bicubic networks compute their own.
    """

    def __init__(self, config: SSRConfig) -> None:
        super().__init__()
        self.config = config
        self.window = 2 * config.context_frames + 1
        folded = {s: 3 * s * s if config.base == "weight_free" else 0 for s in config.scales}
        self.heads = nn.ModuleDict(
            {
                str(s): nn.Conv2d(3 * self.window + folded[s], config.width, 3, padding=1)
                for s in config.scales
            }
        )
        self.body = nn.Sequential(*[ResidualBlock(config.width) for _ in range(config.num_blocks)])
        self.body_out = nn.Conv2d(config.width, config.width, 3, padding=1)
        self.tails = nn.ModuleDict(
            {str(s): nn.Conv2d(config.width, 3 * s * s, 3, padding=1) for s in config.scales}
        )
        for tail in self.tails.values():
            nn.init.zeros_(tail.weight)
            nn.init.zeros_(tail.bias)

    def forward(self, frames: torch.Tensor, scale: int, base: torch.Tensor | None = None) -> torch.Tensor:
        if str(scale) not in self.tails:
            raise ValueError(f"this upscaler has x{list(self.config.scales)} tails, not x{scale}")
        inputs = frames - 0.5
        if self.config.base == "weight_free":
            if base is None:
                raise ValueError(
                    "this upscaler refines the weight-free upscaling: pass base=base_upscale(...)"
                )
            inputs = torch.cat([inputs, F.pixel_unshuffle(base - 0.5, scale)], dim=1)
        else:
            c = self.config.context_frames
            centre = frames[:, 3 * c : 3 * c + 3]
            base = F.interpolate(centre, scale_factor=scale, mode="bicubic", align_corners=False)
        features = self.heads[str(scale)](inputs)
        features = features + self.body_out(self.body(features))
        return base + F.pixel_shuffle(self.tails[str(scale)](features), scale)


def load_ssr(path: str | os.PathLike, dtype: torch.dtype = torch.float32) -> tuple[SSRNet, str]:
    """Load an SSR network saved with ``save_checkpoint(..., kind="upscaler")`` as ``(module, family)``."""
    state, config_dict, family = load_checkpoint(path, kind=CHECKPOINT_KIND)
    model = SSRNet(config_from_dict(SSRConfig, config_dict))
    load_state_strict(model, state, str(path))
    return model.to(dtype).eval().requires_grad_(False), family


def base_upscale(config: SSRConfig, frames: torch.Tensor, scale: int) -> torch.Tensor | None:
    """The base a network of ``config`` refines, for ``[N, 3, h, w]`` frames: the weight-free upscaling
    ``[N, 3, h * scale, w * scale]``, or None for bicubic networks (they compute it themselves)."""
    if config.base != "weight_free":
        return None
    from ..upscaling import upscale

    return upscale(frames.permute(0, 2, 3, 1).float(), scale=scale).permute(0, 3, 1, 2).to(frames.dtype)


def stack_neighbours(frames: torch.Tensor, index: list[int], context: int) -> torch.Tensor:
    """``[len(index), 3 * (2 * context + 1), H, W]``: each frame with its neighbours (edges repeated).

    ``frames`` is ``[N, 3, H, W]``.
    """
    n = frames.shape[0]
    picks = [[min(max(i + d, 0), n - 1) for d in range(-context, context + 1)] for i in index]
    return frames[torch.tensor(picks).flatten()].reshape(len(index), -1, *frames.shape[-2:])


def plan_scales(factor: float, scales: tuple[int, ...]) -> list[int]:
    """The learned passes that reach at least ``factor``: the smallest scale that does, else the largest
    scale repeatedly (a final resize corrects any overshoot)."""
    passes: list[int] = []
    reached = 1.0
    while reached < factor - 1e-9:
        fitting = [s for s in sorted(scales) if reached * s >= factor - 1e-9]
        step = fitting[0] if fitting else max(scales)
        passes.append(step)
        reached *= step
    return passes


@torch.no_grad()
def learned_upscale(
    model: SSRNet,
    frames: torch.Tensor,
    size: tuple[int, int],
    batch_size: int = 8,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Upscale an IMAGE batch ``[N, H, W, 3]`` to ``size`` = (height, width) with the network.

    The network runs the passes of :func:`plan_scales`; when those overshoot or the aspect changes, an
    antialiased Lanczos resize gives the exact size. Shrinking (or keeping) the size skips the network.
    """
    from ..upscaling import resize

    n, h, w, _ = frames.shape
    out_h, out_w = size
    passes = plan_scales(max(out_h / h, out_w / w), model.config.scales)
    param = next(model.parameters())
    work_device = torch.device(device) if device is not None else param.device
    current = frames.to(work_device, param.dtype).permute(0, 3, 1, 2)
    context = model.config.context_frames
    with Progress(len(passes) * math.ceil(n / batch_size), "learned upscale") as progress:
        for scale in passes:
            upscaled = []
            for start in range(0, n, batch_size):
                index = list(range(start, min(start + batch_size, n)))
                base = base_upscale(model.config, current[index], scale)
                upscaled.append(model(stack_neighbours(current, index, context), scale, base).clamp(0, 1))
                progress.update()
            current = torch.cat(upscaled)
    result = current.permute(0, 2, 3, 1)
    if tuple(result.shape[1:3]) != (out_h, out_w):
        result = resize(result.float(), (out_h, out_w), "lanczos").clamp(0, 1)
    return result.to(frames.device, frames.dtype)
