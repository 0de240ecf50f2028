"""The compiled attention kernel against a float64 reference (GPU only; skipped without CUDA).

The first test compiles the extension into the user cache (about a minute) unless
``python -m videocascade.cuda_ext build`` ran before.
"""

import pytest
import torch
import torch.nn.functional as F
from videocascade.cuda_ext import build, dispatch
from videocascade.cuda_ext.dispatch import attention, choose_backend

pytestmark = pytest.mark.gpu

# ||out - ref|| / ||ref||: bf16 output rounding alone is ~1e-3, fp16 ~2e-4 (METHOD: bf16 within 1e-3..1e-2).
TOLERANCE = {torch.bfloat16: 1e-2, torch.float16: 2e-3}
NUM_VARIANTS = 4  # csrc/attention_fwd.cu kVariants; 0 = default per head_dim


@pytest.fixture(scope="module")
def ext():
    reason = build.unavailable_reason()
    if reason is not None:
        pytest.skip(f"compiled kernel unavailable: {reason}")
    return build.load_extension()


@pytest.fixture(autouse=True)
def _clean_dispatch_state():
    dispatch.reset_backend_state()
    yield
    assert dispatch.disabled_backends() == {}, "a backend was disabled (NaN output or failed build)"


def _inputs(batch, heads, q_len, kv_len, head_dim, dtype, scale=1.0):
    def rand(length):
        return (torch.randn(batch, heads, length, head_dim, device="cuda") * scale).to(dtype)

    return rand(q_len), rand(kv_len), rand(kv_len)


def _reference(q, k, v, key_mask=None, chunk=1024):
    """Float64 softmax attention, chunked over queries; key_mask [B, H or 1, Lk] (True = attend)."""
    out = torch.empty(q.shape, dtype=torch.float64, device=q.device)
    kd, vd = k.double(), v.double()
    for start in range(0, q.shape[2], chunk):
        scores = q[:, :, start : start + chunk].double() @ kd.transpose(-1, -2) * q.shape[-1] ** -0.5
        if key_mask is not None:
            scores = scores.masked_fill(~key_mask[:, :, None, :], float("-inf"))
        out[:, :, start : start + chunk] = torch.softmax(scores, dim=-1).nan_to_num(0.0) @ vd
    return out


