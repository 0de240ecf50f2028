"""Spatial tiling for any chunked video decoder, with linear-ramp blending so no seam shows.

Blending changes the result near the seams; decoders that are spatially local after their middle block
(ours, Wan 2.1) are tiled exactly instead by ``exact_tiling.py``. This module serves the others (CogVideoX).

Written over a decode function, not a network, so every VAE family reuses it: ``decode_chunks(z_tile)``
yields the tile's decoded video as consecutive temporal chunks ``[B, 3, t, h*f, w*f]``. Each chunk is
blended into the output as soon as it arrives, so tiles x temporal chunks keep working memory bounded
by one tile-chunk (plus the output, which is allocated once).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from ..runtime.progress import Progress

ChunkedDecode = Callable[[torch.Tensor], Iterable[torch.Tensor]]


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``size`` with at least ``overlap`` overlap."""
    if tile >= size:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)  # the last tile ends at the border (it may overlap its neighbour more)
    return starts


def edge_ramp(length: int, ramp: int, at_start: bool, at_end: bool) -> torch.Tensor:
    """Weights along one tile axis: rising over ``ramp`` pixels at a start edge shared with a neighbour,
    falling at a shared end edge, 1 elsewhere. Two tiles overlapping by ``ramp`` cross-fade to a sum of 1."""
    weights = torch.ones(length)
    ramp = min(ramp, length)
    if ramp > 0:
        rising = (torch.arange(ramp, dtype=torch.float32) + 0.5) / ramp
        if at_start:
            weights[:ramp] = torch.minimum(weights[:ramp], rising)
        if at_end:
            weights[length - ramp :] = torch.minimum(weights[length - ramp :], rising.flip(0))
    return weights


def tile_count(height: int, width: int, tile: tuple[int, int], overlap: int) -> int:
    return len(tile_starts(height, tile[0], overlap)) * len(tile_starts(width, tile[1], overlap))


def decode_tiled(
    decode_chunks: ChunkedDecode,
    z: torch.Tensor,
    out: torch.Tensor,
    spatial_factor: int,
    tile: tuple[int, int],
    overlap: int,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Decode latent ``z`` ``[B, C, T, h, w]`` tile by tile into ``out`` ``[B, 3, T_out, h*f, w*f]``.

    ``tile`` and ``overlap`` are in latent pixels; ``out`` is overwritten (it only needs the right shape).
    ``progress``, when given, advances once per tile.
    """
    tile_h, tile_w = tile
    if min(tile_h, tile_w) < 1 or overlap < 0 or overlap >= min(tile_h, tile_w):
        raise ValueError(
            f"tiles must be >= 1 and larger than their overlap; got tile {tile}, overlap {overlap}"
        )
    f = spatial_factor
    _, _, _, height, width = z.shape
    out.zero_()
    weight_sum = torch.zeros(out.shape[-2:], dtype=out.dtype, device=out.device)
    rows, cols = tile_starts(height, tile_h, overlap), tile_starts(width, tile_w, overlap)
    for y in rows:
        for x in cols:
            h, w = min(tile_h, height - y), min(tile_w, width - x)
            weight = torch.outer(
                edge_ramp(h * f, overlap * f, at_start=y > 0, at_end=y + h < height),
                edge_ramp(w * f, overlap * f, at_start=x > 0, at_end=x + w < width),
            ).to(out)
            region = (slice(y * f, (y + h) * f), slice(x * f, (x + w) * f))
            frame = 0
            for chunk in decode_chunks(z[:, :, :, y : y + h, x : x + w]):
                t = chunk.shape[2]
                out[:, :, frame : frame + t, region[0], region[1]] += chunk.to(out) * weight
                frame += t
            if frame != out.shape[2]:
                raise RuntimeError(f"a tile decoded to {frame} frames, expected {out.shape[2]}")
            weight_sum[region] += weight
            if progress is not None:
                progress.update()
    return out.div_(weight_sum)
