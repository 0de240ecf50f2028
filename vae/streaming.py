"""Memory-bounded encode and decode: temporal chunks carrying the causal caches, optional spatial tiles.

Results equal the whole-clip ones (up to float rounding) for any chunk size, because every temporal
operation of the VAE is causal and its past frames travel in a :class:`StreamCache`.

Entry points for nodes: :func:`encode_video` and :func:`decode_video`. Spatial tiles come in two kinds:
exact ones (``exact_tiling.py``: each tile reads a halo of real neighbouring data and streams through all
of time, equal to the untiled decode; our causal VAEs only) and blended ones (``tiling.py``: any family,
cross-faded overlaps). They also accept another family's VAE object (e.g. CogVideoX): its
``iter_decode(z, chunk_frames)`` (consecutive video chunks) and ``encode(video, chunk_frames)`` are used
when present, else plain ``decode(z)`` / ``encode(video)``; blended tiles still work for it.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator

import torch

from ..runtime.progress import Progress
from .autoencoder import CausalVAE
from .causal_conv import StreamCache
from .exact_tiling import decode_exact_tiled, exact_tiling_problem, iter_decode_window, tile_windows
from .posterior import DiagonalGaussian
from .tiling import decode_tiled, tile_count

log = logging.getLogger(__name__)


def _placement(module: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    param = next(module.parameters())
    return param.device, param.dtype


def _chunks(frames: int, chunk_frames: int | None) -> list[tuple[int, int]]:
    if chunk_frames is not None and chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1 (or None for the whole clip), got {chunk_frames}")
    step = frames if chunk_frames is None else chunk_frames
    return [(start, min(start + step, frames)) for start in range(0, frames, step)]


# -- frame counts ------------------------------------------------------------------------------------
def pad_frames(video: torch.Tensor, temporal_factor: int) -> tuple[torch.Tensor, int]:
    """Repeat the last frame of ``[B, C, T, H, W]`` until ``T = 1 + k * temporal_factor``.

    Returns the padded video and the number of frames added (decode, then trim that many at the end).
    """
    frames = video.shape[2]
    missing = (-(frames - 1)) % temporal_factor
    if missing:
        video = torch.cat([video, video[:, :, -1:].expand(-1, -1, missing, -1, -1)], dim=2)
    return video, missing


# -- encode ------------------------------------------------------------------------------------------
@torch.no_grad()
def stream_encode(
    vae: CausalVAE, video: torch.Tensor, chunk_frames: int | None, progress: Progress | None = None
) -> DiagonalGaussian:
    """Posterior of ``video`` (valid length), encoding ``chunk_frames`` input frames at a time."""
    vae.check_video(video)
    device, dtype = _placement(vae)
    cache = StreamCache()
    parameters = []
    for start, stop in _chunks(video.shape[2], chunk_frames):
        encoded = vae.encoder(video[:, :, start:stop].to(device, dtype), cache)
        parameters.append(vae.quant_conv(encoded).float().to(video.device))
        if progress is not None:
            progress.update()
    return DiagonalGaussian(torch.cat(parameters, dim=2).contiguous())


@torch.no_grad()
def encode_video(
    vae: torch.nn.Module,
    video: torch.Tensor,
    chunk_frames: int | None = None,
    sample: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Video ``[B, 3, T, H, W]`` in [-1, 1] → raw latent ``[B, C, T', H/f, W/f]`` (float32, on video's device).

    A length that is not ``1 + k * temporal_factor`` is padded by repeating the last frame (logged); the
    decoded clip then has the padded length, trim it to ``T``. ``chunk_frames`` input frames are encoded at
    a time (None: the whole clip at once). ``sample`` draws from the posterior instead of taking its mean.
    """
    video, added = pad_frames(video, vae.temporal_factor)
    if added:
        log.info(
            "VAE encode: %d frames is not 1 + %d*k; repeated the last frame %d time(s) -> %d frames "
            "(trim the decoded clip to %d)",
            video.shape[2] - added,
            vae.temporal_factor,
            added,
            video.shape[2],
            video.shape[2] - added,
        )
    if isinstance(vae, CausalVAE):
        with Progress(len(_chunks(video.shape[2], chunk_frames)), "VAE encode") as progress:
            posterior = stream_encode(vae, video, chunk_frames, progress)
        z = posterior.sample(generator) if sample else posterior.mean
    else:  # another family: its own chunking convention (chunk_frames is passed through unchanged)
        _check_spatial(vae, video)
        device, dtype = _placement(vae)
        x = video.to(device, dtype)
        z = vae.encode(x, chunk_frames) if _takes_chunks(vae.encode) else vae.encode(x)
        if sample:
            log.warning("VAE encode: sampling is only supported for our causal VAE; returned the mean")
    return z.float().to(video.device)


def _takes_chunks(method: object) -> bool:
    try:
        return "chunk_frames" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def _check_spatial(vae: torch.nn.Module, video: torch.Tensor) -> None:
    f = vae.spatial_factor
    h, w = video.shape[-2:]
    if h % f or w % f:
        raise ValueError(
            f"VAE needs height and width divisible by {f}, got {h}x{w}; resize or crop the frames"
        )


# -- decode ------------------------------------------------------------------------------------------
def iter_decode(
    vae: CausalVAE,
    z: torch.Tensor,
    chunk_frames: int | None = 1,
    progress: Progress | None = None,
    cache: StreamCache | None = None,
) -> Iterator[torch.Tensor]:
    """Decode raw latent ``z`` in causal chunks of ``chunk_frames`` latent frames (None: all at once).

    Yields consecutive clamped video chunks (compute device and dtype). Working memory depends on the
    chunk size and resolution, not on the clip length. Passing the ``cache`` of a previous call continues
    that clip (``z`` holds its next latent frames) instead of starting a new one.
    """
    return iter_decode_window(vae, z, None, chunk_frames, progress, cache)


