"""The CogVideoX transformer (2B: 3D sin-cos positions; 5B and 1.5: 3D rotary), diffusers weight layout.

Text and video tokens run through one joint attention ("expert" adaptive norms modulate each stream
separately). Forward follows the team's DiT contract: ``[B, C, T, H, W]`` latents in, the v-prediction
out; the diffusers module takes ``[B, F, C, H, W]``, so we transpose at the edges. The positional tables the
reference pipeline builds outside the network (rotary frequencies) are built here from the input size.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..cuda_ext.dispatch import attention
from ..runtime.checkpoints import CheckpointError, load_state_strict

log = logging.getLogger(__name__)


@dataclass
class CogVideoXTransformerConfig:
    num_attention_heads: int = 30
    attention_head_dim: int = 64
    in_channels: int = 16
    out_channels: int = 16
    flip_sin_to_cos: bool = True
    freq_shift: int = 0
    time_embed_dim: int = 512
    text_embed_dim: int = 4096
    num_layers: int = 30
    attention_bias: bool = True
    sample_width: int = 90  # latent size the positional tables were trained at
    sample_height: int = 60
    sample_frames: int = 49
    patch_size: int = 2
    patch_size_t: int | None = None  # 2 in CogVideoX 1.5
    temporal_compression_ratio: int = 4
    max_text_seq_length: int = 226
    norm_elementwise_affine: bool = True
    norm_eps: float = 1e-5
    spatial_interpolation_scale: float = 1.875
    temporal_interpolation_scale: float = 1.0
    use_rotary_positional_embeddings: bool = False
    patch_bias: bool = True

    @property
    def inner_dim(self) -> int:
        return self.num_attention_heads * self.attention_head_dim


COGVIDEOX_2B = CogVideoXTransformerConfig()
COGVIDEOX_5B = CogVideoXTransformerConfig(
    num_attention_heads=48, num_layers=42, use_rotary_positional_embeddings=True
)
COGVIDEOX_15_5B = CogVideoXTransformerConfig(
    num_attention_heads=48,
    num_layers=42,
    use_rotary_positional_embeddings=True,
    patch_size_t=2,
    patch_bias=False,
    sample_height=300,
    sample_width=300,
    sample_frames=81,
    max_text_seq_length=224,
)

# Fields of diffusers' config.json that must hold a given value (anything else is a model we do not build).
_REQUIRED_DIFFUSERS_VALUES = {
    "activation_fn": "gelu-approximate",
    "timestep_activation_fn": "silu",
    "use_learned_positional_embeddings": False,
    "ofs_embed_dim": None,
}
_IGNORED_DIFFUSERS_FIELDS = {"dropout"}


def config_from_diffusers(config: dict[str, Any]) -> CogVideoXTransformerConfig:
    """Build a config from diffusers' ``CogVideoXTransformer3DModel`` ``config.json`` dict."""
    for key, allowed in _REQUIRED_DIFFUSERS_VALUES.items():
        if key in config and config[key] != allowed and not (allowed is False and config[key] is None):
            raise CheckpointError(
                f"CogVideoX transformer with {key}={config[key]!r} is not supported "
                "(image-to-video and other variants are not built by this pack)"
            )
    fields = {f.name for f in dataclasses.fields(CogVideoXTransformerConfig)}
    kwargs = {}
    for key, value in config.items():
        if key.startswith("_") or key in _REQUIRED_DIFFUSERS_VALUES or key in _IGNORED_DIFFUSERS_FIELDS:
            continue
        if key not in fields:
            # Newer diffusers releases add fields; a structural one would still fail the strict load.
            log.warning("CogVideoX transformer config: ignoring unknown field %r = %r", key, value)
            continue
        kwargs[key] = value
    if kwargs.get("out_channels") is None:
        kwargs["out_channels"] = kwargs.get("in_channels", 16)
    return CogVideoXTransformerConfig(**kwargs)


