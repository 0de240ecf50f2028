"""Captions for sprites clips: varied plain English for training, a canonical form, and a parser.

``caption(spec, rng)`` draws wording, synonyms and templates from ``rng`` ("red ball drifting left",
"two shapes: a small blue square growing and a white star falling"). ``canonical_caption(spec)`` is the one
fixed wording per clip ("a red circle moving left and a blue square growing"), which evaluation prompts use.
``parse_caption(text)`` recovers ``(colour, shape, motion)`` per object from either form: each object's
words start at its colour word, so objects are read in order between colour words.
"""

from __future__ import annotations

import random
import re

from .world import COLORS, MOTIONS, SHAPES, ClipSpec, SpriteSpec, _as_rng

# Synonyms: the first entry is the canonical word. No word of one table appears in another, and background
# descriptions below use none of them, so the parser can find each kind of word anywhere in a phrase.
COLOR_WORDS: dict[str, tuple[str, ...]] = {
    "red": ("red", "scarlet"),
    "orange": ("orange",),
    "yellow": ("yellow", "golden"),
    "green": ("green", "lime"),
    "cyan": ("cyan", "turquoise"),
    "blue": ("blue",),
    "purple": ("purple", "violet"),
    "white": ("white",),
}

SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "ball", "disc", "dot"),
    "square": ("square", "box", "block"),
    "triangle": ("triangle",),
    "diamond": ("diamond", "rhombus"),
    "star": ("star",),
    "cross": ("cross", "plus sign"),
}

# Motion phrases in two grammatical forms: after a subject ("a red ball ... rolls left") and as a participle
# ("a red ball rolling left").
_FINITE: dict[str, tuple[str, ...]] = {
    "left": ("moves left", "moves to the left", "slides left", "drifts leftward", "travels to the left"),
    "right": ("moves right", "moves to the right", "slides right", "drifts rightward", "travels to the right"),
    "up": ("moves up", "rises", "floats upward", "drifts up", "climbs"),
    "down": ("moves down", "falls", "sinks", "drops down", "descends"),
    "up-left": ("moves up-left", "drifts up and to the left", "moves toward the upper left",
                "moves diagonally up-left", "travels to the top left"),
    "up-right": ("moves up-right", "drifts up and to the right", "moves toward the upper right",
                 "moves diagonally up-right", "travels to the top right"),
    "down-left": ("moves down-left", "drifts down and to the left", "moves toward the lower left",
                  "moves diagonally down-left", "travels to the bottom left"),
    "down-right": ("moves down-right", "drifts down and to the right", "moves toward the lower right",
                   "moves diagonally down-right", "travels to the bottom right"),
    "grow": ("grows", "gets bigger", "expands", "swells"),
    "shrink": ("shrinks", "gets smaller", "contracts", "dwindles"),
    "still": ("stays still", "stays put", "does not move", "rests in place"),
}  # fmt: skip

_PARTICIPLE: dict[str, tuple[str, ...]] = {
    "left": ("moving left", "moving to the left", "sliding left", "drifting leftward", "heading left"),
    "right": ("moving right", "moving to the right", "sliding right", "drifting rightward", "heading right"),
    "up": ("moving up", "rising", "floating upward", "drifting up", "climbing"),
    "down": ("moving down", "falling", "sinking", "dropping down", "descending"),
    "up-left": ("moving up-left", "drifting up and to the left", "heading toward the upper left",
                "moving diagonally up-left"),
    "up-right": ("moving up-right", "drifting up and to the right", "heading toward the upper right",
                 "moving diagonally up-right"),
    "down-left": ("moving down-left", "drifting down and to the left", "heading toward the lower left",
                  "moving diagonally down-left"),
    "down-right": ("moving down-right", "drifting down and to the right", "heading toward the lower right",
                   "moving diagonally down-right"),
    "grow": ("growing", "getting bigger", "expanding", "swelling"),
    "shrink": ("shrinking", "getting smaller", "contracting", "dwindling"),
    "still": ("staying still", "standing still", "not moving", "resting in place"),
}  # fmt: skip

_CANONICAL_MOTION: dict[str, str] = {
    **{m: f"moving {m}" for m in MOTIONS if m not in ("grow", "shrink", "still")},
    "grow": "growing",
    "shrink": "shrinking",
    "still": "staying still",
}

_BACKGROUND_PHRASES: dict[str, tuple[str, ...]] = {
    "plain": ("on a plain dark background", "on a dark background", "against a plain backdrop"),
    "stripes": ("on a striped background", "over dark stripes"),
    "checker": ("on a checkered background", "over a dark checkerboard"),
    "noise": ("on a noisy background", "over a mottled backdrop"),
    "gradient": ("on a gradient background", "over a dark gradient"),
}

_TWO_PREFIXES = ("", "", "two shapes: ", "two objects: ")
_JOINERS = (" and ", " and ", ", ", " while ", "; ")


def _size_word(sprite: SpriteSpec, rng: random.Random) -> str:
    """An optional size adjective (start size), used sometimes."""
    if rng.random() < 0.6:
        return ""
    if sprite.size < 0.1:
        return rng.choice(("small ", "tiny ", "little "))
    if sprite.size > 0.15:
        return rng.choice(("big ", "large "))
    return ""


def _describe(sprite: SpriteSpec, rng: random.Random, article: bool) -> str:
    color = rng.choice(COLOR_WORDS[sprite.color])
    shape = rng.choice(SHAPE_WORDS[sprite.shape])
    noun = f"{_size_word(sprite, rng)}{color} {shape}"
    if rng.random() < 0.5:
        motion = rng.choice(_PARTICIPLE[sprite.motion])
        phrase = f"{noun} {motion}" if rng.random() < 0.8 else f"{noun}, {motion}"
    else:
        phrase = f"{noun} that {rng.choice(_FINITE[sprite.motion])}"
        if rng.random() < 0.6:  # most finite phrases read better without "that"
            phrase = phrase.replace(" that ", " ", 1)
    if article:
        phrase = ("an " if phrase[0] in "aeiou" else "a ") + phrase
    return phrase


