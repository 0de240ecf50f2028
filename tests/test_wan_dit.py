"""Wan 2.1 parity: our VideoDiT equals diffusers' WanTransformer3DModel, from every layout and dtype on disk."""

import json
import os

import pytest
import torch
from safetensors.torch import save_file

diffusers = pytest.importorskip("diffusers")
from diffusers import WanTransformer3DModel  # noqa: E402
from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers  # noqa: E402
from videocascade.models.dit import DiTConfig, VideoDiT, dit_config  # noqa: E402
from videocascade.models.dit_loading import load_dit, wan_preset_name  # noqa: E402
from videocascade.models.rope import RotaryEmbedding3D  # noqa: E402
from videocascade.models.wan_keys import DIFFUSERS, ORIGINAL, ours_to_wan, wan_to_ours  # noqa: E402
from videocascade.runtime.checkpoints import CheckpointError, save_checkpoint  # noqa: E402

# hd 16 exercises Wan's rope split on a tiny head; the file tests use 128-wide heads, which is what lets
# the loader infer the head count of an original-layout single file, as for the released weights.
TINY = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=2,
    attention_head_dim=16,
    in_channels=4,
    out_channels=4,
    text_dim=24,
    freq_dim=16,
    ffn_dim=64,
    num_layers=2,
)
FILE = dict(TINY, attention_head_dim=128, freq_dim=32, ffn_dim=96)
REAL = {
    "wan2.1-t2v-1.3B": dict(num_attention_heads=12, attention_head_dim=128, ffn_dim=8960, num_layers=30),
    "wan2.1-t2v-14B": dict(num_attention_heads=40, attention_head_dim=128, ffn_dim=13824, num_layers=40),
}


def _reference(config: dict, seed: int = 0) -> WanTransformer3DModel:
    torch.manual_seed(seed)
    model = WanTransformer3DModel(**config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)
    return model


def _inputs(config: dict, batch: int = 2):
    torch.manual_seed(1)
    # H != W so a swapped height/width rope or unpatchify cannot pass.
    x = torch.randn(batch, config["in_channels"], 3, 8, 6)
    t = torch.tensor([999.0, 37.5])[:batch]
    context = torch.randn(batch, 7, config["text_dim"])
    return x, t, context


def _ours_from(state: dict, layout: str, config: dict) -> VideoDiT:
    dim = config["num_attention_heads"] * config["attention_head_dim"]
    model = VideoDiT(
        DiTConfig(
            in_channels=config["in_channels"],
            out_channels=config["out_channels"],
            patch_size=config["patch_size"],
            hidden_size=dim,
            depth=config["num_layers"],
            num_heads=config["num_attention_heads"],
            ffn_dim=config["ffn_dim"],
            text_dim=config["text_dim"],
            frequency_dim=config["freq_dim"],
        )
    )
    model.load_state_dict(wan_to_ours(dict(state), layout, config["num_layers"]))
    return model.eval()


def _assert_parity(ours, reference, config, atol=1e-4):
    x, t, context = _inputs(config)
    with torch.no_grad():
        expected = reference(x, t, context, return_dict=False)[0]
        got = ours(x, t, context)
    assert got.shape == expected.shape
    diff = (got - expected).abs().max().item()
    assert diff <= atol, f"max abs difference {diff:.3e} > {atol}"


def _clone_state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_parity_from_diffusers_state_dict():
    reference = _reference(TINY)
    _assert_parity(_ours_from(_clone_state(reference), DIFFUSERS, TINY), reference, TINY)


def test_original_names_agree_with_diffusers_converter_and_give_parity():
    reference = _reference(TINY)
    ours = _ours_from(_clone_state(reference), DIFFUSERS, TINY)
    original = ours_to_wan(ours.state_dict(), ORIGINAL, depth=2)
    # diffusers' own converter maps our original-layout names back onto its exact state dict.
    converted = convert_wan_transformer_to_diffusers(
        {f"model.diffusion_model.{k}": v for k, v in original.items()}
    )
    expected = reference.state_dict()
    assert sorted(converted) == sorted(expected)
    for name, tensor in expected.items():
        assert torch.equal(converted[name], tensor), name
    # And reading the original layout back gives the same model.
    _assert_parity(_ours_from(original, ORIGINAL, TINY), reference, TINY)
    back = ours_to_wan(_ours_from(original, ORIGINAL, TINY).state_dict(), DIFFUSERS, depth=2)
    assert all(torch.equal(back[k], v) for k, v in expected.items())


