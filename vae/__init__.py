"""3D causal VAE (Wan 2.1 architecture, configurable), its streaming/tiled encode and decode, and loaders.

Import cost is PyTorch only: no weights are read until :func:`load_vae` is called.
"""

from .autoencoder import VAE_PRESETS, CausalVAE, CausalVAEConfig, vae_preset
from .loading import load_vae
from .posterior import DiagonalGaussian
from .streaming import decode_video, encode_video, iter_decode, pad_frames

__all__ = [
    "VAE_PRESETS",
    "CausalVAE",
    "CausalVAEConfig",
    "DiagonalGaussian",
    "decode_video",
    "encode_video",
    "iter_decode",
    "load_vae",
    "pad_frames",
    "vae_preset",
]
