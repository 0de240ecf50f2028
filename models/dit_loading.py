"""``load_dit(path, compute_dtype)``: one entry point for every DiT checkpoint layout people keep on disk.

Recognised, by looking at the file(s) rather than trusting names:

* our own checkpoint format (``runtime/checkpoints.py``, kind ``"dit"``), config read from its metadata;
* Wan 2.1 original layout single file (Wan's repository, ComfyUI's ``wan2.1_t2v_*.safetensors``), with or
  without a ``model.diffusion_model.`` prefix, and Wan's own folder (``config.json`` ``_class_name`` WanModel);
* Wan diffusers layout: a ``WanTransformer3DModel`` folder (single or sharded safetensors), a pipeline
  root holding ``transformer/``, or a single file in diffusers names;
* CogVideoX transformers (diffusers folder or single file), handed to ``models/cogvideox_dit.py``.

Weights stored as fp32, fp16, bf16 or fp8 (``float8_e4m3fn`` / ``e5m2``, including ComfyUI's scaled fp8
files that carry per-layer ``scale_weight`` / ``weight_scale``) come out in ``compute_dtype``. The model
is built on the ``meta`` device and the converted tensors are assigned to it, so a 14B model never
exists twice in memory.
"""

from __future__ import annotations

import json
import math
import os

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from ..runtime.checkpoints import CONFIG_KEY, KIND_KEY, CheckpointError, config_from_dict, load_checkpoint
from .dit import DIT_PRESETS, DiTConfig, VideoDiT
from .wan_keys import detect_wan_layout, strip_prefix, wan_structure, wan_to_ours

WAN_FAMILY = "wan2.1"
COGVIDEOX_FAMILY = "cogvideox"
COMPUTE_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
WAN_HEAD_DIM = 128  # every released Wan transformer uses 128-channel heads

_FP8 = (torch.float8_e4m3fn, torch.float8_e5m2)
_SCALE_SUFFIXES = (".scale_weight", ".weight_scale")  # ComfyUI's legacy and current names
_IGNORED_SUFFIXES = (".scale_input", ".input_scale", ".comfy_quant")  # fp8-matmul details; we dequantize
_SUPPORTED_QUANT = ("float8_e4m3fn", "float8_e5m2")


def load_dit(
    path: str | os.PathLike, compute_dtype: torch.dtype = torch.float32, num_heads: int | None = None
) -> tuple[nn.Module, str]:
    """Load a DiT checkpoint (file or folder) as ``(module, family)``, weights in ``compute_dtype``.

    The module is in eval mode with gradients off. ``num_heads`` is only needed for a Wan-layout file
    whose width is not a multiple of 128 (never true of released weights) and that has no config.json.
    """
    path = os.fspath(path)
    if compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(f"compute_dtype must be one of {COMPUTE_DTYPES}, got {compute_dtype}")
    if not os.path.exists(path):
        raise CheckpointError(f"DiT checkpoint not found: {path}")
    if os.path.isdir(path):
        model, family = _load_folder(path, compute_dtype, num_heads)
    else:
        model, family = _load_file(path, compute_dtype, num_heads)
    model.eval().requires_grad_(False)
    return model, family


# -- single files -------------------------------------------------------------------------------------
def _load_file(path: str, dtype: torch.dtype, num_heads: int | None) -> tuple[nn.Module, str]:
    if not path.endswith(".safetensors"):
        raise CheckpointError(
            f"{path}: only .safetensors DiT checkpoints are supported (pickled .pt/.ckpt/.bin files can run "
            f"code when loaded); convert it with safetensors first"
        )
    keys, metadata = _header(path)
    if KIND_KEY in metadata or CONFIG_KEY in metadata:
        return _load_own(path, dtype)
    stripped = set(strip_prefix(dict.fromkeys(keys)))
    if _looks_like_cogvideox(stripped) or _looks_like_cogvideox(keys):
        return _load_cogvideox(path, _read_tensors([path], dtype), None, dtype)
    layout = detect_wan_layout(stripped)
    if layout is None:
        raise CheckpointError(
            f"{path} is not a DiT checkpoint this pack knows (VideoCascade, Wan 2.1, CogVideoX): "
            f"its {len(keys)} tensors start with {sorted(keys)[:5]}"
        )
    state = strip_prefix(_read_tensors([path], dtype))
    return _build_wan(state, layout, path, dtype, num_heads=num_heads, json_config=None)


