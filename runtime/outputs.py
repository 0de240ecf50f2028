"""Where save and preview nodes write: ComfyUI's output/temp folders, or the runner's ``--output-dir``.

Save nodes write under :func:`output_directory` (numbered names: ``video_io.paths.next_free_path`` /
``video_io.writer.save_video``) and report what they wrote with :func:`saved_file_entry`, the
``{"filename", "subfolder", "type"}`` dict ComfyUI's UI previews use.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from .comfy import comfy_module

DEFAULT_OUTPUT_DIR = "output"

# Set by the headless runner (``--output-dir``); wins over ComfyUI's folders so a runner inside a ComfyUI
# environment still writes where it was told.
_output_dir_override: str | None = None
_temp_dir_override: str | None = None


def output_directory() -> str:
    """Absolute path of the folder save nodes write to (created if missing)."""
    if _output_dir_override is not None:
        path = _output_dir_override
    else:
        folder_paths = comfy_module("folder_paths")
        path = folder_paths.get_output_directory() if folder_paths is not None else DEFAULT_OUTPUT_DIR
    path = os.path.abspath(path)
    os.makedirs(path, exist_ok=True)
    return path


def temp_directory() -> str:
    """Absolute path for previews that should not pile up in the output folder."""
    if _temp_dir_override is not None:
        path = _temp_dir_override
    else:
        folder_paths = comfy_module("folder_paths")
        if folder_paths is not None:
            path = folder_paths.get_temp_directory()
        else:
            path = os.path.join(tempfile.gettempdir(), "videocascade")
    path = os.path.abspath(path)
    os.makedirs(path, exist_ok=True)
    return path


@contextmanager
def use_output_directory(
    output_dir: str | os.PathLike | None, temp_dir: str | os.PathLike | None = None
) -> Iterator[str]:
    """Within the block, save nodes write under ``output_dir`` (None keeps the current setting)."""
    global _output_dir_override, _temp_dir_override
    saved = (_output_dir_override, _temp_dir_override)
    if output_dir is not None:
        _output_dir_override = os.path.abspath(os.fspath(output_dir))
    if temp_dir is not None:
        _temp_dir_override = os.path.abspath(os.fspath(temp_dir))
    try:
        yield output_directory()
    finally:
        _output_dir_override, _temp_dir_override = saved


def saved_file_entry(path: str | os.PathLike, folder_type: str = "output") -> dict[str, str]:
    """The ``{"filename", "subfolder", "type"}`` entry ComfyUI's UI uses to show (and /view) a saved file."""
    root = output_directory() if folder_type == "output" else temp_directory()
    relative = os.path.relpath(os.path.abspath(os.fspath(path)), root)
    if relative.startswith(".."):
        raise ValueError(f"{path} is not inside the {folder_type} folder {root}")
    subfolder, filename = os.path.split(relative)
    return {"filename": filename, "subfolder": subfolder, "type": folder_type}


def entry_path(entry: dict[str, str]) -> str | None:
    """Inverse of :func:`saved_file_entry`: the absolute path of a UI file entry (None if not a file entry)."""
    if not isinstance(entry, dict) or "filename" not in entry:
        return None
    folder_type = entry.get("type", "output")
    if folder_type == "output":
        root = output_directory()
    elif folder_type == "temp":
        root = temp_directory()
    else:
        return None
    return os.path.join(root, entry.get("subfolder", "") or "", entry["filename"])
