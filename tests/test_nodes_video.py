"""Frame nodes on real clips and files: sprites clips, temporal interpolation, spatial upscaling, video I/O."""

from __future__ import annotations

import json
import os

import pytest
import torch
from videocascade.nodes import NODE_CLASS_MAPPINGS
from videocascade.runtime.loaders import PATH_CHOICE
from videocascade.runtime.outputs import use_output_directory
from videocascade.sprites import HELD_OUT_COMBINATIONS, measure_clip
from videocascade.video_io import read_metadata, read_video

NODES = NODE_CLASS_MAPPINGS


def run(node_id, *args, **kwargs):
    node = NODES[node_id]()
    return getattr(node, node.FUNCTION)(*args, **kwargs)


def clip(seed=3, frames=9, width=64, height=48, fps=8.0, **fixed):
    return run("VCSpritesClip", seed, frames, width, height, fps, "plain", "train", "canonical", **fixed)


# -- sprites ------------------------------------------------------------------------------------------------------
def test_sprites_clip_is_deterministic_and_honours_fixed_attributes():
    frames, caption, fps = clip(color="blue", shape="square", motion="right")
    assert frames.shape == (9, 48, 64, 3) and frames.dtype == torch.float32 and fps == 8.0
    assert caption.startswith("a blue square moving right")
    assert torch.equal(frames, clip(color="blue", shape="square", motion="right")[0])
    assert not torch.equal(frames, clip(seed=4, color="blue", shape="square", motion="right")[0])
    assert ("blue", "square", "right") in measure_clip(frames)  # measured back from the pixels


def test_sprites_split_rules_are_explained():
    held = sorted(HELD_OUT_COMBINATIONS)[0]
    with pytest.raises(ValueError, match="held-out combinations are kept out of 'train'"):
        clip(color=held[0], shape=held[1], motion=held[2])
    _, caption, _ = run("VCSpritesClip", 1, 5, 32, 32, 8.0, "stripes", "heldout", "canonical")
    first = caption.split(" and ")[0]
    assert any(
        first.startswith(f"a {c} {s}") or first.startswith(f"an {c} {s}") for c, s, _ in HELD_OUT_COMBINATIONS
    )


# -- temporal -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode, count, fps", [("x2", 17, 16.0), ("x3", 25, 24.0), ("target fps", 25, 24.0)])
def test_temporal_modes_give_frame_counts_and_fps(mode, count, fps):
    frames = clip()[0]
    out, out_fps = run("VCTemporalInterpolate", frames, mode, 8.0, 24.0, "blend")
    assert out.shape == (count, 48, 64, 3) and out_fps == fps
    step = {"x2": 2, "x3": 3, "target fps": 3}[mode]
    assert torch.equal(out[::step], frames)  # source frames are kept exactly


def test_temporal_flow_and_errors():
    frames = clip(motion="left")[0]
    out, _ = run("VCTemporalInterpolate", frames, "x2", 8.0, 24.0, "flow")
    assert out.shape[0] == 17 and not torch.equal(out[1], (frames[0] + frames[1]) / 2)
    with pytest.raises(ValueError, match="at least 2 frames"):
        run("VCTemporalInterpolate", frames[:1], "x2", 8.0, 24.0, "flow")
    with pytest.raises(TypeError, match="'interpolator' expects an interpolator from VC Interpolator Loader"):
        run("VCTemporalInterpolate", frames, "x2", 8.0, 24.0, "flow", interpolator=object())


# -- spatial ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "scale, width, height, size", [(2.0, 0, 0, (96, 128)), (1.0, 96, 0, (72, 96)), (1.0, 0, 24, (24, 32)),
                                   (3.0, 50, 40, (40, 50))]
)  # fmt: skip
def test_spatial_upscale_sizes(scale, width, height, size):
    frames = clip(frames=3)[0]
    out = run("VCSpatialUpscale", frames, scale, width, height, "bicubic", 0.0)[0]
    assert out.shape == (3, *size, 3) and 0.0 <= out.min() and out.max() <= 1.0