def _load_own(path: str, dtype: torch.dtype) -> tuple[nn.Module, str]:
    state, config_dict, family = load_checkpoint(path, kind="dit")
    config = config_from_dict(DiTConfig, config_dict)
    state = {k: _cast(v, dtype) for k, v in state.items()}
    return _assign(config, state, path), family


# -- folders ------------------------------------------------------------------------------------------
def _load_folder(path: str, dtype: torch.dtype, num_heads: int | None) -> tuple[nn.Module, str]:
    if not os.path.isfile(os.path.join(path, "config.json")) and os.path.isdir(
        os.path.join(path, "transformer")
    ):
        path = os.path.join(path, "transformer")  # a diffusers pipeline root
    config_path = os.path.join(path, "config.json")
    if not os.path.isfile(config_path):
        raise CheckpointError(
            f"{path} is a folder without config.json; give the .safetensors file itself, or a diffusers "
            f"transformer folder (config.json + diffusion_pytorch_model*.safetensors)"
        )
    try:
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{config_path} is not readable JSON ({e})") from e
    class_name = config.get("_class_name", "")
    files = _weight_files(path)
    if class_name == "CogVideoXTransformer3DModel":
        return _load_cogvideox(path, _read_tensors(files, dtype), config, dtype)
    if class_name not in ("WanTransformer3DModel", "WanModel"):
        raise CheckpointError(
            f"{config_path} describes a {class_name or 'unnamed'} model; this loader takes "
            f"WanTransformer3DModel, WanModel (Wan 2.1) or CogVideoXTransformer3DModel folders"
        )
    state = strip_prefix(_read_tensors(files, dtype))
    layout = detect_wan_layout(state)
    if layout is None:
        raise CheckpointError(f"{path}: the weights are not in a Wan layout; first keys {sorted(state)[:5]}")
    return _build_wan(state, layout, path, dtype, num_heads=num_heads, json_config=config)


def _weight_files(folder: str) -> list[str]:
    """The safetensors file(s) of a diffusers-style folder, checking that every shard is there."""
    names = sorted(os.listdir(folder))
    indexes = [n for n in names if n.endswith(".safetensors.index.json")]
    if indexes:
        index_path = os.path.join(folder, indexes[0])
        try:
            with open(index_path, encoding="utf-8") as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
        except (OSError, json.JSONDecodeError, KeyError) as e:
            raise CheckpointError(f"{index_path} is not a valid safetensors index ({e})") from e
        missing = [s for s in shards if not os.path.isfile(os.path.join(folder, s))]
        if missing:
            raise CheckpointError(
                f"{folder}: shard(s) {missing} listed in {indexes[0]} are missing; re-download them"
            )
        return [os.path.join(folder, s) for s in shards]
    if "diffusion_pytorch_model.safetensors" in names:
        return [os.path.join(folder, "diffusion_pytorch_model.safetensors")]
    candidates = [n for n in names if n.endswith(".safetensors")]
    if len(candidates) == 1:
        return [os.path.join(folder, candidates[0])]
    raise CheckpointError(
        f"{folder}: expected diffusion_pytorch_model.safetensors (or a *.safetensors.index.json with its shards), "
        f"found {candidates or 'no .safetensors files'}"
    )


# -- Wan ----------------------------------------------------------------------------------------------
def _build_wan(
    state: dict[str, torch.Tensor],
    layout: str,
    source: str,
    dtype: torch.dtype,
    num_heads: int | None,
    json_config: dict | None,
) -> tuple[nn.Module, str]:
    markers = ("img_emb.", "vace_", "_img.", "image_embedder.", "add_k_proj", "norm_added_k")
    unsupported = sorted(k for k in state if any(m in k for m in markers))
    if unsupported:
        raise CheckpointError(
            f"{source} is a Wan image-to-video / VACE transformer (keys like {unsupported[:3]}); "
            f"only the text-to-video transformers are supported"
        )
    depth, qk_norm, cross_attn_norm = wan_structure(state, layout)
    if depth == 0:
        raise CheckpointError(f"{source} holds no transformer blocks; the file is incomplete")
    ours = wan_to_ours(state, layout, depth, qk_norm, cross_attn_norm, source=source)
    config = infer_wan_config(ours, num_heads=num_heads, json_config=json_config, source=source)
    config.qk_norm, config.cross_attn_norm = qk_norm, cross_attn_norm
    return _assign(config, ours, source), WAN_FAMILY


