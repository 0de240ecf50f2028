"""What the loader nodes return: model handles that carry everything their consumers need to know.

* text encoders: our byte-level encoder, or T5 / umT5 with a tokenizer and the family's prompt padding;
* VAEs: any family ``vae.load_vae`` reads, the handle's family being the latent format it produces;
* DiTs: the latent format and text width they expect and their family's sampler preset.

Our own DiT checkpoints name, in ``videocascade.family``, the latent format (VAE family) they were trained
on; two optional metadata entries refine that: ``videocascade.latent_format`` and ``videocascade.sampler``
(JSON: ``{"prediction": {"kind": "flow", "shift": 3.0}, "solver": "unipc", "steps": 30, "cfg": 5.0}``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from .checkpoints import KIND_KEY, CheckpointError, config_from_dict
from .comfy import comfy_module
from .devices import compute_device, offload_device, resolve_dtype
from .handles import ModelHandle
from .model_paths import resolve_file

PATH_CHOICE = "(path below)"  # the loaders' dropdown entry meaning "use the path input"
DTYPE_CHOICES = ("auto", "fp32", "fp16", "bf16")
LATENT_FORMAT_KEY = "videocascade.latent_format"
SAMPLER_KEY = "videocascade.sampler"

# What to load instead when a conditioning does not fit a DiT, by DiT family.
TEXT_ENCODER_HINTS = {
    "wan2.1": "use the umT5-XXL text encoder for Wan 2.1 (umt5_xxl_*.safetensors)",
    "cogvideox": "use the T5-XXL text encoder for CogVideoX (t5xxl_*.safetensors)",
}


def resolve_weights(kind: str, choice: str, path: str = "") -> str:
    """The file or folder a loader reads: ``path`` when given, else the dropdown ``choice``."""
    path = (path or "").strip()
    if path:
        expanded = os.path.abspath(os.path.expanduser(path))
        if not os.path.exists(expanded):
            raise FileNotFoundError(f"{kind} weights not found at path {expanded!r}; check the 'path' input")
        return expanded
    if choice == PATH_CHOICE:
        raise ValueError(f"no {kind} weights chosen: pick a file in the dropdown or type a file/folder path")
    return resolve_file(kind, choice)


def _header(path: str) -> tuple[list[str], dict[str, str]]:
    """Tensor names and metadata of a safetensors file (nothing else is read)."""
    try:
        with safe_open(path, framework="pt") as f:
            return list(f.keys()), dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e}); re-download it") from e


@contextmanager
def model_on_device(handle: ModelHandle) -> Iterator[torch.nn.Module]:
    """The handle's model on the compute device for the block, offloaded afterwards (dtype unchanged).

    Inside ComfyUI, ComfyUI's own models are evicted first when the device needs the room.
    """
    model, device = handle.model, compute_device()
    current = next(model.parameters()).device
    if current != device:
        mm = comfy_module("comfy.model_management")
        if mm is not None and hasattr(mm, "free_memory"):
            size = sum(p.numel() * p.element_size() for p in model.parameters())
            mm.free_memory(int(size * 1.2), device)
        model.to(device)
    try:
        yield model
    finally:
        if offload_device() != device:
            model.to(offload_device())
            mm = comfy_module("comfy.model_management")
            if mm is not None and hasattr(mm, "soft_empty_cache"):
                mm.soft_empty_cache()


# -- text encoders ------------------------------------------------------------------------------------------
def load_text_encoder_handle(path: str, dtype_name: str = "auto", tokenizer: str = "") -> ModelHandle:
    """Our byte-level encoder (a VideoCascade checkpoint) or a T5 / umT5 encoder with its tokenizer."""
    dtype = resolve_dtype(dtype_name, compute_device())
    metadata = _header(path)[1] if os.path.isfile(path) and path.endswith(".safetensors") else {}
    if metadata.get(KIND_KEY) == "text_encoder":
        from ..models.text_encoder import load_text_encoder

        model, family = load_text_encoder(path, dtype)
        options = {"encoding": "bytes", "text_dim": model.config.dim}
        return ModelHandle(model, model.config, family, "text_encoder", dtype, path, options)
    if KIND_KEY in metadata:
        raise CheckpointError(f"{path} holds a VideoCascade '{metadata[KIND_KEY]}', not a text encoder")

    from ..models.t5 import load_t5_encoder, looks_like_t5_encoder

    if os.path.isfile(path) and not looks_like_t5_encoder(_header(path)[0]):
        raise CheckpointError(
            f"{path} is not a text encoder this pack knows: expected a VideoCascade text encoder, umT5-XXL "
            "(Wan 2.1) or T5-XXL (CogVideoX) weights"
        )
    from ..models.tokenizers import COGVIDEOX_PROMPTS, WAN_PROMPTS

    model = load_t5_encoder(path)
    model.compute_dtype = dtype
    umt5 = model.config.per_layer_position_bias
    family = "wan2.1" if umt5 else "cogvideox"
    options = {
        "encoding": "t5",
        "tokenizer": _t5_tokenizer(path, tokenizer, umt5),
        "prompts": WAN_PROMPTS if umt5 else COGVIDEOX_PROMPTS,
        "text_dim": model.config.d_model,
    }
    return ModelHandle(model, model.config, family, "text_encoder", dtype, path, options)


def _t5_tokenizer(weights: str, given: str, umt5: bool):
    """The tokenizer: the one given, else embedded in the file, next to the weights, or ComfyUI's T5 one."""
    from ..models.tokenizers import TokenizerError, embedded_spiece_model, load_tokenizer

    if given.strip():
        return load_tokenizer(os.path.abspath(os.path.expanduser(given.strip())))
    looked: list[str] = []
    if os.path.isfile(weights):
        if embedded_spiece_model(weights) is not None:
            return load_tokenizer(weights)
        looked.append(f"an embedded 'spiece_model' in {weights}")
        folder = os.path.dirname(weights)
    else:
        folder = weights
    # A Hugging Face model folder holds its tokenizer; a diffusers pipeline keeps it in ../tokenizer.
    for candidate in (folder, os.path.join(os.path.dirname(folder), "tokenizer")):
        if os.path.isdir(candidate):
            try:
                return load_tokenizer(candidate)
            except TokenizerError:
                looked.append(candidate)
    comfy_root = os.path.dirname(getattr(comfy_module("comfy"), "__file__", "") or "")
    bundled = os.path.join(comfy_root, "text_encoders", "t5_tokenizer")
    if not umt5 and comfy_root and os.path.isdir(bundled):
        return load_tokenizer(bundled)  # the T5 tokenizer ComfyUI ships, the one t5xxl files use
    name = "umT5 (Wan 2.1)" if umt5 else "T5 (CogVideoX)"
    raise FileNotFoundError(
        f"no tokenizer found for the {name} encoder {weights}; looked for {', '.join(looked)}. Set the "
        "'tokenizer' input to a tokenizer.json, a sentencepiece .model or a folder holding one"
    )


