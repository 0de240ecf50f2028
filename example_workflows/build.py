"""Build the example workflows: one definition each, written as a UI-format graph (what ComfyUI opens by drag
and drop, Workflow > Open, or its template browser) and as its API-format twin (what ``POST /prompt`` and
``python -m videocascade run`` take), so the two never drift apart.

    python -m videocascade.example_workflows.build           # (re)write example_workflows/*.json, api/*_api.json
    python -m videocascade.example_workflows.build --check   # exit 1 when a file differs from its definition
    python -m videocascade.example_workflows.build --thumbnails [NAME ...]  # run them, write <name>.jpg

Widget values are laid out from the node classes themselves (``INPUT_TYPES`` order plus the values only the
frontend keeps, such as a seed's ``control_after_generate``), so when a node gains or loses an input the
files go stale, and ``--check`` and ``tests/test_example_workflows.py`` say so.

The API twins live in ``api/``: ComfyUI lists every ``example_workflows/*.json`` as a template, and an
API-format file opened as a template would not load as a graph.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from ..runtime.loaders import PATH_CHOICE
from ..runtime.schema import InputSpec, node_inputs, return_names, return_types, types_compatible

HERE = os.path.dirname(os.path.abspath(__file__))
API_DIR = os.path.join(HERE, "api")

# --- model files the workflows name ------------------------------------------------------------------------
# Embedded (trained on the sprites world, shipped in weights/): loader dropdowns list them as embedded/<file>.
TEXT_ENCODER_SPRITES = "embedded/text_encoder-sprites.safetensors"
VAE_SPRITES_3D = "embedded/vae-sprites-3d.safetensors"  # 3D causal VAE, 4x temporal compression
VAE_SPRITES_FRAME = (
    "embedded/vae-sprites-frame.safetensors"  # per-frame latent, temporally fine-tuned decoder
)
VAE_PIXEL_SPACE = "builtin/pixel-space"  # identity "VAE": the Make-A-Video base denoises pixels
DIT_SPRITES_SORA = "embedded/dit-sprites-sora.safetensors"
DIT_SPRITES_VIDEOLDM = "embedded/dit-sprites-videoldm.safetensors"
DIT_SPRITES_MAKEAVIDEO = "embedded/dit-sprites-makeavideo.safetensors"
INTERPOLATOR_SPRITES = "embedded/interpolator-sprites-tsr.safetensors"  # learned TSR
UPSCALER_SPRITES = "embedded/upscaler-sprites-ssr.safetensors"  # learned SSR (x2 and x4)
EMBEDDED_FILES = (
    TEXT_ENCODER_SPRITES,
    VAE_SPRITES_3D,
    VAE_SPRITES_FRAME,
    VAE_PIXEL_SPACE,
    DIT_SPRITES_SORA,
    DIT_SPRITES_VIDEOLDM,
    DIT_SPRITES_MAKEAVIDEO,
    INTERPOLATOR_SPRITES,
    UPSCALER_SPRITES,
)
# The sampler settings the embedded DiTs were trained and evaluated with (their cards, their metadata).
SPRITES_SAMPLER = {"seed": 0, "steps": 20, "cfg": 4.0}

# Wan 2.1 as ComfyUI users keep it (Comfy-Org's repackaged files, in ComfyUI's standard model folders).
WAN_REPO = "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files"
WAN_DIT = "wan2.1_t2v_1.3B_bf16.safetensors"
WAN_TEXT_ENCODER = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
WAN_VAE = "wan_2.1_vae.safetensors"
WAN_FILES = {  # file -> ComfyUI models/ folder
    WAN_DIT: "diffusion_models",
    WAN_TEXT_ENCODER: "text_encoders",
    WAN_VAE: "vae",
}
# CogVideoX-2b as its authors publish it: one diffusers pipeline folder (text_encoder/ + tokenizer/,
# transformer/, vae/), where ComfyUI's CogVideoX users already keep it.
COGVIDEOX_FOLDER = "models/CogVideo/CogVideoX-2b"
REAL_FILES = (*WAN_FILES, PATH_CHOICE)

# --- prompts from the sprites world --------------------------------------------------------------------------
SORA_PROMPT = "a red circle moves to the right"
VIDEOLDM_PROMPT = "a green triangle moves to the left"
MAKEAVIDEO_PROMPT = "a blue square moves up"
WAN_PROMPT = (
    "a red paper boat drifts down a narrow stream in a sunlit forest, ripples spreading on the water, "
    "leaves floating past, the camera slowly following the boat"
)
WAN_NEGATIVE = (
    "oversaturated, overexposed, static, blurry details, subtitles, text, watermark, worst quality, low "
    "quality, JPEG artifacts, ugly, deformed, extra limbs, messy background, frozen frame"
)
COGVIDEOX_PROMPT = (
    "a golden retriever runs across a grassy park toward the camera on a bright afternoon, its ears flapping, "
    "trees and a blue sky behind it, shallow depth of field"
)


# ------------------------------------------------------------------------------------------------------------
# Definitions


@dataclass
class Node:
    """One node of a definition. ``links`` maps an input to ``"<source key>.<output name>"``."""

    key: str
    class_type: str
    values: dict[str, Any] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    title: str | None = None
    color: str | None = None  # a key of COLORS
    width: int = 320
    extra_height: int = 0  # room for a video preview on save nodes
    models: list[dict[str, str]] = field(default_factory=list)  # frontend's missing-model download hints


@dataclass
class Stage:
    """A pipeline stage: a titled group of node columns, laid out left to right."""

    title: str
    columns: list[list[Node]]


@dataclass
class Definition:
    name: str
    note: str
    stages: list[Stage]
    note_title: str = "Read me"

    def nodes(self) -> list[Node]:
        return [node for stage in self.stages for column in stage.columns for node in column]


COLORS = {
    "green": ("#232", "#353"),  # ComfyUI's convention for the positive prompt
    "red": ("#322", "#533"),  # ... and for the negative one
    "yellow": ("#432", "#653"),  # notes
}
SEED_CONTROL = "fixed"  # examples reproduce the documented output; ComfyUI's own default is "randomize"


def text_encoder_nodes(file: str, positive: str, negative: str = "", **loader_values: Any) -> Stage:
    loader = Node(
        "text_encoder",
        "VCTextEncoderLoader",
        {"file": file, **loader_values},
        title="Text encoder",
        width=400,
    )
    pos = Node(
        "positive",
        "VCTextEncode",
        {"text": positive},
        {"text_encoder": "text_encoder.text_encoder"},
        "Positive prompt",
        "green",
        400,
    )
    neg = Node(
        "negative",
        "VCTextEncode",
        {"text": negative},
        {"text_encoder": "text_encoder.text_encoder"},
        "Negative prompt",
        "red",
        400,
    )
    return Stage("1 · Text", [[loader], [pos, neg]])


def save_node(prefix: str, images: str, fps: float | str, title: str = "Save video") -> Node:
    """``images``: ``"<key>.<output>"``; ``fps``: a number, or ``"<key>.<output>"`` to link it."""
    values: dict[str, Any] = {"format": "mp4", "filename_prefix": f"VideoCascade/{prefix}", "crf": 19}
    links: dict[str, str] = {"images": images}
    if isinstance(fps, str):
        links["fps"] = fps
    else:
        values["fps"] = float(fps)
    return Node("save", "VCSaveVideo", values, links, title, width=380, extra_height=300)


def weight_free_tsr_x4_and_ssr_x2(source: str) -> tuple[Node, Node]:
    """Flow interpolation x4 of ``source``'s frames, then Lanczos + detail restoration x2."""
    tsr = Node(
        "tsr",
        "VCTemporalInterpolate",
        {"mode": "x4", "target_fps": 24.0, "method": "flow"},
        {"images": f"{source}.images", "fps": f"{source}.fps"},
        "Temporal interpolate x4 (flow)",
    )
    ssr = Node(
        "ssr",
        "VCSpatialUpscale",
        {"scale": 2.0, "width": 0, "height": 0, "method": "lanczos", "sharpen": 1.0},
        {"images": "tsr.images"},
        "Spatial upscale x2",
    )
    return tsr, ssr


