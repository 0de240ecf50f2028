"""Video files: write/read round trips per format, metadata, numbering without overwriting, errors."""

import json
import os

import numpy as np
import pytest
import torch
from videocascade.sprites import random_clip_spec, render_clip
from videocascade.video_io import FORMATS, next_free_path, read_metadata, read_video, save_video, write_video

# Mean absolute error allowed after a lossy round trip (8-bit, chroma subsampling, codec quantisation).
TOLERANCE = {"mp4": 0.025, "webm": 0.03, "gif": 0.01}


def _clip(height=64, width=64, frames=16, fps=8.0, seed=5, kinds=("stripes",)):
    spec = random_clip_spec(seed, num_objects=2, background_kinds=kinds)
    return render_clip(spec, frames, height, width, fps)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("size", [(64, 64), (33, 47)])
def test_round_trip_keeps_count_size_fps_and_pixels(tmp_path, fmt, size):
    frames = _clip(*size)
    path = write_video(str(tmp_path / f"clip.{fmt}"), frames, fps=8.0)
    assert path == str(tmp_path / f"clip.{fmt}")
    out, fps, _ = read_video(path)
    assert out.shape == frames.shape and out.dtype == torch.float32
    assert fps == pytest.approx(8.0)
    assert (out - frames).abs().mean() < TOLERANCE[fmt]
    # Per frame too: no frame is dropped, duplicated or shifted.
    per_frame = (out - frames).abs().mean(dim=(1, 2, 3))
    shifted = (out[1:] - frames[:-1]).abs().mean(dim=(1, 2, 3))
    assert (per_frame[1:] < shifted).all()


def test_gif_with_many_colours_uses_an_adaptive_palette(tmp_path):
    frames = _clip(kinds=("noise",))
    out, _, _ = read_video(write_video(str(tmp_path / "noise.gif"), frames, fps=10))
    assert (out - frames).abs().mean() < 0.01
    smooth = torch.linspace(0, 1, 96).view(1, 1, -1, 1).expand(4, 32, 96, 3).contiguous()
    smooth[..., 1] = smooth[..., 1].flip(-1)
    out, _, _ = read_video(write_video(str(tmp_path / "ramp.gif"), smooth, fps=10))
    assert (out - smooth).abs().max() < 0.03


@pytest.mark.parametrize("fmt", FORMATS)
def test_metadata_round_trip(tmp_path, fmt):
    prompt = {"3": {"class_type": "VCSampler", "inputs": {"text": "a red circle — moving left ✓"}}}
    workflow = {"nodes": [{"id": i, "widgets_values": ["x" * 40]} for i in range(500)], "links": []}
    metadata = {"prompt": json.dumps(prompt), "workflow": workflow}  # a dict value is stored as JSON
    path = save_video(str(tmp_path), "meta", torch.rand(3, 16, 16, 3), 12, fmt, metadata=metadata)
    read = read_metadata(path)
    assert json.loads(read["prompt"]) == prompt
    assert json.loads(read["workflow"]) == workflow
    assert read_video(path)[2]["prompt"] == read["prompt"]


def test_save_video_numbers_files_and_never_overwrites(tmp_path):
    frames = torch.rand(2, 8, 8, 3)
    first = save_video(str(tmp_path), "video/clip", frames, 8, "gif")
    second = save_video(str(tmp_path), "video/clip", frames, 8, "mp4")
    assert first == str(tmp_path / "video" / "clip_00001_.gif")
    assert second == str(tmp_path / "video" / "clip_00002_.mp4")  # one counter across extensions
    assert next_free_path(str(tmp_path), "video/clip", "webm").endswith("clip_00003_.webm")
    # Gaps and other prefixes do not matter: one past the highest number of this prefix.
    (tmp_path / "video" / "clip_00041_.png").write_bytes(b"")
    (tmp_path / "video" / "clipper_00099_.mp4").write_bytes(b"")
    assert next_free_path(str(tmp_path), "video/clip", ".mp4").endswith("clip_00042_.mp4")
    before = open(first, "rb").read()
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        write_video(first, torch.zeros(2, 8, 8, 3), 8)
    assert open(first, "rb").read() == before


def test_prefix_may_not_leave_the_output_folder(tmp_path):
    with pytest.raises(ValueError, match="outside the output folder"):
        next_free_path(str(tmp_path), "../escape", "mp4")
    with pytest.raises(ValueError, match="must end with a file name"):
        next_free_path(str(tmp_path), "video/", "mp4")


def test_read_options_select_and_resize(tmp_path):
    frames = _clip(frames=12)
    path = write_video(str(tmp_path / "c.webm"), frames, fps=12)
    out, fps, _ = read_video(path, start=2, step=3, max_frames=3, size=(16, 24))
    assert out.shape == (3, 16, 24, 3) and fps == pytest.approx(4.0)
    full, _, _ = read_video(path)
    picked = torch.nn.functional.interpolate(
        full[[2, 5, 8]].permute(0, 3, 1, 2), size=(16, 24), mode="bilinear", antialias=True
    ).permute(0, 2, 3, 1)
    torch.testing.assert_close(out, picked.clamp(0, 1), atol=1e-5, rtol=0)


def test_uint8_and_numpy_inputs(tmp_path):
    frames = (np.random.default_rng(0).random((4, 16, 16, 3)) * 255).astype(np.uint8)
    out, _, _ = read_video(write_video(str(tmp_path / "u8.gif"), frames, fps=5))
    assert np.abs(out.numpy() * 255 - frames).max() < 40  # random pixels: 256-colour palette error only


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="video file not found"):
        read_video(str(tmp_path / "missing.mp4"))
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    with pytest.raises(ValueError, match="not a readable video file"):
        read_video(str(text))
    with pytest.raises(ValueError, match="not a readable video file"):
        read_metadata(str(text))
    path = write_video(str(tmp_path / "short.mp4"), torch.rand(3, 16, 16, 3), 8)
    with pytest.raises(ValueError, match="past the end"):
        read_video(path, start=10)
    with pytest.raises(ValueError, match=r"frames must be \[N, H, W, 3\]"):
        write_video(str(tmp_path / "bad.mp4"), torch.rand(3, 3, 16, 16), 8)
    with pytest.raises(ValueError, match="fps must be a positive number"):
        write_video(str(tmp_path / "bad.mp4"), torch.rand(3, 16, 16, 3), 0)
    with pytest.raises(ValueError, match="unsupported video format"):
        write_video(str(tmp_path / "bad.avi"), torch.rand(3, 16, 16, 3), 8)
    with pytest.raises(ValueError, match=r"does not end in \.webm"):
        write_video(str(tmp_path / "bad.mp4"), torch.rand(3, 16, 16, 3), 8, format="webm")
    # A failed encode leaves no file behind.
    with pytest.raises(ValueError, match="pixel format"):
        write_video(str(tmp_path / "broken.mp4"), torch.rand(3, 16, 16, 3), 8, pix_fmt="not-a-format")
    assert not os.path.exists(tmp_path / "broken.mp4")
    assert not os.path.exists(tmp_path / "bad.mp4")
