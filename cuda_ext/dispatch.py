"""``attention(q, k, v, backend, mask)``: one entry point for every attention backend.

Tensors are ``[B, heads, L, head_dim]``; ``mask`` is boolean, broadcastable to ``[B, heads, Lq, Lk]``,
True = attend. Backends:

* ``sdpa``: PyTorch's ``scaled_dot_product_attention`` (always available, the reference).
* ``compiled``: our flash-style kernel (``csrc/attention_fwd.cu``): CUDA, fp16/bf16, head_dim 64/128,
  no mask or a key-padding mask (the same for every query), inference only.
* ``sage``: ``sageattention.sageattn`` when installed: CUDA, fp16/bf16, head_dim <= 128, no mask.
* ``auto``: the first of the preferred order (default sage, sdpa; a benchmark's preference file may add
  compiled) that supports the call. CPU tensors go straight to SDPA, except where autograd records the
  call (training) and the keys are few: there the explicit math (two matmuls and a softmax) runs, whose
  forward + backward took 0.36-0.91x the time of SDPA's fused CPU kernel at 9 to 64 keys
  (``bench/attention_training.py``).

A fast backend whose output holds NaN/Inf (one reduction checks it) has that call recomputed with SDPA and
is disabled for the rest of the process, with a warning: users see black frames otherwise. Choices and
fallbacks are logged once per distinct reason. Forcing a backend that cannot run raises
``AttentionBackendError`` naming the reason and the fix.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from . import build

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "compiled", "sage", "sdpa")  # what a node's dropdown offers
AUTO_BACKENDS = ("compiled", "sage", "sdpa")  # what a preference order may name
# The compiled kernel is left out of the default order: on its first GPU run (an H200, 2026-11-26) its
# unmasked comparisons against float64 passed, but its key-padding-mask tests failed and a misaligned-input
# test crashed the process (cuda_ext/NOTES.md). ``auto`` takes it only where a benchmark preference file
# (bench/attention.py) names it; backend="compiled" still forces it.
AUTO_ORDER = ("sage", "sdpa")
PREFERENCES_ENV = "VIDEOCASCADE_ATTENTION_PREFERENCES"  # path of a JSON table written by bench/attention.py

Tensor = torch.Tensor
RunFn = Callable[[Tensor, Tensor, Tensor, "Tensor | None"], Tensor]
CheckFn = Callable[[Tensor, Tensor, Tensor, "Tensor | None"], "str | None"]


class AttentionBackendError(RuntimeError):
    """A forced backend cannot run this call; the message names the reason and the fix."""


class BackendUnavailable(RuntimeError):
    """Raised by a backend's ``run`` when it turns out it cannot run after all (e.g. its build failed)."""


@dataclass(frozen=True)
class Backend:
    """One attention implementation, registered under `name`.

    `unsupported(q, k, v, mask)` returns None when `run` can handle the call, else a short reason that
    names the fix; it must be cheap (called on every ``auto`` call) and must not compile anything.
    `check_finite`: verify the output and fall back to SDPA on NaN/Inf (every backend but SDPA itself).
    """

    name: str
    run: RunFn
    unsupported: CheckFn
    check_finite: bool = True


_REGISTRY: dict[str, Backend] = {}
_DISABLED: dict[str, str] = {}  # name -> why, for the rest of the process
_LOGGED: set[str] = set()


def register_backend(backend: Backend) -> None:
    """Add or replace a backend; `attention(..., backend=backend.name)` then runs it through the guards."""
    if backend.name == "auto":
        raise ValueError("'auto' is the dispatcher itself, not a backend name")
    _REGISTRY[backend.name] = backend
    _DISABLED.pop(backend.name, None)


def unregister_backend(name: str) -> None:
    if name in ("compiled", "sage", "sdpa"):
        raise ValueError(f"the built-in backend {name!r} cannot be removed")
    _REGISTRY.pop(name, None)
    _DISABLED.pop(name, None)


def disabled_backends() -> dict[str, str]:
    """Backends switched off in this process (by the non-finite guard or a failed build), with the reason."""
    return dict(_DISABLED)


def reset_backend_state() -> None:
    """Re-enable every backend and forget which messages were logged (e.g. after fixing a build)."""
    _DISABLED.clear()
    _LOGGED.clear()
    build._forget_cached_decisions()