def interpolate_upscale() -> Definition:
    clip = Node(
        "clip",
        "VCSpritesClip",
        {
            "seed": 3,
            "frames": 17,
            "width": 64,
            "height": 64,
            "fps": 8.0,
            "background": "stripes",
            "split": "train",
            "caption_style": "canonical",
            "color": "red",
            "shape": "circle",
            "motion": "right",
        },
        title="Source clip (17 frames, 64x64, 8 fps)",
    )
    preview = Node(
        "preview",
        "VCPreviewVideo",
        {"format": "mp4", "crf": 19},
        {"images": "clip.images", "fps": "clip.fps"},
        "Preview: source clip",
        extra_height=240,
    )
    tsr, ssr = weight_free_tsr_x4_and_ssr_x2("clip")
    save = save_node("interpolate_upscale", "ssr.images", "tsr.fps")
    note = (
        "Temporal interpolation (TSR) and spatial upscaling (SSR) of a clip, weight-free: nothing to download.\n\n"
        "1. VC Sprites Clip renders a procedural clip (a red circle moving right over stripes): 17 frames, "
        "64x64, 8 fps. Swap it for VC Load Video (see interpolate_upscale_from_file) to use your own video.\n"
        "2. VC Temporal Interpolate x4 inserts 3 frames between each pair along the optical flow: "
        "(17-1)*4+1 = 65 frames at 32 fps. 'blend' cross-fades instead.\n"
        "3. VC Spatial Upscale x2 resamples every frame to 128x128 (Lanczos) and restores edge detail.\n"
        "4. VC Save Video writes an H.264 mp4 to output/VideoCascade/.\n\n"
        "Headless: python -m videocascade run example_workflows/interpolate_upscale.json --output-dir output\n"
        "Change a value: --set 1.frames=33 --set 3.mode=x2"
    )
    return Definition(
        "interpolate_upscale",
        note,
        [
            Stage("1 · Source clip", [[clip, preview]]),
            Stage("2 · Temporal super-resolution (more frames)", [[tsr]]),
            Stage("3 · Spatial super-resolution (more pixels)", [[ssr]]),
            Stage("4 · Save", [[save]]),
        ],
    )


def interpolate_upscale_from_file() -> Definition:
    load = Node(
        "load",
        "VCLoadVideo",
        {"video": PATH_CHOICE, "max_frames": 0, "start": 0, "step": 1, "width": 0, "height": 0, "path": ""},
        title="Load your video",
        width=380,
    )
    tsr, ssr = weight_free_tsr_x4_and_ssr_x2("load")
    save = save_node("interpolate_upscale_from_file", "ssr.images", "tsr.fps")
    note = (
        "Raise the frame rate (x4) and the resolution (x2) of your own video, weight-free.\n\n"
        "1. VC Load Video: pick a video of ComfyUI's input folder (or upload one), or type a full file path "
        "into 'path'. max_frames / start / step pick a part of it; width / height resize on load (keep "
        "clips small on a CPU: 4x the frames at 4x the pixels add up fast).\n"
        "2. VC Temporal Interpolate x4 along the optical flow: (N-1)*4+1 frames at 4x the fps.\n"
        "3. VC Spatial Upscale x2 (Lanczos + edge-aware detail restoration).\n"
        "4. VC Save Video writes an mp4 to output/VideoCascade/.\n\n"
        "Headless: python -m videocascade run example_workflows/interpolate_upscale_from_file.json "
        "--set 1.path=/path/to/clip.mp4 --output-dir output"
    )
    return Definition(
        "interpolate_upscale_from_file",
        note,
        [
            Stage("1 · Your video", [[load]]),
            Stage("2 · Temporal super-resolution (more frames)", [[tsr]]),
            Stage("3 · Spatial super-resolution (more pixels)", [[ssr]]),
            Stage("4 · Save", [[save]]),
        ],
    )


