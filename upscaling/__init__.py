"""Weight-free spatial upscaling (SSR without a network): Lanczos/bicubic resampling plus detail restoration."""

from .resample import RESAMPLE_METHODS, resize
from .spatial import target_size, upscale

__all__ = ["RESAMPLE_METHODS", "resize", "target_size", "upscale"]
