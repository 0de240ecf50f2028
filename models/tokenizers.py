"""Prompt tokenizers for the T5 / umT5 text encoders, and prompt encoding as the reference pipelines do it.

A tokenizer comes from a file the user provides: a sentencepiece ``.model`` (``sentencepiece`` package), a
``tokenizer.json`` (``tokenizers`` package), a folder holding one of them, or a ComfyUI text-encoder
``.safetensors`` that embeds its sentencepiece model (``spiece_model``). Both packages are optional; a
missing one raises an error saying which to install.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Sequence
from typing import Protocol

import torch
from safetensors import SafetensorError, safe_open


class TokenizerError(ValueError):
    """A tokenizer file is missing, unreadable, of an unknown kind, or its package is not installed."""


class PromptTokenizer(Protocol):
    pad_id: int

    def __call__(self, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ids [B, max_length] long, mask [B, max_length] bool)``: end-of-sequence appended,
        truncated to ``max_length``, right-padded with ``pad_id``."""
        ...


def _require(package: str, purpose: str):
    try:
        return __import__(package)
    except ImportError as e:
        raise TokenizerError(f"reading {purpose} needs the '{package}' package: pip install {package}") from e


def _pad(rows: list[list[int]], max_length: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.full((len(rows), max_length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), max_length), dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = True
    return ids, mask


class SentencePieceTokenizer:
    """T5-style sentencepiece tokenizer: pieces, then ``</s>``; pad id from the model (0 for T5 / umT5)."""

    def __init__(self, model: str | os.PathLike | bytes) -> None:
        spm = _require("sentencepiece", "a sentencepiece tokenizer (.model)")
        self.processor = spm.SentencePieceProcessor()
        try:
            if isinstance(model, bytes):
                self.processor.LoadFromSerializedProto(model)
            else:
                self.processor.Load(str(model))
        except (OSError, RuntimeError) as e:
            raise TokenizerError(f"{_name(model)} is not a readable sentencepiece model ({e})") from e
        self.eos_id = int(self.processor.eos_id())
        if self.eos_id < 0:
            raise TokenizerError(f"sentencepiece model {_name(model)} defines no end-of-sequence token")
        pad = int(self.processor.pad_id())
        self.pad_id = pad if pad >= 0 else 0

    def __call__(self, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [ids[: max_length - 1] + [self.eos_id] for ids in self.processor.encode(list(texts))]
        return _pad(rows, max_length, self.pad_id)

    def decode(self, ids: Sequence[int]) -> str:
        return self.processor.decode([i for i in ids if i not in (self.pad_id, self.eos_id)])


class JsonTokenizer:
    """A Hugging Face ``tokenizer.json`` (its post-processor appends ``</s>`` for T5)."""

    def __init__(self, path: str | os.PathLike) -> None:
        tokenizers = _require("tokenizers", "a tokenizer.json")
        try:
            self.tokenizer = tokenizers.Tokenizer.from_file(str(path))
        except Exception as e:  # the Rust side raises its own exception type
            raise TokenizerError(f"{path} is not a readable tokenizer.json ({e})") from e
        padding = self.tokenizer.padding
        if padding is not None:
            self.pad_id = int(padding["pad_id"])
        else:
            pad = self.tokenizer.token_to_id("<pad>")
            self.pad_id = int(pad) if pad is not None else 0
        self.tokenizer.no_padding()

    def __call__(self, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.tokenizer.enable_truncation(max_length)  # keeps room for the post-processor's </s>
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=True)
        return _pad([e.ids for e in encodings], max_length, self.pad_id)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)


def _name(model: str | os.PathLike | bytes) -> str:
    return "<embedded model>" if isinstance(model, bytes) else str(model)


def embedded_spiece_model(path: str | os.PathLike) -> bytes | None:
    """The sentencepiece model a ComfyUI text-encoder file embeds (``spiece_model`` tensor), if any."""
    try:
        with safe_open(str(path), framework="pt") as f:
            if "spiece_model" not in f.keys():
                return None
            return f.get_tensor("spiece_model").to(torch.uint8).numpy().tobytes()
    except (OSError, ValueError, SafetensorError) as e:
        raise TokenizerError(f"{path} is not a readable safetensors file ({e})") from e


def load_tokenizer(path: str | os.PathLike) -> SentencePieceTokenizer | JsonTokenizer:
    """A tokenizer from ``tokenizer.json``, a sentencepiece ``.model``, a folder holding one, or a
    ComfyUI ``.safetensors`` text encoder with an embedded ``spiece_model``."""
    path = str(path)
    if os.path.isdir(path):
        for name in ("tokenizer.json", "spiece.model", "tokenizer.model"):
            if os.path.isfile(os.path.join(path, name)):
                return load_tokenizer(os.path.join(path, name))
        models = sorted(n for n in os.listdir(path) if n.endswith(".model"))
        if models:
            return load_tokenizer(os.path.join(path, models[0]))
        raise TokenizerError(f"no tokenizer.json or sentencepiece .model in folder {path}")
    if not os.path.isfile(path):
        raise TokenizerError(f"tokenizer file not found: {path}")
    if path.endswith(".json"):
        return JsonTokenizer(path)
    if path.endswith(".safetensors"):
        embedded = embedded_spiece_model(path)
        if embedded is None:
            raise TokenizerError(
                f"{path} has no embedded tokenizer ('spiece_model'); give the tokenizer.json or spiece.model"
            )
        return SentencePieceTokenizer(embedded)
    if path.endswith(".model"):
        return SentencePieceTokenizer(path)
    raise TokenizerError(
        f"{path}: unknown tokenizer kind; expected tokenizer.json, a sentencepiece .model or a folder"
    )


def clean_prompt(text: str) -> str:
    """Wan's prompt cleaning: unescape HTML entities (twice) and collapse whitespace."""
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


# Settings of the reference pipelines.
COGVIDEOX_PROMPTS = {"max_length": 226, "zero_padding": False}
WAN_PROMPTS = {"max_length": 512, "zero_padding": True}


@torch.no_grad()
def encode_prompts_t5(
    encoder: torch.nn.Module,
    tokenizer: PromptTokenizer,
    prompts: str | Sequence[str],
    max_length: int,
    zero_padding: bool,
    *,
    mask_in_encoder: bool | None = None,
    clean: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts -> ``(embeddings [B, max_length, D] float32, mask [B, max_length] bool)``, padded.

    CogVideoX (``zero_padding=False``): the encoder sees the padded sequence without a mask and padding
    positions keep their embeddings. Wan (``zero_padding=True``): prompts are cleaned, the encoder gets
    the mask and padding positions are zeroed. ``mask_in_encoder`` / ``clean`` override those defaults.
    """
    texts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not texts:
        raise ValueError("no prompts to encode")
    mask_in_encoder = zero_padding if mask_in_encoder is None else mask_in_encoder
    if zero_padding if clean is None else clean:
        texts = [clean_prompt(t) for t in texts]
    ids, mask = tokenizer(texts, max_length)
    device = next(encoder.parameters()).device
    ids, mask = ids.to(device), mask.to(device)
    emb = encoder(ids, mask if mask_in_encoder else None).float()
    if zero_padding:
        emb = torch.where(mask[..., None], emb, torch.zeros_like(emb))
    return emb, mask
