"""The sprites world as a node: a procedural clip with its caption (test input, training-data preview)."""

from __future__ import annotations

import random

from ..sprites import (
    BACKGROUND_KINDS,
    COLORS,
    HELD_OUT_COMBINATIONS,
    MOTIONS,
    SHAPES,
    canonical_caption,
    caption,
    random_clip_spec,
    render_clip,
)
from ..sprites.world import SPLITS
from .base import category, combo_input, float_input, int_input, node_mappings, seed_input

RANDOM = "random"
MAX_DRAWS = 20000  # a fixed combination has probability >= 1/528 per draw: this never runs out in practice


def _allowed(split: str, color: str, shape: str, motion: str) -> bool:
    """Whether the split can draw a first object with these fixed attributes."""
    wanted = (color, shape, motion)

    def fits(triple):
        return all(w == RANDOM or w == t for w, t in zip(wanted, triple))

    if split == "heldout":
        return any(fits(t) for t in HELD_OUT_COMBINATIONS)
    if split == "train" and RANDOM not in wanted:
        return wanted not in HELD_OUT_COMBINATIONS
    return True


def clip_spec(seed: int, split: str, duration: float, background: str, color: str, shape: str, motion: str):
    """The world's random spec for ``seed``, conditioned on the fixed attributes of the first object.

    Specs are drawn from one seeded stream until the first object matches, so the result is a sample of
    the world's own distribution given those attributes (and the same for the same seed).
    """
    if not _allowed(split, color, shape, motion):
        raise ValueError(
            f"split '{split}' never draws a {color} {shape} moving {motion}: the held-out combinations are "
            "kept out of 'train' and are the only first objects of 'heldout'; change the split or the attributes"
        )
    rng = random.Random(seed)
    kinds = None if background == RANDOM else [background]
    for _ in range(MAX_DRAWS):
        spec = random_clip_spec(rng, split, duration=duration, background_kinds=kinds)
        first = spec.objects[0]
        if all(
            w in (RANDOM, got)
            for w, got in zip((color, shape, motion), (first.color, first.shape, first.motion))
        ):
            return spec
    raise RuntimeError(f"no clip with a {color} {shape} moving {motion} in {MAX_DRAWS} draws")


class VCSpritesClip:
    DESCRIPTION = (
        "A procedural sprites clip (coloured shapes moving over a dark background) with its caption: the "
        "world the embedded models were trained on."
    )
    CATEGORY = category("sprites")
    RETURN_TYPES = ("IMAGE", "STRING", "FLOAT")
    RETURN_NAMES = ("images", "caption", "fps")
    OUTPUT_TOOLTIPS = ("Frames [N, H, W, 3] in [0, 1].", "A caption of the clip.", "The clip's frame rate.")
    FUNCTION = "render"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "seed": seed_input("Which clip; the same seed and settings give the same clip."),
                "frames": int_input(17, 1, 1024, "Number of frames."),
                "width": int_input(64, 8, 2048, "Frame width in pixels.", 8),
                "height": int_input(64, 8, 2048, "Frame height in pixels.", 8),
                "fps": float_input(8.0, 1.0, 120.0, "Frame rate: frame i shows time i/fps.", 0.5),
                "background": combo_input([RANDOM, *BACKGROUND_KINDS], "Background kind; random draws one."),
                "split": combo_input(
                    SPLITS, "train: no held-out combination; heldout: the first object is one; all: anything."
                ),
                "caption_style": combo_input(
                    ["varied", "canonical"],
                    "varied: training-style wording; canonical: 'a red circle moving left'.",
                ),
            },
            "optional": {
                "color": combo_input([RANDOM, *COLORS], "Colour of the first object; random draws one."),
                "shape": combo_input([RANDOM, *SHAPES], "Shape of the first object; random draws one."),
                "motion": combo_input([RANDOM, *MOTIONS], "Motion of the first object; random draws one."),
            },
        }

    def render(
        self, seed, frames, width, height, fps, background, split, caption_style,
        color=RANDOM, shape=RANDOM, motion=RANDOM,
    ):  # fmt: skip
        duration = max(frames - 1, 1) / fps  # objects stay in frame for the whole clip
        spec = clip_spec(seed, split, duration, background, color, shape, motion)
        text = canonical_caption(spec) if caption_style == "canonical" else caption(spec, seed)
        return (render_clip(spec, frames, height, width, fps), text, float(fps))


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = node_mappings((VCSpritesClip, "VC Sprites Clip"))
