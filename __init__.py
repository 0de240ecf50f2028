"""VideoCascade: a text-to-video diffusion system as ComfyUI nodes.

ComfyUI imports this folder under whatever name it has on disk and reads the two mappings below.
Importing is cheap: node classes only; no model is loaded and nothing is compiled or downloaded.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = None
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
