"""The CogVideoX VAE (2B / 5B releases): causal 3D KL autoencoder, 4x temporal and 8x spatial compression.

Loads the diffusers layout (``encoder.down_blocks.0.resnets.0.conv1.conv.weight`` ...). Encode and decode run
in temporal chunks carrying the causal convolutions' frame cache, exactly as the reference does (8 video
frames / 2 latent frames per chunk, the first chunk taking the odd remainder), so memory stays flat as clips
get longer and results equal ``diffusers.AutoencoderKLCogVideoX``. Optional spatial tiles with blended seams.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from ..runtime.checkpoints import CheckpointError, load_state_strict
from ..runtime.progress import Progress
from .cogvideox_blocks import Decoder3D, Encoder3D
from .posterior import DiagonalGaussian

log = logging.getLogger(__name__)


@dataclass
class CogVideoXVAEConfig:
    in_channels: int = 3
    out_channels: int = 3
    block_out_channels: tuple[int, ...] = (128, 256, 256, 512)
    latent_channels: int = 16
    layers_per_block: int = 3
    norm_num_groups: int = 32
    norm_eps: float = 1e-6
    temporal_compression_ratio: int = 4
    scaling_factor: float = 1.15258426  # 2B; the 5B release uses 0.7
    sample_height: int = 480
    sample_width: int = 720
    # Chunk sizes the released weights were used with; other values change the result.
    encode_chunk_frames: int = 8
    decode_chunk_frames: int = 2
    # Spatial tiling (pixels) and overlap, as the reference pipeline uses at 480x720.
    tile_sample_height: int = 240
    tile_sample_width: int = 360
    tile_overlap_height: float = 1 / 6
    tile_overlap_width: float = 1 / 5


COGVIDEOX_2B_VAE = CogVideoXVAEConfig(scaling_factor=1.15258426)
COGVIDEOX_5B_VAE = CogVideoXVAEConfig(scaling_factor=0.7)

# diffusers config.json fields that carry no structure (or that we reject explicitly below).
_IGNORED_DIFFUSERS_FIELDS = {
    "act_fn",
    "down_block_types",
    "up_block_types",
    "force_upcast",
    "shift_factor",
    "latents_mean",
    "latents_std",
    "invert_scale_latents",
}


def config_from_diffusers(config: dict[str, Any]) -> CogVideoXVAEConfig:
    """Build a config from diffusers' ``AutoencoderKLCogVideoX`` ``config.json`` dict."""
    if config.get("use_quant_conv") or config.get("use_post_quant_conv"):
        raise CheckpointError("CogVideoX VAE configs with quant_conv / post_quant_conv are not supported")
    if config.get("act_fn", "silu") != "silu":
        raise CheckpointError(f"CogVideoX VAE act_fn must be 'silu', got {config['act_fn']!r}")
    fields = {f.name for f in dataclasses.fields(CogVideoXVAEConfig)}
    kwargs: dict[str, Any] = {}
    for key, value in config.items():
        if key.startswith("_"):  # diffusers bookkeeping (_class_name, _use_default_values, ...)
            continue
        if key in fields:
            kwargs[key] = tuple(value) if isinstance(value, list) else value
        elif key not in _IGNORED_DIFFUSERS_FIELDS and key not in ("use_quant_conv", "use_post_quant_conv"):
            # Newer diffusers releases add fields; a structural one would still fail the strict load.
            log.warning("CogVideoX VAE config: ignoring unknown field %r = %r", key, value)
    if "sample_height" in kwargs:
        kwargs.setdefault("tile_sample_height", kwargs["sample_height"] // 2)
    if "sample_width" in kwargs:
        kwargs.setdefault("tile_sample_width", kwargs["sample_width"] // 2)
    kwargs["temporal_compression_ratio"] = int(kwargs.get("temporal_compression_ratio", 4))
    return CogVideoXVAEConfig(**kwargs)


def chunk_bounds(num_frames: int, chunk: int | None) -> list[tuple[int, int]]:
    """Frame ranges of the reference's chunking: chunks of ``chunk``, the first one taking the remainder."""
    if chunk is None or num_frames <= chunk:
        return [(0, num_frames)]
    rest = num_frames % chunk
    bounds = [(0, chunk + rest)]
    bounds += [(s, s + chunk) for s in range(chunk + rest, num_frames, chunk)]
    return bounds


class CogVideoXVAE(nn.Module):
    """CogVideoX 3D causal VAE with the shared VAE interface (``encode``/``decode``/``latents_to_model``)."""

    family = "cogvideox"

    def __init__(self, config: CogVideoXVAEConfig) -> None:
        super().__init__()
        self.config = config
        levels = int(math.log2(config.temporal_compression_ratio))
        common = dict(
            block_out_channels=tuple(config.block_out_channels),
            layers_per_block=config.layers_per_block,
            groups=config.norm_num_groups,
            eps=config.norm_eps,
            temporal_levels=levels,
        )
        self.encoder = Encoder3D(config.in_channels, config.latent_channels, **common)
        self.decoder = Decoder3D(config.latent_channels, config.out_channels, **common)

    # -- shared VAE interface -------------------------------------------------------------------------------
    @property
    def temporal_factor(self) -> int:
        return int(self.config.temporal_compression_ratio)

    @property
    def spatial_factor(self) -> int:
        return 2 ** (len(self.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return self.config.latent_channels

    def latents_to_model(self, z: torch.Tensor) -> torch.Tensor:
        """Raw VAE latent -> the transformer's units (times the release's scaling factor)."""
        return z * self.config.scaling_factor

    def latents_from_model(self, z: torch.Tensor) -> torch.Tensor:
        return z / self.config.scaling_factor

    def latent_frames(self, frames: int) -> int:
        return 1 + (frames - 1) // self.temporal_factor

    def video_frames(self, latent_frames: int) -> int:
        """Frames decoded from ``latent_frames``: 1 + 4 (T'-1) for odd T' (13 -> 49), 4 T' for even T'."""
        if latent_frames % 2 == 1:
            return 1 + self.temporal_factor * (latent_frames - 1)
        return self.temporal_factor * latent_frames

    @torch.no_grad()
    def encode(self, video: torch.Tensor, *, tiled: bool = False, one_pass: bool = False) -> torch.Tensor:
        """Video ``[B, 3, 1 + 4k, H, W]`` in [-1, 1] -> posterior mean ``[B, C, 1 + k, H/8, W/8]``."""
        return self.encode_posterior(video, tiled=tiled, one_pass=one_pass).mean

    @torch.no_grad()
    def encode_posterior(
        self, video: torch.Tensor, *, tiled: bool = False, one_pass: bool = False
    ) -> DiagonalGaussian:
        """Video -> :class:`DiagonalGaussian` (mean, logvar; ``.sample(generator)``).

        Encodes in the release's 8-frame chunks (the reference result); ``one_pass`` encodes the clip at
        once instead (more memory, slightly different numbers). ``tiled`` uses overlapping spatial tiles.
        """
        self._check_video(video)
        chunk = None if one_pass else self.config.encode_chunk_frames
        video = video.to(self._dtype)
        if tiled:
            moments = self._tiled(video, chunk, self._encode_tile, self.spatial_factor, down=True)
        else:
            moments = self._encode_tile(video, chunk)
        return DiagonalGaussian(moments)

    @torch.no_grad()
    def decode(
        self, z: torch.Tensor, chunk_frames: int | None = None, *, tiled: bool = False, one_pass: bool = False
    ) -> torch.Tensor:
        """Raw latent ``[B, C, T', h, w]`` -> video ``[B, 3, video_frames(T'), 8h, 8w]`` (about [-1, 1]).

        ``chunk_frames`` is accepted for the shared streaming interface and changes nothing: the decoder's
        output is defined by the release's chunking (2 latent frames, an odd remainder in the first chunk),
        which always runs unless ``one_pass`` asks for a single pass (more memory, different frames where
        chunks meet). ``tiled`` decodes overlapping spatial tiles (config ``tile_*``) blended linearly.
        """
        if tiled:
            self._check_latent(z)
            chunk = None if one_pass else self.config.decode_chunk_frames
            return self._tiled(z.to(self._dtype), chunk, self._decode_tile, self.spatial_factor, down=False)
        return torch.cat(list(self.iter_decode(z, one_pass=one_pass)), dim=2)

    @torch.no_grad()
    def iter_decode(
        self, z: torch.Tensor, chunk_frames: int | None = None, *, one_pass: bool = False
    ) -> Iterator[torch.Tensor]:
        """Decode chunk by chunk, yielding consecutive video frames (peak memory of one chunk).

        ``chunk_frames`` is ignored, as in :meth:`decode` (the release's chunking defines the result).
        """
        self._check_latent(z)
        z = z.to(self._dtype)
        bounds = chunk_bounds(z.shape[2], None if one_pass else self.config.decode_chunk_frames)
        cache: dict = {}
        with Progress(len(bounds), "CogVideoX VAE decode") as progress:
            for start, end in bounds:
                frames, cache = self.decoder(z[:, :, start:end], cache)
                yield frames
                progress.update()

    # -- internals ------------------------------------------------------------------------------------------
    @property
    def _dtype(self) -> torch.dtype:
        return self.decoder.conv_in.conv.weight.dtype

    def _encode_tile(self, video: torch.Tensor, chunk: int | None) -> torch.Tensor:
        cache: dict = {}
        out = []
        for start, end in chunk_bounds(video.shape[2], chunk):
            moments, cache = self.encoder(video[:, :, start:end], cache)
            out.append(moments)
        return torch.cat(out, dim=2)

    def _decode_tile(self, z: torch.Tensor, chunk: int | None) -> torch.Tensor:
        cache: dict = {}
        out = []
        for start, end in chunk_bounds(z.shape[2], chunk):
            frames, cache = self.decoder(z[:, :, start:end], cache)
            out.append(frames)
        return torch.cat(out, dim=2)

    def _tiled(
        self,
        x: torch.Tensor,
        chunk: int | None,
        run: Callable[[torch.Tensor, int | None], torch.Tensor],
        factor: int,
        down: bool,
    ) -> torch.Tensor:
        """Run ``run`` on overlapping spatial tiles and blend the overlaps linearly (the reference's scheme)."""
        cfg = self.config
        sample_hw = (cfg.tile_sample_height, cfg.tile_sample_width)
        latent_hw = (int(sample_hw[0] / factor), int(sample_hw[1] / factor))
        overlaps = (cfg.tile_overlap_height, cfg.tile_overlap_width)
        in_tile, out_tile = (sample_hw, latent_hw) if down else (latent_hw, sample_hw)
        step = [int(in_tile[i] * (1 - overlaps[i])) for i in range(2)]
        blend = [int(out_tile[i] * overlaps[i]) for i in range(2)]
        keep = [out_tile[i] - blend[i] for i in range(2)]
        height, width = x.shape[-2:]
        if height <= in_tile[0] and width <= in_tile[1]:
            return run(x, chunk)
        starts_h, starts_w = range(0, height, step[0]), range(0, width, step[1])
        tiles = [
            [run(x[..., i : i + in_tile[0], j : j + in_tile[1]], chunk) for j in starts_w] for i in starts_h
        ]
        rows = []
        for r, row in enumerate(tiles):
            pieces = []
            for c, tile in enumerate(row):
                if r > 0:
                    tile = _blend(tiles[r - 1][c], tile, blend[0], dim=3)
                if c > 0:
                    tile = _blend(row[c - 1], tile, blend[1], dim=4)
                row[c] = tile
                pieces.append(tile[..., : keep[0], : keep[1]])
            rows.append(torch.cat(pieces, dim=4))
        return torch.cat(rows, dim=3)

    def _check_video(self, video: torch.Tensor) -> None:
        if video.ndim != 5 or video.shape[1] != self.config.in_channels:
            raise ValueError(
                f"CogVideoX VAE expects video [B, {self.config.in_channels}, T, H, W], got {tuple(video.shape)}"
            )
        f, t = self.spatial_factor, self.temporal_factor
        if video.shape[-1] % f or video.shape[-2] % f:
            raise ValueError(
                f"video height and width must be multiples of {f}, got {tuple(video.shape[-2:])}"
            )
        if (video.shape[2] - 1) % t:
            raise ValueError(f"CogVideoX VAE needs 1 + {t}k frames (e.g. 49), got {video.shape[2]}")

    def _check_latent(self, z: torch.Tensor) -> None:
        if z.ndim != 5 or z.shape[1] != self.config.latent_channels:
            raise ValueError(
                f"CogVideoX VAE expects latents [B, {self.config.latent_channels}, T, h, w], got {tuple(z.shape)}; "
                "is this latent from another VAE family?"
            )


def _blend(prev: torch.Tensor, cur: torch.Tensor, extent: int, dim: int) -> torch.Tensor:
    """Linear cross-fade from the end of ``prev`` into the start of ``cur`` along ``dim`` (cur is updated)."""
    extent = min(prev.shape[dim], cur.shape[dim], extent)
    if extent <= 0:
        return cur
    cur = cur.clone()
    shape = [1] * cur.ndim
    shape[dim] = extent
    w = (torch.arange(extent, device=cur.device, dtype=torch.float32) / extent).to(cur.dtype).view(shape)
    head = cur.narrow(dim, 0, extent)
    tail = prev.narrow(dim, prev.shape[dim] - extent, extent)
    cur.narrow(dim, 0, extent).copy_(tail * (1 - w) + head * w)
    return cur


# -- loading ------------------------------------------------------------------------------------------------
_SIGNATURE_KEYS = (
    "encoder.conv_in.conv.weight",
    "decoder.conv_in.conv.weight",
    "decoder.norm_out.conv_y.conv.weight",
)


def looks_like_cogvideox_vae(keys: Any) -> bool:
    """True when the state-dict keys are a CogVideoX VAE in the diffusers layout."""
    keys = set(keys)
    return all(k in keys for k in _SIGNATURE_KEYS)


def _config_from_state(state: dict[str, torch.Tensor]) -> CogVideoXVAEConfig:
    """The release defaults, with channel counts and depth read from the tensors' shapes."""
    blocks = sorted({int(k.split(".")[2]) for k in state if k.startswith("encoder.down_blocks.")})
    if not blocks:
        raise CheckpointError("state has no 'encoder.down_blocks.*' tensors; not a CogVideoX VAE")
    shape_keys = [f"encoder.down_blocks.{i}.resnets.0.conv1.conv.weight" for i in blocks]
    shape_keys += [
        "encoder.conv_in.conv.weight",
        "decoder.conv_in.conv.weight",
        "decoder.conv_out.conv.weight",
    ]
    absent = [k for k in shape_keys if k not in state]
    if absent:
        raise CheckpointError(f"CogVideoX VAE state is truncated: missing {absent}")
    channels = tuple(int(state[k].shape[0]) for k in shape_keys[: len(blocks)])
    layers = len({k.split(".")[4] for k in state if k.startswith("encoder.down_blocks.0.resnets.")})
    latent = int(state["decoder.conv_in.conv.weight"].shape[1])
    return dataclasses.replace(
        COGVIDEOX_2B_VAE,
        block_out_channels=channels,
        latent_channels=latent,
        layers_per_block=layers,
        in_channels=int(state["encoder.conv_in.conv.weight"].shape[1]),
        out_channels=int(state["decoder.conv_out.conv.weight"].shape[0]),
    )


def cogvideox_vae_from_state(
    state: dict[str, torch.Tensor], config_dict: dict[str, Any] | None = None, source: str = "CogVideoX VAE"
) -> CogVideoXVAE:
    """Build a :class:`CogVideoXVAE` and load ``state`` (diffusers layout) strictly.

    ``config_dict`` is the folder's ``config.json``; without it the 2B release's settings are used with
    shapes read from the tensors (pass the 5B ``config.json`` to get its 0.7 scaling factor).
    Missing, unexpected or mis-shaped tensors raise :class:`CheckpointError` naming them.
    """
    if not looks_like_cogvideox_vae(state.keys()):
        missing = [k for k in _SIGNATURE_KEYS if k not in state]
        raise CheckpointError(f"{source} is not a CogVideoX VAE in the diffusers layout (no {missing})")
    config = config_from_diffusers(config_dict) if config_dict else _config_from_state(state)
    with torch.device("meta"):
        model = CogVideoXVAE(config)
    _adopt_state(model, state, source)
    return model.eval()


def _adopt_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Check names and shapes against the meta-device ``model``, then adopt the tensors without copying
    (peak memory of one model, not two). Floating tensors share the first weight's dtype."""
    dtype = next(v.dtype for v in state.values() if v.is_floating_point())
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    load_state_strict(model, state, source, assign=True)
