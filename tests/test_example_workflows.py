"""The example workflows: generated files up to date, UI and API twins equal, every node valid, and the
pipelines run for real (headless CLI and in-process runner) on tiny checkpoints made here.

The embedded sprites models are swapped for tiny random ones through the loaders' ``path`` input
(``--set <loader>.path=...``), with smaller sizes and fewer steps, so each pipeline runs in about a second.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.metadata
import json
import os
import subprocess
import sys
import uuid

import av
import pytest
import test_nodes_fixtures as fx
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file
from videocascade.example_workflows import build
from videocascade.models.cogvideox_dit import CogVideoXTransformer, CogVideoXTransformerConfig
from videocascade.models.dit import VideoDiT, dit_config
from videocascade.models.ssr import SSRConfig, SSRNet
from videocascade.models.t5 import T5Encoder, config_from_hf
from videocascade.models.text_encoder import TEXT_ENCODER_PRESETS, TextEncoder
from videocascade.models.tsr import TSRConfig, TSRNet
from videocascade.nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from videocascade.runtime.checkpoints import save_checkpoint
from videocascade.runtime.executor import run_workflow
from videocascade.runtime.loaders import LATENT_FORMAT_KEY, PATH_CHOICE, SAMPLER_KEY
from videocascade.runtime.model_paths import embedded_files, resolve_file
from videocascade.runtime.schema import node_inputs, return_types, widget_inputs
from videocascade.runtime.validation import check_prompt
from videocascade.runtime.workflow import is_api_format, is_ui_format, ui_to_api
from videocascade.vae import CausalVAE, CausalVAEConfig
from videocascade.vae.cogvideox import CogVideoXVAE, CogVideoXVAEConfig
from videocascade.vae.pixels import PIXEL_SPACE_FAMILY
from videocascade.video_io import read_video

NODES = NODE_CLASS_MAPPINGS
NAMES = [make().name for make in build.DEFINITIONS]
LOADERS = ("VCTextEncoderLoader", "VCVAELoader", "VCDiTLoader", "VCInterpolatorLoader", "VCUpscalerLoader")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "example_workflows")


def ui_file(name: str) -> str:
    return build.ui_path(name)


def api_file(name: str) -> str:
    return build.api_path(name)


def read(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def ids_of(prompt: dict, class_type: str) -> list[str]:
    return [node_id for node_id, node in prompt.items() if node["class_type"] == class_type]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- the files --------------------------------------------------------------------------------------------


def test_files_are_what_the_definitions_build():
    built = build.build_all()
    assert len(built) == 2 * len(NAMES)
    stale = []
    for path, text in built.items():
        with open(path, encoding="utf-8") as f:
            if f.read() != text:
                stale.append(os.path.relpath(path, ROOT))
    assert not stale, (
        f"{stale} differ from their definitions: run python -m videocascade.example_workflows.build"
    )
    for name in NAMES:  # the template browser's card picture
        with Image.open(os.path.join(EXAMPLES, f"{name}.jpg")) as thumbnail:
            assert thumbnail.format == "JPEG" and thumbnail.size == (256, 256)
    on_disk = {f for f in os.listdir(EXAMPLES) if f.endswith(".json")}
    assert on_disk == {f"{name}.json" for name in NAMES}, "a workflow file without a definition"
    assert sorted(os.listdir(build.API_DIR)) == sorted(f"{name}_api.json" for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_ui_file_is_a_consistent_litegraph_graph(name):
    ui = read(ui_file(name))
    assert is_ui_format(ui) and ui["version"] == 0.4
    nodes = {node["id"]: node for node in ui["nodes"]}
    assert len(nodes) == len(ui["nodes"]) and ui["last_node_id"] == max(nodes)
    assert ui["last_link_id"] == len(ui["links"])
    notes = [node for node in ui["nodes"] if node["type"] == "Note"]
    assert len(notes) == 1 and len(notes[0]["widgets_values"][0]) > 200  # explains the pipeline
    # The frontend's schema (zComfyWorkflow, version 0.4): required fields and their shapes.
    assert uuid.UUID(ui["id"]) and isinstance(ui["extra"]["ds"]["scale"], float)
    for node in ui["nodes"]:
        assert {"id", "type", "pos", "size", "flags", "order", "mode", "properties"} <= set(node), node["id"]
        assert len(node["pos"]) == len(node["size"]) == 2 and isinstance(node["flags"], dict)
        for model in node["properties"].get("models", []):
            assert set(model) == {"name", "url", "directory"} and model["url"].startswith("https://")
            assert model["url"].endswith(f"/{model['directory']}/{model['name']}")
            assert model["name"] in node["widgets_values"]  # what the missing-models dialog checks
    assert all(len(g["bounding"]) == 4 and g["title"] for g in ui["groups"])
    for link_id, origin, slot, target, target_slot, kind in ui["links"]:
        output = nodes[origin]["outputs"][slot]
        assert link_id in output["links"] and output["type"] == kind
        entry = nodes[target]["inputs"][target_slot]
        assert entry["link"] == link_id
    for node in ui["nodes"]:
        if node["type"] == "Note":
            continue
        node_class = NODES[node["type"]]
        assert node["properties"]["Node name for S&R"] == node["type"]
        assert [o["type"] for o in node["outputs"]] == list(return_types(node_class))
        widgets = widget_inputs(node_class)
        expected = len(widgets) + sum(spec.frontend_extra_widgets for spec in widgets)
        assert len(node["widgets_values"]) == expected, node["type"]
        for entry in node["inputs"]:
            assert entry["link"] is not None or "widget" not in entry  # a widget entry exists when linked
        sockets = [s.name for s in node_inputs(node_class) if s.category != "hidden" and not s.is_widget]
        assert sockets == [e["name"] for e in node["inputs"] if "widget" not in e]
    # Every node sits inside the group of its stage, and stages run left to right.
    lefts = []
    for group in ui["groups"]:
        x, y, w, h = group["bounding"]
        inside = [n for n in ui["nodes"] if x <= n["pos"][0] and n["pos"][0] + n["size"][0] <= x + w
                  and y <= n["pos"][1] - 30 and n["pos"][1] + n["size"][1] <= y + h]  # fmt: skip
        assert inside and group["title"], group
        lefts.append(x)
    assert lefts == sorted(lefts)
    grouped = {n["id"] for g in ui["groups"] for n in ui["nodes"] if _in_group(n, g)}
    assert grouped == set(nodes) - {notes[0]["id"]}


def _in_group(node: dict, group: dict) -> bool:
    x, y, w, h = group["bounding"]
    return x <= node["pos"][0] <= x + w and y <= node["pos"][1] <= y + h


@pytest.mark.parametrize("name", NAMES)
def test_api_twin_is_the_runners_conversion_of_the_ui_file(name):
    ui, api = read(ui_file(name)), read(api_file(name))
    assert is_api_format(api)
    converted = ui_to_api(ui, NODES, NODE_DISPLAY_NAME_MAPPINGS)
    assert converted.notes == []  # every saved widget value maps onto a declared input
    assert converted.prompt == api
    # The twin's text is exactly `python -m videocascade api <ui file>`'s output.
    with open(api_file(name), encoding="utf-8") as f:
        assert f.read() == build.api_text(converted.prompt)


def test_seeds_are_fixed_and_prompts_come_from_the_sprites_world():
    for name in ("sora_style_t2v", "videoldm", "makeavideo_cascade"):
        ui = read(ui_file(name))
        sampler = next(n for n in ui["nodes"] if n["type"] == "VCDiTSampler")
        assert sampler["widgets_values"][:2] == [0, "fixed"]  # seed, control_after_generate
        api = read(api_file(name))
        texts = [api[i]["inputs"]["text"] for i in ids_of(api, "VCTextEncode")]
        assert texts[1] == "" and texts[0].split()[1] in ("red", "green", "blue", "yellow", "purple")
        files = {api[i]["inputs"]["file"] for c in LOADERS for i in ids_of(api, c)}
        assert files <= set(build.EMBEDDED_FILES)


EMBEDDED_DITS = {
    "sora_style_t2v": build.DIT_SPRITES_SORA,
    "videoldm": build.DIT_SPRITES_VIDEOLDM,
    "makeavideo_cascade": build.DIT_SPRITES_MAKEAVIDEO,
}


@pytest.mark.parametrize("name", list(EMBEDDED_DITS))
def test_sampler_settings_are_the_embedded_dits_own(name):
    """steps and cfg live in the workflow; they must be what the shipped DiT was evaluated with."""
    if EMBEDDED_DITS[name].removeprefix("embedded/") not in embedded_files("dit"):
        pytest.skip(f"{EMBEDDED_DITS[name]} is not trained yet")
    path = resolve_file("dit", EMBEDDED_DITS[name])
    with safe_open(path, framework="pt") as f:
        preset = json.loads(f.metadata()[SAMPLER_KEY])
    api = read(api_file(name))
    (sampler,) = ids_of(api, "VCDiTSampler")
    inputs = api[sampler]["inputs"]
    assert (inputs["steps"], inputs["cfg"]) == (preset["steps"], preset["cfg"])
    assert (inputs["solver"], inputs["schedule"], inputs["shift"]) == ("default", "default", 0.0)


@pytest.mark.parametrize("name", NAMES)
def test_every_node_validates_except_model_files_not_on_this_machine(name):
    api = read(api_file(name))
    checked, issues = check_prompt(copy.deepcopy(api), NODES)
    assert checked.outputs and not checked.warnings
    planned = set(build.EMBEDDED_FILES) | set(build.REAL_FILES)
    for issue in issues:
        # Only a loader's file choice may fail here: embedded weights not trained yet, real models not
        # downloaded (headless, the dropdown lists only embedded files).
        # (The loaders validate 'file' themselves, so that a filled 'path' may replace a missing file.)
        assert issue.type == "custom_validation_failed" and "not one of the installed" in issue.message, str(
            issue
        )
        assert issue.class_type in LOADERS and api[issue.node_id]["inputs"]["file"] in planned, str(issue)
    # A filled path replaces the dropdown file even when that file is not installed here ...
    only_paths = copy.deepcopy(api)
    for class_type in LOADERS:
        for node_id in ids_of(only_paths, class_type):
            only_paths[node_id]["inputs"]["path"] = "/some/model"
    assert check_prompt(only_paths, NODES)[1] == []
    # ... and with every loader switched to its path entry, the graph validates completely.
    for class_type in LOADERS:
        for node_id in ids_of(api, class_type):
            api[node_id]["inputs"].update(file=PATH_CHOICE, path="/some/model")
    assert check_prompt(api, NODES)[1] == []


# --- running them -----------------------------------------------------------------------------------------


def probe(path: str) -> dict:
    """What a player sees: codec, pixel format, frame count, size and rate, decoded by FFmpeg."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "frames": frames,
            "size": (stream.codec_context.width, stream.codec_context.height),
            "fps": float(stream.average_rate),
        }


