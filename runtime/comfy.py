"""Optional bridge to ComfyUI: every helper here works with or without ComfyUI importable.

ComfyUI is never imported at package import time; each function looks it up when called, so the
same code runs inside a ComfyUI server and in the headless runner.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def comfy_module(name: str) -> ModuleType | None:
    """Return a ComfyUI module (``"comfy.model_management"``, ``"folder_paths"``, ...) or None outside ComfyUI."""
    try:
        return importlib.import_module(name)
    except Exception:  # ComfyUI absent, or present but not importable outside its server
        return None


def inside_comfyui() -> bool:
    return comfy_module("folder_paths") is not None and comfy_module("comfy.model_management") is not None