def test_rope_tables_equal_diffusers():
    from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

    for head_dim in (16, 128):
        ref = WanRotaryPosEmbed(head_dim, (1, 2, 2), max_seq_len=1024)
        cos, sin = ref(torch.zeros(1, 1, 3, 10, 8))
        table = RotaryEmbedding3D(head_dim)((3, 5, 4), "thw", torch.device("cpu"))
        assert torch.equal(table.real, cos[0, :, 0, 0::2])
        assert torch.equal(table.imag, sin[0, :, 0, 1::2])


@pytest.mark.parametrize("preset", sorted(REAL))
def test_real_presets_have_diffusers_names_and_shapes(preset):
    """The released configs, built on the meta device: exactly diffusers' tensors, through our key map."""
    real = dict(TINY, **REAL[preset], in_channels=16, out_channels=16, text_dim=4096, freq_dim=256)
    with torch.device("meta"):
        reference = WanTransformer3DModel(**real)
        ours = VideoDiT(dit_config(preset))
    expected = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    depth = ours.config.depth
    mapped = {k: tuple(v.shape) for k, v in ours_to_wan(ours.state_dict(), DIFFUSERS, depth).items()}
    assert mapped == expected
    original = ours_to_wan(ours.state_dict(), ORIGINAL, depth)
    assert {
        k: tuple(v.shape) for k, v in convert_wan_transformer_to_diffusers(dict(original)).items()
    } == expected
    assert wan_preset_name(ours.config) == preset


# -- files -------------------------------------------------------------------------------------------------
def _round(state: dict, dtype: torch.dtype) -> tuple[dict, dict]:
    """(tensors as stored on disk, the same values in float32 for the reference)."""
    stored = {}
    for name, tensor in state.items():
        if dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
            # Like ComfyUI's fp8 files: matmul / conv weights in fp8, norms, biases and tables in fp16.
            stored[name] = tensor.to(dtype) if tensor.ndim in (2, 5) else tensor.to(torch.float16)
        else:
            stored[name] = tensor.to(dtype)
    return stored, {k: v.float() for k, v in stored.items()}


def _reference_with(state32: dict, config: dict) -> WanTransformer3DModel:
    reference = WanTransformer3DModel(**config).eval()
    reference.load_state_dict(state32)
    return reference


@pytest.mark.parametrize(
    "dtype, layout",
    [
        (torch.float32, "original"),
        (torch.bfloat16, "original-prefixed"),
        (torch.float16, "diffusers"),
        (torch.bfloat16, "diffusers"),
        (torch.float8_e4m3fn, "original-prefixed"),
        (torch.float8_e4m3fn, "diffusers"),
    ],
)
def test_parity_from_single_files(tmp_path, dtype, layout):
    reference = _reference(FILE)
    stored, rounded = _round(_clone_state(reference), dtype)
    if layout.startswith("original"):
        # Diffusers names -> ours -> original names: a pure renaming (q/k/v concatenated then split again).
        stored = ours_to_wan(wan_to_ours(dict(stored), DIFFUSERS, 2), ORIGINAL, 2)
        if layout == "original-prefixed":
            stored = {f"model.diffusion_model.{k}": v for k, v in stored.items()}
    path = tmp_path / "wan.safetensors"
    save_file({k: v.contiguous() for k, v in stored.items()}, str(path))
    model, family = load_dit(str(path), torch.float32)
    assert family == "wan2.1"
    assert model.config.num_heads == 2 and model.config.hidden_size == 256
    assert all(p.dtype == torch.float32 and not p.requires_grad for p in model.parameters())
    _assert_parity(model, _reference_with(rounded, FILE), FILE)


