"""API-format workflows of the pack's nodes through the headless runner, end to end, files read back."""

from __future__ import annotations

import json

import pytest
import test_nodes_fixtures as fx
import torch
from videocascade.runtime.executor import NodeExecutionError, run_workflow
from videocascade.runtime.loaders import PATH_CHOICE
from videocascade.runtime.validation import WorkflowValidationError
from videocascade.video_io import read_video


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def node(class_type, **inputs):
    return {"class_type": class_type, "inputs": inputs}


def sprites_cascade(prefix="cascade/sprites"):
    """Sprites clip -> x2 frames -> x2 pixels -> mp4: the weight-free half of the cascade."""
    return {
        "1": node("VCSpritesClip", seed=5, frames=9, width=32, height=24, fps=8.0, background="plain",
                  split="train", caption_style="canonical", color="red", shape="circle", motion="right"),
        "2": node("VCTemporalInterpolate", images=["1", 0], mode="x2", fps=["1", 2], target_fps=24.0,
                  method="flow"),
        "3": node("VCSpatialUpscale", images=["2", 0], scale=2.0, width=0, height=0, method="lanczos",
                  sharpen=0.0),
        "4": node("VCSaveVideo", images=["3", 0], fps=["2", 1], format="mp4", filename_prefix=prefix, crf=18),
    }  # fmt: skip


def text_to_video(paths, prompt="a red circle moving left"):
    """The whole pipeline on tiny checkpoints given by path."""
    loader = {"file": PATH_CHOICE}
    return {
        "1": node("VCTextEncoderLoader", **loader, dtype="auto", path=paths["text_encoder"]),
        "2": node("VCTextEncode", text_encoder=["1", 0], text=prompt),
        "3": node("VCTextEncode", text_encoder=["1", 0], text=""),
        "4": node("VCVAELoader", **loader, dtype="auto", path=paths["vae"]),
        "5": node("VCDiTLoader", **loader, dtype="auto", attention="sdpa", path=paths["dit"]),
        "6": node("VCEmptyVideoLatent", vae=["4", 0], width=32, height=32, frames=9, batch_size=1),
        "7": node("VCDiTSampler", model=["5", 0], positive=["2", 0], negative=["3", 0], latent=["6", 0],
                  seed=11, steps=3, cfg=4.0, solver="default", schedule="default", shift=0.0, denoise=1.0),
        "8": node("VCVAEDecode", vae=["4", 0], latent=["7", 0], chunk_frames=1, tile_size=0, tile_overlap=16),
        "9": node("VCTemporalInterpolate", images=["8", 0], mode="x2", fps=8.0, target_fps=24.0, method="blend"),
        "10": node("VCSpatialUpscale", images=["9", 0], scale=2.0, width=0, height=0, method="bicubic",
                   sharpen=0.5),
        "11": node("VCSaveVideo", images=["10", 0], fps=["9", 1], format="webm", filename_prefix="t2v/clip",
                   crf=30),
    }  # fmt: skip


def test_sprites_cascade_runs_and_writes_a_playable_mp4(tmp_path):
    graph = sprites_cascade()
    result = run_workflow(graph, output_dir=tmp_path)
    (path,) = result.files
    assert path.endswith("cascade/sprites_00001_.mp4")
    frames, fps, metadata = read_video(path)
    assert frames.shape == (17, 48, 64, 3) and fps == pytest.approx(16.0)
    assert json.loads(metadata["prompt"]) == graph
    assert result.ui_outputs["4"]["images"][0]["subfolder"] == "cascade"
    assert [t.class_type for t in result.timings] == [graph[i]["class_type"] for i in ("1", "2", "3", "4")]


def test_text_to_video_workflow_end_to_end(tmp_path):
    paths = fx.own_models(tmp_path / "models")
    result = run_workflow(text_to_video(paths), output_dir=tmp_path / "out")
    (path,) = result.files
    frames, fps, _ = read_video(path)
    assert frames.shape == (17, 64, 64, 3) and fps == pytest.approx(16.0)
    assert frames.std() > 0.01
    # Same seed, same video (the webm is lossy but deterministic).
    again = run_workflow(text_to_video(paths), output_dir=tmp_path / "again")
    assert torch.equal(read_video(again.files[0])[0], frames)


def test_runner_reports_node_errors_and_validation_errors(tmp_path):
    paths = fx.own_models(tmp_path / "models")
    graph = text_to_video(paths)
    graph["6"]["inputs"]["width"] = 34  # not a multiple of the VAE's spatial factor
    with pytest.raises(NodeExecutionError, match=r"node 6 \(VCEmptyVideoLatent\) failed.*spatial factor 4"):
        run_workflow(graph, output_dir=tmp_path / "out")
    graph = sprites_cascade()
    graph["3"]["inputs"]["method"] = "sinc"
    graph["1"]["inputs"]["split"] = "test"
    with pytest.raises(WorkflowValidationError) as error:
        run_workflow(graph, output_dir=tmp_path / "out")
    assert {issue.input_name for issue in error.value.issues} == {"method", "split"}