@torch.no_grad()
def encode_text(handle: ModelHandle, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts -> ``(embeddings [B, L, D] float32, mask [B, L] bool)`` on the CPU, padded as the family's
    reference pipeline pads them."""
    with model_on_device(handle) as model:
        if handle.options["encoding"] == "bytes":
            from ..models.text_encoder import encode_prompts

            emb, mask = encode_prompts(model, prompts)
        else:
            from ..models.tokenizers import encode_prompts_t5

            emb, mask = encode_prompts_t5(
                model, handle.options["tokenizer"], prompts, **handle.options["prompts"]
            )
    return emb.float().cpu(), mask.bool().cpu()


# -- VAEs ---------------------------------------------------------------------------------------------------
def load_vae_handle(path: str, dtype_name: str = "auto") -> ModelHandle:
    from ..vae.loading import load_vae

    dtype = resolve_dtype(dtype_name, compute_device())
    model, family = load_vae(path, dtype)
    return ModelHandle(model, getattr(model, "config", None), family, "vae", dtype, path)


# -- learned TSR / SSR --------------------------------------------------------------------------------------
def load_interpolator_handle(path: str, dtype_name: str = "auto") -> ModelHandle:
    """A learned temporal interpolator (``models/tsr.py``, checkpoint kind ``interpolator``)."""
    from ..models.tsr import load_tsr

    dtype = resolve_dtype(dtype_name, compute_device())
    model, family = load_tsr(path, dtype)
    return ModelHandle(model, model.config, family, "interpolator", dtype, path)


def load_upscaler_handle(path: str, dtype_name: str = "auto") -> ModelHandle:
    """A learned spatial upscaler (``models/ssr.py``, checkpoint kind ``upscaler``)."""
    from ..models.ssr import load_ssr

    dtype = resolve_dtype(dtype_name, compute_device())
    model, family = load_ssr(path, dtype)
    return ModelHandle(model, model.config, family, "upscaler", dtype, path)


def check_handle(value: Any, kind: str, input_name: str, loader: str) -> ModelHandle:
    """``value`` if it is a model handle of ``kind``, else a clear error naming the input and the fix."""
    if not isinstance(value, ModelHandle) or value.kind != kind:
        got = f"a {value.kind} model" if isinstance(value, ModelHandle) else type(value).__name__
        article = "an" if kind[0] in "aeiou" else "a"
        raise TypeError(
            f"'{input_name}' expects {article} {kind} from {loader}, got {got}; connect {loader}'s output"
        )
    return value


# -- DiTs ---------------------------------------------------------------------------------------------------
def load_dit_handle(path: str, dtype_name: str = "auto", attention_backend: str = "auto") -> ModelHandle:
    """A DiT with ``options``: ``latent_format``, ``text_dim``, ``sampler`` (a preset, or "wan2.1": by size),
    ``use_context_mask`` (False where the reference model attends to the padding too)."""
    from ..models.dit_loading import load_dit

    dtype = resolve_dtype(dtype_name, compute_device())
    model, family = load_dit(path, dtype)
    model.attention_backend = attention_backend
    config = model.config
    if family == "cogvideox":
        # CogVideoX 2B (sin-cos positions) and 5B / 1.5 (rotary) have their own reference schedulers.
        name = "cogvideox-5b" if config.use_rotary_positional_embeddings else "cogvideox-2b"
        options = {"latent_format": family, "text_dim": config.text_embed_dim, "sampler": name}
        options["use_context_mask"] = False
    elif family == "wan2.1":
        options = {"latent_format": family, "text_dim": config.text_dim, "sampler": "wan2.1"}
        options["use_context_mask"] = False  # Wan attends to its zero padding
    else:
        metadata = _header(path)[1] if os.path.isfile(path) else {}
        options = {
            "latent_format": metadata.get(LATENT_FORMAT_KEY, family),
            "text_dim": config.text_dim,
            "sampler": _own_sampler(metadata.get(SAMPLER_KEY), family, path),
            "use_context_mask": True,
        }
    return ModelHandle(model, config, family, "dit", dtype, path, options)


def _own_sampler(text: str | None, family: str, source: str):
    from ..samplers import PRESETS, FlowPrediction, SamplerPreset, VPPrediction

    if text is None:
        if family in PRESETS:
            return family
        # Our embedded models are rectified-flow models; these settings suit them when the file says nothing.
        return SamplerPreset(FlowPrediction(shift=1.0), "euler", 30, 5.0)
    try:
        data = json.loads(text)
        prediction = dict(data.pop("prediction"))
        kind = prediction.pop("kind", "flow")
        cls = {"flow": FlowPrediction, "vp": VPPrediction}[kind]
        return SamplerPreset(config_from_dict(cls, prediction), **data)
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(
            f"{source}: metadata '{SAMPLER_KEY}' is not a valid sampler preset ({e})"
        ) from e


def sampler_preset(handle: ModelHandle, latent_height: int, latent_width: int) -> Any:
    """The DiT family's reference sampler settings (Wan's depend on the video size)."""
    from ..samplers import get_preset, wan21_preset

    preset = handle.options["sampler"]
    if preset == "wan2.1":
        return wan21_preset(latent_height * 8, latent_width * 8)  # the Wan VAE's spatial factor
    return get_preset(preset) if isinstance(preset, str) else preset


def check_conditioning_width(handle: ModelHandle, width: int, input_name: str) -> None:
    expected = handle.options["text_dim"]
    if width != expected:
        hint = TEXT_ENCODER_HINTS.get(
            handle.family,
            "use the text encoder this model was trained with (its embedded/text_encoder-* file)",
        )
        raise ValueError(
            f"'{input_name}' conditioning has embeddings of width {width}, but this {handle.family} DiT takes "
            f"text of width {expected}: {hint}"
        )
