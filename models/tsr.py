"""Learned temporal super-resolution (TSR): a small U-Net that corrects the weight-free flow interpolation.

For an in-between frame at time ``t`` of the pair ``(f0, f1)`` the network sees the flow-interpolated frame
(``interpolation.frames_at``), the pair, their outer neighbours ``f_-1`` and ``f2`` (motion context) and
``t``, and predicts a residual added to the flow frame. The last layer starts at zero, so an untrained
network is exactly the weight-free method; training teaches it to fix what flow gets wrong (occlusions,
edges, growing and shrinking objects). Source frames pass through unchanged.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..runtime.checkpoints import config_from_dict, load_checkpoint, load_state_strict
from ..runtime.progress import Progress

CHECKPOINT_KIND = "interpolator"
_ON_FRAME_EPS = 1e-6


@dataclass
class TSRConfig:
    """Shape of a :class:`TSRNet`; ``base_method`` is the weight-free interpolation it refines."""

    family: str = "sprites-tsr"
    widths: tuple[int, ...] = (32, 48, 64)
    base_method: str = "flow"

    def __post_init__(self) -> None:
        if len(self.widths) < 1:
            raise ValueError("TSRConfig.widths needs at least one level")
        if self.base_method not in ("flow", "blend"):
            raise ValueError(f"base_method must be 'flow' or 'blend', got {self.base_method!r}")


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class ConvPair(nn.Sequential):
    """conv3x3 -> SiLU -> conv3x3 -> SiLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(_conv(cin, cout), nn.SiLU(), _conv(cout, cout), nn.SiLU())


class TSRNet(nn.Module):
    """``forward(prev, f0, f1, nxt, base, t) -> frame``: images ``[N, 3, H, W]`` in [0, 1], ``t`` ``[N]``."""

    IN_CHANNELS = 5 * 3 + 1  # prev, f0, f1, next, base frame, time plane

    def __init__(self, config: TSRConfig) -> None:
        super().__init__()
        self.config = config
        w = config.widths
        self.inp = ConvPair(self.IN_CHANNELS, w[0])
        self.down = nn.ModuleList(
            [
                nn.Sequential(_conv(a, b, stride=2), nn.SiLU(), _conv(b, b), nn.SiLU())
                for a, b in zip(w, w[1:])
            ]
        )
        self.up = nn.ModuleList([ConvPair(b + a, a) for a, b in zip(w, w[1:])])
        self.out = nn.Conv2d(w[0], 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # start as the weight-free interpolation
        nn.init.zeros_(self.out.bias)

    @property
    def multiple(self) -> int:
        return 2 ** (len(self.config.widths) - 1)

    def forward(
        self,
        prev: torch.Tensor,
        f0: torch.Tensor,
        f1: torch.Tensor,
        nxt: torch.Tensor,
        base: torch.Tensor,
        t: torch.Tensor,
    ) -> torch.Tensor:
        n, _, h, w = base.shape
        plane = t.to(base).view(n, 1, 1, 1).expand(n, 1, h, w)
        x = torch.cat([prev, f0, f1, nxt, base], dim=1) - 0.5
        x = torch.cat([x, plane - 0.5], dim=1)
        m = self.multiple
        pad_h, pad_w = (-h) % m, (-w) % m
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        skips = [self.inp(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for up in reversed(self.up):
            skip = skips.pop()
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = up(torch.cat([y, skip], dim=1))
        residual = self.out(y)[..., :h, :w]
        return base + residual


def load_tsr(path: str | os.PathLike, dtype: torch.dtype = torch.float32) -> tuple[TSRNet, str]:
    """Load a TSR network saved with ``save_checkpoint(..., kind="interpolator")`` as ``(module, family)``."""
    state, config_dict, family = load_checkpoint(path, kind=CHECKPOINT_KIND)
    model = TSRNet(config_from_dict(TSRConfig, config_dict))
    load_state_strict(model, state, str(path))
    return model.to(dtype).eval().requires_grad_(False), family


def _as_chw(frames: torch.Tensor, index: Sequence[int], device, dtype) -> torch.Tensor:
    return frames[list(index)].to(device, dtype).permute(0, 3, 1, 2)


@torch.no_grad()
def learned_frames_at(
    model: TSRNet,
    frames: torch.Tensor,
    positions: Sequence[float],
    batch_size: int = 16,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Frames at fractional ``positions`` (frame i at position i) of an IMAGE batch ``[N, H, W, 3]``.

    Positions on a source frame copy it; the others are the weight-free interpolation refined by ``model``.
    Returns ``[len(positions), H, W, 3]`` in [0, 1] on the frames' device and dtype.
    """
    from ..interpolation import frames_at

    base = frames_at(frames, positions, model.config.base_method, device=device)
    n = frames.shape[0]
    todo = []  # (output index, pair start i, t)
    for k, p in enumerate(float(p) for p in positions):
        if abs(p - round(p)) > _ON_FRAME_EPS:
            i = min(int(math.floor(p)), n - 2)
            todo.append((k, i, p - i))
    param = next(model.parameters())
    work_device = torch.device(device) if device is not None else param.device
    dtype = param.dtype
    out = base.clone()
    with Progress(math.ceil(len(todo) / batch_size), "learned interpolation") as progress:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            ks = [k for k, _, _ in chunk]
            pairs = [i for _, i, _ in chunk]
            prev = _as_chw(frames, [max(i - 1, 0) for i in pairs], work_device, dtype)
            f0 = _as_chw(frames, pairs, work_device, dtype)
            f1 = _as_chw(frames, [i + 1 for i in pairs], work_device, dtype)
            nxt = _as_chw(frames, [min(i + 2, n - 1) for i in pairs], work_device, dtype)
            b = _as_chw(base, ks, work_device, dtype)
            t = torch.tensor([t for _, _, t in chunk], device=work_device, dtype=dtype)
            made = model(prev, f0, f1, nxt, b, t).clamp(0, 1).permute(0, 2, 3, 1)
            out[ks] = made.to(out.device, out.dtype)
            progress.update()
    return out


def learned_interpolate(
    model: TSRNet, frames: torch.Tensor, multiplier: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """Insert ``multiplier - 1`` frames between neighbours: ``[(N - 1) * multiplier + 1, H, W, 3]``."""
    from ..interpolation.temporal import check_frames

    check_frames(frames, min_frames=2)
    if isinstance(multiplier, bool) or not isinstance(multiplier, int) or multiplier < 1:
        raise ValueError(f"multiplier must be an integer >= 1 (2, 3, 4, ...); got {multiplier!r}")
    positions = [k / multiplier for k in range((frames.shape[0] - 1) * multiplier + 1)]
    return learned_frames_at(model, frames, positions, device=device)