# -- positional tables ------------------------------------------------------------------------------------
def timestep_embedding(t: torch.Tensor, dim: int, flip_sin_to_cos: bool, shift: float) -> torch.Tensor:
    """Sinusoidal timestep features ``[B, dim]`` (fp32), DDPM style."""
    half = dim // 2
    exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / (half - shift)
    args = t[:, None].float() * torch.exp(exponent)[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    return F.pad(emb, (0, dim % 2))


def _sincos_1d(dim: int, pos: torch.Tensor) -> torch.Tensor:
    """``[len(pos), dim]`` sin then cos, frequencies in float64 as the released tables were made."""
    omega = torch.arange(dim // 2, dtype=torch.float64, device=pos.device) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    out = torch.outer(pos.reshape(-1).double(), omega)
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


def sincos_3d_positions(
    dim: int, frames: int, height: int, width: int, spatial_scale: float, temporal_scale: float
) -> torch.Tensor:
    """CogVideoX-2B's fixed table ``[frames * height * width, dim]``: 1/4 of channels time, 3/4 space."""
    spatial_dim, temporal_dim = 3 * dim // 4, dim // 4
    ys = torch.arange(height, dtype=torch.float32) / spatial_scale
    xs = torch.arange(width, dtype=torch.float32) / spatial_scale
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    # x coordinates fill the first half of the spatial channels, y the second (the release's order).
    spatial = torch.cat([_sincos_1d(spatial_dim // 2, grid_x), _sincos_1d(spatial_dim // 2, grid_y)], dim=1)
    temporal = _sincos_1d(temporal_dim, torch.arange(frames, dtype=torch.float32) / temporal_scale)
    table = torch.cat(
        [
            temporal[:, None, :].expand(-1, height * width, -1),
            spatial[None, :, :].expand(frames, -1, -1),
        ],
        dim=-1,
    )
    return table.reshape(frames * height * width, dim)


def _rope_1d(dim: int, pos: torch.Tensor, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    angles = torch.outer(pos, freqs)
    return angles.cos().repeat_interleave(2, dim=1), angles.sin().repeat_interleave(2, dim=1)


def _crop_region(
    grid_hw: tuple[int, int], base_h: int, base_w: int
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Where a ``grid_hw`` grid sits when resized (aspect kept) and centred into the ``base`` grid."""
    h, w = grid_hw
    if h / w > base_h / base_w:
        resize_h, resize_w = base_h, int(round(base_h / h * w))
    else:
        resize_w, resize_h = base_w, int(round(base_w / w * h))
    top, left = int(round((base_h - resize_h) / 2.0)), int(round((base_w - resize_w) / 2.0))
    return (top, left), (top + resize_h, left + resize_w)


def rope_3d(
    head_dim: int, frames: int, height: int, width: int, base_h: int, base_w: int, sliced: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary ``(cos, sin)`` tables ``[frames * height * width, head_dim]`` over (t, y, x).

    CogVideoX 1.0 (``sliced=False``) stretches the token grid over the trained ``base`` grid (positions
    interpolated); 1.5 (``sliced=True``) uses integer positions.
    """
    if sliced:
        pos_t = torch.arange(frames, dtype=torch.float32)
        pos_h = torch.arange(height, dtype=torch.float32)
        pos_w = torch.arange(width, dtype=torch.float32)
    else:
        (top, left), (bottom, right) = _crop_region((height, width), base_h, base_w)
        pos_h = torch.linspace(top, bottom * (height - 1) / height, height, dtype=torch.float32)
        pos_w = torch.linspace(left, right * (width - 1) / width, width, dtype=torch.float32)
        pos_t = torch.linspace(0, frames * (frames - 1) / frames, frames, dtype=torch.float32)
    dim_t, dim_hw = head_dim // 4, head_dim // 8 * 3
    tables = []
    for part in zip(_rope_1d(dim_t, pos_t), _rope_1d(dim_hw, pos_h), _rope_1d(dim_hw, pos_w)):
        t, h, w = part
        full = torch.cat(
            [
                t[:, None, None, :].expand(-1, height, width, -1),
                h[None, :, None, :].expand(frames, -1, width, -1),
                w[None, None, :, :].expand(frames, height, -1, -1),
            ],
            dim=-1,
        )
        tables.append(full.reshape(frames * height * width, -1))
    return tables[0], tables[1]


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (0,1), (2,3), ... of ``x [B, heads, L, D]`` by the tables ``[L, D]``."""
    real, imag = x.reshape(*x.shape[:-1], -1, 2).unbind(-1)
    rotated = torch.stack([-imag, real], dim=-1).flatten(3)
    return (x.float() * cos + rotated.float() * sin).to(x.dtype)


# -- modules ----------------------------------------------------------------------------------------------
class TimestepMLP(nn.Module):
    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, out_dim)
        self.linear_2 = nn.Linear(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


class PatchEmbed(nn.Module):
    """Video latents ``[B, F, C, H, W]`` -> tokens ``[B, F' H' W', D]``; text ``[B, L, D_text]`` -> ``[B, L, D]``."""

    def __init__(self, cfg: CogVideoXTransformerConfig) -> None:
        super().__init__()
        self.p, self.pt = cfg.patch_size, cfg.patch_size_t
        if self.pt is None:
            self.proj = nn.Conv2d(cfg.in_channels, cfg.inner_dim, self.p, stride=self.p, bias=cfg.patch_bias)
        else:
            # The 1.5 release's linear patch projection always has a bias (patch_bias only covers the conv).
            self.proj = nn.Linear(cfg.in_channels * self.p * self.p * self.pt, cfg.inner_dim)
        self.text_proj = nn.Linear(cfg.text_embed_dim, cfg.inner_dim)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, f, c, h, w = video.shape
        p = self.p
        if self.pt is None:
            tokens = self.proj(video.reshape(b * f, c, h, w))  # [B F, D, H', W']
            return tokens.flatten(2).transpose(1, 2).reshape(b, -1, tokens.shape[1])
        pt = self.pt
        x = video.permute(0, 1, 3, 4, 2).reshape(b, f // pt, pt, h // p, p, w // p, p, c)
        x = x.permute(0, 1, 3, 5, 7, 2, 4, 6).flatten(4, 7).flatten(1, 3)  # [B, N, C pt p p]
        return self.proj(x)


class AdaNormZero(nn.Module):
    """LayerNorm with shift/scale/gate from the timestep, separately for video and text tokens."""

    def __init__(self, cond_dim: int, dim: int, affine: bool, eps: float) -> None:
        super().__init__()
        self.linear = nn.Linear(cond_dim, 6 * dim)
        self.norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=affine)

    def forward(self, x: torch.Tensor, text: torch.Tensor, temb: torch.Tensor):
        shift, scale, gate, t_shift, t_scale, t_gate = self.linear(F.silu(temb))[:, None].chunk(6, dim=-1)
        x = self.norm(x) * (1 + scale) + shift
        text = self.norm(text) * (1 + t_scale) + t_shift
        return x, text, gate, t_gate


class JointAttention(nn.Module):
    """Self-attention over ``[text; video]`` with per-head LayerNorm on q and k, rotary on video tokens only."""

    def __init__(self, dim: int, heads: int, head_dim: int, bias: bool) -> None:
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=bias)
        self.to_k = nn.Linear(dim, inner, bias=bias)
        self.to_v = nn.Linear(dim, inner, bias=bias)
        self.norm_q = nn.LayerNorm(head_dim, eps=1e-6)
        self.norm_k = nn.LayerNorm(head_dim, eps=1e-6)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim, bias=True)])

    def forward(
        self,
        x: torch.Tensor,
        text: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None,
        mask: torch.Tensor | None,
        backend: str,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n_text = text.shape[1]
        seq = torch.cat([text, x], dim=1)
        b, length, _ = seq.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, length, self.heads, -1).transpose(1, 2)

        q = self.norm_q(heads(self.to_q(seq)))
        k = self.norm_k(heads(self.to_k(seq)))
        v = heads(self.to_v(seq))
        if rope is not None:
            cos, sin = rope
            q = torch.cat([q[:, :, :n_text], apply_rope(q[:, :, n_text:], cos, sin)], dim=2)
            k = torch.cat([k[:, :, :n_text], apply_rope(k[:, :, n_text:], cos, sin)], dim=2)
        out = attention(q, k, v, backend=backend, mask=mask)
        out = self.to_out[0](out.transpose(1, 2).reshape(b, length, -1))
        return out[:, n_text:], out[:, :n_text]


class GeluProjection(nn.Module):
    def __init__(self, dim: int, inner: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.proj(x), approximate="tanh")


class FeedForward(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        # Identity keeps the output layer at index 2 (``ff.net.2``) as in the released weights.
        self.net = nn.Sequential(GeluProjection(dim, 4 * dim), nn.Identity(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CogVideoXBlock(nn.Module):
    def __init__(self, cfg: CogVideoXTransformerConfig) -> None:
        super().__init__()
        dim = cfg.inner_dim
        self.norm1 = AdaNormZero(cfg.time_embed_dim, dim, cfg.norm_elementwise_affine, cfg.norm_eps)
        self.attn1 = JointAttention(dim, cfg.num_attention_heads, cfg.attention_head_dim, cfg.attention_bias)
        self.norm2 = AdaNormZero(cfg.time_embed_dim, dim, cfg.norm_elementwise_affine, cfg.norm_eps)
        self.ff = FeedForward(dim)

    def forward(self, x, text, temb, rope, mask, backend):
        n_text = text.shape[1]
        nx, ntext, gate, t_gate = self.norm1(x, text, temb)
        attn_x, attn_text = self.attn1(nx, ntext, rope, mask, backend)
        x = x + gate * attn_x
        text = text + t_gate * attn_text
        nx, ntext, gate, t_gate = self.norm2(x, text, temb)
        ff = self.ff(torch.cat([ntext, nx], dim=1))
        return x + gate * ff[:, n_text:], text + t_gate * ff[:, :n_text]


class FinalNorm(nn.Module):
    """Adaptive LayerNorm before the output projection (shift first, then scale)."""

    def __init__(self, cond_dim: int, dim: int, affine: bool, eps: float) -> None:
        super().__init__()
        self.linear = nn.Linear(cond_dim, 2 * dim)
        self.norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=affine)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        shift, scale = self.linear(F.silu(temb))[:, None].chunk(2, dim=-1)
        return self.norm(x) * (1 + scale) + shift


class CogVideoXTransformer(nn.Module):
    """``model(x [B, C, T, H, W], timestep [B], context [B, L, D_text]) -> v-prediction [B, C, T, H, W]``.

    ``attention_backend`` selects the ``cuda_ext.dispatch.attention`` backend. CogVideoX was trained
    attending to all text tokens (padding included), so ``context_mask`` is ignored unless
    ``use_context_mask`` is set to True.
    """

    family = "cogvideox"
    prediction = "v"

    def __init__(self, config: CogVideoXTransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.attention_backend = "auto"
        self.use_context_mask = False
        dim = config.inner_dim
        self.patch_embed = PatchEmbed(config)
        self.time_embedding = TimestepMLP(dim, config.time_embed_dim)
        self.transformer_blocks = nn.ModuleList(CogVideoXBlock(config) for _ in range(config.num_layers))
        self.norm_final = nn.LayerNorm(dim, config.norm_eps, config.norm_elementwise_affine)
        self.norm_out = FinalNorm(config.time_embed_dim, dim, config.norm_elementwise_affine, config.norm_eps)
        pt = config.patch_size_t or 1
        self.proj_out = nn.Linear(dim, config.patch_size**2 * pt * config.out_channels)
        self._tables: dict[tuple, Any] = {}

    def forward(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        context: torch.Tensor,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        cfg = self.config
        b, c, f, h, w = x.shape
        p, pt = cfg.patch_size, cfg.patch_size_t or 1
        if c != cfg.in_channels or h % p or w % p or f % pt:
            raise ValueError(
                f"CogVideoX transformer expects latents [B, {cfg.in_channels}, T, H, W] with H, W multiples of "
                f"{p}" + (f" and T a multiple of {pt}" if pt > 1 else "") + f"; got {tuple(x.shape)}"
            )
        if context.shape[-1] != cfg.text_embed_dim:
            raise ValueError(
                f"CogVideoX transformer expects text embeddings of width {cfg.text_embed_dim} (T5-XXL), "
                f"got {context.shape[-1]}"
            )
        dtype = self.proj_out.weight.dtype
        timestep = torch.as_tensor(timestep, device=x.device).reshape(-1).expand(b)
        t_feat = timestep_embedding(timestep, cfg.inner_dim, cfg.flip_sin_to_cos, cfg.freq_shift)
        temb = self.time_embedding(t_feat.to(dtype))

        tokens = self.patch_embed(x.to(dtype).transpose(1, 2))
        text = self.patch_embed.text_proj(context.to(dtype))
        grid = (f // pt, h // p, w // p)
        rope = None
        if cfg.use_rotary_positional_embeddings:
            rope = self._table("rope", grid, x.device)
        else:
            tokens = tokens + self._table("sincos", grid, x.device).to(dtype)
        mask = self._attention_mask(context_mask, tokens.shape[1]) if self.use_context_mask else None

        for block in self.transformer_blocks:
            tokens, text = block(tokens, text, temb, rope, mask, self.attention_backend)

        tokens = self.proj_out(self.norm_out(self.norm_final(tokens), temb))
        out = tokens.reshape(b, grid[0], grid[1], grid[2], cfg.out_channels, pt, p, p)
        out = out.permute(0, 4, 1, 5, 2, 6, 3, 7)  # [B, C, F', pt, H', p, W', p]
        return out.reshape(b, cfg.out_channels, f, h, w).to(x.dtype)

    def _attention_mask(self, context_mask: torch.Tensor | None, n_video: int) -> torch.Tensor | None:
        if context_mask is None:
            return None
        keep = torch.ones(context_mask.shape[0], n_video, dtype=torch.bool, device=context_mask.device)
        return torch.cat([context_mask.bool(), keep], dim=1)[:, None, None, :]

    def _table(self, kind: str, grid: tuple[int, int, int], device: torch.device):
        """Positional tables for a token grid, built once per size and device."""
        key = (kind, grid, str(device))
        if key not in self._tables:
            cfg = self.config
            if kind == "rope":
                base_h, base_w = cfg.sample_height // cfg.patch_size, cfg.sample_width // cfg.patch_size
                cos, sin = rope_3d(
                    cfg.attention_head_dim, *grid, base_h, base_w, sliced=cfg.patch_size_t is not None
                )
                value = (cos.to(device), sin.to(device))
            else:
                table = sincos_3d_positions(
                    cfg.inner_dim, *grid, cfg.spatial_interpolation_scale, cfg.temporal_interpolation_scale
                )
                value = table.to(device)
            if len(self._tables) > 8:
                self._tables.clear()
            self._tables[key] = value
        return self._tables[key]


# -- loading ----------------------------------------------------------------------------------------------
_SIGNATURE_KEYS = (
    "patch_embed.text_proj.weight",
    "transformer_blocks.0.norm1.linear.weight",
    "transformer_blocks.0.attn1.norm_q.weight",
    "norm_out.linear.weight",
)


def looks_like_cogvideox_transformer(keys: Any) -> bool:
    """True when the state-dict keys are a CogVideoX transformer in the diffusers layout."""
    keys = set(keys)
    return all(k in keys for k in _SIGNATURE_KEYS)


def _config_from_state(state: dict[str, torch.Tensor]) -> CogVideoXTransformerConfig:
    """Pick the release preset by width and patch kind, then read the remaining sizes from the shapes.

    Whether positions are sin-cos or rotary cannot be seen in the weights: width 1920 is the 2B (sin-cos),
    wider models are the 5B / 1.5 releases (rotary). A ``config.json`` overrides this guess.
    """
    needed = ["patch_embed.proj.weight", "proj_out.weight", "time_embedding.linear_1.weight"]
    absent = [k for k in needed if k not in state]
    if absent:
        raise CheckpointError(f"CogVideoX transformer state is truncated: missing {absent}")
    text = state["patch_embed.text_proj.weight"]
    dim, text_dim = int(text.shape[0]), int(text.shape[1])
    proj = state["patch_embed.proj.weight"]
    preset = COGVIDEOX_2B if dim == COGVIDEOX_2B.inner_dim else COGVIDEOX_5B
    if proj.ndim == 2:
        preset = COGVIDEOX_15_5B
    head_dim = int(state["transformer_blocks.0.attn1.norm_q.weight"].shape[0])
    layers = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("transformer_blocks."))
    p, pt = preset.patch_size, preset.patch_size_t or 1
    if proj.ndim == 4:
        p = int(proj.shape[-1])
        in_channels = int(proj.shape[1])
    else:
        in_channels = int(proj.shape[1]) // (p * p * pt)
    return dataclasses.replace(
        preset,
        num_attention_heads=dim // head_dim,
        attention_head_dim=head_dim,
        in_channels=in_channels,
        out_channels=int(state["proj_out.weight"].shape[0]) // (p * p * pt),
        text_embed_dim=text_dim,
        time_embed_dim=int(state["time_embedding.linear_1.weight"].shape[0]),
        num_layers=layers,
        patch_size=p,
        patch_bias="patch_embed.proj.bias" in state if proj.ndim == 4 else preset.patch_bias,
        attention_bias="transformer_blocks.0.attn1.to_q.bias" in state,
    )


def cogvideox_transformer_from_state(
    state: dict[str, torch.Tensor],
    config_dict: dict[str, Any] | None = None,
    source: str = "CogVideoX transformer",
) -> CogVideoXTransformer:
    """Build a :class:`CogVideoXTransformer` and load ``state`` (diffusers layout) strictly.

    ``config_dict`` is the folder's ``config.json``; without it the release preset matching the weights'
    shapes is used. Missing, unexpected or mis-shaped tensors raise :class:`CheckpointError` naming them.
    """
    if not looks_like_cogvideox_transformer(state.keys()):
        missing = [k for k in _SIGNATURE_KEYS if k not in state]
        raise CheckpointError(
            f"{source} is not a CogVideoX transformer in the diffusers layout (no {missing})"
        )
    config = config_from_diffusers(config_dict) if config_dict else _config_from_state(state)
    with torch.device("meta"):
        model = CogVideoXTransformer(config)
    _adopt_state(model, state, source)
    return model.eval()


def _adopt_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Check names and shapes against the meta-device ``model``, then adopt the tensors without copying
    (peak memory of one model, not two). Floating tensors share the first weight's dtype."""
    dtype = next(v.dtype for v in state.values() if v.is_floating_point())
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    load_state_strict(model, state, source, assign=True)
