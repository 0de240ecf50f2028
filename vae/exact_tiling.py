"""Exact spatial tiling of our causal VAE's decode: tiles read a halo of real neighbouring data.

After its middle block the decoder is spatially local: per-pixel RMS norms and SiLU, "same" 3x3
convolutions, nearest x2 upsampling and time-only convolutions. An output pixel therefore depends only on
a window of the middle block's output, and a tile decoded from that window equals the untiled decode on
the tile (up to float rounding: convolutions of other sizes may sum in another order). The middle block's
per-frame attention sees the whole latent frame, so the *front* (post-quant conv, input conv, middle
block) runs on whole latent frames; it works at latent resolution, where it is cheap.

Each up-path stage only computes the window the stages after it need, so the halo shrinks as resolution
grows: at full resolution it is a few pixels, at latent resolution about a dozen latent pixels. Tiles are
the outer loop and time the inner one, each tile with its own causal cache: only one tile's cached past
frames are alive at a time, which is what an untiled streaming decode cannot shrink (its caches hold the
previous frames at full resolution). The front is recomputed per tile, so memory stays flat in time.

Decoders with non-local layers after the middle block (GroupNorm as in CogVideoX, attention) cannot be
tiled exactly: :func:`exact_tiling_problem` says why, and callers fall back to blended tiles (``tiling.py``).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ..runtime.progress import Progress
from .autoencoder import CausalVAE
from .blocks import ResidualBlock, RMSNorm, TemporalResidualBlock
from .causal_conv import StreamCache
from .networks import Decoder, Stage, UpBlock
from .resample import NearestUpsample2x, Upsample

Span = tuple[int, int]  # [start, stop) along one spatial axis
Window = tuple[Span, Span]  # rows, columns

# Layers whose output at a pixel depends only on that pixel (norms, containers, upsampling by pixel
# repetition) or on a "same" convolution window, checked in ``_conv_problem``. Exact types: a subclass
# may do anything in its forward.
_LOCAL_TYPES = (
    UpBlock, ResidualBlock, TemporalResidualBlock, Upsample, NearestUpsample2x, RMSNorm,
    nn.ModuleList, nn.Sequential, nn.Identity,
)  # fmt: skip


@dataclass(frozen=True)
class StageGeometry:
    """How far a decoder stage looks around a pixel: ``radius_in`` pixels at its input resolution, then an
    upsampling by ``scale``, then ``radius_out`` pixels at its output resolution (upper bounds)."""

    radius_in: int
    scale: int
    radius_out: int

    def input_span(self, span: Span, size_in: int) -> Span:
        """The input pixels (within the frame) that output pixels ``span`` depend on."""
        start, stop = span
        start, stop = max(0, start - self.radius_out), min(size_in * self.scale, stop + self.radius_out)
        start, stop = start // self.scale, -(-stop // self.scale)
        return max(0, start - self.radius_in), min(size_in, stop + self.radius_in)


# -- is the up-path local? -------------------------------------------------------------------------------
def _conv_problem(conv: nn.Conv2d | nn.Conv3d) -> str | None:
    kh, kw = conv.kernel_size[-2:]
    same = (
        kh % 2 == 1
        and kw % 2 == 1
        and tuple(conv.padding[-2:]) == (kh // 2, kw // 2)
        and all(s == 1 for s in conv.stride)
        and all(d == 1 for d in conv.dilation)
        and conv.padding_mode == "zeros"
    )
    return None if same else "not a stride-1 'same' convolution"


def nonlocal_layers(decoder: Decoder) -> list[str]:
    """Layers after the middle block that may mix pixels beyond a convolution window (empty: exact tiling
    works)."""
    problems = []
    roots = (("up_blocks", decoder.up_blocks), ("norm_out", decoder.norm_out), ("conv_out", decoder.conv_out))
    for prefix, root in roots:
        for name, module in root.named_modules(prefix=prefix):
            if isinstance(module, (nn.Conv2d, nn.Conv3d)):  # CausalConv3d is a Conv3d
                problem = _conv_problem(module)
                if problem:
                    problems.append(f"{name} ({problem})")
            elif type(module) not in _LOCAL_TYPES:
                problems.append(f"{name} ({type(module).__name__})")
    for i, block in enumerate(decoder.up_blocks):
        if len(block.upsamplers) > 1:
            problems.append(f"up_blocks.{i} (more than one upsampler)")
    return problems


def exact_tiling_problem(vae: nn.Module) -> str | None:
    """Why ``vae`` cannot be decoded in exact tiles, or None when it can."""
    family = getattr(vae, "family", "?")
    if not isinstance(vae, CausalVAE):
        return (
            f"exact tiles need a decoder that is spatially local after its middle block; the {family} VAE "
            f"({type(vae).__name__}) is not (e.g. CogVideoX's GroupNorm normalises over whole frames)"
        )
    layers = nonlocal_layers(vae.decoder)
    if layers:
        return f"the {family} VAE's decoder has non-local layers after its middle block: {', '.join(layers)}"
    return None


def _radius(modules: Iterator[nn.Module]) -> int:
    """Sum of the spatial radii of the convolutions among ``modules``: an upper bound of the radius of a
    chain of them (branches side by side, like a shortcut, count as if in series)."""
    return sum(max(m.kernel_size[-2:]) // 2 for m in modules if isinstance(m, (nn.Conv2d, nn.Conv3d)))


def up_path_geometry(decoder: Decoder) -> list[StageGeometry]:
    """Geometry of each stage after the front: the up blocks, then the head (norm, SiLU, output conv)."""
    geometries = []
    for block in decoder.up_blocks:
        before = _radius(block.resnets.modules())
        if block.temporal_blocks is not None:
            before += _radius(block.temporal_blocks.modules())
        upsample = block.upsamplers[0] if len(block.upsamplers) else None
        after = 0 if upsample is None else _radius(upsample.resample.modules())
        geometries.append(StageGeometry(before, 1 if upsample is None else 2, after))
    geometries.append(StageGeometry(_radius(decoder.conv_out.modules()), 1, 0))
    return geometries


# -- tile layout -------------------------------------------------------------------------------------------
def split_axis(latent_size: int, tile: int, spatial_factor: int) -> list[Span]:
    """Output-pixel spans of near-equal tiles of at most ``tile`` pixels (at least one latent pixel),
    their borders on latent pixels."""
    tile_latent = max(1, tile // spatial_factor)
    count = math.ceil(latent_size / tile_latent)
    edges = [i * latent_size // count * spatial_factor for i in range(count + 1)]
    return list(zip(edges[:-1], edges[1:]))


def tile_windows(latent_shape: tuple[int, int], tile: tuple[int, int], spatial_factor: int) -> list[Window]:
    """Output-pixel windows of the tiles covering a frame of ``latent_shape`` latent pixels, row-major."""
    rows = split_axis(latent_shape[0], tile[0], spatial_factor)
    cols = split_axis(latent_shape[1], tile[1], spatial_factor)
    return [(r, c) for r in rows for c in cols]


def _stage_inputs(decoder: Decoder, latent_shape: tuple[int, int], window: Window) -> list[Window]:
    """The window each up-path stage reads so that the last one produces ``window`` (output pixels)."""
    geometries = up_path_geometry(decoder)
    sizes = [latent_shape]
    for g in geometries[:-1]:
        sizes.append((sizes[-1][0] * g.scale, sizes[-1][1] * g.scale))
    windows = [window]
    for g, (height, width) in zip(reversed(geometries), reversed(sizes)):
        rows, cols = windows[0]
        windows.insert(0, (g.input_span(rows, height), g.input_span(cols, width)))
    return windows  # one per stage input, then the output window itself


def _crop(y: torch.Tensor, window: Window, origin: tuple[int, int]) -> torch.Tensor:
    """Pixels ``window`` of ``y``, whose first pixel is at ``origin``; copied (frame-major, like the
    convolutions' outputs) so the uncropped tensor can be freed."""
    (r0, r1), (c0, c1) = window
    r0, r1, c0, c1 = r0 - origin[0], r1 - origin[0], c0 - origin[1], c1 - origin[1]
    if (r0, c0) == (0, 0) and (r1, c1) == tuple(y.shape[-2:]):
        return y
    return y.transpose(1, 2)[..., r0:r1, c0:c1].contiguous().transpose(1, 2)


# -- decode ------------------------------------------------------------------------------------------------
def _depth_first(
    stages: list[Stage], crops: list, x: torch.Tensor, cache: StreamCache, max_frames: int
) -> Iterator[torch.Tensor]:
    """Run ``x`` through ``stages`` (each output cropped by its ``crops`` entry), handing each stage's
    output to the next ``max_frames`` frames at a time, depth first: only one piece per resolution is
    alive, so the high-resolution stages (where temporal upsampling multiplied the frames) never hold a
    whole chunk."""
    y = crops[0](stages[0](x, cache))
    if len(stages) == 1:
        yield y
        return
    for piece in y.split(max_frames, dim=2):
        yield from _depth_first(stages[1:], crops[1:], piece, cache, max_frames)


@torch.no_grad()
def iter_decode_window(
    vae: CausalVAE,
    z: torch.Tensor,
    window: Window | None = None,
    chunk_frames: int | None = 1,
    progress: Progress | None = None,
    cache: StreamCache | None = None,
) -> Iterator[torch.Tensor]:
    """Decode output pixels ``window`` (None: the whole frame) of raw latent ``z``, in causal chunks of
    ``chunk_frames`` latent frames (None: all at once).

    Yields consecutive clamped video chunks ``[B, 3, t, rows, cols]`` (compute device and dtype), equal to
    that window of the untiled decode. Passing the ``cache`` of a previous call with the same window
    continues that clip (``z`` holds its next latent frames).
    """
    if chunk_frames is not None and chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1 (or None for the whole clip), got {chunk_frames}")
    param = next(vae.parameters())
    cache = StreamCache() if cache is None else cache
    latent_shape = tuple(z.shape[-2:])
    stages = vae.decoder.stages()
    crops = [lambda y: y] * len(stages)
    if window is not None:
        problem = exact_tiling_problem(vae)
        if problem:
            raise ValueError(f"cannot decode a window exactly: {problem}")
        f = vae.spatial_factor
        for (start, stop), size in zip(window, latent_shape):
            if not 0 <= start < stop <= size * f:
                raise ValueError(
                    f"window {window} is not inside the {latent_shape[0] * f}x{latent_shape[1] * f} frame"
                )
        windows = _stage_inputs(vae.decoder, latent_shape, window)
        scales = [1] + [g.scale for g in up_path_geometry(vae.decoder)]
        # the front's output (latent resolution, whole frame) is cropped to what the first up block reads;
        # each later stage's output starts at its input window's origin times its scale
        origins = [(0, 0)] + [(rows[0] * s, cols[0] * s) for ((rows, cols), s) in zip(windows, scales[1:])]
        crops = [
            (lambda y, w=w, o=o: _crop(y, w, o)) for w, o in zip(windows, origins)
        ]  # stage i's output -> stage i+1's input window (the last: the tile itself)
    frames = z.shape[2]
    step = frames if chunk_frames is None else chunk_frames
    max_frames = sys.maxsize if chunk_frames is None else chunk_frames
    for start in range(0, frames, step):
        x = vae.post_quant_conv(z[:, :, start : start + step].to(param.device, param.dtype))
        for piece in _depth_first(stages, crops, x, cache, max_frames):
            yield piece.clamp_(-1.0, 1.0)
        if progress is not None:
            progress.update()


@torch.no_grad()
def decode_exact_tiled(
    vae: CausalVAE,
    z: torch.Tensor,
    out: torch.Tensor,
    tile: tuple[int, int],
    chunk_frames: int | None = 1,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Decode raw latent ``z`` ``[B, C, T, h, w]`` into ``out`` ``[B, 3, T_out, h*f, w*f]`` tile by tile.

    ``tile`` is (height, width) in output pixels: tiles are at most that large (at least one latent pixel),
    evenly spread. Each tile streams through every temporal chunk before the next starts. Raises a
    ValueError naming the layers when the decoder is not local enough for exact tiles.
    """
    problem = exact_tiling_problem(vae)
    if problem:
        raise ValueError(f"exact tiles: {problem}; use blended tiles (tile_mode='blend') or no tiles")
    if min(tile) < 1:
        raise ValueError(f"tile size must be >= 1 pixel, got {tile}")
    for window in tile_windows(tuple(z.shape[-2:]), tile, vae.spatial_factor):
        (r0, r1), (c0, c1) = window
        frame = 0
        for piece in iter_decode_window(vae, z, window, chunk_frames, progress):
            t = piece.shape[2]
            out[:, :, frame : frame + t, r0:r1, c0:c1] = piece
            frame += t
        if frame != out.shape[2]:
            raise RuntimeError(f"a tile decoded to {frame} frames, expected {out.shape[2]}")
    return out
