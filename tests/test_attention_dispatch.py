"""The attention dispatcher: backend choice, forced backends, masks, the non-finite guard, preferences."""

import json
import logging
import warnings

import pytest
import torch
import torch.nn.functional as F
from videocascade.cuda_ext import dispatch
from videocascade.cuda_ext.dispatch import (
    BACKENDS,
    AttentionBackendError,
    Backend,
    BackendUnavailable,
    attention,
    choose_backend,
)


def _qkv(batch=2, heads=3, q_len=5, kv_len=7, head_dim=16, dtype=torch.float32, device="cpu"):
    shape_q, shape_kv = (batch, heads, q_len, head_dim), (batch, heads, kv_len, head_dim)
    q = torch.randn(shape_q, dtype=dtype, device=device)
    return (
        q,
        torch.randn(shape_kv, dtype=dtype, device=device),
        torch.randn(shape_kv, dtype=dtype, device=device),
    )


def _reference(q, k, v, mask=None):
    """Softmax attention in float64, written out: True in the mask = attend; fully masked rows give 0."""
    scores = q.double() @ k.double().transpose(-1, -2) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return (weights @ v.double()).to(q.dtype)


@pytest.fixture
def registered():
    """Register test backends through the public hook; unregister them and re-enable everything after."""
    names = []

    def _register(name, run, unsupported=lambda q, k, v, mask: None):
        dispatch.register_backend(Backend(name, run, unsupported))
        names.append(name)

    yield _register
    for name in names:
        dispatch.unregister_backend(name)
    dispatch.reset_backend_state()


def test_backend_names_for_node_dropdowns():
    assert BACKENDS == ("auto", "compiled", "sage", "sdpa")


@pytest.mark.parametrize("backend", ["auto", "sdpa"])
def test_cpu_calls_are_exactly_sdpa(backend):
    q, k, v = _qkv()
    out = attention(q, k, v, backend=backend)
    assert torch.equal(out, F.scaled_dot_product_attention(q, k, v))
    torch.testing.assert_close(out, _reference(q, k, v), rtol=1e-5, atol=1e-5)


def test_auto_on_cpu_chooses_sdpa_and_says_why():
    q, k, v = _qkv()
    assert choose_backend(q, k, v) == ("sdpa", "tensors are on the CPU")


def test_key_padding_mask_true_means_attend():
    q, k, v = _qkv(kv_len=9)
    mask = torch.ones(2, 1, 1, 9, dtype=torch.bool)
    mask[0, ..., 6:] = False  # batch 0 attends to its first 6 keys only
    out = attention(q, k, v, mask=mask)
    torch.testing.assert_close(out, _reference(q, k, v, mask), rtol=1e-5, atol=1e-5)
    # The masked keys really are ignored: changing them changes nothing for batch 0.
    k2, v2 = k.clone(), v.clone()
    k2[0, :, 6:] = 100.0
    v2[0, :, 6:] = -50.0
    torch.testing.assert_close(attention(q, k2, v2, mask=mask)[0], out[0])


def test_fully_masked_rows_give_zeros():
    q, k, v = _qkv()
    mask = torch.ones(2, 1, 5, 7, dtype=torch.bool)
    mask[1, 0, 2] = False
    out = attention(q, k, v, mask=mask)
    assert torch.equal(out[1, :, 2], torch.zeros_like(out[1, :, 2]))
    assert torch.isfinite(out).all()


def test_unknown_backend_is_a_clear_error():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="attention backend must be one of .*'flash'"):
        attention(q, k, v, backend="flash")


@pytest.mark.parametrize("backend", ["compiled", "sage"])
def test_forcing_a_cuda_backend_on_cpu_names_reason_and_fix(backend):
    q, k, v = _qkv()
    with pytest.raises(AttentionBackendError) as info:
        attention(q, k, v, backend=backend)
    message = str(info.value)
    assert repr(backend) in message
    assert "CUDA" in message and "backend='sdpa'" in message


def test_non_finite_output_is_recomputed_with_sdpa_and_backend_disabled(registered):
    calls = []

    def faulty(q, k, v, mask):
        calls.append(1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out[0, 0, 0, 0] = float("nan")
        return out

    registered("faulty", faulty)
    q, k, v = _qkv()
    expected = F.scaled_dot_product_attention(q, k, v)
    with pytest.warns(RuntimeWarning, match="'faulty' returned NaN/Inf.*recomputed with SDPA.*disabled"):
        out = attention(q, k, v, backend="faulty")
    assert torch.equal(out, expected)
    assert "faulty" in dispatch.disabled_backends()
    assert len(calls) == 1

    # Disabled for the rest of the process: later calls go to SDPA without running it or warning again.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = attention(q, k, v, backend="faulty")
    assert torch.equal(again, expected)
    assert len(calls) == 1


def test_infinite_output_is_caught_too(registered):
    registered("overflowing", lambda q, k, v, mask: torch.full_like(q, float("inf")))
    q, k, v = _qkv()
    with pytest.warns(RuntimeWarning, match="'overflowing'"):
        out = attention(q, k, v, backend="overflowing")
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, _reference(q, k, v), rtol=1e-5, atol=1e-5)