TILE_MODES = ("blend", "exact", "auto")


def _tile_mode(vae: torch.nn.Module, tile_mode: str) -> str:
    """``"exact"`` or ``"blend"``: what ``tile_mode`` means for this VAE (raises for impossible requests)."""
    if tile_mode not in TILE_MODES:
        raise ValueError(f"tile_mode must be one of {TILE_MODES}, got {tile_mode!r}")
    if tile_mode == "blend":
        return "blend"
    problem = exact_tiling_problem(vae)
    if problem is None:
        return "exact"
    if tile_mode == "exact":
        raise ValueError(f"exact tiles: {problem}; use tile_mode='blend' (or 'auto') or no tiles")
    log.info("VAE decode: blended tiles instead of exact ones: %s", problem)
    return "blend"


@torch.no_grad()
def decode_video(
    vae: torch.nn.Module,
    z: torch.Tensor,
    chunk_frames: int | None = 1,
    tile: tuple[int, int] | None = None,
    tile_overlap: int = 32,
    num_frames: int | None = None,
    output_device: torch.device | str | None = None,
    tile_mode: str = "blend",
) -> torch.Tensor:
    """Raw latent ``[B, C, T', h, w]`` → video ``[B, 3, 1 + tf*(T'-1), h*f, w*f]`` float32 in [-1, 1].

    ``chunk_frames``: latent frames per causal chunk (None: whole clip in one pass). ``tile``: optional
    ``(height, width)`` of spatial tiles in output pixels. ``tile_mode``:

    * ``"exact"``: tiles of at most ``tile`` pixels that read a halo of real neighbouring data, each
      streamed through all of time; the result equals the untiled decode (float rounding aside) and peak
      memory falls with the tile size. Our causal VAEs (Wan 2.1, sprites) only: raises for others.
      ``tile_overlap`` is not used.
    * ``"blend"``: any family; tiles overlap by ``tile_overlap`` pixels and cross-fade there (both rounded
      down to multiples of the spatial factor), which changes the result near the seams.
    * ``"auto"``: exact where possible, else blend (logged).

    ``num_frames`` trims the result (e.g. to undo the padding of :func:`encode_video`). The output is built
    on ``output_device`` (default: ``z``'s device), so a GPU decode of a long clip only holds one chunk on
    the GPU.
    """
    if z.ndim != 5 or z.shape[1] != vae.latent_channels:
        raise ValueError(
            f"this VAE decodes latents [B, {vae.latent_channels}, T, h, w], got {tuple(z.shape)}; "
            "is the latent from another VAE family?"
        )
    f, tf = vae.spatial_factor, vae.temporal_factor
    b, _, frames, height, width = z.shape
    out_device = z.device if output_device is None else torch.device(output_device)
    ours = isinstance(vae, CausalVAE)
    chunk_count = len(_chunks(frames, chunk_frames)) if ours else 1

    def decode_chunks(z_part: torch.Tensor, progress: Progress) -> Iterator[torch.Tensor]:
        if ours:
            yield from iter_decode(vae, z_part, chunk_frames, progress)
            return
        device, dtype = _placement(vae)
        z_part = z_part.to(device, dtype)
        if hasattr(vae, "iter_decode"):  # another family's chunked decoder (e.g. CogVideoX)
            yield from vae.iter_decode(z_part, chunk_frames)
        else:
            yield vae.decode(z_part)
        progress.update()

    if tile is None:
        with Progress(chunk_count, "VAE decode") as progress:
            if not ours:  # its frame count is its own business
                out = torch.cat([p.float().to(out_device) for p in decode_chunks(z, progress)], dim=2)
            else:
                out = torch.empty(b, 3, vae.video_frames(frames), height * f, width * f, device=out_device)
                written = 0
                for piece in decode_chunks(z, progress):
                    out[:, :, written : written + piece.shape[2]] = piece
                    written += piece.shape[2]
                if written != out.shape[2]:
                    raise RuntimeError(f"decoder produced {written} frames, expected {out.shape[2]}")
    elif _tile_mode(vae, tile_mode) == "exact":
        if min(tile) < 1:
            raise ValueError(f"tile {tile} px: exact tiles must be at least 1 px (rounded up to {f} px)")
        out = torch.empty(b, 3, vae.video_frames(frames), height * f, width * f, device=out_device)
        tiles = len(tile_windows((height, width), tile, f))
        with Progress(tiles * chunk_count, "VAE decode (exact tiles)") as progress:
            decode_exact_tiled(vae, z, out, tile, chunk_frames, progress)
    else:
        tile_latent = (tile[0] // f, tile[1] // f)
        overlap_latent = tile_overlap // f
        if min(tile_latent) < 1 or overlap_latent >= min(tile_latent):
            raise ValueError(
                f"tile {tile} px with overlap {tile_overlap} px: tiles must be at least {f} px and larger "
                f"than the overlap (spatial factor {f})"
            )
        out_frames = vae.video_frames(frames) if hasattr(vae, "video_frames") else 1 + tf * (frames - 1)
        out = torch.empty(b, 3, out_frames, height * f, width * f, device=out_device)
        tiles = tile_count(height, width, tile_latent, overlap_latent)
        with Progress(tiles * chunk_count, "VAE decode (tiled)") as progress:
            decode_tiled(
                lambda z_tile: decode_chunks(z_tile, progress), z, out, f, tile_latent, overlap_latent
            )
    return out if num_frames is None else out[:, :, :num_frames]
