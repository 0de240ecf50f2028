"""Video diffusion transformer: the Wan 2.1 text-to-video architecture, made configurable.

One class serves the real Wan 2.1 1.3B / 14B weights (see ``dit_loading.py``) and our small embedded
models. Tokens are ``p_t x p_h x p_w`` latent patches; each block modulates its norms with the timestep
(Wan's adaLN: one shared projection of the time embedding to ``6 x hidden`` plus a learned per-block
table), attends over the tokens with 3D rotary positions and RMS-normed queries/keys, attends to the text,
and applies a GELU(tanh) MLP.

``attention_layout="factorized"`` (VDM / Make-A-Video / VideoLDM) replaces the full 3D self-attention by
spatial attention inside each frame followed by temporal attention across frames at each location. The
temporal branch has its own norm and a zero-initialised gate, so a model first trained on images (T=1)
computes exactly the same function when its temporal layers start training.

Speed (without autograd, i.e. sampling): a block overwrites its own temporaries and the residual
stream in place, reuses the widest outputs across blocks on CPU (``OutputBuffers``), folds the qk RMS
norm into the rotary multiply and hands attention contiguous heads-first tensors. With autograd on
(training) every step is out of place; ``test_dit.py`` checks both give the same numbers.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..cuda_ext.dispatch import attention
from .embeddings import AbsolutePositionEmbedding, PatchEmbed3D, TextProjection, TimestepEmbedder, unpatchify
from .rope import RotaryEmbedding3D, apply_rotary

LAYOUTS = ("full", "factorized")


@dataclass
class DiTConfig:
    in_channels: int = 16
    out_channels: int = 16
    patch_size: tuple[int, int, int] = (1, 2, 2)
    hidden_size: int = 1536
    depth: int = 30
    num_heads: int = 12
    ffn_dim: int = 8960
    text_dim: int = 4096
    frequency_dim: int = 256  # width of the timestep sinusoid
    eps: float = 1e-6
    qk_norm: bool = True  # RMSNorm over all heads of q and k (Wan's "rms_norm_across_heads")
    cross_attn_norm: bool = True  # affine LayerNorm before the cross-attention
    rope_theta: float = 10000.0
    attention_layout: str = "full"  # "full" 3D self-attention | "factorized" spatial then temporal
    # Also add the masked mean of the text features to the timestep embedding, so every adaLN
    # modulation sees the whole prompt (Imagen / SDXL's pooled text). Off for Wan, which has no such
    # weights; the small embedded models use it because it makes global attributes (colour, shape,
    # motion of the one object) far quicker to learn than cross-attention alone.
    pooled_text: bool = False
    # Also add an embedding of each token's absolute place (frame in the clip, row, column; see
    # AbsolutePositionEmbedding). Off for Wan (rotary positions only); the embedded video models use it
    # because without it they cannot tell "moving left" from "moving right" (measured: their loss did not
    # depend on the motion word at all).
    absolute_positions: bool = False
    # With absolute_positions: also joint features of each pair of axes (frame x row, frame x column, row x
    # column), in which an object moving along either axis is a pattern the blocks can pick directly.
    position_pairs: bool = False
    # With absolute_positions: also features of the distance from the frame centre, alone and jointly with
    # the frame, in which an object growing or shrinking in place is a pattern the blocks can pick directly.
    position_radial: bool = False
    # Add the best linear prediction of the flow velocity from the input to the output (EDM's skip, for
    # unit-variance latents and timestep = 1000 s), so the blocks learn only the rest. At pure noise that
    # prediction is the input itself: without it the blocks must copy the noise through, and the embedded
    # base's copy was so loose that its first sampling steps, where a clip's motion is decided, came out
    # worse than the dataset's mean clip. Off for Wan, trained without it.
    flow_skip: bool = False

    def __post_init__(self) -> None:
        self.patch_size = tuple(int(p) for p in self.patch_size)
        if len(self.patch_size) != 3 or min(self.patch_size) < 1:
            raise ValueError(f"patch_size must be three positive ints (p_t, p_h, p_w), got {self.patch_size}")
        if self.attention_layout not in LAYOUTS:
            raise ValueError(f"attention_layout must be one of {LAYOUTS}, got {self.attention_layout!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim {self.head_dim} must be even for rotary positions")
        for name in ("position_pairs", "position_radial"):
            if getattr(self, name) and not self.absolute_positions:
                raise ValueError(
                    f"{name} adds to the absolute position embedding: set absolute_positions too"
                )
        if self.flow_skip and self.in_channels != self.out_channels:
            raise ValueError(
                f"flow_skip adds the input to the output: in_channels ({self.in_channels}) must equal "
                f"out_channels ({self.out_channels})"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


DIT_PRESETS: dict[str, DiTConfig] = {
    # The released Wan 2.1 text-to-video transformers (umT5-XXL text features of width 4096).
    "wan2.1-t2v-1.3B": DiTConfig(hidden_size=1536, depth=30, num_heads=12, ffn_dim=8960),
    "wan2.1-t2v-14B": DiTConfig(hidden_size=5120, depth=40, num_heads=40, ffn_dim=13824),
    # Small models for our sprites world (text width of models.text_encoder's "sprites" preset).
    "sprites-s": DiTConfig(
        hidden_size=384, depth=8, num_heads=6, ffn_dim=1536, text_dim=256, frequency_dim=128
    ),
    "sprites-s-factorized": DiTConfig(
        hidden_size=384,
        depth=8,
        num_heads=6,
        ffn_dim=1536,
        text_dim=256,
        frequency_dim=128,
        attention_layout="factorized",
    ),
    # Tiny shapes for tests.
    "test-tiny": DiTConfig(
        in_channels=4,
        out_channels=4,
        hidden_size=32,
        depth=2,
        num_heads=2,
        ffn_dim=64,
        text_dim=24,
        frequency_dim=16,
    ),
    "test-tiny-factorized": DiTConfig(
        in_channels=4,
        out_channels=4,
        hidden_size=32,
        depth=2,
        num_heads=2,
        ffn_dim=64,
        text_dim=24,
        frequency_dim=16,
        attention_layout="factorized",
    ),
}


def dit_config(name: str, **overrides) -> DiTConfig:
    """A named preset, optionally with some fields replaced (``dit_config("sprites-s", in_channels=8)``)."""
    if name not in DIT_PRESETS:
        raise KeyError(f"unknown DiT preset {name!r}; known presets: {sorted(DIT_PRESETS)}")
    return dataclasses.replace(DIT_PRESETS[name], **overrides)


def _recording() -> bool:
    """Whether autograd is recording; when not, temporaries are updated in place to save memory traffic."""
    return torch.is_grad_enabled()


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN ``x * (1 + scale) + shift`` (``[B, 1, D]`` shift/scale) in one pass.

    ``x`` must be a temporary (a norm's output): without autograd it is overwritten with the result.
    """
    if _recording():
        return torch.addcmul(shift, x, 1 + scale)
    return torch.addcmul(shift, x, 1 + scale, out=x)