def run_cli(*args: str, cwd: str) -> subprocess.CompletedProcess:
    """``python -m videocascade ARGS`` in a new process (the package must be installed: pip install -e .)."""
    try:
        importlib.metadata.distribution("comfyui-videocascade")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(
            "the package is not installed (pip install -e .), so `python -m videocascade` cannot start"
        )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "videocascade", *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def interpolated(tmp_path_factory):
    """interpolate_upscale.json run by the CLI, on a shorter, smaller clip than its default (5 frames 32x32)."""
    out = tmp_path_factory.mktemp("cli")
    result = run_cli(
        "run", ui_file("interpolate_upscale"), "--output-dir", "tmp",
        "--set", "1.frames=5", "--set", "1.width=32", "--set", "1.height=32", cwd=str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    written = result.stdout.strip().splitlines()[-1].removeprefix("wrote: ").split()
    return result, written


def test_interpolate_upscale_writes_a_playable_video_from_the_cli(interpolated):
    result, written = interpolated
    assert len(written) == 1 and written[0].endswith(".mp4") and "/tmp/VideoCascade/" in written[0]
    # 5 source frames, x4 in time: (5-1)*4+1 = 17 frames at 4 x 8 fps; x2 in space: 64x64.
    info = probe(written[0])
    assert info == {"codec": "h264", "pix_fmt": "yuv420p", "frames": 17, "size": (64, 64), "fps": 32.0}
    frames, fps, metadata = read_video(written[0])
    assert frames.shape == (17, 64, 64, 3) and fps == 32.0
    # ComfyUI's metadata: the graph reloads from the video.
    assert json.loads(metadata["prompt"])["3"]["class_type"] == "VCTemporalInterpolate"
    assert json.loads(metadata["workflow"])["nodes"][0]["type"] == "VCSpritesClip"
    assert frames[:, :, :, 0].max() > 0.6  # the red circle is there
    assert "node timings" in result.stdout and "set node 1 (VCSpritesClip) frames: 17 -> 5" in result.stderr


def test_from_file_variant_reads_the_users_video(interpolated, tmp_path):
    _, written = interpolated
    result = run_workflow(
        api_file("interpolate_upscale_from_file"),
        overrides=[f"1.path={written[0]}", "1.max_frames=3", "1.step=2"],
        output_dir=tmp_path,
    )
    (path,) = result.files
    frames, fps, _ = read_video(path)
    # Frames 0, 2, 4 of the 32 fps video (16 fps), x4: 9 frames at 64 fps, 128x128.
    assert frames.shape == (9, 128, 128, 3) and fps == 64.0


def test_a_broken_copy_is_rejected_with_every_problem_named(tmp_path):
    api = read(api_file("interpolate_upscale"))
    api["2"]["class_type"] = "VCPreviewVidoe"  # unknown class (a typo)
    del api["4"]["inputs"]["method"]  # missing input
    api["3"]["inputs"]["images"] = ["1", 1]  # bad link type: the clip's caption (STRING) into images
    api["1"]["inputs"]["frames"] = 0  # out of range
    broken = tmp_path / "broken_api.json"
    broken.write_text(json.dumps(api))
    result = run_cli("run", str(broken), "--output-dir", "tmp", cwd=str(tmp_path))
    assert result.returncode == 2
    message = result.stderr
    assert "workflow failed validation (4 error(s))" in message
    assert "node 2 \"Preview: source clip\" (VCPreviewVidoe): node class 'VCPreviewVidoe' does not exist in " \
        "this node pack; did you mean VCPreviewVideo" in message  # fmt: skip
    assert (
        "node 4 \"Spatial upscale x2\" (VCSpatialUpscale) input 'method': required input is missing"
        in message
    )
    assert "(VCTemporalInterpolate) input 'images': expects IMAGE but is linked to output 1 of node 1 (VCSpritesClip), " \
        "which is STRING [return_type_mismatch]" in message  # fmt: skip
    assert "input 'frames': value 0 is smaller than the minimum 1 [value_smaller_than_min]" in message
    assert not (tmp_path / "tmp").exists()  # nothing ran


def test_broken_ui_copies_are_rejected_too():
    ui = read(ui_file("interpolate_upscale"))
    clip = next(n for n in ui["nodes"] if n["type"] == "VCSpritesClip")
    clip["widgets_values"][3] = 100000  # width above its maximum
    issues = check_prompt(ui_to_api(ui, NODES).prompt, NODES)[1]
    assert [(i.node_id, i.input_name, i.type) for i in issues] == [("1", "width", "value_bigger_than_max")]
    link = next(entry for entry in ui["links"] if entry[3] == 5 and entry[4] == 0)
    link[1], link[2] = 1, 1  # the save node's images now come from the caption output
    issues = check_prompt(ui_to_api(ui, NODES).prompt, NODES)[1]
    assert {i.type for i in issues} == {"value_bigger_than_max", "return_type_mismatch"}


# --- generative workflows on tiny checkpoints ---------------------------------------------------------------

TEXT = TEXT_ENCODER_PRESETS["test-tiny"]
VAE_3D = dataclasses.replace(fx.VAE_CONFIG, family="test-sprites-3d")  # 4x temporal, 4x spatial
VAE_FRAME = CausalVAEConfig(
    family="test-sprites-frame",
    base_channels=8,
    channel_multipliers=(1, 2, 2),
    num_res_blocks=1,
    latent_channels=4,
    temporal_downsample=(False, False),
    middle_attention=False,
    encoder_temporal_kernel=1,
    decoder_temporal_kernel=1,
    decoder_temporal_blocks=True,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny text encoder, VAEs and DiTs with each pipeline's structure, in the pack's checkpoint format."""
    folder = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    paths = {name: str(folder / f"{name}.safetensors") for name in
             ("text", "vae_3d", "vae_frame", "dit_full", "dit_factorized", "dit_pixels", "tsr", "ssr")}  # fmt: skip
    save_checkpoint(paths["text"], TextEncoder(TEXT), TEXT, "text_encoder", "test")
    for key, config in (("vae_3d", VAE_3D), ("vae_frame", VAE_FRAME)):
        save_checkpoint(paths[key], fx._perturbed(CausalVAE(config), 1), config, "vae", config.family)
    for key, preset, family in (
        ("dit_full", "test-tiny", VAE_3D.family),
        ("dit_factorized", "test-tiny-factorized", VAE_FRAME.family),
    ):
        config = dit_config(preset, text_dim=TEXT.dim)
        save_checkpoint(paths[key], fx._perturbed(VideoDiT(config), 2), config, "dit", family)
    # The Make-A-Video base denoises RGB pixels: its metadata names the pixel-space "latent" format.
    config = dit_config("test-tiny-factorized", in_channels=3, out_channels=3, text_dim=TEXT.dim)
    save_checkpoint(paths["dit_pixels"], fx._perturbed(VideoDiT(config), 3), config, "dit", "test-base",
                    {LATENT_FORMAT_KEY: PIXEL_SPACE_FAMILY})  # fmt: skip
    tsr, ssr = TSRConfig(widths=(8, 12, 16)), SSRConfig(width=8, num_blocks=1)
    save_checkpoint(paths["tsr"], fx._perturbed(TSRNet(tsr), 4), tsr, "interpolator", tsr.family)
    save_checkpoint(paths["ssr"], fx._perturbed(SSRNet(ssr), 5), ssr, "upscaler", ssr.family)
    return paths


def loader_overrides(api: dict, files: dict[str, str | None]) -> list[str]:
    """``--set`` lines pointing each loader class at a file (None: keep the workflow's choice)."""
    overrides = []
    for class_type, path in files.items():
        for node_id in ids_of(api, class_type):
            if path is not None:
                overrides += [f"{node_id}.file={PATH_CHOICE}", f"{node_id}.path={path}"]
    return overrides


GENERATIVE = {
    # name: (VAE file (None: the workflow's own choice), DiT file, frames and size asked,
    #        (frames, size, fps) of the saved video)
    "sora_style_t2v": ("vae_3d", "dit_full", 5, 32, (5, 32, 8.0)),  # 2 latent frames -> 5 frames
    # 3 frames, x2 in time and space by the learned TSR / SSR.
    "videoldm": ("vae_frame", "dit_factorized", 3, 32, (5, 64, 16.0)),
    # 3 frames of 32x32, x4 in time (4 -> 16 fps) and x2 in space (learned).
    "makeavideo_cascade": ("vae_frame", "dit_factorized", 3, 32, (9, 64, 16.0)),
}


def tiny_loader_overrides(api: dict, tiny: dict[str, str], vae: str | None, dit: str) -> list[str]:
    """The tiny files in every loader of a generative workflow (``vae`` None: the workflow's own choice)."""
    return loader_overrides(
        api,
        {
            "VCTextEncoderLoader": tiny["text"],
            "VCVAELoader": vae and tiny[vae],
            "VCDiTLoader": tiny[dit],
            "VCInterpolatorLoader": tiny["tsr"],
            "VCUpscalerLoader": tiny["ssr"],
        },
    )


@pytest.mark.parametrize("form", ["api", "ui"])
@pytest.mark.parametrize("name", list(GENERATIVE))
def test_generative_workflow_runs_on_tiny_checkpoints(name, form, tiny, tmp_path):
    vae, dit, frames, size, (out_frames, out_size, out_fps) = GENERATIVE[name]
    api = read(api_file(name))
    overrides = tiny_loader_overrides(api, tiny, vae, dit) + shrunk(api, frames, size)
    path = api_file(name) if form == "api" else ui_file(name)
    result = run_workflow(path, overrides=overrides, output_dir=tmp_path)
    (saved,) = result.files
    info = probe(saved)
    assert (info["frames"], info["size"], info["fps"]) == (out_frames, (out_size, out_size), out_fps)
    _, _, metadata = read_video(saved)
    assert ("workflow" in metadata) == (form == "ui")  # a UI run embeds the graph for drag and drop


def test_makeavideo_cascade_runs_a_pixel_space_base_too(tiny, tmp_path):
    """The builtin pixel-space "VAE" in place of the per-frame one: the base DiT denoises RGB directly."""
    api = read(api_file("makeavideo_cascade"))
    overrides = tiny_loader_overrides(api, tiny, None, "dit_pixels")
    (vae,) = ids_of(api, "VCVAELoader")
    overrides += [f"{vae}.file={build.VAE_PIXEL_SPACE}", *shrunk(api, 3, 16)]
    result = run_workflow(api_file("makeavideo_cascade"), overrides=overrides, output_dir=tmp_path)
    (saved,) = result.files
    info = probe(saved)
    assert (info["frames"], info["size"], info["fps"]) == (9, (32, 32), 16.0)


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory):
    pytest.importorskip("sentencepiece")
    return fx.train_spm(tmp_path_factory.mktemp("spm"))


def shrunk(api: dict, frames: int = 5, size: int = 32) -> list[str]:
    """``--set`` lines for a ``size`` x ``size`` video of ``frames`` frames sampled in 2 steps."""
    (latent,) = ids_of(api, "VCEmptyVideoLatent")
    (sampler,) = ids_of(api, "VCDiTSampler")
    return [
        f"{latent}.width={size}",
        f"{latent}.height={size}",
        f"{latent}.frames={frames}",
        f"{sampler}.steps=2",
    ]


def test_wan_workflow_runs_on_tiny_wan_layout_files(spm_model, tmp_path):
    files = fx.wan_models(tmp_path, spm_model)
    api = read(api_file("wan21_t2v"))
    overrides = loader_overrides(
        api,
        {
            "VCTextEncoderLoader": files["text_encoder"],
            "VCVAELoader": files["vae"],
            "VCDiTLoader": files["dit"],
        },
    )
    result = run_workflow(
        ui_file("wan21_t2v"), overrides=overrides + shrunk(api), output_dir=tmp_path / "out"
    )
    info = probe(result.files[0])
    assert (info["frames"], info["size"], info["fps"]) == (5, (32, 32), 16.0)


def save_diffusers(folder, weights_name: str, module: torch.nn.Module, config: dict) -> None:
    os.makedirs(folder, exist_ok=True)
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, os.path.join(folder, weights_name))
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f)


