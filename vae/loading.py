"""Load a VAE from the layouts people keep on disk; the family is read from the keys, never guessed.

* Wan 2.1, original single file (``Wan2.1_VAE.pth`` / ``.safetensors``, ComfyUI's ``wan_2.1_vae.safetensors``);
* Wan 2.1, diffusers folder (``config.json`` + ``diffusion_pytorch_model*.safetensors``, maybe sharded) or a
  pipeline folder with a ``vae/`` subfolder, or a diffusers-layout single file;
* CogVideoX (diffusers layout), handed to ``vae/cogvideox.py``;
* our own checkpoints (``runtime/checkpoints.py``, kind ``"vae"``);
* ``builtin/pixel-space``: no file, the identity on pixels (``vae/pixels.py``) for pixel-space DiTs.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from torch import nn

from ..runtime.checkpoints import (
    CONFIG_KEY,
    CheckpointError,
    config_from_dict,
    load_checkpoint,
    load_state_strict,
    read_safetensors,
)
from .autoencoder import CausalVAE, CausalVAEConfig
from .pixels import PIXEL_SPACE_CHOICE, PixelSpace
from .wan_keys import config_from_diffusers, config_from_state, detect_layout, from_original

WEIGHT_NAME = "diffusion_pytorch_model.safetensors"
_PREFIXES = ("vae.", "first_stage_model.", "model.")


def load_vae(path: str, dtype: torch.dtype = torch.float32) -> tuple[nn.Module, str]:
    """Load the VAE at ``path`` (file or folder) in eval mode; returns ``(module, family)``.

    Raises :class:`CheckpointError` naming the file and what is wrong (unknown keys, missing or
    unexpected tensors, wrong shapes, unreadable file).
    """
    path = os.fspath(path)
    if path == PIXEL_SPACE_CHOICE:
        return PixelSpace().to(dtype).eval(), PixelSpace.family
    if os.path.isdir(path):
        model, family = _load_folder(path)
    elif os.path.isfile(path):
        model, family = _load_file(path)
    else:
        raise CheckpointError(f"VAE path not found: {path}")
    return model.to(dtype).eval(), family


# -- folders ---------------------------------------------------------------------------------------------
def _load_folder(folder: str) -> tuple[nn.Module, str]:
    config_path = os.path.join(folder, "config.json")
    if not os.path.isfile(config_path):
        if os.path.isfile(os.path.join(folder, "vae", "config.json")):  # a whole diffusers pipeline
            return _load_folder(os.path.join(folder, "vae"))
        raise CheckpointError(
            f"{folder} has no config.json (nor vae/config.json); not a diffusers VAE folder"
        )
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    class_name = config.get("_class_name")
    state = _read_diffusers_weights(folder)
    if class_name == "AutoencoderKLWan":
        try:
            vae_config = config_from_diffusers(config)
        except ValueError as e:
            raise CheckpointError(f"{config_path}: {e}") from e
        return _build(vae_config, state, folder), vae_config.family
    if class_name == "AutoencoderKLCogVideoX":
        return _cogvideox(state, config, folder), "cogvideox"
    raise CheckpointError(
        f"{config_path} describes a {class_name!r}; supported VAEs are AutoencoderKLWan (Wan 2.1) and "
        "AutoencoderKLCogVideoX"
    )


def _read_diffusers_weights(folder: str) -> dict[str, torch.Tensor]:
    index_path = os.path.join(folder, WEIGHT_NAME + ".index.json")
    if os.path.isfile(index_path):
        with open(index_path, encoding="utf-8") as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            state.update(read_safetensors(os.path.join(folder, shard))[0])
        return state
    candidates = [WEIGHT_NAME] + sorted(
        name
        for name in os.listdir(folder)
        if name.startswith("diffusion_pytorch_model") and name.endswith(".safetensors")
    )
    for name in candidates:
        if os.path.isfile(os.path.join(folder, name)):
            return read_safetensors(os.path.join(folder, name))[0]
    raise CheckpointError(
        f"{folder} has no {WEIGHT_NAME} (or sharded/variant weights) next to its config.json"
    )


# -- single files ----------------------------------------------------------------------------------------
def _load_file(path: str) -> tuple[nn.Module, str]:
    if path.endswith((".pth", ".pt", ".ckpt", ".bin")):
        state, metadata = _read_torch_file(path), {}
    else:
        state, metadata = read_safetensors(path)
    if CONFIG_KEY in metadata:  # our own format: the file carries its config
        state, config_dict, family = load_checkpoint(path, kind="vae")
        return _build(config_from_dict(CausalVAEConfig, config_dict), state, path), family
    state = _strip_prefix(state)
    layout = detect_layout(state)
    if layout is not None:
        try:
            config = config_from_state(state, layout)
        except KeyError as e:
            raise CheckpointError(
                f"{path} looks like a Wan VAE ({layout} layout) but is incomplete: missing {e.args[0]}"
            ) from e
        if layout == "original":
            state = from_original(state, config)
        return _build(config, state, path), config.family
    if _looks_like_cogvideox(state):
        return _cogvideox(state, None, path), "cogvideox"
    sample = ", ".join(sorted(state)[:5])
    raise CheckpointError(
        f"{path} is not a VAE this pack knows ({len(state)} tensors, e.g. {sample}); expected a Wan 2.1 VAE "
        "(original or diffusers layout), a CogVideoX VAE, or a VideoCascade 'vae' checkpoint"
    )


def _read_torch_file(path: str) -> dict[str, torch.Tensor]:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, truncation, non-weights content
        raise CheckpointError(f"{path} is not a readable weights file ({e}); re-download it") from e
    for key in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return data


def _strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a wrapper prefix (``vae.``, ``first_stage_model.``, ...) that every key shares."""
    for prefix in _PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            return {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _build(config: CausalVAEConfig, state: dict[str, torch.Tensor], source: str) -> CausalVAE:
    with torch.device("meta"):  # no random init of weights that are about to be overwritten
        model = CausalVAE(config)
    model = model.to_empty(device="cpu")
    # to_empty left the (non-persistent) latent statistics uninitialised: set them from the config
    n = config.latent_channels
    model.latents_mean = torch.tensor(config.latents_mean or [0.0] * n).view(1, n, 1, 1, 1)
    model.latents_std = torch.tensor(config.latents_std or [1.0] * n).view(1, n, 1, 1, 1)
    load_state_strict(model, state, source)  # copies with dtype conversion (bf16/fp16 files)
    return model


# -- CogVideoX (another module) ----------------------------------------------------------------------------
def _looks_like_cogvideox(state: dict[str, torch.Tensor]) -> bool:
    try:
        from .cogvideox import looks_like_cogvideox_vae
    except ModuleNotFoundError:
        return "encoder.conv_in.conv.weight" in state
    return looks_like_cogvideox_vae(state.keys())


def _cogvideox(state: dict[str, torch.Tensor], config: dict[str, Any] | None, source: str) -> nn.Module:
    try:
        from .cogvideox import cogvideox_vae_from_state
    except ModuleNotFoundError as e:
        raise NotImplementedError(
            f"{source} is a CogVideoX VAE, but vae/cogvideox.py is not available"
        ) from e
    return cogvideox_vae_from_state(state, config, source=source)
