"""Diagonal Gaussian posterior of a KL autoencoder."""

from __future__ import annotations

import torch


class DiagonalGaussian:
    """``N(mean, exp(logvar))`` per latent element; built from the encoder's ``[B, 2C, ...]`` output."""

    def __init__(self, parameters: torch.Tensor) -> None:
        self.mean, logvar = parameters.chunk(2, dim=1)
        # The clamp keeps exp() finite for untrained or extreme inputs (the usual KL-VAE convention).
        self.logvar = logvar.clamp(-30.0, 20.0)

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    def mode(self) -> torch.Tensor:
        return self.mean

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(
            self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype
        )
        return self.mean + self.std * noise

    def kl(self) -> torch.Tensor:
        """KL divergence to ``N(0, 1)``, summed over all but the batch dimension: ``[B]``."""
        per_element = 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar)
        return per_element.flatten(1).sum(dim=1)
