"""Rotary position embedding over a (time, height, width) grid, Wan 2.1's split of the head dimension.

Each attention head's channels are taken as ``head_dim / 2`` complex pairs ``(x[2i], x[2i+1])``. The
first pairs rotate with the frame index, the next with the row, the last with the column:
``h_dim = w_dim = 2 * (head_dim // 6)`` channels, ``t_dim`` the rest. Rotating ``q`` and ``k`` by angles
proportional to their positions makes ``q . k`` depend only on the position *difference*.

Tables are built once per grid (positions are exact integers, angles in float64 as Wan does) and cached
as complex64, so a sampling loop pays for them once.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

# Which axes a table rotates: full 3D attention, attention inside one frame, attention along time.
AXES = ("thw", "hw", "t")


def rope_split(head_dim: int) -> tuple[int, int, int]:
    """Channels of one head given to (t, h, w): Wan gives h and w ``2 * (head_dim // 6)`` each."""
    if head_dim % 2:
        raise ValueError(f"rotary embedding needs an even head_dim, got {head_dim}")
    h_dim = w_dim = 2 * (head_dim // 6)
    return head_dim - h_dim - w_dim, h_dim, w_dim


def _axis_angles(positions: torch.Tensor, dim: int, theta: float) -> torch.Tensor:
    """``[len(positions), dim / 2]`` float64 angles ``pos * theta^(-2i/dim)``."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64)[: dim // 2] / dim))
    return torch.outer(positions.to(torch.float64), inv_freq)


class RotaryEmbedding3D(nn.Module):
    """Builds (and caches) ``[L, head_dim / 2]`` complex rotation tables for a token grid.

    ``axes`` picks the grid the tokens live on: ``"thw"`` for all ``T*H*W`` tokens of a clip in
    (t, h, w) order, ``"hw"`` for the ``H*W`` tokens of one frame (time channels left unrotated),
    ``"t"`` for the ``T`` tokens of one location (space channels left unrotated).
    """

    def __init__(self, head_dim: int, theta: float = 10000.0, cache_size: int = 8):
        super().__init__()
        self.head_dim = head_dim
        self.theta = theta
        self.split = rope_split(head_dim)
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple, torch.Tensor] = OrderedDict()

    def forward(self, grid: tuple[int, int, int], axes: str, device: torch.device) -> torch.Tensor:
        key = (tuple(grid), axes, str(device))
        table = self._cache.get(key)
        if table is None:
            table = self._build(grid, axes).to(device)
            self._cache[key] = table
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return table

    def _build(self, grid: tuple[int, int, int], axes: str) -> torch.Tensor:
        if axes not in AXES:
            raise ValueError(f"axes must be one of {AXES}, got {axes!r}")
        t, h, w = grid
        t_dim, h_dim, w_dim = self.split
        # Positions along an axis that a table does not rotate are 0 (angle 0 = identity rotation).
        sizes = {"t": t if "t" in axes else 1, "h": h if "h" in axes else 1, "w": w if "w" in axes else 1}
        angles_t = _axis_angles(torch.arange(sizes["t"]), t_dim, self.theta)
        angles_h = _axis_angles(torch.arange(sizes["h"]), h_dim, self.theta)
        angles_w = _axis_angles(torch.arange(sizes["w"]), w_dim, self.theta)
        nt, nh, nw = sizes["t"], sizes["h"], sizes["w"]
        angles = torch.cat(
            [
                angles_t[:, None, None, :].expand(nt, nh, nw, -1),
                angles_h[None, :, None, :].expand(nt, nh, nw, -1),
                angles_w[None, None, :, :].expand(nt, nh, nw, -1),
            ],
            dim=-1,
        ).reshape(nt * nh * nw, self.head_dim // 2)
        # cos/sin in float64 then rounded once, matching Wan's reference tables bit for bit.
        return torch.polar(torch.ones_like(angles), angles).to(torch.complex64)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, split={self.split}, theta={self.theta}"


def sequence_rotary_table(length: int, head_dim: int, theta: float = 10000.0) -> torch.Tensor:
    """``[length, head_dim / 2]`` complex table rotating the whole head by the token index (1-D text)."""
    angles = _axis_angles(torch.arange(length), head_dim, theta)
    return torch.polar(torch.ones_like(angles), angles).to(torch.complex64)


def apply_rotary(x: torch.Tensor, table: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Rotate ``x [..., L, heads, head_dim]`` by ``table [L, head_dim / 2]`` (complex) -> ``[..., heads, L, head_dim]``.

    The result comes out contiguous in the heads-first layout attention kernels read fastest (the
    transposition rides on the multiply, no extra pass). ``scale [..., L, 1]`` (real, e.g. an RMS norm's
    per-token ``1 / rms``) is folded into the small table instead of costing a pass over ``x``. Computed
    in float32 whatever ``x``'s dtype, returned in ``x``'s dtype.
    """
    table = table.unsqueeze(-2) if scale is None else table.unsqueeze(-2) * scale.unsqueeze(-1)
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2))).transpose(-3, -2)  # [..., H, L, hd/2]
    table = table.transpose(-3, -2)  # [..., 1, L, hd/2]
    if torch.is_grad_enabled():
        rotated = (pairs * table).contiguous()
    else:
        rotated = torch.empty(
            torch.broadcast_shapes(pairs.shape, table.shape), dtype=pairs.dtype, device=x.device
        )
        torch.mul(pairs, table, out=rotated)
    return torch.view_as_real(rotated).flatten(-2).to(x.dtype)