def _rel_error(out, ref):
    return ((out.double() - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def _poison_allocator(shape, dtype):
    """Leave NaN in the caching allocator's free block, so an output element the kernel skips shows up."""
    junk = torch.full(shape, float("nan"), device="cuda", dtype=dtype)
    del junk


SHAPES = [
    # batch, heads, q_len, kv_len
    (1, 1, 1, 1),
    (2, 3, 77, 129),  # ragged both ways
    (1, 2, 128, 64),  # exact tiles
    (3, 5, 65, 65),  # one row / key past a tile
    (2, 2, 1000, 77),  # cross-attention-like: few keys
    (1, 4, 300, 1000),
    (1, 2, 129, 4096),
]


def test_variant_table(ext):
    names = ext.variant_names()
    assert len(names) == NUM_VARIANTS and len(set(names)) == NUM_VARIANTS
    assert 1 <= ext.default_variant(64) <= NUM_VARIANTS and 1 <= ext.default_variant(128) <= NUM_VARIANTS


@pytest.mark.parametrize("variant", range(NUM_VARIANTS + 1))
@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_float64_reference(ext, shape, dtype, head_dim, variant):
    batch, heads, q_len, kv_len = shape
    q, k, v = _inputs(batch, heads, q_len, kv_len, head_dim, dtype)
    _poison_allocator((batch, q_len, heads, head_dim), dtype)
    out = ext.forward(q, k, v, None, head_dim**-0.5, variant)
    torch.cuda.synchronize()
    assert out.shape == q.shape and out.dtype == dtype
    assert torch.isfinite(out).all(), "unwritten or non-finite output elements"
    assert _rel_error(out, _reference(q, k, v)) < TOLERANCE[dtype]


@pytest.mark.parametrize("head_dim", [64, 128])
def test_large_logits_do_not_overflow(ext, head_dim):
    # |q.k| * scale reaches hundreds: exp only stays finite because the running max is subtracted.
    q, k, v = _inputs(1, 2, 200, 300, head_dim, torch.bfloat16, scale=6.0)
    out = ext.forward(q, k, v, None, head_dim**-0.5, 0)
    assert torch.isfinite(out).all()
    assert _rel_error(out, _reference(q, k, v)) < TOLERANCE[torch.bfloat16]


@pytest.mark.parametrize("variant", range(NUM_VARIANTS + 1))
@pytest.mark.parametrize("head_dim", [64, 128])
def test_key_padding_mask(ext, head_dim, variant):
    batch, heads, q_len, kv_len = 3, 2, 90, 150
    q, k, v = _inputs(batch, heads, q_len, kv_len, head_dim, torch.bfloat16)
    keep = torch.rand(batch, kv_len, device="cuda") > 0.4
    keep[1, 100:] = False  # a padded tail
    keep[2] = False  # a fully masked sample: zeros, as SDPA gives
    key_mask = keep[:, None, :].expand(batch, heads, kv_len)
    out = ext.forward(q, k, v, key_mask, head_dim**-0.5, variant)
    ref = _reference(q, k, v, key_mask)
    assert _rel_error(out[:2], ref[:2]) < TOLERANCE[torch.bfloat16]
    assert torch.equal(out[2], torch.zeros_like(out[2]))
    # Through the dispatcher, with the [B, 1, 1, Lk] mask the DiT's cross-attention passes.
    mask = keep[:, None, None, :]
    via_dispatch = attention(q, k, v, backend="compiled", mask=mask)
    assert _rel_error(via_dispatch[:2], ref[:2]) < TOLERANCE[torch.bfloat16]
    sdpa = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.equal(sdpa[2], torch.zeros_like(sdpa[2]))  # the convention we copy


def test_strided_views_are_read_in_place_and_output_is_token_major(ext):
    batch, length, heads, head_dim = 2, 333, 4, 64
    qkv = torch.randn(batch, length, 3, heads, head_dim, device="cuda", dtype=torch.bfloat16)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # [B, H, L, D] views with row stride 3 * H * D
    assert not q.is_contiguous()
    out = ext.forward(q, k, v, None, head_dim**-0.5, 0)
    assert _rel_error(out, _reference(q, k, v)) < TOLERANCE[torch.bfloat16]
    assert out.transpose(1, 2).is_contiguous()  # [B, L, H, D] memory: the DiT's reshape is free


def test_misaligned_inputs(ext):
    base = torch.randn(1, 2, 100, 65, device="cuda", dtype=torch.float16)
    q = base[..., 1:]  # starts 2 bytes into a row: not 16-byte aligned
    k = v = torch.randn(1, 2, 50, 64, device="cuda", dtype=torch.float16)
    with pytest.raises(RuntimeError, match="16-byte|multiples of 8"):
        ext.forward(q, k, v, None, 0.125, 0)
    out = attention(q, k, v, backend="compiled")  # the dispatcher copies what the kernel cannot read
    assert _rel_error(out, _reference(q, k, v)) < TOLERANCE[torch.float16]


def test_binding_rejects_what_the_kernel_does_not_support(ext):
    q = torch.randn(1, 1, 8, 96, device="cuda", dtype=torch.bfloat16)
    with pytest.raises(RuntimeError, match="head_dim 64 or 128"):
        ext.forward(q, q, q, None, 0.1, 0)
    q = torch.randn(1, 1, 8, 64, device="cuda")
    with pytest.raises(RuntimeError, match="float16 or bfloat16"):
        ext.forward(q, q, q, None, 0.1, 0)
    with pytest.raises(RuntimeError, match="CUDA tensor"):
        ext.forward(q.cpu().half(), q.cpu().half(), q.cpu().half(), None, 0.1, 0)


def test_repeated_runs_are_bitwise_identical(ext):
    # A race (missing barrier) shows up as results that move between runs.
    q, k, v = _inputs(2, 4, 2048, 2048, 128, torch.bfloat16)
    first = ext.forward(q, k, v, None, 128**-0.5, 0)
    for _ in range(3):
        assert torch.equal(ext.forward(q, k, v, None, 128**-0.5, 0), first)


def test_long_sequence_and_many_blocks(ext):
    q, k, v = _inputs(1, 3, 5000, 5003, 64, torch.bfloat16)
    out = ext.forward(q, k, v, None, 64**-0.5, 0)
    assert _rel_error(out, _reference(q, k, v)) < TOLERANCE[torch.bfloat16]
    q, k, v = _inputs(64, 16, 33, 40, 64, torch.float16)  # a wide grid of tiny problems
    out = ext.forward(q, k, v, None, 64**-0.5, 0)
    assert _rel_error(out, _reference(q, k, v)) < TOLERANCE[torch.float16]


# ---- the dispatcher on a GPU ----------------------------------------------------------------------------


def test_auto_takes_the_compiled_kernel_where_a_preference_names_it(ext):
    dispatch.clear_preferences()
    q, k, v = _inputs(1, 2, 64, 64, 64, torch.bfloat16)
    assert choose_backend(q, k, v)[0] != "compiled"  # not in the default order (failed mask tests)
    for head_dim in (64, 96):
        dispatch.set_preference(torch.bfloat16, head_dim, 64, 64, ["compiled", "sage"])
    dispatch.set_preference(torch.float32, 64, 64, 64, ["compiled", "sage"])
    assert choose_backend(q, k, v)[0] == "compiled"
    assert choose_backend(q, k, v, torch.ones(1, 1, 1, 64, dtype=torch.bool, device="cuda"))[0] == "compiled"
    per_query = torch.rand(1, 1, 64, 64, device="cuda") > 0.5
    name, why = choose_backend(q, k, v, per_query)
    assert name != "compiled" and "key-padding" in why
    q96 = torch.randn(1, 2, 64, 96, device="cuda", dtype=torch.bfloat16)
    assert "head_dim 96" in choose_backend(q96, q96, q96)[1]
    qf = q.float()
    assert choose_backend(qf, qf, qf)[0] == "sdpa"
    with torch.enable_grad():
        qg = q.clone().requires_grad_()
        name, why = choose_backend(qg, k, v)
        assert name != "compiled" and "inference-only" in why
    out = attention(q, k, v)
    assert _rel_error(out, _reference(q, k, v)) < TOLERANCE[torch.bfloat16]
    dispatch.clear_preferences()


@pytest.mark.parametrize("preset", ["test-tiny", "test-tiny-factorized"])
@pytest.mark.parametrize(("hidden", "heads"), [(128, 2), (256, 2)], ids=["head_dim64", "head_dim128"])
def test_dit_forward_compiled_matches_sdpa(ext, preset, hidden, heads):
    from videocascade.models.dit import VideoDiT, dit_config

    torch.manual_seed(0)
    config = dit_config(preset, hidden_size=hidden, num_heads=heads, ffn_dim=2 * hidden)
    model = VideoDiT(config).to(device="cuda", dtype=torch.bfloat16).eval()
    with torch.no_grad():
        for parameter in model.parameters():  # the zero-initialised output layer would hide everything
            parameter.add_(torch.randn_like(parameter) * 0.05)
    x = torch.randn(2, config.in_channels, 3, 10, 14, device="cuda")  # 3 x 5 x 7 tokens: ragged tiles
    timestep = torch.tensor([700.0, 150.0], device="cuda")
    context = torch.randn(2, 9, config.text_dim, device="cuda")
    context_mask = torch.ones(2, 9, dtype=torch.bool, device="cuda")
    context_mask[1, 5:] = False

    outputs = {}
    for backend in ("sdpa", "compiled"):
        model.attention_backend = backend
        with torch.no_grad():
            outputs[backend] = model(x, timestep, context, context_mask).float()
    assert torch.isfinite(outputs["compiled"]).all()
    error = (outputs["compiled"] - outputs["sdpa"]).norm() / outputs["sdpa"].norm()
    assert error < 3e-2, f"compiled vs SDPA through the DiT: relative error {error:.2e}"