def _latent_stage(
    title: str,
    dit_file: str,
    vae_file: str,
    size: tuple[int, int, int],
    sampler: dict[str, Any],
    dit_title: str,
    vae_title: str,
    sampler_title: str = "DiT sampler",
    loader_values: Mapping[str, Any] | None = None,
) -> Stage:
    """DiT + VAE loaders, an empty video latent of ``size`` = (width, height, frames), and the sampler."""
    extra = dict(loader_values or {})
    dit = Node(
        "dit",
        "VCDiTLoader",
        {"file": dit_file, "dtype": "auto", "attention": "auto", **extra.get("dit", {})},
        title=dit_title,
        width=400,
    )
    vae = Node(
        "vae",
        "VCVAELoader",
        {"file": vae_file, "dtype": "auto", **extra.get("vae", {})},
        title=vae_title,
        width=400,
    )
    width, height, frames = size
    latent = Node(
        "latent",
        "VCEmptyVideoLatent",
        {"width": width, "height": height, "frames": frames, "batch_size": 1},
        {"vae": "vae.vae"},
        "Empty video latent",
        width=400,
    )
    sample = Node(
        "sampler",
        "VCDiTSampler",
        {
            "seed": 0,
            "steps": 30,
            "cfg": 5.0,
            "solver": "default",
            "schedule": "default",
            "shift": 0.0,
            "denoise": 1.0,
            **sampler,
        },
        {
            "model": "dit.model",
            "positive": "positive.CONDITIONING",
            "negative": "negative.CONDITIONING",
            "latent": "latent.LATENT",
        },
        sampler_title,
        width=340,
    )
    return Stage(title, [[dit, vae, latent], [sample]])


def _decode_node(chunk_frames: int = 2, tile_size: int = 0, tile_overlap: int = 64, title: str = "") -> Node:
    return Node(
        "decode",
        "VCVAEDecode",
        {"chunk_frames": chunk_frames, "tile_size": tile_size, "tile_overlap": tile_overlap},
        {"vae": "vae.vae", "latent": "sampler.LATENT"},
        title or f"VAE decode ({chunk_frames} latent frames at a time)",
    )


def learned_tsr(mode: str, fps: float, images: str) -> list[Node]:
    """The learned interpolator and VC Temporal Interpolate using it (its 'method' is then unused)."""
    loader = Node(
        "interpolator",
        "VCInterpolatorLoader",
        {"file": INTERPOLATOR_SPRITES, "dtype": "auto"},
        title="Learned interpolator (TSR)",
        width=380,
    )
    tsr = Node(
        "tsr",
        "VCTemporalInterpolate",
        {"mode": mode, "fps": fps, "target_fps": 24.0, "method": "flow"},
        {"images": images, "interpolator": "interpolator.interpolator"},
        f"TSR: temporal interpolate {mode}",
        width=380,
    )
    return [loader, tsr]


def learned_ssr(scale: float, images: str) -> list[Node]:
    """The learned upscaler and VC Spatial Upscale using it ('method' and 'sharpen' are then unused)."""
    loader = Node(
        "upscaler",
        "VCUpscalerLoader",
        {"file": UPSCALER_SPRITES, "dtype": "auto"},
        title="Learned upscaler (SSR)",
        width=380,
    )
    ssr = Node(
        "ssr",
        "VCSpatialUpscale",
        {"scale": scale, "width": 0, "height": 0, "method": "lanczos", "sharpen": 1.0},
        {"images": images, "upscaler": "upscaler.upscaler"},
        f"SSR: spatial upscale x{scale:g}",
        width=380,
    )
    return [loader, ssr]


def sora_style_t2v() -> Definition:
    decode = _decode_node()
    save = save_node("sora_style_t2v", "decode.images", 8.0)
    note = (
        "Sora-style text to video: a diffusion transformer with full 3D attention over the latent of a 3D "
        "causal VAE (4x temporal, 4x spatial compression, 8 latent channels), on the pack's embedded sprites-world models "
        "(CPU, seconds).\n\n"
        "1. The text encoder turns the prompt into embeddings (an empty negative prompt for guidance).\n"
        "2. VC Empty Video Latent sizes the video (frames 1+4k: 17 frames -> 5 latent frames); the DiT "
        "denoises it, every token attending to every other across space and time.\n"
        "3. VC VAE Decode turns the latent back into frames, 2 latent frames at a time (causal chunks keep "
        "memory flat for long clips).\n"
        "4. VC Save Video writes an mp4 (8 fps: the rate the models were trained at).\n\n"
        "Files (embedded, in the pack's weights/ folder): text_encoder-sprites, vae-sprites-3d, "
        "dit-sprites-sora (.safetensors).\n"
        "Prompts: one or two shapes (circle, square, triangle, diamond, star, cross) in a colour (red, "
        "orange, yellow, green, cyan, blue, purple, white) that move left/right/up/down/diagonally, grow, "
        "shrink or stay still.\n\n"
        "Headless: python -m videocascade run example_workflows/sora_style_t2v.json "
        "--set 'Positive prompt.text=a yellow star moves down'"
    )
    return Definition(
        "sora_style_t2v",
        note,
        [
            text_encoder_nodes(TEXT_ENCODER_SPRITES, SORA_PROMPT),
            _latent_stage(
                "2 · Denoise the video latent (full-attention DiT)",
                DIT_SPRITES_SORA,
                VAE_SPRITES_3D,
                (64, 64, 17),
                SPRITES_SAMPLER,
                "DiT (full 3D attention)",
                "3D causal VAE (4x temporal)",
            ),
            Stage("3 · Decode (chunked)", [[decode]]),
            Stage("4 · Save", [[save]]),
        ],
    )


