"""Encoder-only T5 (v1.1, gated GELU) and umT5 (a relative position bias in every layer).

CogVideoX conditions on T5-XXL, Wan 2.1 on umT5-XXL. Weights load from the layouts users keep: Hugging Face
``T5EncoderModel`` / ``UMT5EncoderModel`` names (with or without ``config.json``, sharded or not, full
encoder-decoder files included) and ComfyUI's ``models/text_encoders`` single files, whose names are the same
but may carry a prefix, a ``scaled_fp8`` marker, per-layer ``scale_weight`` factors and an embedded
``spiece_model`` tokenizer. Weights stay in their stored dtype (fp8 included) and are cast to the compute
dtype layer by layer, so an fp8 file needs fp8 memory.
"""

from __future__ import annotations

import glob
import json
import math
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..runtime.checkpoints import CheckpointError, load_state_strict, read_safetensors


@dataclass
class T5EncoderConfig:
    vocab_size: int = 32128
    d_model: int = 4096
    d_kv: int = 64
    d_ff: int = 10240
    num_layers: int = 24
    num_heads: int = 64
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6
    gated: bool = True  # v1.1: wi_0 (activated) * wi_1; original T5: a single wi
    activation: str = "gelu_tanh"  # "gelu_tanh" | "gelu" | "relu"
    per_layer_position_bias: bool = False  # umT5: every layer has its own relative attention bias


T5_V1_1_XXL = T5EncoderConfig()  # CogVideoX's text encoder
UMT5_XXL = T5EncoderConfig(vocab_size=256384, per_layer_position_bias=True)  # Wan 2.1's text encoder

_ACTIVATIONS = {
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu": F.gelu,
    "relu": F.relu,
}
# Hugging Face / ComfyUI activation names -> ours.
_HF_ACTIVATIONS = {
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "gelu": "gelu",
    "relu": "relu",
}


class StoredLinear(nn.Linear):
    """Bias-free linear whose weight may be stored in fp8 (with a scale); cast to the input dtype per call."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features, bias=False)
        # A Python float, not a buffer: ``module.to(bf16)`` must not round the scale.
        self.weight_scale: float | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype)
        if self.weight_scale is not None:
            w = w * self.weight_scale
        return F.linear(x, w)


class RMSNorm(nn.Module):
    """T5's LayerNorm: scale only, no mean subtraction, statistics in fp32."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.float().pow(2).mean(-1, keepdim=True)
        normed = (x * torch.rsqrt(variance + self.eps)).to(x.dtype)
        return self.weight.to(x.dtype) * normed


def relative_position_buckets(length: int, num_buckets: int, max_distance: int, device) -> torch.Tensor:
    """``[L, L]`` bucket index of (key - query) offsets, bidirectional: half the buckets per direction,
    exact for small offsets and logarithmic up to ``max_distance``."""
    pos = torch.arange(length, dtype=torch.long, device=device)
    rel = pos[None, :] - pos[:, None]
    half = num_buckets // 2
    buckets = (rel > 0).long() * half
    rel = rel.abs()
    exact = half // 2
    log_ratio = torch.log(rel.float() / exact) / math.log(max_distance / exact) * (half - exact)
    large = torch.clamp(exact + log_ratio.to(torch.long), max=half - 1)
    return buckets + torch.where(rel < exact, rel, large)


class SelfAttention(nn.Module):
    """T5 attention: no 1/sqrt(d) scaling (folded into the weights), an additive learned position bias."""

    def __init__(self, cfg: T5EncoderConfig, has_bias: bool) -> None:
        super().__init__()
        inner = cfg.num_heads * cfg.d_kv
        self.cfg = cfg
        self.q = StoredLinear(cfg.d_model, inner)
        self.k = StoredLinear(cfg.d_model, inner)
        self.v = StoredLinear(cfg.d_model, inner)
        self.o = StoredLinear(inner, cfg.d_model)
        if has_bias:
            self.relative_attention_bias = nn.Embedding(cfg.relative_attention_num_buckets, cfg.num_heads)

    def position_bias(self, length: int, dtype: torch.dtype) -> torch.Tensor:
        """``[1, heads, L, L]`` learned bias for this layer's table."""
        table = self.relative_attention_bias.weight
        buckets = relative_position_buckets(
            length,
            self.cfg.relative_attention_num_buckets,
            self.cfg.relative_attention_max_distance,
            table.device,
        )
        return F.embedding(buckets, table).to(dtype).permute(2, 0, 1)[None]

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, length, _ = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, length, self.cfg.num_heads, self.cfg.d_kv).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            heads(self.q(x)), heads(self.k(x)), heads(self.v(x)), attn_mask=bias, scale=1.0
        )
        return self.o(out.transpose(1, 2).reshape(b, length, -1))


