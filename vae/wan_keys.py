"""Wan 2.1 VAE checkpoint layouts: recognise them, read their config from tensor shapes, rename keys.

Our parameter names are the diffusers layout (``encoder.down_blocks.3.conv1.weight``). The original
release (``Wan2.1_VAE.pth``, ComfyUI's ``wan_2.1_vae.safetensors``) uses Wan's own module tree:

=====================================  =========================================================
ours / diffusers                       original Wan
=====================================  =========================================================
``quant_conv`` / ``post_quant_conv``   ``conv1`` / ``conv2``
``{enc,dec}oder.conv_in``              ``{enc,dec}oder.conv1``
``…norm_out`` / ``…conv_out``          ``…head.0`` / ``…head.2``
``…mid_block.resnets.0|1``             ``…middle.0|2``; ``…mid_block.attentions.0`` → ``…middle.1``
``encoder.down_blocks.i``              ``encoder.downsamples.i`` (the same flat list)
``decoder.up_blocks.i.resnets.j``      ``decoder.upsamples.{i*(R+2)+j}`` (R res blocks + 1 per stage)
``decoder.up_blocks.i.upsamplers.0``   ``decoder.upsamples.{i*(R+2)+R+1}``
residual ``norm1 conv1 norm2 conv2``   ``residual.0 residual.2 residual.3 residual.6``
``conv_shortcut``                      ``shortcut``
=====================================  =========================================================
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping

import torch

from .autoencoder import WAN21_LATENTS_MEAN, WAN21_LATENTS_STD, CausalVAEConfig

log = logging.getLogger(__name__)

ORIGINAL_SIGNATURE = "decoder.middle.0.residual.0.gamma"
DIFFUSERS_SIGNATURE = "decoder.mid_block.resnets.0.norm1.gamma"

_RESIDUAL_TO_ORIGINAL = {
    "norm1.": "residual.0.",
    "conv1.": "residual.2.",
    "norm2.": "residual.3.",
    "conv2.": "residual.6.",
    "conv_shortcut.": "shortcut.",
}
_RESIDUAL_TO_OURS = {v: k for k, v in _RESIDUAL_TO_ORIGINAL.items()}


def detect_layout(keys: Iterable[str]) -> str | None:
    """``"original"`` or ``"diffusers"`` for a Wan-architecture VAE state dict, else None."""
    keys = set(keys)
    if ORIGINAL_SIGNATURE in keys and "encoder.conv1.weight" in keys:
        return "original"
    if DIFFUSERS_SIGNATURE in keys and "encoder.conv_in.weight" in keys:
        return "diffusers"
    return None


def _rename_residual(rest: str, table: Mapping[str, str]) -> str:
    for old, new in table.items():
        if rest.startswith(old):
            return new + rest[len(old) :]
    return rest


def _middle_index(kind: str, index: int, attention: bool) -> int:
    # original middle: [res, attn, res] (or [res, res] without attention)
    if kind == "attentions":
        return 1
    return 0 if index == 0 else (2 if attention else 1)


def key_to_original(key: str, config: CausalVAEConfig) -> str:
    """Our (diffusers-layout) parameter name → the original Wan name."""
    if config.decoder_temporal_blocks:
        raise ValueError("decoder temporal blocks have no counterpart in the original Wan layout")
    r = config.num_res_blocks
    if key.startswith("quant_conv."):
        return "conv1." + key[len("quant_conv.") :]
    if key.startswith("post_quant_conv."):
        return "conv2." + key[len("post_quant_conv.") :]
    net, rest = key.split(".", 1)
    if rest.startswith("conv_in."):
        return f"{net}.conv1.{rest[len('conv_in.') :]}"
    if rest.startswith("norm_out."):
        return f"{net}.head.0.{rest[len('norm_out.') :]}"
    if rest.startswith("conv_out."):
        return f"{net}.head.2.{rest[len('conv_out.') :]}"
    m = re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", rest)
    if m:
        index = _middle_index(m[1], int(m[2]), config.middle_attention)
        inner = _rename_residual(m[3], _RESIDUAL_TO_ORIGINAL) if m[1] == "resnets" else m[3]
        return f"{net}.middle.{index}.{inner}"
    m = re.match(r"down_blocks\.(\d+)\.(.*)", rest)
    if m:
        return f"{net}.downsamples.{m[1]}.{_rename_residual(m[2], _RESIDUAL_TO_ORIGINAL)}"
    m = re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", rest)
    if m:
        flat = int(m[1]) * (r + 2) + int(m[2])
        return f"{net}.upsamples.{flat}.{_rename_residual(m[3], _RESIDUAL_TO_ORIGINAL)}"
    m = re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.(.*)", rest)
    if m:
        return f"{net}.upsamples.{int(m[1]) * (r + 2) + r + 1}.{m[2]}"
    raise KeyError(f"no original Wan name for parameter {key!r}")


def original_key_map(config: CausalVAEConfig) -> dict[str, str]:
    """``{our name: original name}`` for every parameter of a :class:`CausalVAE` with ``config``."""
    from .autoencoder import CausalVAE

    with torch.device("meta"):  # names only: no memory, no init cost even for the real 127M model
        names = list(CausalVAE(config).state_dict())
    return {name: key_to_original(name, config) for name in names}


def to_original(state: Mapping[str, torch.Tensor], config: CausalVAEConfig) -> dict[str, torch.Tensor]:
    return {key_to_original(k, config): v for k, v in state.items()}


def from_original(state: Mapping[str, torch.Tensor], config: CausalVAEConfig) -> dict[str, torch.Tensor]:
    """Rename an original-layout state dict to ours; keys we do not know are kept (load reports them)."""
    inverse = {v: k for k, v in original_key_map(config).items()}
    return {inverse.get(k, k): v for k, v in state.items()}


# -- config from tensor shapes ---------------------------------------------------------------------------
_LAYOUT_NAMES = {
    "original": {
        "conv_in": "encoder.conv1.weight",
        "latent": "conv2.weight",
        "blocks": "encoder.downsamples.",
        "res_conv": "residual.2.weight",
        "attention": "encoder.middle.1.to_qkv.weight",
        "decoder_conv_in": "decoder.conv1.weight",
    },
    "diffusers": {
        "conv_in": "encoder.conv_in.weight",
        "latent": "post_quant_conv.weight",
        "blocks": "encoder.down_blocks.",
        "res_conv": "conv1.weight",
        "attention": "encoder.mid_block.attentions.0.to_qkv.weight",
        "decoder_conv_in": "decoder.conv_in.weight",
    },
}


def config_from_state(
    state: Mapping[str, torch.Tensor], layout: str, family: str = "wan2.1"
) -> CausalVAEConfig:
    """Read a Wan-architecture config from the encoder's tensor shapes (either layout).

    Latent statistics are Wan 2.1's for 16 latent channels, else none (identity normalisation).
    """
    names = _LAYOUT_NAMES[layout]
    for key in (names["conv_in"], names["latent"], names["decoder_conv_in"]):
        if key not in state:
            raise KeyError(key)
    base = int(state[names["conv_in"]].shape[0])
    latent = int(state[names["latent"]].shape[0])
    blocks: dict[int, str] = {}
    widths: dict[int, int] = {}
    for key, tensor in state.items():
        if not key.startswith(names["blocks"]):
            continue
        index, rest = key[len(names["blocks"]) :].split(".", 1)
        index = int(index)
        if rest == names["res_conv"]:
            blocks[index] = "res"
            widths[index] = int(tensor.shape[0])
        elif rest.startswith("time_conv."):
            blocks[index] = "down3d"
        elif rest.startswith("resample.") and blocks.get(index) != "down3d":
            blocks[index] = "down2d"
    if not blocks or sorted(blocks) != list(range(len(blocks))):
        raise KeyError(f"{names['blocks']}* (encoder blocks missing or not numbered 0..n)")
    multipliers, temporal, res_counts, run = [], [], [], 0
    for index in range(len(blocks)):
        if blocks[index] == "res":
            run += 1
            continue
        multipliers.append(widths[index - 1] // base)
        temporal.append(blocks[index] == "down3d")
        res_counts.append(run)
        run = 0
    multipliers.append(widths[len(blocks) - 1] // base)
    res_counts.append(run)
    if len(set(res_counts)) != 1:
        raise KeyError(f"{names['blocks']}* (stages have different residual block counts {res_counts})")
    return CausalVAEConfig(
        family=family,
        base_channels=base,
        channel_multipliers=tuple(multipliers),
        num_res_blocks=res_counts[0],
        latent_channels=latent,
        temporal_downsample=tuple(temporal),
        middle_attention=names["attention"] in state,
        encoder_temporal_kernel=int(state[names["conv_in"]].shape[2]),
        decoder_temporal_kernel=int(state[names["decoder_conv_in"]].shape[2]),
        latents_mean=WAN21_LATENTS_MEAN if latent == 16 else None,
        latents_std=WAN21_LATENTS_STD if latent == 16 else None,
    )


def config_from_diffusers(config: Mapping[str, object]) -> CausalVAEConfig:
    """A ``CausalVAEConfig`` from an ``AutoencoderKLWan`` ``config.json``; Wan 2.2's variants are refused."""
    unsupported = []
    if config.get("is_residual"):
        unsupported.append("is_residual=true (the Wan 2.2 VAE)")
    if config.get("patch_size"):
        unsupported.append(f"patch_size={config['patch_size']}")
    if config.get("attn_scales"):
        unsupported.append(f"attn_scales={config['attn_scales']}")
    decoder_base = config.get("decoder_base_dim")
    if decoder_base not in (None, config.get("base_dim", 96)):
        unsupported.append(f"decoder_base_dim={decoder_base}")
    if config.get("in_channels", 3) != 3 or config.get("out_channels", 3) != 3:
        unsupported.append("in/out channels other than 3")
    if unsupported:
        raise ValueError(f"this AutoencoderKLWan config is not Wan 2.1's: {', '.join(unsupported)}")
    latent = int(config.get("z_dim", 16))
    mean, std = config.get("latents_mean"), config.get("latents_std")
    if mean is None and latent == 16:
        mean, std = WAN21_LATENTS_MEAN, WAN21_LATENTS_STD
    if mean is not None and (len(mean) != latent or std is None or len(std) != latent):
        # diffusers keeps 16 default statistics even for other z_dim (random test models): unusable
        log.warning(
            "AutoencoderKLWan config has %d latents_mean values for z_dim=%d; using no latent normalisation",
            len(mean),
            latent,
        )
        mean = std = None
    return CausalVAEConfig(
        family="wan2.1",
        base_channels=int(config.get("base_dim", 96)),
        channel_multipliers=tuple(int(m) for m in config.get("dim_mult", (1, 2, 4, 4))),
        num_res_blocks=int(config.get("num_res_blocks", 2)),
        latent_channels=latent,
        temporal_downsample=tuple(bool(t) for t in config.get("temperal_downsample", (False, True, True))),
        latents_mean=None if mean is None else tuple(float(v) for v in mean),
        latents_std=None if std is None else tuple(float(v) for v in std),
    )