def videoldm() -> Definition:
    decode = _decode_node(chunk_frames=4, title="VAE decode (temporally fine-tuned decoder)")
    tsr_nodes = learned_tsr("x2", 8.0, "decode.images")
    ssr_nodes = learned_ssr(2.0, "tsr.images")
    save = save_node("videoldm", "ssr.images", "tsr.fps")
    note = (
        "VideoLDM-style text to video: an image latent (no temporal compression: one latent frame per video "
        "frame) denoised by a DiT with factorized attention (spatial inside each frame, then temporal across "
        "frames at each position), decoded by a decoder whose temporal layers were fine-tuned on clips, then "
        "upsampled.\n\n"
        "1. Text encoder + prompts.\n"
        "2. VC Empty Video Latent (17 frames of 64x64 -> 17 latent frames of 16x16) and the factorized DiT.\n"
        "3. VC VAE Decode with the per-frame VAE whose decoder has temporal blocks (no flicker between "
        "frames).\n"
        "4. Upsampling with the learned TSR/SSR networks: x2 frames (8 -> 16 fps, 33 frames), x2 pixels "
        "(64 -> 128). Disconnect their loaders to use the weight-free flow / Lanczos methods instead.\n"
        "5. VC Save Video writes an mp4.\n\n"
        "Files (embedded, in weights/): text_encoder-sprites, vae-sprites-frame, dit-sprites-videoldm, "
        "interpolator-sprites-tsr, upscaler-sprites-ssr.\n\n"
        "Headless: python -m videocascade run example_workflows/videoldm.json "
        "--set 'Positive prompt.text=a white cross moves down-right'"
    )
    return Definition(
        "videoldm",
        note,
        [
            text_encoder_nodes(TEXT_ENCODER_SPRITES, VIDEOLDM_PROMPT),
            _latent_stage(
                "2 · Denoise per-frame latents (factorized DiT)",
                DIT_SPRITES_VIDEOLDM,
                VAE_SPRITES_FRAME,
                (64, 64, 17),
                SPRITES_SAMPLER,
                "DiT (factorized: spatial + temporal attention)",
                "Per-frame VAE (temporal decoder)",
            ),
            Stage("3 · Decode", [[decode]]),
            Stage("4 · TSR (more frames)", [tsr_nodes]),
            Stage("5 · SSR (more pixels)", [ssr_nodes]),
            Stage("6 · Save", [[save]]),
        ],
    )


def makeavideo_cascade() -> Definition:
    decode = _decode_node(chunk_frames=9, title="VAE decode (base clip frames)")
    preview = Node(
        "preview",
        "VCPreviewVideo",
        {"fps": 4.0, "format": "mp4", "crf": 19},
        {"images": "decode.images"},
        "Preview: base clip (64x64, 4 fps)",
        extra_height=240,
    )
    tsr_nodes = learned_tsr("x4", 4.0, "decode.images")
    ssr_nodes = learned_ssr(2.0, "tsr.images")
    save = save_node("makeavideo_cascade", "ssr.images", "tsr.fps")
    note = (
        "Make-A-Video-style cascade: a small base model makes a short, low-resolution, low-frame-rate clip, "
        "then learned super-resolution stages add frames (TSR) and pixels (SSR).\n\n"
        "1. Text encoder + prompts.\n"
        "2. Base: a factorized-attention DiT (spatial layers trained on captioned frames first, temporal "
        "layers on clips after) denoises 9 frames at 4 fps in the per-frame VAE's latent (64x64 -> 16x16).\n"
        "3. VC VAE Decode: the base clip, 9 frames of 64x64.\n"
        "4. TSR x4 (learned interpolator): (9-1)*4+1 = 33 frames, 4 -> 16 fps.\n"
        "5. SSR x2 (learned upscaler): 64x64 -> 128x128.\n"
        "6. VC Save Video writes the 33-frame 128x128 mp4; the preview node shows the base clip.\n"
        "Disconnect a learned loader to use the weight-free method of its stage instead.\n\n"
        "Files (embedded, in weights/): text_encoder-sprites, vae-sprites-frame, dit-sprites-makeavideo, "
        "interpolator-sprites-tsr, upscaler-sprites-ssr.\n"
        "Prompts: one or two shapes (circle, square, triangle, diamond, star, cross) in a colour (red, "
        "orange, yellow, green, cyan, blue, purple, white) that move left/right/up/down/diagonally, grow, "
        "shrink or stay still.\n\n"
        "Headless: python -m videocascade run example_workflows/makeavideo_cascade.json "
        "--set 'Positive prompt.text=a red star grows'"
    )
    return Definition(
        "makeavideo_cascade",
        note,
        [
            text_encoder_nodes(TEXT_ENCODER_SPRITES, MAKEAVIDEO_PROMPT),
            _latent_stage(
                "2 · Base clip (low res, low fps)",
                DIT_SPRITES_MAKEAVIDEO,
                VAE_SPRITES_FRAME,
                (64, 64, 9),
                SPRITES_SAMPLER,
                "Base DiT (factorized attention)",
                "Per-frame VAE",
                "Base clip sampler",
            ),
            Stage("3 · Base clip frames", [[decode, preview]]),
            Stage("4 · TSR (more frames)", [tsr_nodes]),
            Stage("5 · SSR (more pixels)", [ssr_nodes]),
            Stage("6 · Save", [[save]]),
        ],
    )