def caption(spec: ClipSpec, rng: int | random.Random) -> str:
    """A varied English caption of ``spec``; the same ``rng`` seed gives the same caption."""
    rng = _as_rng(rng)
    if not spec.objects:
        raise ValueError("cannot caption a clip without objects")
    article = rng.random() < 0.75
    parts = [_describe(obj, rng, article) for obj in spec.objects]
    if len(parts) == 1:
        text = parts[0]
        if rng.random() < 0.15:
            text = rng.choice(("a video of ", "a clip of ", "footage of ")) + text
    else:
        text = parts[0]
        for part in parts[1:]:
            text += rng.choice(_JOINERS) + part
        text = rng.choice(_TWO_PREFIXES) + text
    if rng.random() < 0.3:
        text += " " + rng.choice(_BACKGROUND_PHRASES[spec.background.kind])
    return text


def image_caption(spec: ClipSpec, rng: int | random.Random) -> str:
    """A caption without motion, for single frames ("a red ball", "a small blue square and a white star")."""
    rng = _as_rng(rng)
    parts = []
    for obj in spec.objects:
        noun = (
            f"{_size_word(obj, rng)}{rng.choice(COLOR_WORDS[obj.color])} {rng.choice(SHAPE_WORDS[obj.shape])}"
        )
        parts.append(("an " if noun[0] in "aeiou" else "a ") + noun)
    text = " and ".join(parts)
    if rng.random() < 0.3:
        text += " " + rng.choice(_BACKGROUND_PHRASES[spec.background.kind])
    return text


def canonical_caption(spec: ClipSpec) -> str:
    """The fixed wording: "a red circle moving left", objects joined by " and "."""
    if not spec.objects:
        raise ValueError("cannot caption a clip without objects")
    return " and ".join(canonical_phrase(o.color, o.shape, o.motion) for o in spec.objects)


def canonical_phrase(color: str, shape: str, motion: str | None = None) -> str:
    """Canonical words for one object: "a red circle moving left" (no motion: "a red circle")."""
    noun = f"{color} {shape}"
    phrase = ("an " if noun[0] in "aeiou" else "a ") + noun
    return phrase if motion is None else f"{phrase} {_CANONICAL_MOTION[motion]}"


# ----------------------------------------------------------------------------------------------------------
# Parsing


def _word_pattern(words: dict[str, tuple[str, ...]]) -> tuple[re.Pattern, dict[str, str]]:
    lookup = {w: name for name, synonyms in words.items() for w in synonyms}
    alternatives = sorted(lookup, key=len, reverse=True)  # longest first: "plus sign" before "plus"
    return re.compile(r"\b(" + "|".join(re.escape(w) for w in alternatives) + r")\b"), lookup


_COLOR_RE, _COLOR_LOOKUP = _word_pattern(COLOR_WORDS)
_SHAPE_RE, _SHAPE_LOOKUP = _word_pattern(SHAPE_WORDS)
_GROW_RE = re.compile(r"\b(grow|grows|growing|bigger|expands?|expanding|swells?|swelling|enlarg\w*)\b")
_SHRINK_RE = re.compile(r"\b(shrinks?|shrinking|smaller|contracts?|contracting|dwindles?|dwindling)\b")
_STILL_RE = re.compile(r"\b(still|stays put|not move|not moving|in place|motionless|stationary|static)\b")
_UP_RE = re.compile(r"\b(up|upward|upwards|upper|top|rises|rising|climbs|climbing|ascends?|ascending)\b")
_DOWN_RE = re.compile(r"\b(down|downward|downwards|lower|bottom|falls?|falling|sinks?|sinking|descends?|"
                      r"descending|drops?|dropping)\b")  # fmt: skip
_LEFT_RE = re.compile(r"\b(left|leftward|leftwards)\b")
_RIGHT_RE = re.compile(r"\b(right|rightward|rightwards)\b")


def _parse_motion(segment: str) -> str | None:
    if _GROW_RE.search(segment):
        return "grow"
    if _SHRINK_RE.search(segment):
        return "shrink"
    if _STILL_RE.search(segment):
        return "still"
    vertical = "up" if _UP_RE.search(segment) else "down" if _DOWN_RE.search(segment) else None
    horizontal = "left" if _LEFT_RE.search(segment) else "right" if _RIGHT_RE.search(segment) else None
    if vertical and horizontal:
        return f"{vertical}-{horizontal}"
    return vertical or horizontal


def parse_caption(text: str) -> list[tuple[str, str, str | None]]:
    """``(colour, shape, motion)`` per object described in ``text``, in order; motion is None when absent.

    Raises ``ValueError`` naming the problem when no object, or an object without a shape, is found.
    """
    lowered = text.lower()
    starts = [m for m in _COLOR_RE.finditer(lowered)]
    if not starts:
        raise ValueError(f"no sprite colour in caption {text!r}; expected one of {', '.join(COLORS)}")
    objects = []
    for i, match in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(lowered)
        segment = lowered[match.end() : end]
        shape = _SHAPE_RE.search(segment)
        if shape is None:
            raise ValueError(
                f"no shape after {match.group(0)!r} in caption {text!r}; expected one of {', '.join(SHAPES)}"
            )
        objects.append((_COLOR_LOOKUP[match.group(0)], _SHAPE_LOOKUP[shape.group(0)], _parse_motion(segment)))
    return objects
