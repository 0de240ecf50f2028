"""A small byte-level transformer text encoder for our embedded (sprites) models.

The tokenizer is the UTF-8 encoding itself: every byte is a token, plus BOS, EOS and PAD. There is no
vocabulary file and no unknown token, so any prompt in any script encodes losslessly. The encoder is a
plain pre-norm transformer with rotary positions; padding is masked out of every attention, so padded
positions cannot change the features of real ones, and padded outputs are zero.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..cuda_ext.dispatch import attention
from ..runtime.checkpoints import config_from_dict, load_checkpoint, load_state_strict
from .rope import apply_rotary, sequence_rotary_table


class ByteTokenizer:
    """UTF-8 bytes as token ids ``3..258``; ``PAD=0``, ``BOS=1``, ``EOS=2``."""

    PAD, BOS, EOS = 0, 1, 2
    OFFSET = 3
    vocab_size = 256 + OFFSET

    def encode(self, prompts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ids [B, max_length] long, mask [B, max_length] bool)``, True on real tokens.

        Each row is ``BOS, bytes..., EOS, PAD...``. A prompt longer than ``max_length - 2`` bytes is
        truncated to at most that many bytes, cut at a character boundary (never inside a multi-byte
        character); BOS and EOS are always present.
        """
        if isinstance(prompts, str):
            raise TypeError("encode takes a list of prompts; wrap a single prompt as [prompt]")
        if max_length < 2:
            raise ValueError(f"max_length must leave room for BOS and EOS (>= 2), got {max_length}")
        ids = torch.full((len(prompts), max_length), self.PAD, dtype=torch.long)
        for row, prompt in enumerate(prompts):
            data = _truncate_utf8(prompt.encode("utf-8"), max_length - 2)
            tokens = [self.BOS, *(b + self.OFFSET for b in data), self.EOS]
            ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        return ids, ids != self.PAD

    def decode(self, ids: torch.Tensor) -> list[str]:
        """Inverse of :meth:`encode` (specials dropped); for logs and tests."""
        out = []
        for row in ids.reshape(-1, ids.shape[-1]).tolist():
            data = bytes(i - self.OFFSET for i in row if i >= self.OFFSET)
            out.append(data.decode("utf-8", errors="replace"))
        return out


def _truncate_utf8(data: bytes, limit: int) -> bytes:
    """First ``<= limit`` bytes of ``data`` ending on a character boundary."""
    if len(data) <= limit:
        return data
    end = limit
    while end > 0 and (data[end] & 0xC0) == 0x80:  # a continuation byte: the cut would split a character
        end -= 1
    return data[:end]


@dataclass
class TextEncoderConfig:
    vocab_size: int = ByteTokenizer.vocab_size
    dim: int = 256
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    max_length: int = 128  # tokens including BOS and EOS (bytes, so ~126 ASCII characters)
    eps: float = 1e-6
    rope_theta: float = 10000.0

    def __post_init__(self) -> None:
        if self.dim % self.num_heads or (self.dim // self.num_heads) % 2:
            raise ValueError(f"dim {self.dim} must split into {self.num_heads} heads of even width")
        if self.vocab_size < ByteTokenizer.vocab_size:
            raise ValueError(f"vocab_size must be at least {ByteTokenizer.vocab_size} (bytes + specials)")


TEXT_ENCODER_PRESETS: dict[str, TextEncoderConfig] = {
    "sprites": TextEncoderConfig(dim=256, depth=4, num_heads=4, max_length=128),
    "test-tiny": TextEncoderConfig(dim=32, depth=2, num_heads=2, max_length=32),
}


class EncoderBlock(nn.Module):
    """Pre-norm block: x + attn(norm(x)), x + mlp(norm(x)), padding keys masked."""

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        dim = config.dim
        self.num_heads = config.num_heads
        self.norm1 = nn.LayerNorm(dim, eps=config.eps)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=config.eps)
        hidden = int(dim * config.mlp_ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(
        self, x: torch.Tensor, key_mask: torch.Tensor, rope: torch.Tensor, backend: str
    ) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).unflatten(-1, (3, self.num_heads, -1)).unbind(2)
        q, k = apply_rotary(q, rope), apply_rotary(k, rope)  # -> [B, heads, L, head_dim]
        out = attention(q, k, v.transpose(1, 2), backend=backend, mask=key_mask)
        x = x + self.proj(out.transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x)), approximate="tanh"))


class TextEncoder(nn.Module):
    """``encoder(ids [B, L], mask [B, L] bool) -> [B, L, dim]`` features, zero at padding."""

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.config = config
        self.attention_backend = "auto"
        self.token_embed = nn.Embedding(config.vocab_size, config.dim)
        self._rope_cache: dict[tuple[int, str], torch.Tensor] = {}
        self.blocks = nn.ModuleList(EncoderBlock(config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.dim, eps=config.eps)
        nn.init.normal_(self.token_embed.weight, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if ids.ndim != 2:
            raise ValueError(f"token ids must be [B, L], got shape {tuple(ids.shape)}")
        if ids.shape[1] > self.config.max_length:
            raise ValueError(
                f"{ids.shape[1]} tokens exceed this encoder's max_length {self.config.max_length}"
            )
        if mask is None:
            mask = ids != ByteTokenizer.PAD
        mask = mask.to(device=ids.device, dtype=torch.bool)
        if not bool(mask.any(dim=1).all()):
            raise ValueError("every row of the text mask needs at least one real token (BOS counts)")
        x = self.token_embed(ids)
        rope = self._rope(ids.shape[1], ids.device)
        key_mask = mask[:, None, None, :]
        for block in self.blocks:
            x = block(x, key_mask, rope, self.attention_backend)
        return self.norm(x) * mask.unsqueeze(-1).to(x.dtype)

    def _rope(self, length: int, device: torch.device) -> torch.Tensor:
        key = (length, str(device))
        if key not in self._rope_cache:
            head_dim = self.config.dim // self.config.num_heads
            self._rope_cache[key] = sequence_rotary_table(length, head_dim, self.config.rope_theta).to(device)
        return self._rope_cache[key]


def encode_prompts(
    encoder: TextEncoder, prompts: list[str], max_length: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenize and encode: ``(embeddings [B, L, dim], mask [B, L] bool)`` on the encoder's device.

    ``L`` is ``max_length`` (default: the encoder's), so batches from different calls line up for CFG.
    """
    ids, mask = ByteTokenizer().encode(list(prompts), max_length or encoder.config.max_length)
    device = encoder.token_embed.weight.device
    ids, mask = ids.to(device), mask.to(device)
    return encoder(ids, mask), mask


def load_text_encoder(
    path: str | os.PathLike, compute_dtype: torch.dtype = torch.float32
) -> tuple[TextEncoder, str]:
    """Load a text encoder saved with ``save_checkpoint(..., kind="text_encoder")`` as ``(module, family)``."""
    state, config_dict, family = load_checkpoint(path, kind="text_encoder")
    encoder = TextEncoder(config_from_dict(TextEncoderConfig, config_dict))
    load_state_strict(encoder, state, str(path))
    return encoder.to(compute_dtype).eval().requires_grad_(False), family