def _log_once(message: str, level: int = logging.INFO) -> None:
    if message not in _LOGGED:
        _LOGGED.add(message)
        logger.log(level, message)


# ---------------------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------------------


def attention(q: Tensor, k: Tensor, v: Tensor, backend: str = "auto", mask: Tensor | None = None) -> Tensor:
    """Scaled dot-product attention over ``[B, heads, L, head_dim]``; ``mask`` is boolean, True = attend."""
    # CPU tensors and plain SDPA skip every check: these lines are all the overhead the CPU path pays.
    if backend == "auto" and not q.is_cuda:
        if _math_for_cpu_training(q, k, v):
            return math_attention(q, k, v, mask)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if backend == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return _dispatch(q, k, v, backend, mask)


# Training on 2 CPU cores (bench/results/attention_training_cpu.txt): with autograd, the explicit math's
# forward + backward took 0.36x the time of SDPA's fused CPU kernel at 9 keys, 0.66x at 40, 0.91x at 64 and
# 0.70x at 128, but 1.75x at 256 and 2.3x at 1024, where the fused kernel's blocking pays off (repeated runs
# vary by about +-0.1). The score matrix it keeps for backward is capped too.
MATH_MAX_KEYS = 64
MATH_MAX_SCORES = 1 << 25


def _math_for_cpu_training(q: Tensor, k: Tensor, v: Tensor) -> bool:
    """Whether ``auto`` writes this CPU call out: autograd records it and its keys are few."""
    recording = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
    keys = k.shape[-2]
    return recording and keys <= MATH_MAX_KEYS and q.shape[:-1].numel() * keys <= MATH_MAX_SCORES


def math_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
    """``softmax(q k^T / sqrt(d)) v`` written out (SDPA's definition), for autograd on short sequences.

    One key (temporal attention over a single image) needs no scores: every weight is exactly 1. A query
    whose keys are all masked gets zeros, as from SDPA.
    """
    if k.shape[-2] == 1 and mask is None:
        return v.expand(*torch.broadcast_shapes(q.shape[:-1], v.shape[:-1]), v.shape[-1])
    scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-1, -2))
    if mask is None:
        return torch.matmul(scores.softmax(dim=-1), v)
    attends = mask.any(dim=-1, keepdim=True)
    if attends.all():
        # Adding 0 / -inf in place gives masked_fill's scores exactly, for less than its cost with autograd.
        blocked = torch.zeros(mask.shape, dtype=scores.dtype, device=scores.device)
        weights = scores.add_(blocked.masked_fill_(~mask, -math.inf)).softmax(dim=-1)
    else:  # a query with every key masked gets zeros, as from SDPA, and zero gradients, not NaN
        weights = scores.masked_fill(~mask, -math.inf).softmax(dim=-1).masked_fill(~attends, 0.0)
    return torch.matmul(weights, v)


