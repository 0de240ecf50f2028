"""Video files: write IMAGE frames to mp4 / webm / gif with ComfyUI-style metadata, and read them back.

PyAV is imported only when a function runs, so importing this package stays cheap.
"""

from .paths import next_free_path
from .reader import read_metadata, read_video
from .writer import FORMATS, save_video, write_video

__all__ = ["FORMATS", "next_free_path", "read_metadata", "read_video", "save_video", "write_video"]
