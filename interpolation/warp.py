"""Vectorised warping primitives on [B, C, H, W] tensors: backward sampling, forward splatting, hole filling."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pixel_grid(height: int, width: int, device: torch.device) -> torch.Tensor:
    """[1, 2, H, W] pixel coordinates (x, y) of each pixel."""
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=torch.float32),
        torch.arange(width, device=device, dtype=torch.float32),
        indexing="ij",
    )
    return torch.stack([xs, ys])[None]


def backward_warp(image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Sample ``image`` at ``x + flow(x)`` (``mode``: "bilinear" or "bicubic"); outside the frame the border value."""
    _, _, h, w = image.shape
    pos = pixel_grid(h, w, image.device) + flow
    # grid_sample wants [-1, 1] coordinates; with align_corners=False pixel centres sit at (x + 0.5) / w.
    grid = torch.stack([(pos[:, 0] + 0.5) * (2.0 / w) - 1.0, (pos[:, 1] + 0.5) * (2.0 / h) - 1.0], dim=-1)
    return F.grid_sample(image, grid, mode=mode, padding_mode="border", align_corners=False)


def forward_splat(
    values: torch.Tensor, flow: torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinearly splat ``values * weight`` from ``x`` to ``x + flow(x)``.

    Returns the accumulated weighted values [B, C, H, W] and the accumulated weight [B, 1, H, W]; their ratio
    is the splatted field wherever the weight is positive (a weighted average of everything that landed).
    """
    b, c, h, w = values.shape
    pos = pixel_grid(h, w, values.device) + flow
    x0, y0 = pos[:, 0].floor(), pos[:, 1].floor()
    fx, fy = pos[:, 0] - x0, pos[:, 1] - y0
    # Channels first, pixels of all batch items along one axis: scatter_add_ is fastest in this layout.
    payload = torch.cat([values * weight, weight], dim=1).transpose(0, 1).reshape(c + 1, -1)
    batch_offset = (torch.arange(b, device=values.device) * (h * w)).view(b, 1, 1)
    out = torch.zeros(c + 1, b * h * w, device=values.device, dtype=values.dtype)
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        xi, yi = x0 + dx, y0 + dy
        corner = (fx if dx else 1 - fx) * (fy if dy else 1 - fy)
        # Corners outside the frame get weight 0 and a clamped (valid) index: cheaper than masking out.
        corner = corner * ((xi >= 0) & (xi < w) & (yi >= 0) & (yi < h))
        index = batch_offset + yi.clamp(0, h - 1).long() * w + xi.clamp(0, w - 1).long()
        out.scatter_add_(1, index.reshape(1, -1).expand(c + 1, -1), payload * corner.reshape(1, -1))
    out = out.view(c + 1, b, h, w).transpose(0, 1)
    return out[:, :c], out[:, c:]


def fill_holes(field: torch.Tensor, mass: torch.Tensor, min_mass: float = 1e-3) -> torch.Tensor:
    """Push-pull fill: where ``mass`` < ``min_mass``, take the mass-weighted average from coarser levels.

    ``field`` is already normalised (a value per pixel); ``mass`` says how much to trust it.
    """
    known = (mass >= min_mass).to(field.dtype)
    if bool(known.all()):
        return field
    levels = [(field * known, known)]
    while min(levels[-1][0].shape[-2:]) > 1 and not bool((levels[-1][1] > 0).all()):
        weighted, m = levels[-1]
        levels.append((F.avg_pool2d(weighted, 2, ceil_mode=True), F.avg_pool2d(m, 2, ceil_mode=True)))
    weighted, m = levels[-1]
    estimate = weighted / m.clamp_min(1e-8)
    for weighted, m in reversed(levels[:-1]):
        estimate = F.interpolate(estimate, size=weighted.shape[-2:], mode="bilinear", align_corners=False)
        own = weighted / m.clamp_min(1e-8)
        trust = m.clamp(0, 1)
        estimate = trust * own + (1 - trust) * estimate
    return torch.where(known > 0, field, estimate)
