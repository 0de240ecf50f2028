"""State-dict names: ours <-> Wan 2.1's original layout <-> diffusers' ``WanTransformer3DModel``.

The original layout is what Wan's own repository saves and what ComfyUI users keep in
``models/diffusion_models/wan2.1_t2v_*.safetensors`` (sometimes under ``model.diffusion_model.``).
Our self-attention computes q, k and v with one matmul (and the cross-attention k and v with one), so
those weights are concatenated along the output dimension on the way in and split on the way out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import torch

from ..runtime.checkpoints import CheckpointError

ORIGINAL = "wan-original"
DIFFUSERS = "wan-diffusers"
LAYOUTS = (ORIGINAL, DIFFUSERS)

# Prefixes single-file checkpoints put in front of the transformer's own names.
KNOWN_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "transformer.")

# (our module, original module(s), diffusers module(s)); several sources are concatenated on dim 0.
_TOP_MODULES = [
    ("patch_embed.proj", ("patch_embedding",), ("patch_embedding",)),
    ("time_embed.fc1", ("time_embedding.0",), ("condition_embedder.time_embedder.linear_1",)),
    ("time_embed.fc2", ("time_embedding.2",), ("condition_embedder.time_embedder.linear_2",)),
    ("time_modulation", ("time_projection.1",), ("condition_embedder.time_proj",)),
    ("text_embed.fc1", ("text_embedding.0",), ("condition_embedder.text_embedder.linear_1",)),
    ("text_embed.fc2", ("text_embedding.2",), ("condition_embedder.text_embedder.linear_2",)),
    ("final_layer.linear", ("head.head",), ("proj_out",)),
]
_BLOCK_MODULES = [
    (
        "self_attn.qkv",
        ("self_attn.q", "self_attn.k", "self_attn.v"),
        ("attn1.to_q", "attn1.to_k", "attn1.to_v"),
    ),
    ("self_attn.out", ("self_attn.o",), ("attn1.to_out.0",)),
    ("cross_attn.q", ("cross_attn.q",), ("attn2.to_q",)),
    ("cross_attn.kv", ("cross_attn.k", "cross_attn.v"), ("attn2.to_k", "attn2.to_v")),
    ("cross_attn.out", ("cross_attn.o",), ("attn2.to_out.0",)),
    ("ffn.fc1", ("ffn.0",), ("ffn.net.0.proj",)),
    ("ffn.fc2", ("ffn.2",), ("ffn.net.2",)),
]
_QK_NORMS = [
    ("self_attn.norm_q", ("self_attn.norm_q",), ("attn1.norm_q",)),
    ("self_attn.norm_k", ("self_attn.norm_k",), ("attn1.norm_k",)),
    ("cross_attn.norm_q", ("cross_attn.norm_q",), ("attn2.norm_q",)),
    ("cross_attn.norm_k", ("cross_attn.norm_k",), ("attn2.norm_k",)),
]
# Wan calls the cross-attention norm "norm3" (its MLP norm is "norm2"); diffusers swaps the two names.
_CROSS_NORM = ("cross_norm", ("norm3",), ("norm2",))


def wan_key_table(
    depth: int, qk_norm: bool, cross_attn_norm: bool
) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """Every tensor of a Wan-layout model as ``(ours, original sources, diffusers sources)``."""
    table: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []

    def add_linear(
        ours: str, orig: tuple[str, ...], diff: tuple[str, ...], params=("weight", "bias")
    ) -> None:
        for p in params:
            table.append((f"{ours}.{p}", tuple(f"{o}.{p}" for o in orig), tuple(f"{d}.{p}" for d in diff)))

    for ours, orig, diff in _TOP_MODULES:
        add_linear(ours, orig, diff)
    table.append(("final_layer.modulation", ("head.modulation",), ("scale_shift_table",)))
    for i in range(depth):
        pre = f"blocks.{i}."
        block = list(_BLOCK_MODULES)
        for ours, orig, diff in block:
            add_linear(pre + ours, tuple(pre + o for o in orig), tuple(pre + d for d in diff))
        if qk_norm:
            for ours, orig, diff in _QK_NORMS:
                add_linear(pre + ours, (pre + orig[0],), (pre + diff[0],), params=("weight",))
        if cross_attn_norm:
            ours, orig, diff = _CROSS_NORM
            add_linear(pre + ours, (pre + orig[0],), (pre + diff[0],))
        table.append((pre + "modulation", (pre + "modulation",), (pre + "scale_shift_table",)))
    return table


def strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a ``model.diffusion_model.``-style prefix shared by the transformer's keys."""
    for prefix in KNOWN_PREFIXES:
        if any(k.startswith(prefix + "blocks.") for k in state):
            return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state.items()}
    return state


