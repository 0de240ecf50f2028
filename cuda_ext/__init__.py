"""Attention backends for the DiT: our compiled CUDA kernel, sageattention, PyTorch SDPA."""

from .dispatch import BACKENDS, attention

__all__ = ["BACKENDS", "attention"]
