"""Video files: load frames from a video, save frames as mp4 / webm / gif, preview them on the canvas."""

from __future__ import annotations

import os
import uuid

from ..runtime.comfy import comfy_module
from ..runtime.loaders import PATH_CHOICE
from ..runtime.outputs import output_directory, temp_directory
from ..video_io import FORMATS, read_video, save_video
from .base import (
    HIDDEN_SAVE_INPUTS,
    category,
    combo_input,
    float_input,
    int_input,
    link_input,
    node_mappings,
    string_input,
    ui_result,
    video_preview,
)

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".gif", ".m4v")


def input_videos() -> list[str]:
    """Video files in ComfyUI's input folder (none outside ComfyUI: use the path input there)."""
    folder_paths = comfy_module("folder_paths")
    if folder_paths is None:
        return []
    folder = folder_paths.get_input_directory()
    if not os.path.isdir(folder):
        return []
    return sorted(f for f in os.listdir(folder) if f.lower().endswith(VIDEO_EXTENSIONS))


def video_path(video: str, path: str) -> str:
    """The file to read: ``path`` when given, else the input-folder file chosen in the dropdown."""
    if path.strip():
        return os.path.abspath(os.path.expanduser(path.strip()))
    if video == PATH_CHOICE:
        raise ValueError("no video chosen: pick a file of ComfyUI's input folder or fill the 'path' input")
    folder_paths = comfy_module("folder_paths")
    if folder_paths is None:
        raise FileNotFoundError(f"'{video}': outside ComfyUI there is no input folder; give its full 'path'")
    return folder_paths.get_annotated_filepath(video)


def _metadata(prompt, extra_pnginfo) -> dict:
    """What ComfyUI stores in its videos: the API graph and the UI workflow, so dropping the file reloads it."""
    metadata = {} if prompt is None else {"prompt": prompt}
    if isinstance(extra_pnginfo, dict):
        metadata.update(extra_pnginfo)
    return metadata


class VCLoadVideo:
    DESCRIPTION = "Load frames from a video file (any format FFmpeg reads), with its frame rate."
    CATEGORY = category("video")
    RETURN_TYPES = ("IMAGE", "FLOAT", "INT")
    RETURN_NAMES = ("images", "fps", "frame_count")
    OUTPUT_TOOLTIPS = ("Frames [N, H, W, 3] in [0, 1].", "Frame rate of the returned frames.", "N.")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "video": (
                    [*input_videos(), PATH_CHOICE],
                    {"video_upload": True, "tooltip": "A video of ComfyUI's input folder (upload adds one)."},
                ),
                "max_frames": int_input(0, 0, 100000, "Most frames to load; 0 = all."),
                "start": int_input(0, 0, 1000000, "Index of the first frame to load."),
                "step": int_input(1, 1, 1000, "Load every step-th frame (the fps output is divided by it)."),
                "width": int_input(0, 0, 8192, "Resize to this width; 0 = keep (or follow height's aspect)."),
                "height": int_input(
                    0, 0, 8192, "Resize to this height; 0 = keep (or follow width's aspect)."
                ),
            },
            "optional": {
                "path": string_input(
                    "", "Optional full path of a video file; when filled it is used instead."
                ),
            },
        }

    @classmethod
    def IS_CHANGED(cls, video, path="", **_):
        try:
            return os.path.getmtime(video_path(video, path))
        except (OSError, ValueError):
            return float("nan")  # never equal: run and report the problem

    def load(self, video, max_frames, start, step, width, height, path=""):
        file = video_path(video, path)
        size = None
        if width or height:
            frames, _, _ = read_video(file, max_frames=1, start=start)
            h, w = frames.shape[1:3]
            size = (height or max(1, round(h * width / w)), width or max(1, round(w * height / h)))
        frames, fps, _ = read_video(file, max_frames or None, start, step, size)
        return (frames, fps, frames.shape[0])


def _save_inputs(prefix: str) -> dict:
    return {
        "images": link_input("IMAGE", "Frames of one clip, [N, H, W, 3]."),
        "fps": float_input(
            16.0, 0.1, 240.0, "Frame rate; link the fps output of the previous video node.", 0.1
        ),
        "format": combo_input(FORMATS, "mp4 (H.264), webm (VP9) or gif (256 colours)."),
        "filename_prefix": string_input(prefix, "File name start; may contain subfolders ('video/clip')."),
        "crf": int_input(
            19,
            0,
            63,
            "Quality (CRF): lower = better and bigger; mp4 17-23 is typical, webm 24-35. gif ignores it.",
        ),
    }


class VCSaveVideo:
    DESCRIPTION = "Save frames as a video in ComfyUI's output folder, with the workflow in its metadata."
    CATEGORY = category("video")
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "save"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": _save_inputs("VideoCascade/video"), "hidden": HIDDEN_SAVE_INPUTS}

    def save(
        self, images, fps, format, filename_prefix, crf, prompt=None, extra_pnginfo=None, unique_id=None
    ):
        crf_option = {} if format == "gif" else {"crf": crf}
        metadata = _metadata(prompt, extra_pnginfo)
        path = save_video(output_directory(), filename_prefix, images, fps, format, metadata, **crf_option)
        return ui_result(**video_preview([path], "output"))


class VCPreviewVideo:
    DESCRIPTION = "Show frames as a video on the node, written to the temporary folder (not kept)."
    CATEGORY = category("video")
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "preview"

    @classmethod
    def INPUT_TYPES(cls):
        inputs = _save_inputs("preview")
        del inputs["filename_prefix"]
        return {"required": inputs}

    def preview(self, images, fps, format, crf):
        crf_option = {} if format == "gif" else {"crf": crf}
        prefix = f"VideoCascade_preview_{uuid.uuid4().hex[:8]}"
        path = save_video(temp_directory(), prefix, images, fps, format, None, **crf_option)
        return ui_result(**video_preview([path], "temp"))


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = node_mappings(
    (VCLoadVideo, "VC Load Video"),
    (VCSaveVideo, "VC Save Video"),
    (VCPreviewVideo, "VC Preview Video"),
)
