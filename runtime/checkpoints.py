"""The pack's own checkpoint format: a safetensors file whose metadata carries kind, family and config.

A network saved with :func:`save_checkpoint` can be rebuilt from the file alone, so a loader never
guesses a config and never falls back to random weights.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

KIND_KEY = "videocascade.kind"
FAMILY_KEY = "videocascade.family"
CONFIG_KEY = "videocascade.config"

C = TypeVar("C")


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or does not fit the network asked for."""


def config_from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """Build a dataclass config, rejecting unknown fields so a typo never goes unnoticed."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise CheckpointError(f"{cls.__name__} has no field(s) {unknown}; known fields: {sorted(names)}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**kwargs)


def save_checkpoint(
    path: str | os.PathLike,
    module: torch.nn.Module,
    config: Any,
    kind: str,
    family: str,
    metadata: dict[str, str] | None = None,
) -> None:
    """Write ``module``'s weights with its dataclass ``config`` into ``path`` (safetensors).

    ``metadata`` adds string entries (e.g. ``videocascade.sampler``); it cannot replace the kind, family or
    config entries, which the loaders rely on.
    """
    extra = dict(metadata or {})
    reserved = sorted({KIND_KEY, FAMILY_KEY, CONFIG_KEY} & set(extra))
    if reserved:
        raise ValueError(f"metadata may not set {reserved}: they are written from kind, family and config")
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    extra.update({KIND_KEY: kind, FAMILY_KEY: family, CONFIG_KEY: json.dumps(dataclasses.asdict(config))})
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_file(state, str(path), metadata=extra)


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read all tensors and the metadata of a safetensors file, with errors that name the file."""
    path = str(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({e}); re-download or re-save it"
        ) from e
    return tensors, metadata


def load_checkpoint(
    path: str | os.PathLike, kind: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any], str]:
    """Return ``(state_dict, config_dict, family)`` of a checkpoint written by :func:`save_checkpoint`."""
    tensors, metadata = read_safetensors(path)
    found_kind = metadata.get(KIND_KEY)
    if found_kind is None or CONFIG_KEY not in metadata:
        raise CheckpointError(
            f"{path} has no VideoCascade metadata ('{KIND_KEY}', '{CONFIG_KEY}'); "
            f"it is not a checkpoint of this pack's {kind} format"
        )
    if found_kind != kind:
        raise CheckpointError(f"{path} holds a '{found_kind}' checkpoint, but a '{kind}' was expected")
    return tensors, json.loads(metadata[CONFIG_KEY]), metadata.get(FAMILY_KEY, "unknown")


def load_state_strict(
    module: torch.nn.Module, state: dict[str, torch.Tensor], source: str, *, assign: bool = False
) -> None:
    """Load ``state`` into ``module`` and fail loudly, naming missing and unexpected keys and bad shapes.

    ``assign=True`` adopts the given tensors instead of copying them (for a module built on the ``meta``
    device, so loading a large model needs one model's memory, not two).
    """
    own = module.state_dict()
    expected = set(own.keys())
    given = set(state.keys())
    missing = sorted(expected - given)
    unexpected = sorted(given - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not match the network: {len(missing)} missing key(s) {_preview(missing)}, "
            f"{len(unexpected)} unexpected key(s) {_preview(unexpected)}"
        )
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(own[name].shape):
            raise CheckpointError(
                f"{source}: tensor '{name}' has shape {tuple(tensor.shape)}, the network expects {tuple(own[name].shape)}"
            )
    module.load_state_dict(state, strict=True, assign=assign)


def _preview(keys: Iterable[str], limit: int = 5) -> str:
    keys = list(keys)
    shown = ", ".join(keys[:limit])
    return f"[{shown}{', ...' if len(keys) > limit else ''}]"