def _wan_models(file: str) -> list[dict[str, str]]:
    folder = WAN_FILES[file]
    return [{"name": file, "url": f"{WAN_REPO}/{folder}/{file}", "directory": folder}]


def wan21_t2v() -> Definition:
    text = text_encoder_nodes(WAN_TEXT_ENCODER, WAN_PROMPT, WAN_NEGATIVE, dtype="auto")
    text.columns[0][0].title = "umT5-XXL text encoder"
    text.columns[0][0].models = _wan_models(WAN_TEXT_ENCODER)
    latent_stage = _latent_stage(
        "2 · Denoise (Wan 2.1 T2V 1.3B)",
        WAN_DIT,
        WAN_VAE,
        (832, 480, 81),
        {"seed": 0, "steps": 50, "cfg": 5.0, "solver": "default", "schedule": "default", "shift": 0.0},
        "Wan 2.1 T2V 1.3B",
        "Wan 2.1 VAE",
    )
    dit, vae, _ = latent_stage.columns[0]
    dit.models = _wan_models(WAN_DIT)
    vae.models = _wan_models(WAN_VAE)
    decode = _decode_node(chunk_frames=2, tile_size=0, tile_overlap=64)
    save = save_node("wan21_t2v", "decode.images", 16.0)
    note = (
        "Wan 2.1 text to video (1.3B), with the reference settings: 832x480, 81 frames (5 s at 16 fps), "
        "50 steps, guidance 5.0, UniPC with flow shift 3.0 ('default' solver and schedule, shift 0 = the "
        "family default: 3.0 below 720p, 5.0 from 1280x720 up).\n"
        "Wan's authors also suggest guidance 6 and shift 8-12 for the 1.3B model; try them.\n\n"
        "Files (ComfyUI's standard names; the loaders list what is in these folders):\n"
        f"  models/diffusion_models/{WAN_DIT}\n"
        f"  models/text_encoders/{WAN_TEXT_ENCODER}  (tokenizer embedded)\n"
        f"  models/vae/{WAN_VAE}\n"
        "from huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged (split_files/). The fp16 / fp8 variants "
        "and Wan's own or diffusers folders load too (folders: '(path below)' + path).\n\n"
        "Memory: the 1.3B model needs ~8 GB of GPU memory in bf16; a CPU takes hours. For a quick look use "
        "480x272 (or 416x240) and 33 frames.\n\n"
        "Headless: python -m videocascade run example_workflows/wan21_t2v.json --models-dir ~/ComfyUI/models "
        "(or give each loader a path: --set 1.path=/models/umt5_xxl_fp8_e4m3fn_scaled.safetensors, "
        "the same for the DiT and VAE loaders 4 and 5)"
    )
    return Definition(
        "wan21_t2v",
        note,
        [
            text,
            latent_stage,
            Stage("3 · Decode (chunked)", [[decode]]),
            Stage("4 · Save", [[save]]),
        ],
    )


def cogvideox_t2v() -> Definition:
    folder = COGVIDEOX_FOLDER
    text = text_encoder_nodes(
        PATH_CHOICE, COGVIDEOX_PROMPT, "", dtype="auto", path=f"{folder}/text_encoder", tokenizer=""
    )
    text.columns[0][0].title = "T5-XXL text encoder (CogVideoX-2b/text_encoder)"
    latent_stage = _latent_stage(
        "2 · Denoise (CogVideoX-2b)",
        PATH_CHOICE,
        PATH_CHOICE,
        (720, 480, 49),
        {"seed": 0, "steps": 50, "cfg": 6.0, "solver": "default", "schedule": "default", "shift": 0.0},
        "CogVideoX-2b transformer",
        "CogVideoX VAE",
        loader_values={"dit": {"path": f"{folder}/transformer"}, "vae": {"path": f"{folder}/vae"}},
    )
    decode = _decode_node(chunk_frames=2, tile_size=0, tile_overlap=64)
    save = save_node("cogvideox_t2v", "decode.images", 8.0)
    note = (
        "CogVideoX-2b text to video with the reference settings: 720x480, 49 frames (6 s at 8 fps), 50 steps, "
        "guidance 6.0, v-prediction DDIM with trailing timesteps ('default' solver and schedule; shift "
        "stays 0: CogVideoX is not a flow model).\n\n"
        "Files: the CogVideoX-2b diffusers pipeline folder (huggingface.co/THUDM/CogVideoX-2b: text_encoder/, "
        f"tokenizer/, transformer/, vae/) in ComfyUI/{folder}/. The paths are relative to the folder "
        "ComfyUI runs in; type full paths if yours is elsewhere.\n"
        "Single files load too (choose them in the dropdown and empty 'path'): T5-XXL as "
        "models/text_encoders/t5xxl_fp16.safetensors (ComfyUI's T5 tokenizer is used), a diffusers-layout "
        "transformer in models/diffusion_models/, the VAE as models/vae/ (a single VAE file gets the 2b "
        "scaling factor; give CogVideoX-5b its vae/ folder).\n\n"
        "Memory: ~10 GB of GPU memory in bf16 with chunked decode; a CPU takes hours. Prompts: long, "
        "detailed English descriptions work best (the model was trained on such captions).\n\n"
        "Headless: python -m videocascade run example_workflows/cogvideox_t2v.json "
        "--set 1.path=/models/CogVideoX-2b/text_encoder --set 4.path=/models/CogVideoX-2b/transformer "
        "--set 5.path=/models/CogVideoX-2b/vae"
    )
    return Definition(
        "cogvideox_t2v",
        note,
        [
            text,
            latent_stage,
            Stage("3 · Decode (chunked)", [[decode]]),
            Stage("4 · Save", [[save]]),
        ],
    )


DEFINITIONS = (
    interpolate_upscale,
    interpolate_upscale_from_file,
    sora_style_t2v,
    makeavideo_cascade,
    videoldm,
    wan21_t2v,
    cogvideox_t2v,
)


