"""``attention(q, k, v, backend)``: one entry point for every attention backend.

Tensors are ``[B, heads, L, head_dim]``. ``auto`` will prefer the compiled kernel, then sageattention,
then PyTorch SDPA; today only SDPA is wired, the others plug in here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BACKENDS = ("auto", "sdpa")


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str = "auto", mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Scaled dot-product attention over ``[B, heads, L, head_dim]``; ``mask`` is boolean, True = attend."""
    if backend not in BACKENDS:
        raise ValueError(f"attention backend must be one of {BACKENDS}, got {backend!r}")
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
