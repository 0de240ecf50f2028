"""ComfyUI node classes, one module per pipeline stage, merged into the pack's mappings."""

from importlib import import_module

# Order is the order `python -m videocascade nodes` lists them in: the pipeline, left to right.
_STAGE_MODULES = ()

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}

for _name in _STAGE_MODULES:
    _module = import_module(f".{_name}", __name__)
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
