"""Where models run: ComfyUI's device management when inside ComfyUI, else CUDA when available, else CPU."""

from __future__ import annotations

import torch

from .comfy import comfy_module


def compute_device() -> torch.device:
    mm = comfy_module("comfy.model_management")
    if mm is not None:
        return mm.get_torch_device()
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def offload_device() -> torch.device:
    mm = comfy_module("comfy.model_management")
    if mm is not None:
        return mm.unet_offload_device()
    return torch.device("cpu")


def interrupt_requested() -> None:
    """Raise ComfyUI's interruption exception when the user pressed Cancel; a no-op headless."""
    mm = comfy_module("comfy.model_management")
    if mm is not None:
        mm.throw_exception_if_processing_interrupted()


DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """Map a loader's dtype option to a torch dtype; "auto" is bf16 on CUDA and fp32 on CPU."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of auto, {', '.join(DTYPES)}; got {name!r}")
    return DTYPES[name]