def test_spatial_nearest_is_pixel_repetition_and_sharpen_raises_edge_contrast():
    frames = clip(frames=2)[0]
    nearest = run("VCSpatialUpscale", frames, 2.0, 0, 0, "nearest", 0.0)[0]
    assert torch.equal(nearest, frames.repeat_interleave(2, 1).repeat_interleave(2, 2))
    soft = run("VCSpatialUpscale", frames, 2.0, 0, 0, "bilinear", 0.0)[0]
    sharp = run("VCSpatialUpscale", frames, 2.0, 0, 0, "bilinear", 1.0)[0]
    # Mean squared gradient: a steeper edge raises it even when the total rise (mean |dx|) stays the same.
    gradient = lambda x: ((x[:, :, 1:] - x[:, :, :-1]) ** 2).mean()  # noqa: E731
    assert gradient(sharp) > gradient(soft) * 1.1
    assert (sharp - soft).abs().mean() < 0.05  # flat areas stay as they were
    with pytest.raises(TypeError, match="'upscaler' expects an upscaler from VC Upscaler Loader"):
        run("VCSpatialUpscale", frames, 2.0, 0, 0, "nearest", 0.0, upscaler=object())


# -- video files --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["mp4", "webm", "gif"])
def test_save_video_writes_numbered_files_with_the_workflow(tmp_path, fmt):
    frames = clip()[0]
    prompt = {"1": {"class_type": "VCSpritesClip", "inputs": {}}}
    workflow = {"workflow": {"nodes": [], "links": []}}
    with use_output_directory(tmp_path):
        first = run(
            "VCSaveVideo", frames, 8.0, fmt, "clips/sprites", 20, prompt=prompt, extra_pnginfo=workflow
        )
        second = run("VCSaveVideo", frames, 8.0, fmt, "clips/sprites", 20, prompt=prompt)
    entry = first["ui"]["images"][0]
    assert first["ui"]["animated"] == [True] and first["result"] == ()
    assert entry == {"filename": f"sprites_00001_.{fmt}", "subfolder": "clips", "type": "output"}
    assert second["ui"]["images"][0]["filename"] == f"sprites_00002_.{fmt}"
    path = os.path.join(tmp_path, "clips", entry["filename"])
    back, fps, metadata = read_video(path)
    assert back.shape == frames.shape and fps == pytest.approx(8.0)
    assert (back - frames).abs().mean() < 0.03
    assert (
        json.loads(metadata["prompt"]) == prompt and json.loads(metadata["workflow"]) == workflow["workflow"]
    )
    assert "workflow" not in read_metadata(os.path.join(tmp_path, "clips", f"sprites_00002_.{fmt}"))


def test_preview_writes_to_the_temp_folder(tmp_path):
    with use_output_directory(tmp_path / "out", tmp_path / "temp"):
        result = run("VCPreviewVideo", clip()[0], 8.0, "webm", 30)
    (entry,) = result["ui"]["images"]
    assert entry["type"] == "temp" and os.path.isfile(tmp_path / "temp" / entry["filename"])
    assert not os.path.exists(tmp_path / "out") or not os.listdir(tmp_path / "out")


def test_load_video_selects_frames_and_resizes_keeping_aspect(tmp_path):
    frames = clip(frames=12)[0]
    with use_output_directory(tmp_path):
        entry = run("VCSaveVideo", frames, 12.0, "mp4", "src", 16)["ui"]["images"][0]
    path = str(tmp_path / entry["filename"])
    images, fps, count = run("VCLoadVideo", PATH_CHOICE, 0, 0, 1, 0, 0, path=path)
    assert images.shape == (12, 48, 64, 3) and fps == pytest.approx(12.0) and count == 12
    images, fps, count = run("VCLoadVideo", PATH_CHOICE, 4, 1, 2, 32, 0, path=path)
    assert images.shape == (4, 24, 32, 3) and fps == pytest.approx(6.0) and count == 4
    with pytest.raises(FileNotFoundError, match="video file not found"):
        run("VCLoadVideo", PATH_CHOICE, 0, 0, 1, 0, 0, path=str(tmp_path / "none.mp4"))
    with pytest.raises(ValueError, match="pick a file of ComfyUI's input folder or fill the 'path'"):
        run("VCLoadVideo", PATH_CHOICE, 0, 0, 1, 0, 0)
