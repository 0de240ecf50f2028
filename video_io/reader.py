"""Reading video files (anything FFmpeg decodes) into IMAGE-layout frames, with their metadata."""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from . import gif
from .writer import FRAME_SIZE_KEY


def _open(path: str):
    import av

    if not os.path.exists(path):
        raise FileNotFoundError(f"video file not found: {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder, not a video file")
    try:
        return av.open(path, mode="r")
    except av.error.FFmpegError as error:
        raise ValueError(f"{path} is not a readable video file ({error})") from None


def _container_metadata(container) -> dict[str, str]:
    metadata = dict(container.metadata)
    if container.format.name.startswith("matroska"):
        # Matroska stores tag names upper-case; hand back the lower-case names ComfyUI writes.
        metadata = {key.lower(): value for key, value in metadata.items()}
    if container.format.name == "gif" and "comment" in metadata:
        comment = metadata.pop("comment")
        metadata.update(gif.metadata_from_comment(comment))
    return metadata


def read_metadata(path: str) -> dict[str, str]:
    """The container's tags (``prompt``, ``workflow``, ... as written by ``write_video`` or ComfyUI)."""
    with _open(path) as container:
        return _container_metadata(container)


def _recorded_size(metadata: dict[str, str], height: int, width: int) -> tuple[int, int]:
    """The size before write_video padded odd dimensions, when the tag matches this file's padding."""
    try:
        w, h = (int(v) for v in metadata.get(FRAME_SIZE_KEY, "").split("x"))
    except ValueError:
        return height, width
    # Only a one-pixel pad to an even size is ours; a stale tag copied onto another video is ignored.
    if 0 <= height - h <= 1 and 0 <= width - w <= 1 and height % 2 == 0 and width % 2 == 0:
        return h, w
    return height, width


def read_video(
    path: str,
    max_frames: int | None = None,
    start: int = 0,
    step: int = 1,
    size: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, float, dict[str, str]]:
    """Decode a video into ``(frames [N, H, W, 3] float32 in [0, 1], fps, metadata)``.

    Takes frames ``start, start + step, ...``, at most ``max_frames`` of them; ``fps`` is the rate of the
    returned frames (the file's rate divided by ``step``). ``size=(height, width)`` resizes with an
    anti-aliased bilinear filter. Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a
    file that is not a video or when no frame is selected.
    """
    if start < 0 or step < 1 or (max_frames is not None and max_frames < 1):
        raise ValueError(
            f"need start >= 0, step >= 1 and max_frames >= 1 (got {start}, {step}, {max_frames})"
        )
    import av

    with _open(path) as container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream")
        stream = container.streams.video[0]
        rate = stream.guessed_rate or stream.average_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        metadata = _container_metadata(container)
        stream.thread_type = "AUTO"
        images: list[np.ndarray] = []
        try:
            for index, frame in enumerate(container.decode(stream)):
                if index < start or (index - start) % step:
                    continue
                images.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(images) >= max_frames:
                    break
        except av.error.FFmpegError as error:
            if not images:
                raise ValueError(f"{path} could not be decoded ({error})") from None
    if not images:
        raise ValueError(f"no frames selected from {path}: start={start} is past the end of the video")
    frames = torch.from_numpy(np.stack(images)).float().div_(255.0)
    height, width = _recorded_size(metadata, frames.shape[1], frames.shape[2])
    frames = frames[:, :height, :width]
    if size is not None:
        out_h, out_w = int(size[0]), int(size[1])
        if out_h < 1 or out_w < 1:
            raise ValueError(f"size must be (height, width) with positive values, got {size}")
        if (out_h, out_w) != (height, width):
            resized = F.interpolate(
                frames.permute(0, 3, 1, 2),
                size=(out_h, out_w),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
            frames = resized.clamp_(0.0, 1.0).permute(0, 2, 3, 1)
    return frames.contiguous(), fps / step, metadata