# ------------------------------------------------------------------------------------------------------------
# Layout and serialisation


class DefinitionError(ValueError):
    """A definition names an unknown node, input or output, or links incompatible types."""


SLOT_HEIGHT = 20  # LiteGraph's socket row
WIDGET_HEIGHT = 24  # a widget row with its spacing
TITLE_HEIGHT = 30  # drawn above a node's pos
MULTILINE_HEIGHT = 110  # a prompt text box
COLUMN_GAP = 50
ROW_GAP = 30 + TITLE_HEIGHT
STAGE_GAP = 70
GROUP_PADDING = 15
GROUP_TITLE = 45
NOTE_WIDTH = 440
NOTE_CHARS_PER_LINE = 58
NOTE_LINE_HEIGHT = 17


@dataclass
class _Placed:
    node: Node
    id: int
    specs: list[InputSpec]
    outputs: list[tuple[str, Any]]  # (name, type)
    pos: tuple[int, int] = (0, 0)
    size: tuple[int, int] = (0, 0)


def _visible_specs(node_class: type) -> list[InputSpec]:
    return [s for s in node_inputs(node_class) if s.category != "hidden"]


def _node_height(placed: _Placed) -> int:
    node = placed.node
    sockets = sum(1 for s in placed.specs if not s.is_widget)
    widgets = [s for s in placed.specs if s.is_widget]
    rows = max(sockets, len(placed.outputs), 1)
    multiline = sum(1 for s in widgets if s.options.get("multiline"))
    extra_rows = sum(1 for s in widgets if s.frontend_extra_widgets)  # the seed's control widget
    height = rows * SLOT_HEIGHT + (len(widgets) + extra_rows) * WIDGET_HEIGHT + 16
    return height + multiline * MULTILINE_HEIGHT + node.extra_height