def infer_wan_config(
    state: dict[str, torch.Tensor],
    num_heads: int | None = None,
    json_config: dict | None = None,
    source: str = "state dict",
) -> DiTConfig:
    """A :class:`DiTConfig` read off the tensor shapes of a Wan state dict in *our* names.

    Heads come from ``num_heads``, else the folder's config.json, else Wan's fixed head width of 128.
    """
    json_config = json_config or {}
    patch = state["patch_embed.proj.weight"]
    dim, in_channels = int(patch.shape[0]), int(patch.shape[1])
    patch_size = tuple(int(s) for s in patch.shape[2:])
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    out_channels = int(state["final_layer.linear.weight"].shape[0]) // math.prod(patch_size)
    if in_channels != out_channels:
        raise CheckpointError(
            f"{source} takes {in_channels} input channels for {out_channels} output channels: an image-to-video "
            f"Wan transformer (latent + mask + image channels); only text-to-video is supported"
        )
    if in_channels == 48:
        raise CheckpointError(
            f"{source} is a Wan 2.2 TI2V transformer (48-channel Wan 2.2 VAE latents); not supported"
        )
    heads = num_heads or json_config.get("num_attention_heads") or json_config.get("num_heads")
    if heads is None:
        if dim % WAN_HEAD_DIM:
            raise CheckpointError(
                f"{source}: cannot infer the number of attention heads of a width-{dim} model "
                f"(not a multiple of Wan's 128-channel heads); pass num_heads="
            )
        heads = dim // WAN_HEAD_DIM
    config = DiTConfig(
        in_channels=in_channels,
        out_channels=out_channels,
        patch_size=patch_size,
        hidden_size=dim,
        depth=depth,
        num_heads=int(heads),
        ffn_dim=int(state["blocks.0.ffn.fc1.weight"].shape[0]),
        text_dim=int(state["text_embed.fc1.weight"].shape[1]),
        frequency_dim=int(state["time_embed.fc1.weight"].shape[1]),
        eps=float(json_config.get("eps", 1e-6)),
    )
    return config


def wan_preset_name(config: DiTConfig) -> str | None:
    """The name of the released Wan preset ``config`` equals, if any (for logs and tooltips)."""
    for name, preset in DIT_PRESETS.items():
        if name.startswith("wan") and preset == config:
            return name
    return None


# -- CogVideoX (delegated to the CogVideoX module, imported only when needed) ---------------------------
def _cogvideox_module():
    try:
        from . import cogvideox_dit
    except ImportError:
        return None
    return cogvideox_dit


def _looks_like_cogvideox(keys) -> bool:
    keys = set(keys)
    module = _cogvideox_module()
    if module is not None and hasattr(module, "looks_like_cogvideox_transformer"):
        return bool(module.looks_like_cogvideox_transformer(keys))
    return "transformer_blocks.0.norm1.linear.weight" in keys and "patch_embed.text_proj.weight" in keys


def _load_cogvideox(
    source: str, state: dict[str, torch.Tensor], config: dict | None, dtype: torch.dtype
) -> tuple[nn.Module, str]:
    module = _cogvideox_module()
    if module is None or not hasattr(module, "cogvideox_transformer_from_state"):
        raise CheckpointError(
            f"{source} is a CogVideoX transformer, but CogVideoX support (models/cogvideox_dit.py) is not "
            f"available in this installation"
        )
    model = module.cogvideox_transformer_from_state(state, config, source=source)
    return model.to(dtype), COGVIDEOX_FAMILY