def test_non_finite_inputs_do_not_disable_the_backend(registered):
    registered("passthrough", lambda q, k, v, mask: F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    q, k, v = _qkv()
    v[0, 0, 0, 0] = float("nan")  # SDPA gives NaN as well: the backend is not at fault
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = attention(q, k, v, backend="passthrough")
    assert torch.isnan(out).any()
    assert "passthrough" not in dispatch.disabled_backends()


def test_a_backend_that_becomes_unavailable_raises_when_forced(registered):
    def unavailable(q, k, v, mask):
        raise BackendUnavailable("build failed (see log)")

    registered("broken", unavailable)
    q, k, v = _qkv()
    with pytest.raises(AttentionBackendError, match="'broken' cannot run: build failed"):
        attention(q, k, v, backend="broken")


def test_forced_backend_with_unsupported_call_raises_its_reason(registered):
    registered(
        "picky", lambda q, k, v, mask: q, unsupported=lambda q, k, v, mask: "needs head_dim 64; use auto"
    )
    q, k, v = _qkv()
    with pytest.raises(AttentionBackendError, match="'picky' cannot run this call: needs head_dim 64"):
        attention(q, k, v, backend="picky")


def test_disabled_forced_backend_logs_once(registered, caplog):
    registered("nan", lambda q, k, v, mask: torch.full_like(q, float("nan")))
    q, k, v = _qkv()
    with pytest.warns(RuntimeWarning):
        attention(q, k, v, backend="nan")
    with caplog.at_level(logging.INFO, logger="videocascade.cuda_ext.dispatch"):
        for _ in range(3):
            attention(q, k, v, backend="nan")
    notes = [r for r in caplog.records if "'nan' is disabled for this process" in r.getMessage()]
    assert len(notes) == 1


def test_builtin_backends_cannot_be_unregistered():
    with pytest.raises(ValueError, match="cannot be removed"):
        dispatch.unregister_backend("sdpa")


# ---- key-padding masks the compiled kernel accepts -------------------------------------------------------


def test_key_mask_of_padding_masks():
    q, k, _ = _qkv(batch=2, heads=3, q_len=5, kv_len=7)
    padding = torch.rand(2, 7) > 0.3
    keys = dispatch._key_mask(padding[:, None, None, :], q, k)
    assert keys.shape == (2, 3, 7) and keys.stride(2) == 1
    assert torch.equal(keys, padding[:, None, :].expand(2, 3, 7))
    # An expanded per-query mask that is really per-key (stride 0 along queries) is accepted too.
    expanded = padding[:, None, None, :].expand(2, 3, 5, 7)
    assert torch.equal(dispatch._key_mask(expanded, q, k), keys)
    # 2-D [Lq, Lk] broadcasting, the same for every query row.
    assert torch.equal(dispatch._key_mask(padding[0][None, :], q, k), padding[0].expand(2, 3, 7))


def test_key_mask_rejects_masks_that_vary_per_query_or_are_not_boolean():
    q, k, _ = _qkv(batch=2, heads=3, q_len=5, kv_len=7)
    assert dispatch._key_mask(torch.rand(2, 1, 5, 7) > 0.5, q, k) is None
    assert dispatch._key_mask(torch.zeros(2, 1, 1, 7), q, k) is None  # additive float mask
    assert dispatch._key_mask(torch.ones(3, 1, 1, 7, dtype=torch.bool), q, k) is None  # wrong batch


# ---- preference table -----------------------------------------------------------------------------------


@pytest.fixture
def clean_preferences():
    dispatch.clear_preferences()
    yield
    dispatch.clear_preferences()


def test_length_buckets_are_next_powers_of_two():
    assert [dispatch.length_bucket(n) for n in (1, 2, 3, 64, 65, 17776, 32760)] == [
        1,
        2,
        4,
        64,
        128,
        32768,
        32768,
    ]


def test_default_order_without_preferences(clean_preferences):
    q, k, _ = _qkv()
    # The compiled kernel failed its first GPU run's mask tests: auto takes it only where a preference names it.
    assert dispatch.preferred_order(q, k) == ("sage", "sdpa")


def test_preferences_from_benchmark_file(tmp_path, clean_preferences):
    table = {
        "preferences": [
            {
                "device": "*",
                "dtype": "fp32",
                "head_dim": 16,
                "q_len": 5,
                "kv_len": 7,
                "order": ["sage", "compiled"],
            },
            {
                "device": "*",
                "dtype": "fp32",
                "head_dim": 16,
                "q_len": 1000,
                "kv_len": 1000,
                "order": ["sdpa"],
            },
        ]
    }
    path = tmp_path / "prefs.json"
    path.write_text(json.dumps(table))
    assert dispatch.load_preferences(path) == 2
    q, k, _ = _qkv(q_len=6, kv_len=8)  # same buckets as 5 and 7
    assert dispatch.preferred_order(q, k) == ("sage", "compiled", "sdpa")
    q, k, _ = _qkv(q_len=900, kv_len=1024)
    assert dispatch.preferred_order(q, k) == ("sdpa",)
    q, k, _ = _qkv(q_len=3000, kv_len=3000)  # no entry: default order
    assert dispatch.preferred_order(q, k) == dispatch.AUTO_ORDER


def test_preferences_name_only_known_backends(clean_preferences):
    with pytest.raises(ValueError, match="preference order may only name"):
        dispatch.set_preference(torch.bfloat16, 64, 100, 100, ["flash"])


def _with_grad(*tensors):
    return [t.double().requires_grad_(True) for t in tensors]


def _grads(fn, q, k, v, mask=None):
    out = fn(q, k, v, mask)
    (out * torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)).sum().backward()
    grads = [t.grad.clone() if t.grad is not None else torch.zeros_like(t) for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    return out.detach(), grads


def _sdpa(q, k, v, mask=None):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


@pytest.mark.parametrize("kv_len", [1, 9, 64])
def test_cpu_training_calls_with_few_keys_run_the_math_with_sdpas_values_and_gradients(kv_len):
    q, k, v = _with_grad(*_qkv(q_len=kv_len if kv_len > 1 else 4, kv_len=kv_len))
    mask = torch.ones(2, 1, 1, kv_len, dtype=torch.bool)
    mask[1, ..., max(1, kv_len - 3) :] = False  # batch 1's last keys are padding
    for m in (None, mask):
        out, grads = _grads(lambda *a: attention(*a[:3], mask=a[3]), q, k, v, m)
        ref_out, ref_grads = _grads(_sdpa, q, k, v, m)
        torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-12)
        for got, want in zip(grads, ref_grads):
            torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_the_math_is_what_runs_and_only_while_autograd_records(monkeypatch):
    calls = []
    monkeypatch.setattr(dispatch, "math_attention", lambda *a: calls.append(a) or _sdpa(*a[:3]))
    q, k, v = _qkv(kv_len=9)
    attention(q, k, v)  # nothing requires grad: inference, straight to SDPA
    with torch.no_grad():
        attention(*_with_grad(q, k, v))
    assert calls == []
    attention(*_with_grad(q, k, v))
    assert len(calls) == 1
    attention(*_with_grad(q, k, v), backend="sdpa")  # a forced backend is honoured
    assert len(calls) == 1
    assert choose_backend(*_with_grad(q, k, v))[0] == "math"
    assert choose_backend(q, k, v)[0] == "sdpa"


def test_long_keys_stay_on_sdpa_while_training():
    q, k, v = _with_grad(*_qkv(q_len=3, kv_len=dispatch.MATH_MAX_KEYS + 1, head_dim=8))
    assert torch.equal(attention(q, k, v), _sdpa(q, k, v))


def test_one_key_is_the_value_exactly():
    q, k, v = _with_grad(*_qkv(q_len=6, kv_len=1))
    out = dispatch.math_attention(q, k, v)
    assert torch.equal(out, v.expand(2, 3, 6, 16))


def test_fully_masked_rows_give_zeros_and_finite_gradients_while_training():
    q, k, v = _with_grad(*_qkv())
    mask = torch.ones(2, 1, 5, 7, dtype=torch.bool)
    mask[1, 0, 2] = False
    out, grads = _grads(lambda *a: attention(*a[:3], mask=a[3]), q, k, v, mask)
    assert torch.equal(out[1, :, 2], torch.zeros_like(out[1, :, 2]))
    assert all(torch.isfinite(g).all() for g in grads)
    torch.testing.assert_close(out, _reference(q.detach(), k.detach(), v.detach(), mask))