@pytest.mark.parametrize("style", ["legacy", "comfy_quant"])
def test_parity_from_comfyui_scaled_fp8(tmp_path, style):
    reference = _reference(FILE)
    ours = _ours_from(_clone_state(reference), DIFFUSERS, FILE)
    original = ours_to_wan(ours.state_dict(), ORIGINAL, 2)
    on_disk, rounded_original = {}, {}
    for name, tensor in original.items():
        if tensor.ndim == 2:  # linear weights: per-tensor scaled fp8, as ComfyUI writes them
            layer = name[: -len(".weight")]
            scale = tensor.abs().max() / 448.0
            q = (tensor / scale).to(torch.float8_e4m3fn)
            on_disk[name] = q
            if style == "legacy":
                on_disk[f"{layer}.scale_weight"] = scale.reshape(1).float()
                on_disk[f"{layer}.scale_input"] = torch.ones(1)
            else:
                on_disk[f"{layer}.weight_scale"] = scale.float()
                conf = json.dumps({"format": "float8_e4m3fn"}).encode()
                on_disk[f"{layer}.comfy_quant"] = torch.tensor(list(conf), dtype=torch.uint8)
            rounded_original[name] = q.float() * scale
        else:
            on_disk[name] = tensor.half()
            rounded_original[name] = tensor.half().float()
    if style == "legacy":
        on_disk["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    on_disk = {f"model.diffusion_model.{k}": v.contiguous() for k, v in on_disk.items()}
    path = tmp_path / "wan2.1_t2v_fp8_scaled.safetensors"
    save_file(on_disk, str(path))
    model, _ = load_dit(str(path), torch.float32)
    rounded = convert_wan_transformer_to_diffusers(rounded_original)
    _assert_parity(model, _reference_with(rounded, FILE), FILE)


def test_unsupported_quantization_is_refused(tmp_path):
    reference = _reference(FILE)
    state = ours_to_wan(_ours_from(_clone_state(reference), DIFFUSERS, FILE).state_dict(), ORIGINAL, 2)
    state = {k: v.contiguous() for k, v in state.items()}
    conf = json.dumps({"format": "nvfp4"}).encode()
    state["blocks.0.ffn.0.comfy_quant"] = torch.tensor(list(conf), dtype=torch.uint8)
    path = tmp_path / "nvfp4.safetensors"
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match="nvfp4"):
        load_dit(str(path))


