"""Attention backends for the DiT: our compiled CUDA kernel, sageattention, PyTorch SDPA.

Importing is cheap: nothing is compiled or loaded until a CUDA call needs the kernel
(or ``python -m videocascade.cuda_ext build`` builds it ahead of time).
"""

from .dispatch import BACKENDS, AttentionBackendError, attention, choose_backend

__all__ = ["BACKENDS", "AttentionBackendError", "attention", "choose_backend"]