def _note_height(text: str) -> int:
    lines = 0
    for paragraph in text.split("\n"):
        lines += max(1, -(-len(paragraph) // NOTE_CHARS_PER_LINE))
    return lines * NOTE_LINE_HEIGHT + 30


def _place(definition: Definition, node_classes: Mapping[str, type]) -> tuple[list[_Placed], dict[str, Any]]:
    """Ids, positions and sizes (left to right by stage and column); the Note's box."""
    placed: list[_Placed] = []
    keys: set[str] = set()
    for index, node in enumerate(definition.nodes(), start=1):
        if node.key in keys:
            raise DefinitionError(f"{definition.name}: node key '{node.key}' is used twice")
        keys.add(node.key)
        node_class = node_classes.get(node.class_type)
        if node_class is None:
            raise DefinitionError(f"{definition.name}: node class '{node.class_type}' is not in the pack")
        outputs = list(zip(return_names(node_class), return_types(node_class)))
        placed.append(_Placed(node, index, _visible_specs(node_class), outputs))
    by_key = {p.node.key: p for p in placed}

    note_height = _note_height(definition.note)
    x = NOTE_WIDTH + STAGE_GAP
    top = GROUP_TITLE + TITLE_HEIGHT
    groups = []
    for stage in definition.stages:
        stage_left = x
        stage_bottom = top
        for column in stage.columns:
            y = top
            width = max(node.width for node in column)
            for node in column:
                p = by_key[node.key]
                p.pos = (x, y)
                p.size = (width, _node_height(p))
                y += p.size[1] + ROW_GAP
                stage_bottom = max(stage_bottom, p.pos[1] + p.size[1])
            x += width + COLUMN_GAP
        x -= COLUMN_GAP
        groups.append(
            {
                "title": stage.title,
                "bounding": [
                    stage_left - GROUP_PADDING,
                    top - TITLE_HEIGHT - GROUP_TITLE,
                    x - stage_left + 2 * GROUP_PADDING,
                    stage_bottom - top + TITLE_HEIGHT + GROUP_TITLE + GROUP_PADDING,
                ],
            }
        )
        x += STAGE_GAP
    note_box = {"pos": [0, top], "size": [NOTE_WIDTH, note_height], "groups": groups, "width": x}
    return placed, note_box


def _resolve_links(
    definition: Definition, placed: list[_Placed]
) -> list[tuple[_Placed, int, _Placed, str, Any]]:
    """``(source, output slot, target, input name, type)`` for every link, checked against the classes."""
    by_key = {p.node.key: p for p in placed}
    links = []
    for target in placed:
        specs = {s.name: s for s in target.specs}
        declared = set(specs)
        unknown = sorted((set(target.node.values) | set(target.node.links)) - declared)
        if unknown:
            raise DefinitionError(
                f"{definition.name}: {target.node.class_type} has no input(s) {unknown}; it has {sorted(declared)}"
            )
        for spec in target.specs:  # declaration order: the order the frontend lists the sockets in
            ref = target.node.links.get(spec.name)
            if ref is None:
                if not spec.is_widget and spec.category == "required":
                    raise DefinitionError(
                        f"{definition.name}: {target.node.key} ({target.node.class_type}) needs a link into "
                        f"'{spec.name}'"
                    )
                continue
            source_key, _, output = ref.partition(".")
            source = by_key.get(source_key)
            if source is None:
                raise DefinitionError(
                    f"{definition.name}: {target.node.key}.{spec.name} links unknown '{ref}'"
                )
            names = [name for name, _ in source.outputs]
            if output not in names:
                raise DefinitionError(
                    f"{definition.name}: {source.node.class_type} has no output '{output}' (outputs {names})"
                )
            slot = names.index(output)
            kind = source.outputs[slot][1]
            if not types_compatible(kind, spec.type):
                raise DefinitionError(
                    f"{definition.name}: {ref} is {kind} but {target.node.key}.{spec.name} takes {spec.type_name}"
                )
            links.append((source, slot, target, spec.name, kind))
    return links


def _execution_order(placed: list[_Placed], links: list[tuple]) -> dict[int, int]:
    """LiteGraph's ``order``: sources before their consumers, ties by id."""
    incoming: dict[int, set[int]] = {p.id: set() for p in placed}
    for source, _, target, _, _ in links:
        incoming[target.id].add(source.id)
    order: dict[int, int] = {}
    while len(order) < len(placed):
        ready = min(i for i, deps in incoming.items() if i not in order and deps <= set(order))
        order[ready] = len(order)
    return order


def _widget_values(placed: _Placed) -> list[Any]:
    """``widgets_values`` as the frontend saves them: every widget in order, frontend-only values included."""
    values: list[Any] = []
    for spec in placed.specs:
        if not spec.is_widget:
            continue
        values.append(placed.node.values.get(spec.name, spec.default))
        if spec.has_value_control:
            values.append(SEED_CONTROL)
            if spec.is_combo:
                values.append("")  # a combo's control filter text
        elif spec.frontend_extra_widgets:
            values.append("image")  # the upload button's value, as ComfyUI's own loaders save it
    return values


def build_ui(
    definition: Definition,
    node_classes: Mapping[str, type] = NODE_CLASS_MAPPINGS,
) -> dict[str, Any]:
    """The UI-format graph (ComfyUI workflow schema 0.4) of a definition."""
    placed, box = _place(definition, node_classes)
    links = _resolve_links(definition, placed)
    order = _execution_order(placed, links)
    link_ids = {(target.id, name): i for i, (_, _, target, name, _) in enumerate(links, start=1)}
    outgoing: dict[tuple[int, int], list[int]] = {}
    for i, (source, slot, _, _, _) in enumerate(links, start=1):
        outgoing.setdefault((source.id, slot), []).append(i)

    nodes = []
    for p in placed:
        inputs = []
        for spec in p.specs:
            link = link_ids.get((p.id, spec.name))
            if spec.is_widget and link is None:
                continue  # an unlinked widget has no socket entry in a saved graph
            entry: dict[str, Any] = {"name": spec.name, "type": spec.type_name}
            if spec.is_widget:
                entry["widget"] = {"name": spec.name}
            elif spec.category == "optional":
                entry["shape"] = 7  # LiteGraph's hollow socket for optional inputs
            entry["link"] = link
            inputs.append(entry)
        outputs = [
            {"name": name, "type": kind, "slot_index": slot, "links": outgoing.get((p.id, slot), [])}
            for slot, (name, kind) in enumerate(p.outputs)
        ]
        properties: dict[str, Any] = {"Node name for S&R": p.node.class_type}
        if p.node.models:
            properties["models"] = p.node.models
        entry = {
            "id": p.id,
            "type": p.node.class_type,
            "pos": list(p.pos),
            "size": list(p.size),
            "flags": {},
            "order": order[p.id],
            "mode": 0,
            "inputs": inputs,
            "outputs": outputs,
        }
        if p.node.title:
            entry["title"] = p.node.title
        entry["properties"] = properties
        entry["widgets_values"] = _widget_values(p)
        if p.node.color:
            entry["color"], entry["bgcolor"] = COLORS[p.node.color]
        nodes.append(entry)

    note_id = len(placed) + 1
    color, bgcolor = COLORS["yellow"]
    nodes.append(
        {
            "id": note_id,
            "type": "Note",
            "pos": box["pos"],
            "size": box["size"],
            "flags": {},
            "order": len(placed),
            "mode": 0,
            "inputs": [],
            "outputs": [],
            "title": definition.note_title,
            "properties": {},
            "widgets_values": [definition.note],
            "color": color,
            "bgcolor": bgcolor,
        }
    )
    groups = [
        {"id": i, **group, "color": "#3f789e", "font_size": 24, "flags": {}}
        for i, group in enumerate(box["groups"], start=1)
    ]
    scale = round(min(1.0, max(0.45, 1700 / box["width"])), 2)
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"videocascade/example_workflows/{definition.name}")),
        "revision": 0,
        "last_node_id": note_id,
        "last_link_id": len(links),
        "nodes": nodes,
        "links": [
            [i, source.id, slot, target.id, _input_slot(target, name, link_ids), kind]
            for i, (source, slot, target, name, kind) in enumerate(links, start=1)
        ],
        "groups": groups,
        "config": {},
        "extra": {"ds": {"scale": scale, "offset": [40, 40]}},
        "version": 0.4,
    }


def _input_slot(target: _Placed, name: str, link_ids: Mapping[tuple[int, str], int]) -> int:
    """Index of input ``name`` in the target's saved ``inputs`` list (sockets + linked widgets)."""
    slot = 0
    for spec in target.specs:
        if spec.name == name:
            return slot
        if not spec.is_widget or (target.id, spec.name) in link_ids:
            slot += 1
    raise KeyError(name)


def build_api(
    definition: Definition,
    node_classes: Mapping[str, type] = NODE_CLASS_MAPPINGS,
    display_names: Mapping[str, str] = NODE_DISPLAY_NAME_MAPPINGS,
) -> dict[str, dict[str, Any]]:
    """The API-format graph, straight from the definition (the tests check it equals the UI's conversion)."""
    placed, _ = _place(definition, node_classes)
    links = {
        (target.id, name): (source.id, slot)
        for source, slot, target, name, _ in _resolve_links(definition, placed)
    }
    prompt: dict[str, dict[str, Any]] = {}
    for p in placed:
        inputs: dict[str, Any] = {}
        for spec in p.specs:  # widgets first, in order (a link replaces the value), then linked sockets
            if spec.is_widget:
                link = links.get((p.id, spec.name))
                inputs[spec.name] = (
                    [str(link[0]), link[1]] if link else p.node.values.get(spec.name, spec.default)
                )
        for spec in p.specs:
            link = links.get((p.id, spec.name))
            if not spec.is_widget and link is not None:
                inputs[spec.name] = [str(link[0]), link[1]]
        title = p.node.title or display_names.get(p.node.class_type, p.node.class_type)
        prompt[str(p.id)] = {"inputs": inputs, "class_type": p.node.class_type, "_meta": {"title": title}}
    return prompt