def add_gated(x: torch.Tensor, gate: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Residual ``x + gate * y``; in place without autograd (the residual stream is ours to update)."""
    if _recording():
        return torch.addcmul(x, gate, y)
    return x.addcmul_(gate, y)


def flow_skip_scale(s: torch.Tensor) -> torch.Tensor:
    """``c(s)`` with ``c(s) * x_s`` the least-squares prediction of the flow velocity ``noise - x0`` from
    ``x_s = (1 - s) x0 + s noise`` when ``x0`` and the noise are independent with unit variance: ``-1`` at
    ``s = 0`` (the velocity is ``-x0``), ``0`` at ``s = 0.5``, ``1`` at pure noise."""
    s = s.float()
    return (2.0 * s - 1.0) / ((1.0 - s) ** 2 + s**2)


class PlainLayerNorm(nn.Module):
    """LayerNorm without learned affine (adaLN supplies it), state-dict-free like Wan's.

    Runs ``F.layer_norm`` with a unit weight and zero bias: PyTorch's CPU kernel is about twice as fast
    with an affine than without one.
    """

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.dim, self.eps = dim, eps
        self._unit: dict[tuple[torch.dtype, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = (x.dtype, x.device)
        if key not in self._unit:
            self._unit[key] = (x.new_ones(self.dim), x.new_zeros(self.dim))
        weight, bias = self._unit[key]
        return F.layer_norm(x, (self.dim,), weight, bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"


class RMSNorm(nn.Module):
    """RMS norm over the last dim with a learned gain (Wan normalises q and k across all heads).

    ``1 / rms`` comes from one reduction pass (``vector_norm``, float32 accumulation) instead of the
    square / mean / multiply chain.
    """

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def inverse_rms(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., 1]`` float32 ``1 / sqrt(mean(x^2) + eps)``."""
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=torch.float32)
        return torch.rsqrt(norm.square() / x.shape[-1] + self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.inverse_rms(x).to(x.dtype) * self.weight

    def normalize_(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` for a temporary ``x``, overwritten in place when autograd is off."""
        if _recording():
            return self(x)
        return x.mul_(self.inverse_rms(x).to(x.dtype)).mul_(self.weight)


def _rms_norm(dim: int, eps: float, enabled: bool) -> nn.Module:
    return RMSNorm(dim, eps) if enabled else nn.Identity()


def _normalize_(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return norm.normalize_(x) if isinstance(norm, RMSNorm) else x


def _norm_and_rotate(x: torch.Tensor, norm: nn.Module, rope: torch.Tensor, num_heads: int) -> torch.Tensor:
    """qk-norm then rotary positions: ``[B, L, D]`` (a temporary) -> ``[B, heads, L, head_dim]`` contiguous."""
    if not isinstance(norm, RMSNorm):
        return apply_rotary(x.unflatten(-1, (num_heads, -1)), rope)
    inverse_rms = norm.inverse_rms(x)
    # (x * w) rotated by (table / rms): the per-token 1/rms rides on the small rotary table.
    weighted = x * norm.weight if _recording() else x.mul_(norm.weight)
    return apply_rotary(weighted.unflatten(-1, (num_heads, -1)), rope, inverse_rms)


class OutputBuffers:
    """Reused outputs of the widest linear layers (q/k/v, MLP hidden) for one CPU inference forward.

    A large fresh CPU allocation (over glibc's 32 MB mmap limit) comes from the OS every time and pays a
    page fault per 4 KB on first touch, about as much as the layer's own memory traffic. Blocks run one
    after another, so each block's outputs can land in the memory of the previous block's.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def linear(self, name: str, layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        out = self._buffers.get(name)
        if out is None or out.shape != (rows, layer.out_features) or out.dtype != x.dtype:
            out = self._buffers[name] = x.new_empty(rows, layer.out_features)
        torch.addmm(layer.bias, x.reshape(rows, -1), layer.weight.t(), out=out)
        return out.view(*x.shape[:-1], layer.out_features)


def _linear(layer: nn.Linear, x: torch.Tensor, buffers: OutputBuffers | None, name: str) -> torch.Tensor:
    return layer(x) if buffers is None else buffers.linear(name, layer, x)


class SelfAttention(nn.Module):
    """Multi-head self-attention with fused q/k/v, RMS qk-norm (over all heads) and rotary positions."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool, eps: float):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.norm_q = _rms_norm(dim, eps, qk_norm)
        self.norm_k = _rms_norm(dim, eps, qk_norm)
        self.out = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, rope: torch.Tensor, backend: str, buffers: OutputBuffers | None = None
    ) -> torch.Tensor:
        """``x [B, L, D]``, ``rope [L, head_dim / 2]`` complex -> ``[B, L, D]``."""
        q, k, v = _linear(self.qkv, x, buffers, "qkv").chunk(3, dim=-1)
        q = _norm_and_rotate(q, self.norm_q, rope, self.num_heads)
        k = _norm_and_rotate(k, self.norm_k, rope, self.num_heads)
        # Contiguous heads-first inputs make SDPA's CPU kernel ~10% faster than strided views.
        v = v.unflatten(-1, (self.num_heads, -1)).transpose(1, 2).contiguous()
        return self.out(merge_heads(attention(q, k, v, backend=backend)))


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``[B, heads, L, head_dim] -> [B, L, heads * head_dim]`` (a view for SDPA's output layout)."""
    return x.transpose(1, 2).flatten(2)


class CrossAttention(nn.Module):
    """Attention from the video tokens to the (projected) text tokens, honouring the text padding mask."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool, eps: float):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.norm_q = _rms_norm(dim, eps, qk_norm)
        self.norm_k = _rms_norm(dim, eps, qk_norm)
        self.out = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None, backend: str
    ) -> torch.Tensor:
        """``x [B, L, D]``, ``context [B, L_text, D]``, ``mask`` bool ``[B, 1, 1, L_text]`` or None."""
        q = _normalize_(self.norm_q, self.q(x)).unflatten(-1, (self.num_heads, -1)).transpose(1, 2)
        k, v = self.kv(context).chunk(2, dim=-1)
        k = _normalize_(self.norm_k, k).unflatten(-1, (self.num_heads, -1)).transpose(1, 2)
        v = v.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)
        return self.out(merge_heads(attention(q, k, v, backend=backend, mask=mask)))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor, buffers: OutputBuffers | None = None) -> torch.Tensor:
        hidden = _linear(self.fc1, x, buffers, "mlp_hidden")
        # In place without autograd: the hidden layer is the widest tensor of the block.
        hidden = (
            F.gelu(hidden, approximate="tanh")
            if _recording()
            else torch.ops.aten.gelu_(hidden, approximate="tanh")
        )
        return self.fc2(hidden)


@dataclass
class TokenGrid:
    """Where the ``B x T*H*W`` tokens sit, and the rotary tables the blocks need for that grid."""

    batch: int
    frames: int
    height: int
    width: int
    rope: dict[str, torch.Tensor]  # axes ("thw" | "hw" | "t") -> [L, head_dim / 2] complex
    buffers: OutputBuffers | None = None  # CPU inference only


class DiTBlock(nn.Module):
    """Self-attention (full or spatial + temporal), cross-attention, MLP; adaLN-modulated and gated."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        dim, heads, eps = config.hidden_size, config.num_heads, config.eps
        self.factorized = config.attention_layout == "factorized"
        self.norm1 = PlainLayerNorm(dim, eps)
        self.self_attn = SelfAttention(dim, heads, config.qk_norm, eps)
        if self.factorized:
            self.temporal_norm = nn.LayerNorm(dim, eps=eps)
            self.temporal_attn = SelfAttention(dim, heads, config.qk_norm, eps)
            # Zero gate: the temporal branch adds nothing until training opens it.
            self.temporal_gate = nn.Parameter(torch.zeros(dim))
        self.cross_norm = nn.LayerNorm(dim, eps=eps) if config.cross_attn_norm else nn.Identity()
        self.cross_attn = CrossAttention(dim, heads, config.qk_norm, eps)
        self.norm2 = PlainLayerNorm(dim, eps)
        self.ffn = FeedForward(dim, config.ffn_dim)
        # Per-block offsets added to the shared time projection: shift, scale, gate (attention), then (MLP).
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim**0.5)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        context_mask: torch.Tensor | None,
        time_mod: torch.Tensor,
        grid: TokenGrid,
        backend: str,
    ) -> torch.Tensor:
        """``x [B, L, D]`` tokens, ``context [B, L_text, D]`` projected text, ``time_mod [B, 6, D]``.

        Without autograd ``x`` is updated in place and returned.
        """
        shift, scale, gate, mlp_shift, mlp_scale, mlp_gate = (
            (self.modulation + time_mod).unsqueeze(2).unbind(1)
        )

        h = modulate(self.norm1(x), shift, scale)
        if self.factorized:
            x = add_gated(x, gate, self._spatial_attention(h, grid, backend))
            temporal = self._temporal_attention(self.temporal_norm(x), grid, backend)
            x = add_gated(x, self.temporal_gate, temporal)
        else:
            x = add_gated(x, gate, self.self_attn(h, grid.rope["thw"], backend, grid.buffers))
        del h

        cross = self.cross_attn(self.cross_norm(x), context, context_mask, backend)
        x = x + cross if _recording() else x.add_(cross)
        del cross

        mlp = self.ffn(modulate(self.norm2(x), mlp_shift, mlp_scale), grid.buffers)
        return add_gated(x, mlp_gate, mlp)

    def _spatial_attention(self, h: torch.Tensor, grid: TokenGrid, backend: str) -> torch.Tensor:
        b, t, s = grid.batch, grid.frames, grid.height * grid.width
        out = self.self_attn(h.reshape(b * t, s, -1), grid.rope["hw"], backend, grid.buffers)
        return out.reshape(b, t * s, -1)

    def _temporal_attention(self, h: torch.Tensor, grid: TokenGrid, backend: str) -> torch.Tensor:
        b, t, s = grid.batch, grid.frames, grid.height * grid.width
        per_location = h.reshape(b, t, s, -1).transpose(1, 2).reshape(b * s, t, -1)
        out = self.temporal_attn(per_location, grid.rope["t"], backend, grid.buffers)
        return out.reshape(b, s, t, -1).transpose(1, 2).reshape(b, t * s, -1)


class FinalLayer(nn.Module):
    """Norm, modulation by the time embedding (shift, scale), projection back to patch pixels."""

    def __init__(self, dim: int, out_features: int, eps: float):
        super().__init__()
        self.norm = PlainLayerNorm(dim, eps)
        self.modulation = nn.Parameter(torch.randn(1, 2, dim) / dim**0.5)
        self.linear = nn.Linear(dim, out_features)

    def forward(self, x: torch.Tensor, time_emb: torch.Tensor) -> torch.Tensor:
        shift, scale = (self.modulation + time_emb.unsqueeze(1)).unsqueeze(2).unbind(1)
        return self.linear(modulate(self.norm(x), shift, scale))


class VideoDiT(nn.Module):
    """``model(x [B,C,T,H,W], timestep [B] (0..1000), context [B,L,D_text], context_mask [B,L] | None)``.

    Returns the raw prediction ``[B, C_out, T, H, W]`` in ``x``'s dtype. ``attention_backend`` is a plain
    attribute (``"auto"``, ``"sdpa"``, ...) handed to ``cuda_ext.dispatch.attention``; loaders set it.
    """

    def __init__(self, config: DiTConfig):
        super().__init__()
        self.config = config
        self.attention_backend = "auto"
        self.gradient_checkpointing = False
        dim = config.hidden_size
        self.patch_embed = PatchEmbed3D(config.in_channels, dim, config.patch_size)
        self.time_embed = TimestepEmbedder(config.frequency_dim, dim)
        # The shared projection of the time embedding to every block's 6 modulation vectors.
        self.time_modulation = nn.Linear(dim, 6 * dim)
        self.text_embed = TextProjection(config.text_dim, dim)
        self.pooled_text_embed = TextProjection(config.text_dim, dim) if config.pooled_text else None
        self.rope = RotaryEmbedding3D(config.head_dim, config.rope_theta)
        self.position_embed = (
            AbsolutePositionEmbedding(dim, pairs=config.position_pairs, radial=config.position_radial)
            if config.absolute_positions
            else None
        )
        self.blocks = nn.ModuleList(DiTBlock(config) for _ in range(config.depth))
        self.final_layer = FinalLayer(dim, config.out_channels * math.prod(config.patch_size), config.eps)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Xavier linears, zero biases; zero time projection and output layer so training starts calm."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        proj = self.patch_embed.proj
        nn.init.xavier_uniform_(proj.weight.view(proj.weight.shape[0], -1))
        nn.init.zeros_(proj.bias)
        nn.init.normal_(self.time_embed.fc1.weight, std=0.02)
        nn.init.normal_(self.time_embed.fc2.weight, std=0.02)
        nn.init.zeros_(self.time_modulation.weight)
        if self.position_embed is not None:
            nn.init.zeros_(self.position_embed.proj.weight)  # a model's outputs do not move when it is added
        if self.pooled_text_embed is not None:
            nn.init.zeros_(self.pooled_text_embed.fc2.weight)  # starts as the plain timestep embedding
        nn.init.zeros_(self.final_layer.linear.weight)

    # -- parameter groups for the image-then-video (VideoLDM) training schedule --------------------
    def temporal_parameters(self) -> list[nn.Parameter]:
        """The temporal branch of every block (empty for the full layout)."""
        return [p for name, p in self.named_parameters() if _is_temporal(name)]

    def spatial_parameters(self) -> list[nn.Parameter]:
        """Everything that is not temporal: what an image-only (T=1) phase trains."""
        return [p for name, p in self.named_parameters() if not _is_temporal(name)]

    # -- forward ---------------------------------------------------------------------------------
    def forward(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        context: torch.Tensor,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        cfg = self.config
        timestep, context, context_mask = self._check_inputs(x, timestep, context, context_mask)
        dtype = self.patch_embed.proj.weight.dtype
        b, _, t, h, w = x.shape
        pt, ph, pw = cfg.patch_size
        buffers = OutputBuffers() if x.device.type == "cpu" and not torch.is_grad_enabled() else None
        grid = TokenGrid(b, t // pt, h // ph, w // pw, rope={}, buffers=buffers)
        shape = (grid.frames, grid.height, grid.width)
        for axes in ("hw", "t") if cfg.attention_layout == "factorized" else ("thw",):
            grid.rope[axes] = self.rope(shape, axes, x.device)

        tokens = self.patch_embed(x.to(dtype))
        if self.position_embed is not None:
            tokens = tokens + self.position_embed(shape, x.device)
        time_emb = self.time_embed(timestep)
        if self.pooled_text_embed is not None:
            time_emb = time_emb + self.pooled_text_embed(masked_mean(context.to(dtype), context_mask))
        time_mod = self.time_modulation(F.silu(time_emb)).unflatten(1, (6, cfg.hidden_size))
        context = self.text_embed(context.to(dtype))

        backend = self.attention_backend
        for block in self.blocks:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                tokens = checkpoint(
                    block, tokens, context, context_mask, time_mod, grid, backend, use_reentrant=False
                )
            else:
                tokens = block(tokens, context, context_mask, time_mod, grid, backend)

        tokens = self.final_layer(tokens, time_emb)
        out = unpatchify(tokens, shape, cfg.patch_size, cfg.out_channels)
        if cfg.flow_skip:
            out = out + flow_skip_scale(timestep / 1000.0).view(b, 1, 1, 1, 1).to(out.dtype) * x.to(out.dtype)
        return out.to(x.dtype)

    def _check_inputs(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor | float,
        context: torch.Tensor,
        context_mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Validate shapes with messages that say what to fix; broadcast batch-1 inputs; shape the mask."""
        cfg = self.config
        if x.ndim != 5:
            raise ValueError(f"DiT input must be [B, C, T, H, W], got shape {tuple(x.shape)}")
        b, c, t, h, w = x.shape
        if c != cfg.in_channels:
            raise ValueError(
                f"DiT expects {cfg.in_channels} latent channels, got {c}: the latent comes from another VAE family"
            )
        for size, p, axis in zip((t, h, w), cfg.patch_size, ("frames T", "height H", "width W")):
            if size % p:
                raise ValueError(
                    f"latent {axis}={size} is not divisible by the patch size {p} (patch {cfg.patch_size}); "
                    f"pick a video size whose latent is a multiple of the patch"
                )
        timestep = torch.as_tensor(timestep, device=x.device)
        if timestep.ndim == 0 or timestep.numel() == 1:
            timestep = timestep.reshape(1).expand(b)
        if timestep.shape != (b,):
            raise ValueError(f"timestep must be [B]={b} values, got shape {tuple(timestep.shape)}")
        if context.ndim != 3 or context.shape[-1] != cfg.text_dim:
            raise ValueError(
                f"text context must be [B, L, {cfg.text_dim}], got {tuple(context.shape)}: "
                f"the conditioning comes from a text encoder this DiT was not trained with"
            )
        if context.shape[0] != b:
            if context.shape[0] != 1:
                raise ValueError(f"context batch {context.shape[0]} does not match the latent batch {b}")
            context = context.expand(b, -1, -1)
        if context_mask is None:
            return timestep, context, None
        if context_mask.shape[-1] != context.shape[1] or context_mask.ndim != 2:
            raise ValueError(
                f"context_mask must be [B, L]=[{b}, {context.shape[1]}], got {tuple(context_mask.shape)}"
            )
        context_mask = context_mask.to(device=x.device, dtype=torch.bool)
        if context_mask.shape[0] != b:
            if context_mask.shape[0] != 1:
                raise ValueError(
                    f"context_mask batch {context_mask.shape[0]} does not match the latent batch {b}"
                )
            context_mask = context_mask.expand(b, -1)
        valid = context_mask.sum(dim=1).tolist()
        if min(valid) == 0:
            raise ValueError(
                "context_mask has a row with no True entry: every prompt needs at least one token"
            )
        if min(valid) == context.shape[1]:
            return timestep, context, None  # nothing masked: let attention take its fastest path
        return timestep, context, context_mask[:, None, None, :]


def masked_mean(context: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over the valid tokens of ``context [B, L, D]``; ``mask`` as ``_check_inputs`` shapes it."""
    if mask is None:
        return context.mean(dim=1)
    weights = mask.reshape(mask.shape[0], -1, 1).to(context.dtype)
    return (context * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def _is_temporal(name: str) -> bool:
    return ".temporal_" in name
