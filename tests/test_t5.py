"""T5 / umT5 encoders: equal to transformers' T5EncoderModel / UMT5EncoderModel from HF and ComfyUI layouts."""

import json

import pytest
import torch
from safetensors.torch import save_file

transformers = pytest.importorskip("transformers")

from videocascade.models.t5 import (  # noqa: E402
    T5_V1_1_XXL,
    UMT5_XXL,
    T5Encoder,
    config_from_hf,
    load_t5_encoder,
    looks_like_t5_encoder,
    t5_encoder_from_state,
)
from videocascade.runtime.checkpoints import CheckpointError  # noqa: E402

SIZES = dict(vocab_size=96, d_model=32, d_kv=8, d_ff=48, num_layers=3, num_heads=4, dropout_rate=0.0)
FP8 = torch.float8_e4m3fn


def _perturbed(model):
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.add_(0.2 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def t5():
    cfg = transformers.T5Config(**SIZES, feed_forward_proj="gated-gelu")
    return _perturbed(transformers.T5EncoderModel(cfg))


@pytest.fixture(scope="module")
def umt5():
    cfg = transformers.UMT5Config(**SIZES, feed_forward_proj="gated-gelu")
    return _perturbed(transformers.UMT5EncoderModel(cfg))


def _inputs():
    ids = torch.randint(3, 96, (2, 11), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 11, dtype=torch.bool)
    mask[1, 6:] = False
    ids[1, 6:] = 0
    return ids, mask


def _reference_output(ref, state_fp32=None):
    """The reference's output, optionally after loading (rounded) weights into a copy."""
    if state_fp32 is not None:
        ref = type(ref)(ref.config).eval()
        ref.load_state_dict(state_fp32, strict=False)
    ids, mask = _inputs()
    with torch.no_grad():
        return ref(input_ids=ids, attention_mask=mask.long()).last_hidden_state


def _ours_output(model):
    ids, mask = _inputs()
    return model(ids, mask)


def _assert_close(a, b, tol=1e-4):
    assert a.shape == b.shape
    err = (a.float() - b.float()).abs().max().item()
    assert err < tol, err


@pytest.mark.parametrize("kind", ["t5", "umt5"])
def test_hf_names_with_and_without_config(kind, request):
    ref = request.getfixturevalue(kind)
    state = ref.state_dict()
    assert looks_like_t5_encoder(state.keys())
    expected = _reference_output(ref)
    for config in (ref.config.to_dict(), None):
        ours = t5_encoder_from_state(state, config)
        assert ours.config.per_layer_position_bias == (kind == "umt5")
        assert ours.config.gated and ours.config.activation == "gelu_tanh"
        _assert_close(_ours_output(ours), expected)
    # Without a mask every position attends everywhere (CogVideoX's way of calling T5).
    ids, _ = _inputs()
    with torch.no_grad():
        unmasked = ref(input_ids=ids).last_hidden_state
    _assert_close(ours(ids), unmasked)


def test_save_pretrained_folder(t5, tmp_path):
    t5.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").exists()
    _assert_close(_ours_output(load_t5_encoder(tmp_path)), _reference_output(t5))


def test_original_t5_relu_variant(tmp_path):
    ref = _perturbed(transformers.T5EncoderModel(transformers.T5Config(**SIZES, feed_forward_proj="relu")))
    ours = t5_encoder_from_state(ref.state_dict())
    assert not ours.config.gated and ours.config.activation == "relu"
    _assert_close(_ours_output(ours), _reference_output(ref))


def _comfy_scaled_fp8(state):
    """ComfyUI's ``*_fp8_e4m3fn_scaled`` layout: fp8 linear weights with per-layer scale_weight, a marker
    tensor, other tensors in bf16, and (for umT5) the tokenizer embedded as bytes."""
    out, dequantized = {}, {}
    for key, value in state.items():
        if key == "encoder.embed_tokens.weight":
            continue
        if key.endswith(
            (".q.weight", ".k.weight", ".v.weight", ".o.weight", ".wi_0.weight", ".wi_1.weight", ".wo.weight")
        ):
            scale = value.abs().max().float() / 448.0
            q = (value / scale).to(FP8)
            out[key] = q
            out[key.replace(".weight", ".scale_weight")] = scale.reshape(())
            dequantized[key] = q.float() * scale
        else:
            out[key] = value.to(torch.bfloat16)
            dequantized[key] = out[key].float()
    out["scaled_fp8"] = torch.zeros(0, dtype=FP8)
    out["spiece_model"] = torch.tensor(list(b"not a real model"), dtype=torch.uint8)
    dequantized["encoder.embed_tokens.weight"] = dequantized["shared.weight"]
    return out, dequantized


@pytest.mark.parametrize("kind", ["t5", "umt5"])
def test_comfyui_scaled_fp8_file(kind, request, tmp_path):
    ref = request.getfixturevalue(kind)
    stored, dequantized = _comfy_scaled_fp8(ref.state_dict())
    path = tmp_path / f"{kind}_xxl_fp8_e4m3fn_scaled.safetensors"
    save_file(stored, str(path))
    ours = load_t5_encoder(path)
    attn_q = ours.encoder.block[0].layer[0].SelfAttention.q
    assert attn_q.weight.dtype == FP8 and attn_q.weight_scale is not None  # kept in fp8
    assert ours.compute_dtype == torch.bfloat16
    assert ours.config.per_layer_position_bias == (kind == "umt5")
    expected = _reference_output(ref, dequantized)
    approx = _ours_output(ours)  # bf16 compute: close, not equal
    assert (approx.float() - expected).abs().max() < 0.05 * expected.abs().max()
    ours.compute_dtype = torch.float32
    _assert_close(_ours_output(ours), expected)


def test_comfyui_prefixed_bf16_file(t5, tmp_path):
    rounded = {
        k: v.to(torch.bfloat16) for k, v in t5.state_dict().items() if k != "encoder.embed_tokens.weight"
    }
    prefixed = {f"text_encoders.t5xxl.transformer.{k}": v for k, v in rounded.items()}
    prefixed["text_encoders.clip_l.transformer.text_model.final_layer_norm.weight"] = torch.ones(4)
    path = tmp_path / "t5xxl_bf16.safetensors"
    save_file(prefixed, str(path))
    ours = load_t5_encoder(path)
    ours.compute_dtype = torch.float32
    expected = _reference_output(t5, {k: v.float() for k, v in rounded.items()})
    _assert_close(_ours_output(ours), expected)


def test_fp16_storage_runs_in_fp16(umt5):
    ours = t5_encoder_from_state({k: v.half() for k, v in umt5.state_dict().items()})
    out = _ours_output(ours)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()


def test_errors_for_truncated_and_wrong_files(t5, umt5, tmp_path):
    state = dict(t5.state_dict())
    state.pop("encoder.block.2.layer.1.DenseReluDense.wo.weight")
    with pytest.raises(CheckpointError, match=r"encoder\.block\.2\.layer\.1\.DenseReluDense\.wo\.weight"):
        t5_encoder_from_state(state, t5.config.to_dict())
    with pytest.raises(CheckpointError, match="not a T5"):
        t5_encoder_from_state({"decoder.conv_in.conv.weight": torch.zeros(1)})
    mixed = dict(umt5.state_dict())
    mixed.pop("encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight")
    with pytest.raises(CheckpointError, match="expected only layer 0"):
        t5_encoder_from_state(mixed)
    with pytest.raises(CheckpointError, match="shape"):
        t5_encoder_from_state(t5.state_dict(), {**t5.config.to_dict(), "d_ff": 64})

    path = tmp_path / "t5.safetensors"
    save_file({k: v for k, v in t5.state_dict().items() if k != "encoder.embed_tokens.weight"}, str(path))
    data = path.read_bytes()
    truncated = tmp_path / "t5_truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="t5_truncated.safetensors"):
        load_t5_encoder(truncated)
    not_safetensors = tmp_path / "config.safetensors"
    not_safetensors.write_text(json.dumps({"hello": 1}))
    with pytest.raises(CheckpointError, match="config.safetensors"):
        load_t5_encoder(not_safetensors)
    with pytest.raises(CheckpointError, match="not found"):
        load_t5_encoder(tmp_path / "missing.safetensors")


COMFY_XXL = dict(  # ComfyUI's comfy/text_encoders/{t5,umt5}_config_xxl.json
    d_ff=10240,
    d_kv=64,
    d_model=4096,
    dense_act_fn="gelu_pytorch_tanh",
    is_gated_act=True,
    layer_norm_epsilon=1e-06,
    num_heads=64,
    num_layers=24,
    relative_attention_num_buckets=32,
)


@pytest.mark.parametrize("kind", ["t5", "umt5"])
def test_real_xxl_configs_on_meta_match_transformers(kind):
    """T5-XXL (CogVideoX) and umT5-XXL (Wan) built on the meta device: transformers' names and shapes."""
    vocab = 32128 if kind == "t5" else 256384
    config_cls, model_cls = (
        (transformers.T5Config, transformers.T5EncoderModel)
        if kind == "t5"
        else (transformers.UMT5Config, transformers.UMT5EncoderModel)
    )
    hf_config = config_cls(vocab_size=vocab, feed_forward_proj="gated-gelu", **COMFY_XXL)
    with torch.device("meta"):
        ref = model_cls(hf_config)
        ours = T5Encoder(config_from_hf(hf_config.to_dict()))
    ref_shapes = {
        k: tuple(v.shape) for k, v in ref.state_dict().items() if k != "encoder.embed_tokens.weight"
    }
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == ref_shapes
    assert ours.config == (T5_V1_1_XXL if kind == "t5" else UMT5_XXL)
    comfy = config_from_hf({**COMFY_XXL, "model_type": kind, "vocab_size": vocab})
    assert comfy == ours.config
