"""Tiny real model files for the node tests (random weights saved in the layouts the loaders read).

Not mocks: the nodes load these files through the same code paths as real checkpoints.
"""

from __future__ import annotations

import dataclasses
import os

import torch
from safetensors.torch import save_file
from videocascade.models.dit import VideoDiT, dit_config
from videocascade.models.t5 import T5Encoder, T5EncoderConfig
from videocascade.models.text_encoder import TEXT_ENCODER_PRESETS, TextEncoder
from videocascade.models.wan_keys import ORIGINAL, ours_to_wan
from videocascade.nodes import NODE_CLASS_MAPPINGS
from videocascade.runtime.checkpoints import save_checkpoint
from videocascade.runtime.loaders import PATH_CHOICE
from videocascade.vae import CausalVAE, CausalVAEConfig

NODES = NODE_CLASS_MAPPINGS
FAMILY = "test-t4"  # the latent format of the tiny VAE, and the family of the DiT trained on it
TEXT_DIM = TEXT_ENCODER_PRESETS["test-tiny"].dim  # 32

VAE_CONFIG = CausalVAEConfig(
    family=FAMILY,
    base_channels=8,
    channel_multipliers=(1, 2, 2),
    num_res_blocks=1,
    latent_channels=4,
    temporal_downsample=(True, True),
    middle_attention=False,
)
DIT_CONFIG = dit_config("test-tiny", text_dim=TEXT_DIM)


def _perturbed(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights everywhere (zero-initialised output layers would make every sample zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.05)
    return module


def own_models(folder: str | os.PathLike) -> dict[str, str]:
    """Text encoder, VAE and DiT in the pack's own checkpoint format: {"text_encoder": path, ...}."""
    folder = os.fspath(folder)
    torch.manual_seed(0)
    paths = {name: os.path.join(folder, f"{name}.safetensors") for name in ("text_encoder", "vae", "dit")}
    text = TEXT_ENCODER_PRESETS["test-tiny"]
    save_checkpoint(paths["text_encoder"], TextEncoder(text), text, "text_encoder", "test")
    save_checkpoint(paths["vae"], _perturbed(CausalVAE(VAE_CONFIG), 1), VAE_CONFIG, "vae", FAMILY)
    save_checkpoint(paths["dit"], _perturbed(VideoDiT(DIT_CONFIG), 2), DIT_CONFIG, "dit", FAMILY)
    return paths


def wan_models(folder: str | os.PathLike, spm_model: bytes) -> dict[str, str]:
    """A tiny umT5 (ComfyUI layout, tokenizer embedded), a 16-channel 'wan2.1' VAE and a Wan-layout DiT."""
    folder = os.fspath(folder)
    torch.manual_seed(0)
    paths = {name: os.path.join(folder, f"wan_{name}.safetensors") for name in ("text_encoder", "vae", "dit")}
    t5 = T5Encoder(T5EncoderConfig(vocab_size=64, d_model=16, d_kv=8, d_ff=32, num_layers=2, num_heads=2,
                                   per_layer_position_bias=True))  # fmt: skip
    _perturbed(t5, 3)
    state = {f"umt5xxl.transformer.{k}": v for k, v in t5.state_dict().items()}
    state["spiece_model"] = torch.tensor(list(spm_model), dtype=torch.uint8)
    save_file(state, paths["text_encoder"])
    vae = dataclasses.replace(VAE_CONFIG, family="wan2.1", latent_channels=16)
    save_checkpoint(paths["vae"], _perturbed(CausalVAE(vae), 4), vae, "vae", "wan2.1")
    # Wan's heads are 128 wide: a 256-wide, one-block transformer reading 16-channel latents.
    config = dit_config("test-tiny", in_channels=16, out_channels=16, hidden_size=256, num_heads=2, depth=1,
                        text_dim=16)  # fmt: skip
    dit = _perturbed(VideoDiT(config), 5)
    save_file(
        {k: v.contiguous() for k, v in ours_to_wan(dit.state_dict(), ORIGINAL, 1).items()}, paths["dit"]
    )
    return paths


def train_spm(folder: str | os.PathLike) -> bytes:
    """A 40-piece sentencepiece model with T5's special ids (pad 0, eos 1, unk 2), as bytes."""
    import sentencepiece as spm

    corpus = os.path.join(os.fspath(folder), "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        words = "a the red blue green yellow circle square star cross moves grows shrinks falls left right up down"
        f.write("\n".join(" ".join(words.split()[i:] + words.split()[:i]) for i in range(18)) * 20)
    prefix = os.path.join(os.fspath(folder), "spiece")
    spm.SentencePieceTrainer.train(
        input=corpus, model_prefix=prefix, vocab_size=40, model_type="unigram", pad_id=0, eos_id=1,
        unk_id=2, bos_id=-1, character_coverage=1.0, minloglevel=2,
    )  # fmt: skip
    with open(prefix + ".model", "rb") as f:
        return f.read()


def load(kind: str, path: str, dtype: str = "auto", **options):
    """Run a loader node on ``path`` (the dropdown's "path below" entry)."""
    node_id = {"text_encoder": "VCTextEncoderLoader", "vae": "VCVAELoader", "dit": "VCDiTLoader"}[kind]
    node = NODES[node_id]()
    extra = {"attention": "auto"} if kind == "dit" else {}
    return getattr(node, node.FUNCTION)(PATH_CHOICE, dtype, **extra, **options, path=path)[0]