def test_cogvideox_workflow_runs_on_a_tiny_diffusers_pipeline_folder(spm_model, tmp_path):
    """The workflow's paths point into one CogVideoX-2b-layout folder: text_encoder/ + tokenizer/, transformer/,
    vae/ (random tiny weights in the diffusers layout the real folder has)."""
    root = tmp_path / "models" / "CogVideo" / "CogVideoX-2b"
    (root / "tokenizer").mkdir(parents=True)
    (root / "tokenizer" / "spiece.model").write_bytes(spm_model)
    t5 = {"model_type": "t5", "vocab_size": 64, "d_model": 16, "d_kv": 8, "d_ff": 32, "num_layers": 2,
          "num_heads": 2, "feed_forward_proj": "gated-gelu"}  # fmt: skip
    save_diffusers(
        root / "text_encoder", "model.safetensors", fx._perturbed(T5Encoder(config_from_hf(t5)), 1), t5
    )
    dit = CogVideoXTransformerConfig(num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=4,
                                     time_embed_dim=16, text_embed_dim=16, num_layers=1, sample_width=4,
                                     sample_height=4, sample_frames=9)  # fmt: skip
    save_diffusers(root / "transformer", "diffusion_pytorch_model.safetensors",
                   fx._perturbed(CogVideoXTransformer(dit), 2),
                   {"_class_name": "CogVideoXTransformer3DModel", **dataclasses.asdict(dit)})  # fmt: skip
    vae = CogVideoXVAEConfig(block_out_channels=(8, 8, 16, 16), latent_channels=4, layers_per_block=1,
                             norm_num_groups=4, sample_height=32, sample_width=32)  # fmt: skip
    save_diffusers(root / "vae", "diffusion_pytorch_model.safetensors", fx._perturbed(CogVideoXVAE(vae), 3),
                   {"_class_name": "AutoencoderKLCogVideoX", **dataclasses.asdict(vae)})  # fmt: skip
    api = read(api_file("cogvideox_t2v"))
    # The workflow's relative paths (models/CogVideo/CogVideoX-2b/...) resolve from the folder ComfyUI runs in.
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        # 9 frames = 3 latent frames: CogVideoX's decoder (like diffusers') doubles an even frame count whole.
        result = run_workflow(
            api_file("cogvideox_t2v"), overrides=shrunk(api, 9), output_dir=tmp_path / "out"
        )
    finally:
        os.chdir(cwd)
    info = probe(result.files[0])
    assert (info["frames"], info["size"], info["fps"]) == (9, (32, 32), 8.0)
