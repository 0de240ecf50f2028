"""Shared helpers for the pack's node classes: categories, tooltip'd input builders, UI results, mappings.

A node is a plain ComfyUI classic-API class; the same class runs inside ComfyUI and in the headless runner
(``python -m videocascade run``)::

    class VCVAEDecode:
        DESCRIPTION = "Decode a video latent into frames."
        CATEGORY = category("vae")
        RETURN_TYPES = ("IMAGE",)
        OUTPUT_TOOLTIPS = ("Decoded frames, [N, H, W, 3] in [0, 1].",)
        FUNCTION = "decode"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {
                "vae": link_input("VC_VAE", "The VAE from VC VAE Loader."),
                "latent": link_input("LATENT", "The video latent to decode."),
                "chunk_frames": int_input(4, 1, 64, "Latent frames decoded at once; lower uses less memory."),
            }}

        def decode(self, vae, latent, chunk_frames):
            return (frames,)

    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = node_mappings((VCVAEDecode, "VC VAE Decode"))
"""

from __future__ import annotations

from typing import Any

from ..runtime.model_paths import available_files
from ..runtime.outputs import saved_file_entry

CATEGORY_ROOT = "VideoCascade"
NODE_ID_PREFIX = "VC"
SEED_MAX = 0xFFFF_FFFF_FFFF_FFFF  # ComfyUI's seed range


def category(*parts: str) -> str:
    """``category("vae")`` -> ``"VideoCascade/vae"``."""
    return "/".join((CATEGORY_ROOT, *parts))


class AnyType(str):
    """A type name that every link type satisfies, also in ComfyUI's own validation.

    ComfyUI's server compares link types with ``!=``; a plain ``"*"`` input rejects an IMAGE link there,
    while this string never compares unequal. (The headless runner accepts a plain ``"*"`` too.)
    """

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = str.__hash__


ANY = AnyType("*")


def _with_tooltip(tooltip: str, options: dict[str, Any]) -> dict[str, Any]:
    if not tooltip:
        raise ValueError("every VideoCascade input needs a tooltip: say what it does and its effect")
    return {**options, "tooltip": tooltip}


def int_input(
    default: int, min: int, max: int, tooltip: str, step: int = 1, **extra: Any
) -> tuple[str, dict]:
    """An INT widget with range and tooltip (extra options: ``display="slider"``, ``forceInput=True``, ...)."""
    return (
        "INT",
        _with_tooltip(tooltip, {"default": default, "min": min, "max": max, "step": step, **extra}),
    )


def float_input(
    default: float, min: float, max: float, tooltip: str, step: float = 0.01, **extra: Any
) -> tuple[str, dict]:
    """A FLOAT widget; pass ``round=`` to control the frontend's rounding of typed values."""
    return (
        "FLOAT",
        _with_tooltip(tooltip, {"default": default, "min": min, "max": max, "step": step, **extra}),
    )


def bool_input(
    default: bool, tooltip: str, label_on: str | None = None, label_off: str | None = None
) -> tuple[str, dict]:
    options: dict[str, Any] = {"default": default}
    if label_on:
        options["label_on"] = label_on
    if label_off:
        options["label_off"] = label_off
    return ("BOOLEAN", _with_tooltip(tooltip, options))


def string_input(default: str, tooltip: str, multiline: bool = False, **extra: Any) -> tuple[str, dict]:
    """A STRING widget; ``multiline=True`` for prompts (``dynamicPrompts`` stays off: no {a|b} expansion)."""
    return ("STRING", _with_tooltip(tooltip, {"default": default, "multiline": multiline, **extra}))


def combo_input(choices: list[Any] | tuple[Any, ...], tooltip: str, default: Any = None) -> tuple[list, dict]:
    """A dropdown; ``default`` must be one of ``choices`` (the first choice when omitted)."""
    choices = list(choices)
    options: dict[str, Any] = {}
    if default is not None:
        if default not in choices:
            raise ValueError(f"combo default {default!r} is not one of {choices}")
        options["default"] = default
    return (choices, _with_tooltip(tooltip, options))


def seed_input(
    tooltip: str = "Random seed; the same seed and settings give the same video.",
) -> tuple[str, dict]:
    """An INT seed with ComfyUI's control_after_generate widget (fixed / increment / decrement / randomize)."""
    return (
        "INT",
        _with_tooltip(tooltip, {"default": 0, "min": 0, "max": SEED_MAX, "control_after_generate": True}),
    )


