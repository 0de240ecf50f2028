"""Model handles: what loader nodes return and sampler/decoder nodes take (VC_VAE, VC_DIT, ...)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .devices import compute_device, offload_device


@dataclass
class ModelHandle:
    """An ``nn.Module`` with its config, family and device/dtype policy.

    ``family`` names the weights' lineage (``sprites-...``, ``wan2.1``, ``cogvideox``) so a consumer can
    refuse latents or conditioning of another family with a clear message.
    """

    model: torch.nn.Module
    config: Any
    family: str
    kind: str
    dtype: torch.dtype = torch.float32
    source: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    def load_to_device(self) -> torch.nn.Module:
        """Move the model to the compute device (and compute dtype) and return it."""
        device = compute_device()
        self.model.to(device=device, dtype=self.dtype)
        return self.model

    def offload(self) -> None:
        self.model.to(offload_device())

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def __repr__(self) -> str:  # shown in ComfyUI tooltips and runner errors
        return f"<{self.kind} {self.family} from {self.source or 'memory'}>"
