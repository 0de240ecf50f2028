"""Writing frames to mp4 (H.264), webm (VP9) and gif files with PyAV, never overwriting a file.

Metadata follows ComfyUI core: each key becomes a container tag (mp4 with ``movflags=use_metadata_tags``,
webm as Matroska tags) holding a string, usually the JSON of the ``prompt`` and ``workflow`` so that
dragging the file back into ComfyUI restores the graph. GIF has no tags: the metadata goes into a GIF
comment block as one JSON object.
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from . import gif
from .paths import claim_path, next_free_path

FORMATS: tuple[str, ...] = ("mp4", "webm", "gif")

# Encoders in order of preference per container; the first one this PyAV build has is used.
_ENCODERS = {"mp4": ("libx264", "libopenh264", "h264", "mpeg4"), "webm": ("libvpx-vp9", "libvpx")}
_DEFAULT_CRF = {"mp4": 19, "webm": 30}

# Odd-sized H.264 frames are padded by repeating the last row/column (yuv420p needs even sizes); this tag
# records the real size so read_video crops the padding off again.
FRAME_SIZE_KEY = "videocascade_frame_size"


def _frames_to_uint8(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """[N, H, W, 3] (or one [H, W, 3] frame) float in [0, 1] or uint8 -> contiguous uint8 [N, H, W, 3]."""
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu()
        frames = frames.numpy() if frames.dtype == torch.uint8 else frames.float().numpy()
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] not in (3, 4):
        raise ValueError(f"frames must be [N, H, W, 3] (IMAGE layout), got shape {tuple(frames.shape)}")
    if frames.shape[0] == 0 or frames.shape[1] == 0 or frames.shape[2] == 0:
        raise ValueError(f"frames must not be empty, got shape {tuple(frames.shape)}")
    frames = frames[..., :3]  # drop an alpha channel
    if frames.dtype != np.uint8:
        frames = np.nan_to_num(frames.astype(np.float32), nan=0.0)
        frames = np.round(np.clip(frames, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.ascontiguousarray(frames)


def _metadata_strings(metadata: dict[str, Any] | None) -> dict[str, str]:
    """Strings as given, anything else as JSON (as ComfyUI does for its prompt/workflow objects)."""
    if not metadata:
        return {}
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}


def _frame_rate(fps: float) -> Fraction:
    if not fps or not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps}")
    return Fraction(round(float(fps) * 1000), 1000)


def _pick_encoder(fmt: str) -> str:
    import av

    for name in _ENCODERS[fmt]:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # a missing encoder raises: try the next one
            continue
    raise RuntimeError(f"this PyAV/FFmpeg build has no encoder for {fmt} (tried {', '.join(_ENCODERS[fmt])})")


def _encode(container, stream, frames: np.ndarray, to_frame) -> None:
    for index, image in enumerate(frames):
        frame = to_frame(image)
        frame.pts = index
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def _write_yuv(path, fmt, frames, fps, metadata, crf, preset, pix_fmt) -> None:
    import av

    height, width = frames.shape[1:3]
    pix_fmt = pix_fmt or "yuv420p"
    if fmt == "mp4" and pix_fmt.startswith(("yuv420", "yuv422")) and (height % 2 or width % 2):
        pad_h, pad_w = height % 2, width % 2
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        metadata = {**metadata, FRAME_SIZE_KEY: f"{width}x{height}"}
    encoder = _pick_encoder(fmt)
    options = {"movflags": "use_metadata_tags"} if fmt == "mp4" else {}
    with av.open(path, mode="w", format=fmt, options=options) as container:
        for key, value in metadata.items():
            container.metadata[key] = value
        stream = container.add_stream(encoder, rate=_frame_rate(fps))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt
        codec_options = {}
        if encoder in ("libx264", "libvpx-vp9", "libvpx"):
            codec_options["crf"] = str(crf if crf is not None else _DEFAULT_CRF[fmt])
        if encoder == "libx264":
            codec_options["preset"] = preset or "medium"
        if encoder.startswith("libvpx"):
            stream.bit_rate = 0  # constant quality: crf alone sets it
            codec_options.update({"deadline": "good", "cpu-used": "4", "row-mt": "1"})
        stream.options = codec_options
        _encode(
            container,
            stream,
            frames,
            lambda image: av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=pix_fmt),
        )


def _write_gif(path, frames, fps, metadata, loop) -> None:
    import av

    indices, palette = gif.quantize(frames)
    argb = np.zeros((256, 4), dtype=np.uint8)
    argb[:, 0] = 255
    argb[: len(palette), 1:] = palette
    # GIF delays are in hundredths of a second: the muxer rounds each frame's time to that grid.
    with av.open(path, mode="w", format="gif", options={"loop": str(int(loop))}) as container:
        stream = container.add_stream("gif", rate=_frame_rate(fps))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "pal8"
        _encode(
            container, stream, indices, lambda image: av.VideoFrame.from_ndarray((image, argb), format="pal8")
        )
    if metadata:
        with open(path, "rb") as handle:
            data = handle.read()
        with open(path, "wb") as handle:
            handle.write(gif.add_comment(data, gif.metadata_to_comment(metadata)))


def _format_for(path: str, format: str | None) -> str:
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    fmt = (format or ext).lower()
    if fmt not in FORMATS:
        raise ValueError(f"unsupported video format {fmt or path!r}; choose one of {', '.join(FORMATS)}")
    if ext != fmt:
        raise ValueError(f"file name {path!r} does not end in .{fmt}; name the file <name>.{fmt}")
    return fmt


def write_video(
    path: str,
    frames: torch.Tensor | np.ndarray,
    fps: float,
    format: str | None = None,
    metadata: dict[str, Any] | None = None,
    crf: float | None = None,
    preset: str | None = None,
    pix_fmt: str | None = None,
    loop: int = 0,
) -> str:
    """Write ``frames`` (IMAGE layout ``[N, H, W, 3]``, float in [0, 1] or uint8) to a new file at ``path``.

    ``format``: ``"mp4"`` (H.264, yuv420p), ``"webm"`` (VP9) or ``"gif"`` (one adaptive 256-colour palette);
    by default the file extension, which must match. ``metadata``: tag name -> string (other values are
    stored as JSON). ``crf``: quality for mp4 (default 19, lower is better) and webm (default 30);
    ``preset``: x264 speed preset; ``pix_fmt``: e.g. ``"yuv444p"`` for exact colours (less compatible);
    ``loop``: GIF repeat count (0 = forever). Odd mp4 sizes are padded by one repeated row/column and
    cropped back by ``read_video``. Refuses to overwrite an existing file (``FileExistsError``); see
    ``save_video`` for automatic numbering. Returns ``path``.
    """
    fmt = _format_for(path, format)
    images = _frames_to_uint8(frames)
    rate = _frame_rate(fps)
    tags = _metadata_strings(metadata)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"output folder {folder} does not exist; create it first")
    claim_path(path)
    try:
        if fmt == "gif":
            _write_gif(path, images, float(rate), tags, loop)
        else:
            _write_yuv(path, fmt, images, float(rate), tags, crf, preset, pix_fmt)
    except BaseException:
        os.remove(path)  # the name was ours: leave no half-written file behind
        raise
    return path


def save_video(
    directory: str,
    prefix: str,
    frames: torch.Tensor | np.ndarray,
    fps: float,
    format: str = "mp4",
    metadata: dict[str, Any] | None = None,
    **options: Any,
) -> str:
    """Write to the next free ``<directory>/<prefix>_NNNNN_.<format>`` (ComfyUI's numbering) and return it.

    ``prefix`` may name subfolders (``"video/clip"``), which are created. Safe against other writers: a name
    is claimed atomically before encoding, and a name taken in the meantime is skipped. ``options`` are
    those of ``write_video``.
    """
    fmt = format.lower()
    if fmt not in FORMATS:
        raise ValueError(f"unsupported video format {format!r}; choose one of {', '.join(FORMATS)}")
    for _ in range(1000):
        path = next_free_path(directory, prefix, fmt)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            return write_video(path, frames, fps, fmt, metadata, **options)
        except FileExistsError:
            continue  # another writer took this number between our scan and our claim
    raise RuntimeError(f"could not find a free file name for prefix {prefix!r} in {directory}")
