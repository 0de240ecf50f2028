"""The procedural sprites video world: specs, renderer, captions and training data.

Training (``train.py``) and evaluation (``evaluate.py``) of the embedded models live here too.
"""

from .captions import canonical_caption, caption, image_caption, parse_caption
from .dataset import SpritesDataConfig, SpritesDataset, collate_clips, frames_to_video, video_to_frames
from .measure import classify_motion, classify_shape, label_pixels, measure_clip, track_colors
from .world import (
    BACKGROUND_COLORS,
    BACKGROUND_KINDS,
    COLORS,
    HELD_OUT_COMBINATIONS,
    MOTIONS,
    SHAPES,
    BackgroundSpec,
    ClipSpec,
    SpriteSpec,
    frame_times,
    is_held_out,
    nearest_color,
    random_clip_spec,
    render_alphas,
    render_clip,
    render_frames_at,
)

__all__ = [
    "BACKGROUND_COLORS",
    "BACKGROUND_KINDS",
    "COLORS",
    "HELD_OUT_COMBINATIONS",
    "MOTIONS",
    "SHAPES",
    "BackgroundSpec",
    "ClipSpec",
    "SpriteSpec",
    "SpritesDataConfig",
    "SpritesDataset",
    "canonical_caption",
    "classify_motion",
    "classify_shape",
    "caption",
    "collate_clips",
    "frame_times",
    "frames_to_video",
    "image_caption",
    "is_held_out",
    "label_pixels",
    "measure_clip",
    "nearest_color",
    "parse_caption",
    "random_clip_spec",
    "render_alphas",
    "render_clip",
    "render_frames_at",
    "track_colors",
    "video_to_frames",
]
