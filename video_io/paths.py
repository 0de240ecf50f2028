"""Output file names: ComfyUI's ``prefix_00001_.ext`` counter, and claiming a name without overwriting."""

from __future__ import annotations

import os
import re


def _split_prefix(directory: str, prefix: str) -> tuple[str, str]:
    """The folder a prefix like ``"video/ComfyUI"`` writes into, and its file-name part.

    Refuses prefixes that leave ``directory`` (``"../x"``, absolute paths), as ComfyUI does.
    """
    if not prefix or prefix.endswith(("/", "\\")):
        raise ValueError(f"filename prefix {prefix!r} must end with a file name, e.g. 'video/VideoCascade'")
    root = os.path.abspath(directory)
    folder = os.path.abspath(os.path.join(root, os.path.dirname(prefix)))
    if os.path.commonpath([root, folder]) != root:
        raise ValueError(f"filename prefix {prefix!r} points outside the output folder {directory!r}")
    return folder, os.path.basename(prefix)


def next_free_path(directory: str, prefix: str, ext: str) -> str:
    """The next unused ``<directory>/<prefix>_NNNNN_.<ext>``: one past the highest counter already used.

    As in ComfyUI, the counter is shared by every extension of a prefix (``clip_00003_.gif`` makes the next
    mp4 ``clip_00004_.mp4``) and ``prefix`` may name subfolders (``"video/clip"``). Nothing is created; use
    ``save_video`` to write under such a name without racing another writer.
    """
    folder, name = _split_prefix(directory, prefix)
    ext = ext.lstrip(".")
    if not ext:
        raise ValueError("file extension must not be empty (e.g. 'mp4')")
    pattern = re.compile(re.escape(name) + r"_(\d+)_", re.IGNORECASE if os.name == "nt" else 0)
    highest = 0
    if os.path.isdir(folder):
        for entry in os.listdir(folder):
            match = pattern.match(entry)
            if match:
                highest = max(highest, int(match.group(1)))
    counter = highest + 1
    while True:
        path = os.path.join(folder, f"{name}_{counter:05d}_.{ext}")
        if not os.path.exists(path):
            return path
        counter += 1


def claim_path(path: str) -> None:
    """Create ``path`` empty, atomically, failing with ``FileExistsError`` if anything is there already."""
    try:
        handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        raise FileExistsError(
            f"{path} already exists; refusing to overwrite it. Choose another name, or use "
            "save_video(directory, prefix, ...) / next_free_path(...) to number files automatically."
        ) from None
    os.close(handle)