def detect_wan_layout(keys: Iterable[str]) -> str | None:
    """``ORIGINAL``, ``DIFFUSERS`` or None for (prefix-free) keys."""
    keys = set(keys)
    if "blocks.0.self_attn.q.weight" in keys and "patch_embedding.weight" in keys:
        return ORIGINAL
    if "blocks.0.attn1.to_q.weight" in keys and "patch_embedding.weight" in keys:
        return DIFFUSERS
    return None


def wan_structure(keys: Iterable[str], layout: str) -> tuple[int, bool, bool]:
    """``(depth, qk_norm, cross_attn_norm)`` read from the key names of a Wan-layout state dict."""
    keys = set(keys)
    indices = {int(m.group(1)) for k in keys if (m := re.match(r"blocks\.(\d+)\.", k))}
    depth = max(indices) + 1 if indices else 0
    if layout == ORIGINAL:
        qk_norm = "blocks.0.self_attn.norm_q.weight" in keys
        cross_attn_norm = "blocks.0.norm3.weight" in keys
    else:
        qk_norm = "blocks.0.attn1.norm_q.weight" in keys
        cross_attn_norm = "blocks.0.norm2.weight" in keys
    return depth, qk_norm, cross_attn_norm


def wan_to_ours(
    state: dict[str, torch.Tensor],
    layout: str,
    depth: int,
    qk_norm: bool = True,
    cross_attn_norm: bool = True,
    source: str = "state dict",
) -> dict[str, torch.Tensor]:
    """Rename (and fuse q/k/v of) a prefix-free Wan state dict into ours; consumes ``state``.

    Raises :class:`CheckpointError` naming ``source`` and the missing / unexpected keys.
    """
    column = _column(layout)
    table = wan_key_table(depth, qk_norm, cross_attn_norm)
    needed = {name for row in table for name in row[column]}
    missing = sorted(needed - state.keys(), key=_natural)
    unexpected = sorted(state.keys() - needed, key=_natural)
    if missing or unexpected:
        raise CheckpointError(
            f"{source} is not a complete Wan 2.1 text-to-video transformer ({layout} layout, {depth} blocks): "
            f"{len(missing)} missing key(s) {_preview(missing)}, {len(unexpected)} unexpected key(s) "
            f"{_preview(unexpected)}"
            + (" -- is the file truncated or from another model?" if missing else "")
        )
    ours: dict[str, torch.Tensor] = {}
    for row in table:
        parts = [state.pop(name) for name in row[column]]
        ours[row[0]] = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
    return ours


def ours_to_wan(
    state: dict[str, torch.Tensor],
    layout: str,
    depth: int,
    qk_norm: bool = True,
    cross_attn_norm: bool = True,
) -> dict[str, torch.Tensor]:
    """Our (full-layout) state dict in Wan's ``layout`` names, fused projections split again."""
    column = _column(layout)
    temporal = [k for k in state if ".temporal_" in k]
    if temporal:
        raise ValueError(f"a factorized-attention DiT has no Wan equivalent (keys like {temporal[:2]})")
    out: dict[str, torch.Tensor] = {}
    for row in wan_key_table(depth, qk_norm, cross_attn_norm):
        tensor = state[row[0]]
        names = row[column]
        for name, part in zip(names, tensor.chunk(len(names), dim=0)):
            out[name] = part
    return out


def _column(layout: str) -> int:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    return 1 if layout == ORIGINAL else 2


def _preview(keys: list[str], limit: int = 6) -> str:
    return "[" + ", ".join(keys[:limit]) + (", ..." if len(keys) > limit else "") + "]"


def _natural(key: str) -> list:
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", key)]
