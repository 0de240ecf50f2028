"""Text stage: load a text encoder, turn a prompt into CONDITIONING."""

from __future__ import annotations

from ..runtime.loaders import encode_text, load_text_encoder_handle, resolve_weights
from .base import category, link_input, node_mappings, string_input
from .loader_inputs import WeightsLoader, dtype_input, path_input, weights_inputs


class VCTextEncoderLoader(WeightsLoader):
    DESCRIPTION = (
        "Load a text encoder: VideoCascade's byte-level encoder (embedded models), umT5-XXL (Wan 2.1) or "
        "T5-XXL (CogVideoX), detected from the file."
    )
    CATEGORY = category("text")
    RETURN_TYPES = ("VC_TEXT_ENCODER",)
    RETURN_NAMES = ("text_encoder",)
    OUTPUT_TOOLTIPS = ("The text encoder with its tokenizer and its family's prompt padding.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                **weights_inputs("text_encoder", "text encoder"),
                **dtype_input(
                    "Compute precision; auto = bf16 on a GPU, fp32 on the CPU. fp8 weights stay fp8 in memory."
                ),
            },
            "optional": {
                **path_input("text encoder"),
                "tokenizer": string_input(
                    "",
                    "T5/umT5 only: tokenizer.json, sentencepiece .model or a folder holding one. Empty = the "
                    "tokenizer embedded in the weights file, next to it, or ComfyUI's bundled T5 tokenizer.",
                ),
            },
        }

    def load(self, file, dtype, path="", tokenizer=""):
        weights = resolve_weights("text_encoder", file, path)
        return (load_text_encoder_handle(weights, dtype, tokenizer),)


class VCTextEncode:
    DESCRIPTION = "Encode a prompt into CONDITIONING for the VC DiT Sampler (positive or negative)."
    CATEGORY = category("text")
    RETURN_TYPES = ("CONDITIONING",)
    OUTPUT_TOOLTIPS = (
        "Text embeddings [1, L, D] with their attention mask, padded as the family's pipeline.",
    )
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "text_encoder": link_input("VC_TEXT_ENCODER", "The encoder from VC Text Encoder Loader."),
                "text": string_input(
                    "", "The prompt. Leave empty for an unconditional (negative) prompt.", multiline=True
                ),
            }
        }

    def encode(self, text_encoder, text):
        emb, mask = encode_text(text_encoder, [text])
        extras = {"attention_mask": mask, "videocascade_text_family": text_encoder.family}
        return ([[emb, extras]],)


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = node_mappings(
    (VCTextEncoderLoader, "VC Text Encoder Loader"),
    (VCTextEncode, "VC Text Encode"),
)