def _sdpa(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _dispatch(q: Tensor, k: Tensor, v: Tensor, backend: str, mask: Tensor | None) -> Tensor:
    if backend == "auto":
        name, skipped = choose_backend(q, k, v, mask)
        _log_once(f"attention: auto uses {name!r}" + (f" ({skipped})" if skipped else ""))
        if name == "sdpa":
            return _sdpa(q, k, v, mask)
        return _run(name, q, k, v, mask, forced=False)

    chosen = _REGISTRY.get(backend)
    if chosen is None:
        raise ValueError(
            f"attention backend must be one of {sorted(set(BACKENDS) | set(_REGISTRY))}, got {backend!r}"
        )
    if backend in _DISABLED:
        # Disabled mid-run (NaN output or failed build, already warned): stopping a generation here would
        # help nobody, so the forced choice degrades to SDPA.
        _log_once(f"attention: {backend!r} is disabled for this process ({_DISABLED[backend]}); using 'sdpa'")
        return _sdpa(q, k, v, mask)
    reason = chosen.unsupported(q, k, v, mask)
    if reason is not None:
        raise AttentionBackendError(
            f"attention backend {backend!r} cannot run this call: {reason}. "
            "(backend='auto' picks a backend that can.)"
        )
    return _run(backend, q, k, v, mask, forced=True)


def _run(name: str, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, *, forced: bool) -> Tensor:
    chosen = _REGISTRY[name]
    try:
        out = chosen.run(q, k, v, mask)
    except BackendUnavailable as exc:
        if forced:
            raise AttentionBackendError(f"attention backend {name!r} cannot run: {exc}") from exc
        _disable(name, str(exc))
        return _sdpa(q, k, v, mask)
    if chosen.check_finite and _has_non_finite(out):
        return _recompute_non_finite(name, q, k, v, mask)
    return out


def _disable(name: str, reason: str) -> None:
    _DISABLED[name] = reason
    _log_once(f"attention: {name!r} disabled for this process: {reason}; using 'sdpa'", logging.WARNING)


def _has_non_finite(out: Tensor) -> bool:
    """One fp32 reduction and one sync; a NaN or Inf anywhere makes the sum non-finite."""
    if torch.compiler.is_compiling() or (out.is_cuda and torch.cuda.is_current_stream_capturing()):
        return False  # no host sync possible while tracing or capturing a CUDA graph
    return not bool(torch.isfinite(out.sum(dtype=torch.float32)))


def _recompute_non_finite(name: str, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    reference = _sdpa(q, k, v, mask)
    if _has_non_finite(reference):
        # The inputs themselves overflow (or hold NaN): not the backend's fault, keep it enabled.
        _log_once(f"attention: inputs give NaN/Inf with SDPA too ({_describe(q, k)}); {name!r} stays enabled")
        return reference
    _DISABLED[name] = "returned NaN/Inf where SDPA's output was finite"
    message = (
        f"attention backend {name!r} returned NaN/Inf for {_describe(q, k)} where SDPA's output is finite; "
        f"this call was recomputed with SDPA and {name!r} is disabled for the rest of this process "
        "(it would show as black frames). Please report it with your GPU name."
    )
    logger.warning(message)
    warnings.warn(message, RuntimeWarning, stacklevel=5)  # points at the caller of attention()
    return reference


def _describe(q: Tensor, k: Tensor) -> str:
    return f"q {tuple(q.shape)}, k {tuple(k.shape)}, {str(q.dtype).replace('torch.', '')} on {q.device}"


# ---------------------------------------------------------------------------------------------------------
# auto: order of preference and the choice
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreferenceKey:
    """Shape class of a call: GPU name ("*" = any), dtype, head_dim, power-of-two buckets of the lengths."""

    device: str
    dtype: str  # "bf16" | "fp16" | "fp32"
    head_dim: int
    q_bucket: int
    kv_bucket: int


_DTYPE_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}
_PREFERENCES: dict[PreferenceKey, tuple[str, ...]] = {}
_DEVICE_NAMES: dict[int, str] = {}
_ENV_PREFERENCES_LOADED = False


def length_bucket(length: int) -> int:
    """Smallest power of two >= length: calls of similar length share a preference."""
    return 1 << max(0, int(length) - 1).bit_length()


def set_preference(
    dtype: torch.dtype | str,
    head_dim: int,
    q_len: int,
    kv_len: int,
    order: Sequence[str],
    device: str = "*",
) -> None:
    """Make ``auto`` try `order` (backend names) for calls of this shape class; SDPA always ends the list."""
    unknown = [name for name in order if name not in AUTO_BACKENDS]
    if unknown:
        raise ValueError(f"preference order may only name {AUTO_BACKENDS}, got {unknown}")
    dtype_name = _DTYPE_NAMES.get(dtype, dtype) if isinstance(dtype, torch.dtype) else dtype
    key = PreferenceKey(device, str(dtype_name), int(head_dim), length_bucket(q_len), length_bucket(kv_len))
    ordered = tuple(dict.fromkeys(order))
    _PREFERENCES[key] = ordered if "sdpa" in ordered else (*ordered, "sdpa")


def clear_preferences() -> None:
    _PREFERENCES.clear()


def load_preferences(path: str | Path) -> int:
    """Read ``{"preferences": [{"device", "dtype", "head_dim", "q_len", "kv_len", "order"}, ...]}``.

    This is the file ``bench/attention.py`` writes. Returns how many entries were loaded.
    """
    data = json.loads(Path(path).read_text())
    entries = data.get("preferences", []) if isinstance(data, dict) else []
    for entry in entries:
        set_preference(
            entry["dtype"],
            entry["head_dim"],
            entry["q_len"],
            entry["kv_len"],
            entry["order"],
            device=entry.get("device", "*"),
        )
    return len(entries)


def _device_name(q: Tensor) -> str:
    index = q.device.index if q.device.index is not None else torch.cuda.current_device()
    if index not in _DEVICE_NAMES:
        _DEVICE_NAMES[index] = torch.cuda.get_device_name(index)
    return _DEVICE_NAMES[index]


def preferred_order(q: Tensor, k: Tensor) -> tuple[str, ...]:
    """The order ``auto`` tries for this call: the preference table's entry, else ``AUTO_ORDER``."""
    global _ENV_PREFERENCES_LOADED
    if not _ENV_PREFERENCES_LOADED:
        _ENV_PREFERENCES_LOADED = True
        path = os.environ.get(PREFERENCES_ENV)
        if path:
            try:
                count = load_preferences(path)
                _log_once(f"attention: loaded {count} backend preferences from {path}")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                _log_once(f"attention: ignoring {PREFERENCES_ENV}={path}: {exc}", logging.WARNING)
    if not _PREFERENCES:
        return AUTO_ORDER
    dtype = _DTYPE_NAMES.get(q.dtype, str(q.dtype))
    shape = (dtype, q.shape[-1], length_bucket(q.shape[-2]), length_bucket(k.shape[-2]))
    device = _device_name(q) if q.is_cuda else "cpu"
    return (
        _PREFERENCES.get(PreferenceKey(device, *shape))
        or _PREFERENCES.get(PreferenceKey("*", *shape))
        or AUTO_ORDER
    )


def choose_backend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> tuple[str, str]:
    """The backend ``auto`` uses for this call, and why the ones tried before it were passed over."""
    if not q.is_cuda:
        if _math_for_cpu_training(q, k, v):
            return "math", f"CPU training call with at most {MATH_MAX_KEYS} keys: SDPA written out"
        return "sdpa", "tensors are on the CPU"
    skipped = []
    for name in preferred_order(q, k):
        if name == "sdpa":
            break
        if name in _DISABLED:
            skipped.append(f"{name}: disabled ({_DISABLED[name]})")
            continue
        candidate = _REGISTRY.get(name)
        if candidate is None:
            continue
        reason = candidate.unsupported(q, k, v, mask)
        if reason is None:
            return name, "; ".join(skipped)
        skipped.append(f"{name}: {reason}")
    return "sdpa", "; ".join(skipped)


# ---------------------------------------------------------------------------------------------------------
# Shared checks
# ---------------------------------------------------------------------------------------------------------

_HALF_TYPES = (torch.float16, torch.bfloat16)


def _common_unsupported(q: Tensor, k: Tensor, v: Tensor, what: str) -> str | None:
    if not q.is_cuda:
        return f"tensors are on {q.device.type}; {what} runs on CUDA GPUs only (use backend='sdpa' or 'auto')"
    if q.dtype not in _HALF_TYPES:
        return f"dtype {str(q.dtype).replace('torch.', '')} is not supported ({what} takes fp16/bf16; load the model in bf16)"
    if k.dtype != q.dtype or v.dtype != q.dtype:
        return "q, k and v must share one dtype"
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        return "q, k and v must be [batch, heads, len, head_dim]"
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        return f"{what} is inference-only (no backward); run under torch.no_grad() or use backend='sdpa' to train"
    return None


def _key_mask(mask: Tensor, q: Tensor, k: Tensor) -> Tensor | None:
    """A ``[B, H, Lk]`` view of a boolean mask that is the same for every query, else None."""
    if mask.dtype != torch.bool or mask.dim() > 4 or mask.device != q.device:
        return None
    batch, heads, q_len = q.shape[0], q.shape[1], q.shape[2]
    kv_len = k.shape[2]
    m = mask[(None,) * (4 - mask.dim())]
    mb, mh, mq, mk = m.shape
    if mb not in (1, batch) or mh not in (1, heads) or mk not in (1, kv_len) or mq not in (1, q_len):
        return None
    if mq != 1 and m.stride(2) != 0:
        return None  # differs per query (an expanded [B, 1, 1, Lk] mask has stride 0 there and passes)
    keys = m[:, :, 0, :].expand(batch, heads, kv_len)
    if kv_len > 1 and keys.stride(2) != 1:
        keys = keys.contiguous()
    return keys


# ---------------------------------------------------------------------------------------------------------
# compiled: our kernel
# ---------------------------------------------------------------------------------------------------------

COMPILED_HEAD_DIMS = (64, 128)


def _compiled_unsupported(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> str | None:
    reason = _common_unsupported(q, k, v, "the compiled kernel")
    if reason is not None:
        return reason
    head_dim = q.shape[-1]
    if head_dim not in COMPILED_HEAD_DIMS:
        return f"head_dim {head_dim} is not supported (the compiled kernel takes 64 or 128)"
    if k.shape[:2] != q.shape[:2] or k.shape != v.shape or k.shape[-1] != head_dim:
        return "q, k and v must share batch, heads and head_dim (no grouped-query attention in the compiled kernel)"
    if k.shape[2] == 0:
        return "k and v hold no keys"
    if mask is not None and _key_mask(mask, q, k) is None:
        return (
            "the compiled kernel takes only boolean key-padding masks, the same for every query "
            f"(e.g. [B, 1, 1, Lk]); got {str(mask.dtype).replace('torch.', '')} mask {tuple(mask.shape)}"
        )
    return build.unavailable_reason(q.device)


def _kernel_ready(t: Tensor) -> Tensor:
    """`t` itself when the kernel can read it in place (16-byte aligned rows), else a contiguous copy."""
    if t.stride(-1) != 1 or t.data_ptr() % 16 != 0:
        return t.contiguous()
    for size, stride in zip(t.shape[:-1], t.stride()[:-1]):
        if size > 1 and stride % 8 != 0:
            return t.contiguous()
    return t


def _compiled_run(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    try:
        extension = build.load_extension(q.device)
    except build.ExtensionUnavailable as exc:
        raise BackendUnavailable(str(exc)) from exc
    key_mask = None if mask is None else _key_mask(mask, q, k)
    scale = q.shape[-1] ** -0.5
    return extension.forward(_kernel_ready(q), _kernel_ready(k), _kernel_ready(v), key_mask, scale, 0)


# ---------------------------------------------------------------------------------------------------------
# sage: sageattention, when installed
# ---------------------------------------------------------------------------------------------------------

_SAGE: list = []  # [module or None, reason or None] once looked up


def _sage_module():
    if not _SAGE:
        try:
            import sageattention  # optional dependency: pip install sageattention

            _SAGE.extend([sageattention, None])
        except ImportError:
            _SAGE.extend([None, "sageattention is not installed (pip install sageattention)"])
        except Exception as exc:  # installed but broken (e.g. built for another torch)
            _SAGE.extend([None, f"sageattention failed to import ({type(exc).__name__}: {exc})"])
    return _SAGE[0], _SAGE[1]


def _sage_unsupported(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> str | None:
    reason = _common_unsupported(q, k, v, "sageattention")
    if reason is not None:
        return reason
    module, why_not = _sage_module()
    if module is None:
        return why_not
    if mask is not None:
        return "sageattention takes no attention mask"
    if q.shape[-1] > 128 or k.shape[-1] != q.shape[-1] or v.shape[-1] != q.shape[-1]:
        return f"head_dim {q.shape[-1]} is not supported by sageattention (at most 128, same for q, k, v)"
    if k.shape != v.shape or k.shape[0] != q.shape[0] or q.shape[1] % k.shape[1] != 0:
        return "sageattention needs k and v of one shape and query heads divisible by key heads"
    if torch.cuda.get_device_capability(q.device) < (8, 0):
        return "sageattention needs an sm_80 or newer GPU"
    return None


def _sage_run(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    module, why_not = _sage_module()
    if module is None:
        raise BackendUnavailable(why_not)
    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    try:
        return module.sageattn(q, k, v, tensor_layout="HND", is_causal=False)
    except (ValueError, AssertionError, NotImplementedError) as exc:  # its own shape/arch checks
        raise BackendUnavailable(f"sageattention refused the call ({type(exc).__name__}: {exc})") from exc


# ---------------------------------------------------------------------------------------------------------
# Registration of the built-in backends (plain function objects: importing stays cheap)
# ---------------------------------------------------------------------------------------------------------

register_backend(Backend("sdpa", _sdpa, lambda q, k, v, mask: None, check_finite=False))
register_backend(Backend("compiled", _compiled_run, _compiled_unsupported))
register_backend(Backend("sage", _sage_run, _sage_unsupported))