class LayerSelfAttention(nn.Module):
    def __init__(self, cfg: T5EncoderConfig, has_bias: bool) -> None:
        super().__init__()
        self.SelfAttention = SelfAttention(cfg, has_bias)
        self.layer_norm = RMSNorm(cfg.d_model, cfg.layer_norm_epsilon)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return x + self.SelfAttention(self.layer_norm(x), bias)


class DenseActDense(nn.Module):
    def __init__(self, cfg: T5EncoderConfig) -> None:
        super().__init__()
        self.gated = cfg.gated
        self.act = _ACTIVATIONS[cfg.activation]
        if cfg.gated:
            self.wi_0 = StoredLinear(cfg.d_model, cfg.d_ff)
            self.wi_1 = StoredLinear(cfg.d_model, cfg.d_ff)
        else:
            self.wi = StoredLinear(cfg.d_model, cfg.d_ff)
        self.wo = StoredLinear(cfg.d_ff, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.wi_0(x)) * self.wi_1(x) if self.gated else self.act(self.wi(x))
        return self.wo(h)


class LayerFF(nn.Module):
    def __init__(self, cfg: T5EncoderConfig) -> None:
        super().__init__()
        self.DenseReluDense = DenseActDense(cfg)
        self.layer_norm = RMSNorm(cfg.d_model, cfg.layer_norm_epsilon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.DenseReluDense(self.layer_norm(x))


def _clamp_fp16(x: torch.Tensor) -> torch.Tensor:
    """Keep fp16 activations finite (T5-XXL overflows fp16), as the reference implementation does."""
    if x.dtype != torch.float16:
        return x
    top = torch.finfo(torch.float16).max
    limit = torch.where(torch.isinf(x).any(), top - 1000, top)
    return torch.clamp(x, min=-limit, max=limit)


class T5Block(nn.Module):
    def __init__(self, cfg: T5EncoderConfig, has_bias: bool) -> None:
        super().__init__()
        self.layer = nn.ModuleList([LayerSelfAttention(cfg, has_bias), LayerFF(cfg)])

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = _clamp_fp16(self.layer[0](x, bias))
        return _clamp_fp16(self.layer[1](x))


class T5Stack(nn.Module):
    def __init__(self, cfg: T5EncoderConfig) -> None:
        super().__init__()
        self.block = nn.ModuleList(
            T5Block(cfg, has_bias=cfg.per_layer_position_bias or i == 0) for i in range(cfg.num_layers)
        )
        self.final_layer_norm = RMSNorm(cfg.d_model, cfg.layer_norm_epsilon)


class T5Encoder(nn.Module):
    """``encoder(input_ids [B, L], attention_mask [B, L] | None) -> hidden states [B, L, d_model]``.

    Computes in ``compute_dtype`` (settable; by default the norms' dtype, bf16 for fp8-stored weights).
    Module names follow Hugging Face so a ``state_dict`` round-trips with ``T5EncoderModel``.
    """

    def __init__(self, config: T5EncoderConfig) -> None:
        super().__init__()
        if config.activation not in _ACTIVATIONS:
            raise ValueError(
                f"T5 activation must be one of {sorted(_ACTIVATIONS)}, got {config.activation!r}"
            )
        self.config = config
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = T5Stack(config)
        self.compute_dtype_override: torch.dtype | None = None

    @property
    def compute_dtype(self) -> torch.dtype:
        if self.compute_dtype_override is not None:
            return self.compute_dtype_override
        dtype = self.encoder.final_layer_norm.weight.dtype
        return dtype if dtype in (torch.float32, torch.float16, torch.bfloat16) else torch.bfloat16

    @compute_dtype.setter
    def compute_dtype(self, dtype: torch.dtype | None) -> None:
        self.compute_dtype_override = dtype

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        dtype = self.compute_dtype
        table = self.shared.weight
        x = F.embedding(input_ids.to(table.device), table)
        if table.element_size() == 1:
            x = torch.nan_to_num(x.to(dtype))  # fp8 tables hold NaN where values overflowed on conversion
        x = x.to(dtype)
        length = input_ids.shape[1]
        mask = None
        if attention_mask is not None:
            keep = attention_mask.to(device=x.device, dtype=torch.bool)[:, None, None, :]
            mask = torch.zeros(keep.shape, dtype=dtype, device=x.device).masked_fill(
                ~keep, torch.finfo(dtype).min
            )
        bias = None
        for block in self.encoder.block:
            attn = block.layer[0].SelfAttention
            if hasattr(attn, "relative_attention_bias"):  # every layer in umT5, the first one in T5
                bias = attn.position_bias(length, dtype)
                if mask is not None:
                    bias = bias + mask
            x = block(x, bias)
        return self.encoder.final_layer_norm(x)


# -- loading ------------------------------------------------------------------------------------------------
_FINAL_NORM = "encoder.final_layer_norm.weight"
_MARKER_KEYS = ("scaled_fp8", "spiece_model")


def looks_like_t5_encoder(keys: Any) -> bool:
    """True for T5/umT5 encoder weights in Hugging Face or ComfyUI naming (any prefix)."""
    keys = list(keys)
    return any(k.endswith(_FINAL_NORM) for k in keys) and any(
        k.endswith("encoder.block.0.layer.0.SelfAttention.q.weight") for k in keys
    )


def _strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keep the T5 encoder's tensors, without a prefix such as ``t5xxl.transformer.``."""
    norms = [k for k in state if k.endswith(_FINAL_NORM)]
    if not norms:
        raise CheckpointError(f"no '{_FINAL_NORM}' tensor: not a T5 / umT5 text encoder")
    if len(norms) > 1:
        raise CheckpointError(f"several T5 encoders in one file ({norms}); load one of them")
    prefix = norms[0][: -len(_FINAL_NORM)]
    if not prefix:
        return dict(state)
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def normalize_t5_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Bring any supported layout to our names: ``(tensors, {linear name: fp8 weight scale})``.

    Drops decoder / LM-head tensors of full encoder-decoder files, the tied ``encoder.embed_tokens`` copy,
    ComfyUI's ``scaled_fp8`` / ``spiece_model`` entries and ``scale_input`` factors (used only for fp8
    matmuls); ``scale_weight`` factors are returned separately.
    """
    state = _strip_prefix({k: v for k, v in state.items() if k not in _MARKER_KEYS})
    out: dict[str, torch.Tensor] = {}
    scales: dict[str, float] = {}
    for key, value in state.items():
        if key in _MARKER_KEYS or key.startswith(("decoder.", "lm_head.")) or key.endswith(".scale_input"):
            continue
        if key.endswith(".scale_weight"):
            scales[key[: -len(".scale_weight")]] = float(value.float().reshape(-1)[0])
            continue
        out[key] = value
    embed = out.pop("encoder.embed_tokens.weight", None)
    if "shared.weight" not in out and embed is not None:
        out["shared.weight"] = embed
    return out, scales


def config_from_hf(config: dict[str, Any]) -> T5EncoderConfig:
    """Our config from a Hugging Face / ComfyUI T5 or umT5 ``config.json`` dict."""
    act = config.get("dense_act_fn")
    gated = config.get("is_gated_act")
    proj = config.get("feed_forward_proj")
    if proj is not None:  # "gated-gelu" / "relu" style
        gated = proj.startswith("gated-")
        name = proj.split("-")[-1]
        act = act or ("gelu_new" if name == "gelu" else name)
    if act not in _HF_ACTIVATIONS:
        raise CheckpointError(f"T5 activation {act!r} is not supported (known: {sorted(_HF_ACTIVATIONS)})")
    base = T5EncoderConfig()
    return T5EncoderConfig(
        vocab_size=int(config.get("vocab_size", base.vocab_size)),
        d_model=int(config.get("d_model", base.d_model)),
        d_kv=int(config.get("d_kv", base.d_kv)),
        d_ff=int(config.get("d_ff", base.d_ff)),
        num_layers=int(config.get("num_layers", base.num_layers)),
        num_heads=int(config.get("num_heads", base.num_heads)),
        relative_attention_num_buckets=int(config.get("relative_attention_num_buckets", 32)),
        relative_attention_max_distance=int(config.get("relative_attention_max_distance", 128)),
        layer_norm_epsilon=float(config.get("layer_norm_epsilon", 1e-6)),
        gated=bool(gated) if gated is not None else True,
        activation=_HF_ACTIVATIONS[act],
        per_layer_position_bias=config.get("model_type") == "umt5",
    )


def config_from_state(state: dict[str, torch.Tensor]) -> T5EncoderConfig:
    """Infer the config from tensor shapes (normalized names). umT5 = every layer has its own bias table."""
    required = ["shared.weight", "encoder.block.0.layer.0.SelfAttention.q.weight"]
    bias_key = "encoder.block.{}.layer.0.SelfAttention.relative_attention_bias.weight"
    required.append(bias_key.format(0))
    absent = [k for k in required if k not in state]
    if absent:
        raise CheckpointError(f"T5 encoder weights are truncated or of another model: missing {absent}")
    layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.block."))
    with_bias = [i for i in range(layers) if bias_key.format(i) in state]
    if len(with_bias) not in (1, layers):
        raise CheckpointError(
            f"T5 encoder has relative attention bias tables in layers {with_bias} of {layers}: "
            "expected only layer 0 (T5) or every layer (umT5)"
        )
    table = state[bias_key.format(0)]
    gated = "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in state
    wi = state["encoder.block.0.layer.1.DenseReluDense." + ("wi_0" if gated else "wi") + ".weight"]
    vocab, d_model = state["shared.weight"].shape
    heads = int(table.shape[1])
    return T5EncoderConfig(
        vocab_size=int(vocab),
        d_model=int(d_model),
        d_kv=int(state["encoder.block.0.layer.0.SelfAttention.q.weight"].shape[0]) // heads,
        d_ff=int(wi.shape[0]),
        num_layers=layers,
        num_heads=heads,
        relative_attention_num_buckets=int(table.shape[0]),
        gated=gated,
        activation="gelu_tanh" if gated else "relu",
        per_layer_position_bias=len(with_bias) == layers and layers > 1,
    )


def t5_encoder_from_state(
    state: dict[str, torch.Tensor],
    config_dict: dict[str, Any] | None = None,
    source: str = "T5 encoder",
) -> T5Encoder:
    """Build a :class:`T5Encoder` from weights in any supported layout (see module docstring).

    Tensors keep their stored dtypes (fp32 / fp16 / bf16 / fp8); missing, unexpected or mis-shaped tensors
    raise :class:`CheckpointError` naming them.
    """
    if not looks_like_t5_encoder(state.keys()):
        raise CheckpointError(
            f"{source} is not a T5 / umT5 text encoder (no 'encoder.block.0.layer.0.SelfAttention.q.weight' "
            f"and '{_FINAL_NORM}' tensors)"
        )
    tensors, scales = normalize_t5_state(state)
    config = config_from_hf(config_dict) if config_dict else config_from_state(tensors)
    with torch.device("meta"):
        model = T5Encoder(config)
    unknown_scales = sorted(
        set(scales) - {n for n, m in model.named_modules() if isinstance(m, StoredLinear)}
    )
    if unknown_scales:
        raise CheckpointError(f"{source}: scale_weight for unknown layers {unknown_scales[:5]}")
    load_state_strict(model, tensors, source, assign=True)  # names and shapes checked, tensors adopted
    for name, module in model.named_modules():
        if isinstance(module, StoredLinear):
            module.weight_scale = scales.get(name)
    return model.eval().requires_grad_(False)


def load_t5_encoder(path: str | os.PathLike, config_path: str | os.PathLike | None = None) -> T5Encoder:
    """Load a T5 / umT5 encoder from a ``.safetensors`` file or a folder of shards (+ ``config.json``)."""
    path = str(path)
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "*.safetensors")))
        if not files:
            raise CheckpointError(f"no .safetensors files in {path}")
        if config_path is None and os.path.isfile(os.path.join(path, "config.json")):
            config_path = os.path.join(path, "config.json")
    else:
        files = [path]
    state: dict[str, torch.Tensor] = {}
    for file in files:
        tensors, _ = read_safetensors(file)
        state.update(tensors)
    config_dict = None
    if config_path is not None:
        with open(config_path, encoding="utf-8") as f:
            config_dict = json.load(f)
    return t5_encoder_from_state(state, config_dict, source=path)
