"""ComfyUI node classes, one module per pipeline stage, merged into the pack's mappings.

A stage module defines ``NODE_CLASS_MAPPINGS`` and ``NODE_DISPLAY_NAME_MAPPINGS`` (see ``nodes/base.py``).
A stage whose file does not exist yet is skipped. A stage that fails to import does not take the other
stages down with it (inside ComfyUI that would hide the whole pack): the error is logged and kept in
``STAGE_IMPORT_ERRORS``, which the CLI prints and the tests require to be empty.
"""

import logging
import os
import traceback
from importlib import import_module

# Order is the order `python -m videocascade nodes` lists them in: the pipeline, left to right.
_STAGE_MODULES = ("text", "vae", "dit", "temporal", "spatial", "video_io", "sprites")

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}
STAGE_IMPORT_ERRORS: dict[str, str] = {}

_HERE = os.path.dirname(os.path.abspath(__file__))

for _name in _STAGE_MODULES:
    if not os.path.isfile(os.path.join(_HERE, f"{_name}.py")):
        continue
    try:
        _module = import_module(f".{_name}", __name__)
    except Exception:
        STAGE_IMPORT_ERRORS[_name] = traceback.format_exc()
        logging.getLogger(__name__).error(
            "VideoCascade: nodes/%s.py failed to import:\n%s", _name, STAGE_IMPORT_ERRORS[_name]
        )
        continue
    _duplicates = sorted(set(_module.NODE_CLASS_MAPPINGS) & set(NODE_CLASS_MAPPINGS))
    if _duplicates:
        STAGE_IMPORT_ERRORS[_name] = (
            f"nodes/{_name}.py redefines node id(s) {_duplicates} of an earlier stage"
        )
        logging.getLogger(__name__).error("VideoCascade: %s", STAGE_IMPORT_ERRORS[_name])
        continue
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