def test_diffusers_folder_sharded_and_pipeline_root(tmp_path):
    reference = _reference(FILE)
    folder = tmp_path / "Wan2.1-T2V-tiny-Diffusers" / "transformer"
    reference.save_pretrained(str(folder), max_shard_size="300KB")
    assert any(n.endswith(".index.json") for n in os.listdir(folder))  # really sharded
    for path in (folder, folder.parent):
        model, family = load_dit(str(path), torch.float32)
        assert family == "wan2.1"
        _assert_parity(model, reference, FILE)
    model, _ = load_dit(str(folder), torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    x, t, context = _inputs(FILE)
    with torch.no_grad():
        expected = reference(x, t, context, return_dict=False)[0]
        got = model(x, t, context)
    assert got.dtype == torch.float32 and (got - expected).abs().max() < 0.05 * expected.abs().max()
    # A missing shard is named.
    shard = sorted(n for n in os.listdir(folder) if n.endswith(".safetensors"))[0]
    os.remove(folder / shard)
    with pytest.raises(CheckpointError, match=shard):
        load_dit(str(folder))


def test_wan_original_folder_reads_heads_from_config_json(tmp_path):
    config = dict(TINY)  # 2 heads of 16: only config.json can tell
    reference = _reference(config)
    original = ours_to_wan(_ours_from(_clone_state(reference), DIFFUSERS, config).state_dict(), ORIGINAL, 2)
    save_file(
        {k: v.contiguous() for k, v in original.items()},
        str(tmp_path / "diffusion_pytorch_model.safetensors"),
    )
    with pytest.raises(CheckpointError, match="num_heads"):
        load_dit(str(tmp_path / "diffusion_pytorch_model.safetensors"))
    model, _ = load_dit(str(tmp_path / "diffusion_pytorch_model.safetensors"), num_heads=2)
    _assert_parity(model, reference, config)
    wan_config = {"_class_name": "WanModel", "model_type": "t2v", "dim": 32, "num_heads": 2, "num_layers": 2}
    (tmp_path / "config.json").write_text(json.dumps(wan_config))
    model, family = load_dit(str(tmp_path))
    assert family == "wan2.1" and model.config.num_heads == 2
    _assert_parity(model, reference, config)


# -- errors --------------------------------------------------------------------------------------------------
def _original_file(tmp_path, name="wan.safetensors") -> tuple[str, dict]:
    reference = _reference(FILE)
    state = ours_to_wan(_ours_from(_clone_state(reference), DIFFUSERS, FILE).state_dict(), ORIGINAL, 2)
    state = {k: v.contiguous() for k, v in state.items()}
    path = str(tmp_path / name)
    save_file(state, path)
    return path, state


def test_truncated_file_error_names_the_file(tmp_path):
    path, _ = _original_file(tmp_path)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(CheckpointError, match="wan.safetensors.*(truncated|re-download)"):
        load_dit(path)


def test_missing_and_unexpected_keys_are_named(tmp_path):
    _, state = _original_file(tmp_path)
    del state["blocks.1.cross_attn.k.weight"]
    state["blocks.1.extra.weight"] = torch.zeros(2)
    path = str(tmp_path / "partial.safetensors")
    save_file(state, path)
    with pytest.raises(
        CheckpointError, match=r"partial.safetensors.*blocks\.1\.cross_attn\.k\.weight.*blocks\.1\.extra"
    ):
        load_dit(path)


def test_wrong_files_are_refused_clearly(tmp_path):
    vae = str(tmp_path / "vae.safetensors")
    save_file({"encoder.conv_in.weight": torch.zeros(4, 3, 3, 3, 3)}, vae)
    with pytest.raises(CheckpointError, match="vae.safetensors is not a DiT checkpoint"):
        load_dit(vae)
    text = tmp_path / "notes.safetensors"
    text.write_text("definitely not tensors")
    with pytest.raises(CheckpointError, match="notes.safetensors"):
        load_dit(str(text))
    with pytest.raises(CheckpointError, match="not found"):
        load_dit(str(tmp_path / "missing.safetensors"))
    pickle = tmp_path / "model.pt"
    pickle.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="only .safetensors"):
        load_dit(str(pickle))
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(CheckpointError, match="without config.json"):
        load_dit(str(tmp_path / "empty_folder"))
    path, state = _original_file(tmp_path)
    state["img_emb.proj.1.weight"] = torch.zeros(2, 2)
    save_file(state, str(tmp_path / "i2v.safetensors"))
    with pytest.raises(CheckpointError, match="image-to-video"):
        load_dit(str(tmp_path / "i2v.safetensors"))


def test_own_checkpoint_format_round_trip(tmp_path):
    for preset in ("test-tiny", "test-tiny-factorized"):
        config = dit_config(preset)
        model = VideoDiT(config)
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0, 0.1)
        path = tmp_path / f"{preset}.safetensors"
        save_checkpoint(path, model, config, kind="dit", family="sprites-test")
        loaded, family = load_dit(str(path), torch.float32)
        assert family == "sprites-test" and loaded.config == config
        x = torch.randn(1, 4, 2, 4, 4)
        ctx = torch.randn(1, 3, 24)
        with torch.no_grad():
            torch.testing.assert_close(
                loaded(x, torch.tensor([5.0]), ctx), model.eval()(x, torch.tensor([5.0]), ctx)
            )
    save_checkpoint(tmp_path / "vae.safetensors", model, config, kind="vae", family="sprites-test")
    with pytest.raises(CheckpointError, match="'vae' checkpoint, but a 'dit' was expected"):
        load_dit(str(tmp_path / "vae.safetensors"))


def test_cogvideox_folder_is_delegated(tmp_path):
    from diffusers import CogVideoXTransformer3DModel

    reference = CogVideoXTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=4,
        time_embed_dim=8,
        text_embed_dim=12,
        num_layers=1,
        sample_width=8,
        sample_height=8,
        sample_frames=9,
        max_text_seq_length=4,
    )
    reference.save_pretrained(str(tmp_path / "transformer"))
    model, family = load_dit(str(tmp_path), torch.float32)
    assert family == "cogvideox"
    assert type(model).__name__ != "VideoDiT" and not model.training
