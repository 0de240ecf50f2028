"""Where loaders find weights: ComfyUI's model folders inside ComfyUI, the embedded weights/, or a path."""

from __future__ import annotations

import os

from .comfy import comfy_module

PACK_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMBEDDED_DIR = os.path.join(PACK_ROOT, "weights")

# Our subfolder of ComfyUI's models/ for each model kind, plus the core folder names users already use.
MODEL_FOLDERS: dict[str, tuple[str, ...]] = {
    "text_encoder": ("videocascade_text_encoders", "text_encoders"),
    "vae": ("videocascade_vae", "vae"),
    "dit": ("videocascade_dit", "diffusion_models"),
    "interpolator": ("videocascade_interpolators",),
    "upscaler": ("videocascade_upscalers",),
}

# Headless runs: ComfyUI-style models folders to search (``--models-dir``), separated by os.pathsep.
MODELS_DIR_ENV = "VIDEOCASCADE_MODELS_DIR"

_registered = False


def headless_models_dirs() -> list[str]:
    """The ``models/`` folders a headless run searches (``--models-dir`` / ``VIDEOCASCADE_MODELS_DIR``)."""
    value = os.environ.get(MODELS_DIR_ENV, "")
    return [os.path.abspath(os.path.expanduser(d)) for d in value.split(os.pathsep) if d.strip()]


def _safetensors_under(folder: str) -> list[str]:
    """``*.safetensors`` below ``folder``, as ComfyUI names them: relative paths with forward slashes."""
    names = []
    for root, _dirs, files in os.walk(folder, followlinks=True):
        for f in files:
            if f.endswith(".safetensors"):
                names.append(os.path.relpath(os.path.join(root, f), folder).replace(os.sep, "/"))
    return sorted(names)


def register_comfy_folders() -> None:
    """Register ``models/videocascade_*`` folders with ComfyUI's folder_paths (idempotent, no-op headless)."""
    global _registered
    folder_paths = comfy_module("folder_paths")
    if folder_paths is None or _registered:
        return
    for names in MODEL_FOLDERS.values():
        own = names[0]
        path = os.path.join(folder_paths.models_dir, own)
        if own in folder_paths.folder_names_and_paths:
            paths, exts = folder_paths.folder_names_and_paths[own]
            if path not in paths:
                paths.append(path)
        else:
            folder_paths.folder_names_and_paths[own] = ([path], {".safetensors"})
    _registered = True


def embedded_files(kind: str) -> list[str]:
    """Embedded checkpoints of a kind, named ``<kind>-*.safetensors`` in weights/."""
    if not os.path.isdir(EMBEDDED_DIR):
        return []
    prefix = f"{kind}-"
    return sorted(f for f in os.listdir(EMBEDDED_DIR) if f.startswith(prefix) and f.endswith(".safetensors"))


def available_files(kind: str) -> list[str]:
    """Names a loader offers in its dropdown: embedded files first, then ComfyUI's model folders."""
    names = [f"embedded/{f}" for f in embedded_files(kind)]
    folder_paths = comfy_module("folder_paths")
    if folder_paths is not None:
        register_comfy_folders()
        for folder in MODEL_FOLDERS[kind]:
            try:
                names += [n for n in folder_paths.get_filename_list(folder) if n.endswith(".safetensors")]
            except Exception:  # a folder name unknown to this ComfyUI version
                continue
        return names
    for models_dir in headless_models_dirs():
        for folder in MODEL_FOLDERS[kind]:
            names += [n for n in _safetensors_under(os.path.join(models_dir, folder)) if n not in names]
    return names


def resolve_file(kind: str, name: str) -> str:
    """Turn a loader's file choice into an existing path, or raise naming everywhere that was searched."""
    if name.startswith("embedded/"):
        path = os.path.join(EMBEDDED_DIR, name.removeprefix("embedded/"))
        if os.path.isfile(path):
            return path
        raise FileNotFoundError(f"embedded weights '{name}' are missing: expected {path}")
    searched: list[str] = []
    folder_paths = comfy_module("folder_paths")
    if folder_paths is not None:
        register_comfy_folders()
        for folder in MODEL_FOLDERS[kind]:
            try:
                path = folder_paths.get_full_path(folder, name)
            except Exception:
                path = None
            if path and os.path.exists(path):
                return path
            searched.append(f"models/{folder}/")
    else:
        for models_dir in headless_models_dirs():
            for folder in MODEL_FOLDERS[kind]:
                path = os.path.join(models_dir, folder, name)
                if os.path.exists(path):
                    return path
                searched.append(os.path.join(models_dir, folder) + os.sep)
    expanded = os.path.expanduser(name)
    if os.path.exists(expanded):
        return os.path.abspath(expanded)
    searched.append(os.path.abspath(expanded))
    raise FileNotFoundError(
        f"{kind} weights '{name}' not found; looked in: {', '.join(searched)}. "
        f"Put the file there or give its full path"
        + ("" if folder_paths is not None else " (headless: --models-dir points at a ComfyUI models folder)")
    )
