"""Inputs every loader node shares: a weights dropdown with a "path below" entry, a path, a dtype."""

from __future__ import annotations

from ..runtime.loaders import DTYPE_CHOICES, PATH_CHOICE
from .base import combo_input, model_file_input, string_input


def weights_inputs(kind: str, what: str) -> dict[str, tuple]:
    """``file``: the files of ``model_file_input(kind)`` plus an entry that defers to the ``path`` input."""
    choices, options = model_file_input(
        kind,
        f"The {what} to load: embedded files first, then ComfyUI's models folders. Choose '{PATH_CHOICE}' "
        "(or fill 'path') for a file or folder elsewhere.",
    )
    return {"file": ([*choices, PATH_CHOICE], options)}


class WeightsLoader:
    """Base of the loader nodes: a filled ``path`` wins over the ``file`` dropdown, as its tooltip says.

    ComfyUI (and our runner) skip their own choice check for inputs that ``VALIDATE_INPUTS`` names, so
    a shared workflow whose dropdown file is not installed here still runs when ``path`` points to it.
    """

    @classmethod
    def VALIDATE_INPUTS(cls, file=None, path=None):
        if file is None or (isinstance(path, str) and path.strip()):
            return True  # linked dropdown, or the path is used instead
        choices = cls.INPUT_TYPES()["required"]["file"][0]
        if file in choices:
            return True
        shown = ", ".join(repr(c) for c in choices[:8]) + (", ..." if len(choices) > 8 else "")
        return (
            f"file {file!r} is not one of the installed choices ({shown}); put the file in the models "
            f"folder named in the README, or fill 'path' with its location"
        )


def path_input(what: str) -> dict[str, tuple]:
    """Optional ``path``: a file or folder anywhere (headless runs, diffusers folders)."""
    return {
        "path": string_input(
            "",
            f"Optional file or folder path of the {what} (e.g. a diffusers folder); when filled it is used "
            "instead of the dropdown.",
        )
    }


def dtype_input(tooltip: str = "") -> dict[str, tuple]:
    return {
        "dtype": combo_input(
            DTYPE_CHOICES, tooltip or "Compute precision; auto = bf16 on a GPU, fp32 on the CPU."
        )
    }
