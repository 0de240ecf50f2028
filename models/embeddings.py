"""Input embeddings of the video DiT: patches, timesteps and text, each a small module with one job."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_sinusoid(timestep: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """``[B] -> [B, dim]`` float32 ``[cos(t * f_i), sin(t * f_i)]`` with ``f_i = max_period^(-i / (dim/2))``.

    Cosines first, as Wan orders them; computed in float32 because ``t`` reaches 1000, where half
    precision would blur neighbouring steps together.
    """
    half = dim // 2
    freqs = torch.exp(
        torch.arange(half, dtype=torch.float32, device=timestep.device) * (-math.log(max_period) / half)
    )
    args = timestep.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimestepEmbedder(nn.Module):
    """Sinusoid of the (continuous) timestep, then Linear -> SiLU -> Linear."""

    def __init__(self, frequency_dim: int, hidden_size: int):
        super().__init__()
        self.frequency_dim = frequency_dim
        self.fc1 = nn.Linear(frequency_dim, hidden_size)
        self.fc2 = nn.Linear(hidden_size, hidden_size)

    def forward(self, timestep: torch.Tensor) -> torch.Tensor:
        freq = timestep_sinusoid(timestep, self.frequency_dim).to(self.fc1.weight.dtype)
        return self.fc2(F.silu(self.fc1(freq)))


class TextProjection(nn.Module):
    """Maps text-encoder features to the model width: Linear -> GELU(tanh) -> Linear."""

    def __init__(self, text_dim: int, hidden_size: int):
        super().__init__()
        self.fc1 = nn.Linear(text_dim, hidden_size)
        self.fc2 = nn.Linear(hidden_size, hidden_size)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(context), approximate="tanh"))


class AbsolutePositionEmbedding(nn.Module):
    """Where each token sits in the clip, as a learned vector added to it: Fourier features of the frame's
    place in the clip and of the row and column, each as a fraction of its axis (``(i + 0.5) / n``), then
    one linear map, zero at initialisation so a trained model's outputs do not move when it is added.

    Rotary positions are relative only, so without this no token knows whether it is in the first frame or
    the last, or at the left edge or the right. A caption's motion is exactly such a fact ("moving right":
    the object starts on the left, ends on the right), and it is what the early, noisiest sampling steps
    have to lay out. Fractions rather than indices, so any clip length and size gets an embedding.

    ``pairs`` adds joint features of each pair of axes, ``sin/cos(pi * (k_a * a +- k_b * b))``. A moving
    object is a function of two coordinates at once (row minus speed times frame), and per-axis features
    give only sums of one-axis functions: the blocks then have to learn that product themselves. With the
    pairs, a prompt-dependent scale of the channels picks a spacetime pattern directly (measured on the
    sprites base: training at high noise only, its loss fell about twice as fast with them).

    ``radial`` adds the distance from the frame centre, ``r``, as an axis of its own: ``sin/cos(pi * k * r)``
    and the joint features of frame and distance, ``sin/cos(pi * (k_t * t +- k_r * r))``. An object growing
    or shrinking in place is a disc whose radius changes with the frame, a function of ``(t, r)`` that no
    sum of (frame, row) and (frame, column) functions draws.
    """

    def __init__(self, hidden_size: int, frequencies: int = 4, pairs: bool = False, radial: bool = False):
        super().__init__()
        self.frequencies = frequencies
        self.pairs = pairs
        self.radial = radial
        # 3 axis pairs x (+, -) x (sin, cos) x (k_a, k_b)
        pair_features = 3 * 2 * 2 * frequencies**2 if pairs else 0
        # distance alone x (sin, cos) x k, then (frame, distance) x (+, -) x (sin, cos) x (k_t, k_r)
        radial_features = 2 * frequencies + 2 * 2 * frequencies**2 if radial else 0
        self.proj = nn.Linear(3 * 2 * frequencies + pair_features + radial_features, hidden_size)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def features(self, grid: tuple[int, int, int], device: torch.device) -> torch.Tensor:
        """``[T' * H' * W', proj.in_features]`` float32, tokens in (t, h, w) order: the per-axis features
        (``sin`` then ``cos`` of each axis in turn), then the pair features, then the radial ones."""
        axes = [(torch.arange(n, dtype=torch.float32, device=device) + 0.5) / n for n in grid]
        t, h, w = torch.meshgrid(*axes, indexing="ij")
        coords = torch.stack([t, h, w], dim=-1).reshape(-1, 3)
        k = torch.arange(1, self.frequencies + 1, dtype=torch.float32, device=device)
        args = math.pi * coords[:, :, None] * k  # [L, 3, F]
        features = [torch.cat([torch.sin(args), torch.cos(args)], dim=-1).flatten(1)]
        # Every (k_a, k_b) pair of frequencies, for the joint features of two axes.
        k_a, k_b = (grid_k.flatten() for grid_k in torch.meshgrid(k, k, indexing="ij"))
        if self.pairs:
            for a, b in ((0, 1), (0, 2), (1, 2)):
                for sign in (1.0, -1.0):
                    pair = math.pi * (coords[:, a, None] * k_a + sign * coords[:, b, None] * k_b)  # [L, F*F]
                    features += [torch.sin(pair), torch.cos(pair)]
        if self.radial:
            # Scaled so the frame's corners are at 1, like the far edge of every other axis.
            r = (coords[:, 1:] - 0.5).square().sum(dim=1).sqrt() / math.sqrt(0.5)
            features += [torch.sin(math.pi * r[:, None] * k), torch.cos(math.pi * r[:, None] * k)]
            for sign in (1.0, -1.0):
                joint = math.pi * (coords[:, 0, None] * k_a + sign * r[:, None] * k_b)
                features += [torch.sin(joint), torch.cos(joint)]
        return torch.cat(features, dim=-1)

    def forward(self, grid: tuple[int, int, int], device: torch.device) -> torch.Tensor:
        """``[1, T' * H' * W', hidden]`` in the projection's dtype."""
        return self.proj(self.features(grid, device).to(self.proj.weight.dtype)).unsqueeze(0)


def patchify(x: torch.Tensor, patch_size: tuple[int, int, int]) -> torch.Tensor:
    """``[B, C, T, H, W] -> [B, T'*H'*W', p_t*p_h*p_w*C]``: tokens in (t, h, w) order, channel fastest."""
    b, c, t, h, w = x.shape
    pt, ph, pw = patch_size
    x = x.reshape(b, c, t // pt, pt, h // ph, ph, w // pw, pw).permute(0, 2, 4, 6, 3, 5, 7, 1)
    return x.reshape(b, (t // pt) * (h // ph) * (w // pw), pt * ph * pw * c)


def unpatchify(
    tokens: torch.Tensor, grid: tuple[int, int, int], patch_size: tuple[int, int, int], channels: int
) -> torch.Tensor:
    """Inverse of :func:`patchify`: ``[B, T'*H'*W', p_t*p_h*p_w*C] -> [B, C, T'*p_t, H'*p_h, W'*p_w]``."""
    b = tokens.shape[0]
    gt, gh, gw = grid
    pt, ph, pw = patch_size
    x = tokens.reshape(b, gt, gh, gw, pt, ph, pw, channels).permute(0, 7, 1, 4, 2, 5, 3, 6)
    return x.reshape(b, channels, gt * pt, gh * ph, gw * pw)


class PatchEmbed3D(nn.Module):
    """Cuts ``[B, C, T, H, W]`` into non-overlapping ``p_t x p_h x p_w`` patches, each -> a ``hidden_size`` token.

    The weight is a Conv3d's (kernel = stride = patch) so checkpoints map one to one, but the forward runs
    it as one matmul over gathered patches: that copies only the small input, where a convolution would
    then have to transpose the much wider ``[B, hidden, L]`` output into tokens.
    """

    def __init__(self, in_channels: int, hidden_size: int, patch_size: tuple[int, int, int]):
        super().__init__()
        self.patch_size = tuple(patch_size)
        self.proj = nn.Conv3d(in_channels, hidden_size, kernel_size=self.patch_size, stride=self.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, T, H, W] -> [B, T' * H' * W', hidden]`` tokens in (t, h, w) order."""
        # Conv weight [D, C, pt, ph, pw] reordered to patchify's (pt, ph, pw, C) order: a tiny copy.
        weight = self.proj.weight.permute(0, 2, 3, 4, 1).flatten(1)
        return F.linear(patchify(x, self.patch_size), weight, self.proj.bias)