def link_input(type_name: str, tooltip: str, **extra: Any) -> tuple[str, dict]:
    """A socket for a value from another node (IMAGE, LATENT, VC_VAE, ...); ``lazy=True`` etc. pass through.

    For INT/FLOAT/STRING/BOOLEAN this sets ``forceInput``: without it the frontend shows a widget instead
    of a socket, and the input takes a slot in saved ``widgets_values``.
    """
    options = dict(extra)
    if type_name in ("INT", "FLOAT", "STRING", "BOOLEAN"):
        options.setdefault("forceInput", True)
    return (type_name, _with_tooltip(tooltip, options))


def model_file_input(kind: str, tooltip: str) -> tuple[list, dict]:
    """A dropdown of weights files for a loader: embedded ones first, then ComfyUI's model folders.

    ``kind`` is a key of ``runtime.model_paths.MODEL_FOLDERS`` ("vae", "dit", ...). ComfyUI calls
    ``INPUT_TYPES`` again on refresh, so new files show up without a restart.
    """
    return combo_input(available_files(kind), tooltip)


HIDDEN_SAVE_INPUTS = {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"}
"""``"hidden"`` section for save nodes: the API graph, ``{"workflow": ui_graph}`` (None when queued from an API
file) and the node id, filled by ComfyUI and by the runner alike."""


# --- results of output nodes -------------------------------------------------------------------------------


def ui_result(result: tuple = (), **ui: list[Any]) -> dict[str, Any]:
    """An output node's return value: ``{"ui": {...}, "result": result}`` (ComfyUI shows ``ui`` on the node)."""
    return {"ui": ui, "result": tuple(result)}


def video_preview(paths: list[str], folder_type: str = "output") -> dict[str, list[Any]]:
    """``ui`` entries that show saved videos on the node, as ComfyUI's own SaveVideo does."""
    return {"images": [saved_file_entry(p, folder_type) for p in paths], "animated": [True]}


def image_preview(paths: list[str], folder_type: str = "output") -> dict[str, list[Any]]:
    return {"images": [saved_file_entry(p, folder_type) for p in paths]}


def text_preview(*lines: str) -> dict[str, list[Any]]:
    return {"text": list(lines)}


# --- mappings and conventions ------------------------------------------------------------------------------


def node_mappings(*entries: tuple[type, str]) -> tuple[dict[str, type], dict[str, str]]:
    """Build a stage module's ``NODE_CLASS_MAPPINGS`` / ``NODE_DISPLAY_NAME_MAPPINGS``; ids are class names."""
    classes: dict[str, type] = {}
    names: dict[str, str] = {}
    for node_class, display_name in entries:
        node_id = node_class.__name__
        # Only the static attributes here: INPUT_TYPES may list files, which import time should not do.
        problems = node_class_problems(node_id, node_class, check_inputs=False)
        if problems:
            raise TypeError(f"node class {node_id} breaks the pack's conventions: " + "; ".join(problems))
        classes[node_id] = node_class
        names[node_id] = display_name
    return classes, names


def node_class_problems(node_id: str, node_class: type, check_inputs: bool = True) -> list[str]:
    """What keeps a class from being a proper VideoCascade node (empty when fine); tests call this per node."""
    from ..runtime.schema import NodeDefinitionError, node_inputs

    problems: list[str] = []
    if not node_id.startswith(NODE_ID_PREFIX):
        problems.append(f"node id must start with '{NODE_ID_PREFIX}'")
    if not str(getattr(node_class, "CATEGORY", "")).startswith(CATEGORY_ROOT):
        problems.append(f"CATEGORY must start with '{CATEGORY_ROOT}/' (use category(...))")
    function = getattr(node_class, "FUNCTION", None)
    if not function or not callable(getattr(node_class, function, None)):
        problems.append("FUNCTION must name a method of the class")
    return_types = getattr(node_class, "RETURN_TYPES", None)
    if not isinstance(return_types, tuple):
        problems.append("RETURN_TYPES must be a tuple (use () for none)")
    elif not return_types and getattr(node_class, "OUTPUT_NODE", False) is not True:
        problems.append("a node without outputs must set OUTPUT_NODE = True, or it never runs")
    if not check_inputs:
        return problems
    try:
        specs = node_inputs(node_class)
    except NodeDefinitionError as e:
        return [*problems, str(e)]
    for spec in specs:
        if spec.category != "hidden" and not spec.tooltip:
            problems.append(f"input '{spec.name}' has no tooltip")
    return problems
