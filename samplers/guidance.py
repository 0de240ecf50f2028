"""Classifier-free guidance: ``uncond + scale * (cond - uncond)`` on the model's raw output.

Conditionings are opaque to the sampler (they carry context, masks, whatever the model adapter needs);
they are only ever handed back to ``model_fn``. To run cond and uncond in one batched call they must be
concatenated, which :func:`concat_conds` does for tensors nested in dicts, lists, tuples and dataclasses
when their shapes agree; anything else falls back to two calls.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch

ModelFn = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]
BatchConds = Callable[[Any, Any, int], Any]


class _CannotBatch(Exception):
    pass


def concat_conds(first: Any, second: Any, batch_size: int) -> Any:
    """``first`` and ``second`` joined along the batch dim, or None when they cannot be.

    Tensors are joined when they have equal shapes with ``batch_size`` rows (contexts of different lengths
    would need model-specific padding, so they fall back to separate calls); other leaves must be equal.
    """
    try:
        return _concat(first, second, batch_size)
    except _CannotBatch:
        return None


def _concat(a: Any, b: Any, batch_size: int) -> Any:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            raise _CannotBatch
        if a.ndim == 0 or a.shape != b.shape or a.shape[0] != batch_size or a.dtype != b.dtype:
            raise _CannotBatch
        return torch.cat([a, b])
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            raise _CannotBatch
        return {k: _concat(a[k], b[k], batch_size) for k in a}
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and type(a) is type(b):
        if len(a) != len(b):
            raise _CannotBatch
        return type(a)(_concat(x, y, batch_size) for x, y in zip(a, b))
    if dataclasses.is_dataclass(a) and not isinstance(a, type) and type(a) is type(b):
        fields = {
            f.name: _concat(getattr(a, f.name), getattr(b, f.name), batch_size) for f in dataclasses.fields(a)
        }
        return dataclasses.replace(a, **fields)
    try:
        same = a is b or bool(a == b)
    except Exception:  # comparisons that do not reduce to one bool
        same = False
    if not same:
        raise _CannotBatch
    return a


def guided_prediction(
    model_fn: ModelFn,
    x: torch.Tensor,
    timestep: torch.Tensor,
    cond: Any,
    uncond: Any,
    scale: float,
    batch_conds: BatchConds | None = concat_conds,
) -> torch.Tensor:
    """The model's raw output with CFG ``scale``; scale 1 makes a single cond-only call."""
    if scale == 1.0:
        return model_fn(x, timestep, cond)
    if uncond is None:
        raise ValueError(f"cfg {scale} needs an uncond (negative) conditioning; pass one or set cfg to 1.0")
    batched = batch_conds(uncond, cond, x.shape[0]) if batch_conds is not None else None
    if batched is not None:
        out_uncond, out_cond = model_fn(torch.cat([x, x]), torch.cat([timestep, timestep]), batched).chunk(2)
    else:
        out_cond = model_fn(x, timestep, cond)
        out_uncond = model_fn(x, timestep, uncond)
    return out_uncond + scale * (out_cond - out_uncond)


def cogvideox_dynamic_scale(scale: float, timestep: float, steps: int) -> float:
    """CogVideoX's ``use_dynamic_cfg`` scale for a step, exactly as its reference pipeline computes it."""
    return 1 + scale * (1 - math.cos(math.pi * ((steps - timestep) / steps) ** 5.0)) / 2