# ------------------------------------------------------------------------------------------------------------
# Files


def dumps(data: Any) -> str:
    """JSON with two-space indents, short lists of numbers/strings on one line (readable diffs)."""
    return _format(data, 0) + "\n"


def _format(value: Any, depth: int) -> str:
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{json.dumps(k)}: {_format(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list):
        if not value:
            return "[]"
        if all(not isinstance(v, (dict, list)) for v in value):
            flat = "[" + ", ".join(json.dumps(v, ensure_ascii=False) for v in value) + "]"
            if len(flat) + len(inner) <= 110:
                return flat
        return "[\n" + ",\n".join(f"{inner}{_format(v, depth + 1)}" for v in value) + f"\n{pad}]"
    return json.dumps(value, ensure_ascii=False)


def api_text(prompt: dict[str, Any]) -> str:
    """The API twin's text: exactly what ``python -m videocascade api <ui file>`` prints."""
    return json.dumps(prompt, indent=2, ensure_ascii=False) + "\n"


def ui_path(name: str) -> str:
    return os.path.join(HERE, f"{name}.json")


def api_path(name: str) -> str:
    return os.path.join(API_DIR, f"{name}_api.json")


def build_all() -> dict[str, str]:
    """``{path: text}`` of every file the definitions give."""
    files: dict[str, str] = {}
    for make in DEFINITIONS:
        definition = make()
        files[ui_path(definition.name)] = dumps(build_ui(definition))
        files[api_path(definition.name)] = api_text(build_api(definition))
    return files


# ------------------------------------------------------------------------------------------------------------
# Thumbnails: ComfyUI's template browser shows example_workflows/<name>.jpg on each template's card.

THUMBNAIL_SIZE = 256


def thumbnail_path(name: str) -> str:
    return os.path.join(HERE, f"{name}.jpg")


def write_thumbnails(names: list[str] | None = None) -> dict[str, str]:
    """Run each workflow headless (as saved) and write a 2x2 grid of its video's frames as ``<name>.jpg``;
    a workflow that cannot run here (model files not present) gets a card naming its stages instead.
    Returns ``{name: "frames" | "card (<why>)"}``."""
    import tempfile

    from ..runtime.executor import run_workflow

    done: dict[str, str] = {}
    for make in DEFINITIONS:
        definition = make()
        if names and definition.name not in names:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            try:
                result = run_workflow(ui_path(definition.name), output_dir=tmp)
                video = result.files[-1]
            except Exception as e:  # missing weights or inputs: the card says what the workflow does
                reason = str(e).strip().splitlines()[-1][:120]
                _card(definition).save(thumbnail_path(definition.name), quality=88)
                done[definition.name] = f"card ({reason})"
                continue
            _frame_grid(video).save(thumbnail_path(definition.name), quality=88)
            done[definition.name] = "frames"
    return done


def _frame_grid(video: str):
    """Four frames spread over the clip, 2x2, each upscaled to half the thumbnail (nearest for tiny clips)."""
    from PIL import Image

    from ..video_io import read_video

    frames = read_video(video)[0]
    half = THUMBNAIL_SIZE // 2
    grid = Image.new("RGB", (THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    count = frames.shape[0]
    for i in range(4):
        frame = frames[round(i * (count - 1) / 3)]
        tile = Image.fromarray((frame.numpy() * 255).round().astype("uint8"))
        grid.paste(tile.resize((half, half), Image.Resampling.BICUBIC), ((i % 2) * half, (i // 2) * half))
    return grid


def _card(definition: Definition):
    """A dark card with the workflow's name and its stages, for workflows whose models are not here."""
    from PIL import Image, ImageDraw, ImageFont

    card = Image.new("RGB", (THUMBNAIL_SIZE, THUMBNAIL_SIZE), (32, 36, 44))
    draw = ImageDraw.Draw(card)
    title = ImageFont.load_default(size=19)
    body = ImageFont.load_default(size=13)
    draw.text((14, 14), definition.name.replace("_", " "), font=title, fill=(235, 235, 235))
    y = 52
    for stage in definition.stages:
        draw.rounded_rectangle((14, y, THUMBNAIL_SIZE - 14, y + 26), 6, outline=(63, 120, 158), width=2)
        text = stage.title.split("·", 1)[-1].strip()
        while body.getlength(text) > THUMBNAIL_SIZE - 44:
            text = text[:-2].rstrip() + "…"
        draw.text((22, y + 6), text, font=body, fill=(200, 215, 235))
        y += 34
    return card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m videocascade.example_workflows.build",
        description="Write the example workflows (UI format) and their API-format twins from their definitions.",
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is stale")
    parser.add_argument(
        "--thumbnails",
        nargs="*",
        metavar="NAME",
        help="also run the workflows (all, or those named) and write their <name>.jpg template thumbnails",
    )
    args = parser.parse_args(argv)
    stale = []
    for path, text in build_all().items():
        current = None
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                current = f.read()
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'}: {os.path.relpath(path)}")
    if args.check and stale:
        print("regenerate with: python -m videocascade.example_workflows.build", file=sys.stderr)
        return 1
    if not stale:
        print("example workflows are up to date")
    if args.thumbnails is not None and not args.check:
        for name, kind in write_thumbnails(args.thumbnails).items():
            print(f"thumbnail {name}.jpg: {kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
