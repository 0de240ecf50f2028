"""Weight-free spatial super-resolution on ComfyUI IMAGE batches ([N, H, W, 3] float in [0, 1])."""

from __future__ import annotations

import math
import numbers
import operator

import torch

from ..runtime.progress import Progress
from .resample import RESAMPLE_METHODS, resize
from .sharpen import restore_details

# Tuned on area-downsampled sprites frames (bench/upscaling.py). Per round the unsharp mask adds
# sharpen * SHARPEN_PER_ROUND_PER_SCALE * scale of the detail layer (larger factors leave wider blur to
# undo), with a Gaussian of SIGMA_LOW input pixels; EDGE_SOFTNESS sets where the edge gate opens.
# sharpen above ~2 starts to posterise.
RESTORE_ROUNDS = 6
SHARPEN_PER_ROUND_PER_SCALE = 0.125
SIGMA_LOW = 1.5
EDGE_SOFTNESS = 0.05
_CHUNK_PIXELS = 1 << 23  # output pixels per chunk (8 Mpx): bounds memory for long or large clips


def check_image_batch(frames: torch.Tensor, name: str = "frames") -> None:
    """Raise a clear error unless ``frames`` is an IMAGE batch [N, H, W, 3] of floats."""
    if not isinstance(frames, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor IMAGE batch [N, H, W, 3]; got {type(frames).__name__}"
        )
    if frames.dim() != 4 or frames.shape[-1] != 3:
        raise ValueError(
            f"{name} must be an IMAGE batch shaped [N, H, W, 3] (frames, height, width, RGB); got "
            f"{list(frames.shape)}. Convert [B, 3, H, W] with .permute(0, 2, 3, 1); drop alpha with [..., :3]."
        )
    if not frames.is_floating_point():
        raise TypeError(f"{name} must hold floats in [0, 1]; got {frames.dtype} (divide uint8 frames by 255)")
    if frames.shape[0] < 1 or frames.shape[1] < 1 or frames.shape[2] < 1:
        raise ValueError(f"{name} is empty: {list(frames.shape)}")


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def target_size(
    height: int, width: int, scale: float | None = None, size: tuple[int | None, int | None] | None = None
) -> tuple[int, int]:
    """Output (height, width) from a ``scale`` factor or a ``size`` (either side 0/None: keep the aspect)."""
    if (scale is None) == (size is None):
        raise ValueError(
            f"give exactly one of scale (e.g. 2.0) or size ((height, width)); got scale={scale!r}, size={size!r}"
        )
    if scale is not None:
        if not _is_number(scale) or not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be a positive number (2, 3, 4, 1.5, ...); got {scale!r}")
        return max(1, round(height * scale)), max(1, round(width * scale))
    try:
        out_h, out_w = (None if v is None else operator.index(v) for v in size)  # type: ignore[union-attr]
    except TypeError:
        raise ValueError(
            f"size must be a (height, width) pair of integers (0/None: keep aspect); got {size!r}"
        ) from None
    except ValueError:
        raise ValueError(f"size must be a (height, width) pair; got {size!r}") from None
    for value, side in ((out_h, "height"), (out_w, "width")):
        if value is not None and value < 0:
            raise ValueError(
                f"size {side} must be a positive integer, or 0/None to keep the aspect; got {value!r}"
            )
    if not out_h and not out_w:
        raise ValueError(f"size needs at least one positive side; got {size!r}")
    if not out_h:
        out_h = max(1, round(height * out_w / width))
    if not out_w:
        out_w = max(1, round(width * out_h / height))
    return int(out_h), int(out_w)


def upscale(
    frames: torch.Tensor,
    scale: float | None = None,
    size: tuple[int | None, int | None] | None = None,
    method: str = "lanczos",
    sharpen: float = 1.0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Resize frames by ``scale`` or to ``size`` = (height, width), then restore detail; values in [0, 1].

    ``method``: lanczos (Lanczos-4, as OpenCV's INTER_LANCZOS4), bicubic, bilinear or nearest. ``sharpen``
    > 0 (default 1.0) runs edge-aware sharpening with back-projection when both sides grow (not for
    nearest, which stays pixel repetition); 0 gives the plain resampling. With only one of ``size``'s sides given the aspect ratio is kept. Computes on
    ``device`` (default: where ``frames`` are) and returns on the frames' device and dtype.
    """
    check_image_batch(frames)
    if method not in RESAMPLE_METHODS:
        raise ValueError(f"method must be one of {', '.join(RESAMPLE_METHODS)}; got {method!r}")
    if not _is_number(sharpen) or not (0 <= sharpen < math.inf):
        raise ValueError(
            f"sharpen must be a number >= 0 (0 = plain resampling, 1 = default); got {sharpen!r}"
        )
    n, h, w, _ = frames.shape
    out_h, out_w = target_size(h, w, scale, size)
    # Nearest is asked for to keep hard pixels (pixel art); restoring detail would smooth them.
    restore = sharpen > 0 and method != "nearest" and out_h >= h and out_w >= w and (out_h, out_w) != (h, w)
    work_device = torch.device(device) if device is not None else frames.device
    mean_scale = 0.5 * (out_h / h + out_w / w)

    out = torch.empty(n, out_h, out_w, 3, dtype=frames.dtype, device=frames.device)
    chunk = max(1, _CHUNK_PIXELS // (out_h * out_w))
    with Progress(math.ceil(n / chunk), "upscale") as progress:
        for start in range(0, n, chunk):
            low = frames[start : start + chunk].to(work_device, torch.float32)
            high = resize(low, (out_h, out_w), method)
            if restore:
                high = restore_details(
                    high.permute(0, 3, 1, 2),
                    low.permute(0, 3, 1, 2),
                    amount=sharpen * SHARPEN_PER_ROUND_PER_SCALE * mean_scale,
                    iterations=RESTORE_ROUNDS,
                    sigma_low=SIGMA_LOW,
                    edge_softness=EDGE_SOFTNESS,
                ).permute(0, 2, 3, 1)
            out[start : start + chunk] = high.clamp(0, 1).to(frames.device, frames.dtype)
            progress.update()
    return out