# -- reading and converting tensors ---------------------------------------------------------------------
def _header(path: str) -> tuple[list[str], dict[str, str]]:
    try:
        with safe_open(path, framework="pt") as f:
            return list(f.keys()), dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({e}); it may be truncated -- re-download it"
        ) from e


def _read_tensors(files: list[str], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """All tensors of ``files`` in ``dtype``; fp8 weights are multiplied by their ComfyUI scales."""
    state: dict[str, torch.Tensor] = {}
    for path in files:
        try:
            with safe_open(path, framework="pt") as f:
                keys = list(f.keys())
                _check_quantization(path, f.metadata() or {}, f, keys)
                scales = {k[: -len(s)]: k for k in keys for s in _SCALE_SUFFIXES if k.endswith(s)}
                for key in keys:
                    if _is_quantization_detail(key):
                        continue
                    tensor = f.get_tensor(key)
                    layer = key[: -len(".weight")] if key.endswith(".weight") else None
                    if layer in scales:
                        tensor = _dequantize(tensor, f.get_tensor(scales[layer]), key, path)
                    state[key] = _cast(tensor, dtype)
        except (SafetensorError, OSError) as e:
            raise CheckpointError(
                f"{path} could not be read ({e}); the file may be truncated or damaged -- re-download it"
            ) from e
    return state


def _is_quantization_detail(key: str) -> bool:
    """Keys that describe fp8 storage rather than weights: the scaled_fp8 marker, scales, configs."""
    return key.rsplit(".", 1)[-1] == "scaled_fp8" or key.endswith(_IGNORED_SUFFIXES + _SCALE_SUFFIXES)


def _check_quantization(path: str, metadata: dict[str, str], f, keys: list[str]) -> None:
    """Refuse quantization formats we cannot dequantize exactly (nvfp4, int8, ...), naming them."""
    formats: set[str] = set()
    if "_quantization_metadata" in metadata:
        try:
            layers = json.loads(metadata["_quantization_metadata"]).get("layers", {})
        except (json.JSONDecodeError, AttributeError):
            layers = {}
        formats |= {v.get("format") if isinstance(v, dict) else v for v in layers.values()}
    for key in keys:
        if key.endswith(".comfy_quant"):
            conf = json.loads(bytes(f.get_tensor(key).tolist()).decode("utf-8"))
            formats.add(conf.get("format"))
    bad = sorted(str(x) for x in formats if x not in _SUPPORTED_QUANT)
    if bad:
        raise CheckpointError(
            f"{path} uses quantization format(s) {bad}; only plain and scaled fp8 (e4m3fn / e5m2) are supported"
        )


def _dequantize(weight: torch.Tensor, scale: torch.Tensor, key: str, path: str) -> torch.Tensor:
    """``weight * scale`` in float32 (per-tensor scale, or one per output channel)."""
    scale = scale.float()
    if scale.numel() == 1:
        scale = scale.reshape(())
    elif scale.numel() == weight.shape[0]:
        scale = scale.reshape(-1, *([1] * (weight.ndim - 1)))
    else:
        raise CheckpointError(
            f"{path}: scale of '{key}' has shape {tuple(scale.shape)}, which fits neither per-tensor nor "
            f"per-output-channel scaling of a {tuple(weight.shape)} weight"
        )
    return weight.float() * scale


def _cast(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return tensor.to(dtype) if tensor.is_floating_point() else tensor


def _assign(config: DiTConfig, state: dict[str, torch.Tensor], source: str) -> VideoDiT:
    """Build ``VideoDiT(config)`` without allocating weights, then adopt ``state``'s tensors as its own."""
    with torch.device("meta"):
        model = VideoDiT(config)
    expected = model.state_dict()
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not match a {config.attention_layout}-attention DiT of its config: "
            f"{len(missing)} missing key(s) {missing[:5]}, {len(unexpected)} unexpected key(s) {unexpected[:5]}"
        )
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise CheckpointError(
                f"{source}: tensor '{name}' has shape {tuple(tensor.shape)}, the network expects "
                f"{tuple(expected[name].shape)}"
            )
    model.load_state_dict(state, strict=True, assign=True)
    return model
