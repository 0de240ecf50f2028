"""Measuring sprites clips back from frames: which colours are there, where they go, what shape they are.

Works on any frames (renders, decoded files, model samples) with no spec: every pixel is labelled with
the nearest object colour or as background, each colour present is tracked (coverage, centroid, size),
its motion is read from the track and its shape from the best-matching rendered template. An evaluator
compares ``measure_clip(frames, fps)`` with the prompt's ``parse_caption``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from .world import BACKGROUND_COLORS, COLORS, SHAPES, ClipSpec, SpriteSpec, render_alphas

_OBJECT_NAMES = list(COLORS)
_OBJECT_TABLE = np.array([COLORS[n] for n in _OBJECT_NAMES], dtype=np.float32)
_BACKGROUND_TABLE = np.array(list(BACKGROUND_COLORS.values()), dtype=np.float32)

# A pixel counts as an object colour only when it is this close to it (RGB distance); half-covered edge
# pixels and blurry model output beyond that count as background.
MAX_COLOR_DISTANCE = 0.35
# Displacement (min(H, W) units over the clip) below which an object is taken as not travelling, and the
# size ratio beyond which a non-travelling object grows or shrinks.
MIN_TRAVEL = 0.08
MIN_SIZE_RATIO = 1.25


@dataclass
class ObjectTrack:
    """One colour followed through a clip; ``center``/``size`` are NaN in frames where it is absent.

    ``center`` [N, 2] is (x, y) in frame fractions; ``size`` [N] is the radius of the disc of equal area in
    min(H, W) fractions; ``coverage`` [N] is the fraction of the frame's pixels with this colour.
    """

    color: str
    coverage: np.ndarray
    center: np.ndarray
    size: np.ndarray


def _as_numpy(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().float().numpy()
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [N, H, W, 3] in [0, 1], got shape {tuple(frames.shape)}")
    return frames


def _squared_distances(pixels: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Squared RGB distance of each pixel [P, 3] to each colour [K, 3], as [P, K].

    Per channel rather than a matrix product: BLAS threads crawl when other jobs share the cores.
    """
    return sum((pixels[:, c, None] - table[None, :, c]) ** 2 for c in range(3))


def label_pixels(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """Per pixel: the index of the nearest object colour in ``COLORS`` order, or -1 for background."""
    frames = _as_numpy(frames)
    pixels = frames.reshape(-1, 3)
    to_objects = _squared_distances(pixels, _OBJECT_TABLE)
    to_background = _squared_distances(pixels, _BACKGROUND_TABLE).min(1)
    nearest = to_objects.argmin(1)
    best = np.take_along_axis(to_objects, nearest[:, None], 1)[:, 0]
    is_object = (best < to_background) & (best < MAX_COLOR_DISTANCE**2)
    return np.where(is_object, nearest, -1).reshape(frames.shape[:3])


def _interior(mask: np.ndarray) -> np.ndarray:
    """Pixels whose four neighbours share their label: real objects have some, the thin ring of blended
    edge pixels around another colour (yellow over black reads as orange) has none."""
    inner = mask.copy()
    inner[:, 1:, :] &= mask[:, :-1, :]
    inner[:, :-1, :] &= mask[:, 1:, :]
    inner[:, :, 1:] &= mask[:, :, :-1]
    inner[:, :, :-1] &= mask[:, :, 1:]
    return inner


def track_colors(frames: torch.Tensor | np.ndarray, min_interior_pixels: int = 2) -> dict[str, ObjectTrack]:
    """Tracks of the object colours present in at least half the frames.

    A colour is present in a frame when at least ``min_interior_pixels`` of its pixels are surrounded by
    the same colour.
    """
    return _tracks(label_pixels(frames), min_interior_pixels)


def _tracks(labels: np.ndarray, min_interior_pixels: int) -> dict[str, ObjectTrack]:
    num, height, width = labels.shape
    unit = float(min(height, width))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    tracks = {}
    for index, name in enumerate(_OBJECT_NAMES):
        mask = labels == index
        present = _interior(mask).sum((1, 2)) >= min_interior_pixels
        if present.mean() < 0.5:
            continue
        count = mask.sum((1, 2)).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            cx = (mask * xs).sum((1, 2)) / count / width
            cy = (mask * ys).sum((1, 2)) / count / height
            size = np.sqrt(count / math.pi) / unit
        center = np.stack([cx, cy], axis=1)
        center[~present] = np.nan
        size[~present] = np.nan
        tracks[name] = ObjectTrack(color=name, coverage=count / (height * width), center=center, size=size)
    return tracks


def _ends(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the first and of the last quarter of the frames where a value exists (robust to noise)."""
    valid = np.flatnonzero(~np.isnan(values.reshape(len(values), -1)).any(1))
    if valid.size < 2:
        raise ValueError("object visible in fewer than 2 frames: cannot measure its motion")
    quarter = max(1, valid.size // 4)
    return values[valid[:quarter]].mean(0), values[valid[-quarter:]].mean(0)


def classify_motion(track: ObjectTrack, height: int, width: int) -> str:
    """The motion name (``MOTIONS``) that best explains the track over the clip."""
    (x0, y0), (x1, y1) = _ends(track.center)
    unit = float(min(height, width))
    dx, dy = (x1 - x0) * width / unit, (y1 - y0) * height / unit  # in min(H, W) units, y down
    s0, s1 = _ends(track.size)
    if math.hypot(dx, dy) < MIN_TRAVEL:
        ratio = s1 / max(s0, 1e-6)
        if ratio > MIN_SIZE_RATIO:
            return "grow"
        if ratio < 1.0 / MIN_SIZE_RATIO:
            return "shrink"
        return "still"
    angle = math.degrees(math.atan2(-dy, dx)) % 360.0  # counter-clockwise from "right"
    sectors = ("right", "up-right", "up", "up-left", "left", "down-left", "down", "down-right")
    return sectors[int(((angle + 22.5) % 360.0) // 45.0)]


@functools.cache
def _shape_area_per_radius2(shape: str) -> float:
    """Area of ``shape`` at radius 1 (measured on a fine render), to size templates from a measured area."""
    spec = ClipSpec((SpriteSpec("white", shape, "still", 0.5, 0.5, 0.4),))
    alpha = render_alphas(spec, np.zeros(1), 256, 256)[0, 0].double().sum().item()
    return alpha / (0.4 * 256) ** 2


def classify_shape(mask: np.ndarray) -> str:
    """The shape whose template (placed at the mask's centroid, scaled to its area) overlaps it best."""
    mask = np.asarray(mask, dtype=bool)
    height, width = mask.shape
    count = mask.sum()
    if count < 3:
        raise ValueError("object too small to tell its shape (fewer than 3 pixels)")
    ys, xs = np.nonzero(mask)
    cx, cy = (xs.mean() + 0.5) / width, (ys.mean() + 0.5) / height
    unit = float(min(height, width))
    best, best_iou = SHAPES[0], -1.0
    for shape in SHAPES:
        radius = math.sqrt(count / _shape_area_per_radius2(shape)) / unit
        spec = ClipSpec((SpriteSpec("white", shape, "still", cx, cy, radius),))
        template = render_alphas(spec, np.zeros(1), height, width)[0, 0].numpy() > 0.5
        iou = (template & mask).sum() / max((template | mask).sum(), 1)
        if iou > best_iou:
            best, best_iou = shape, iou
    return best


def measure_clip(
    frames: torch.Tensor | np.ndarray, min_interior_pixels: int = 2
) -> list[tuple[str, str, str]]:
    """``(colour, shape, motion)`` of each object colour found in the clip, largest object first.

    The shape is voted over the frames where the object covers the most pixels (occlusion and edges of
    the frame spoil the others).
    """
    labels = label_pixels(frames)
    num, height, width = labels.shape
    found = []
    for name, track in _tracks(labels, min_interior_pixels).items():
        index = _OBJECT_NAMES.index(name)
        motion = classify_motion(track, height, width) if num > 1 else "still"
        best_frames = np.argsort(-track.coverage)[: min(5, num)]
        votes = [classify_shape(labels[i] == index) for i in best_frames]
        shape = max(SHAPES, key=votes.count)
        found.append((float(np.nanmean(track.coverage)), (name, shape, motion)))
    found.sort(key=lambda item: -item[0])
    return [triple for _, triple in found]


__all__ = [
    "MAX_COLOR_DISTANCE",
    "ObjectTrack",
    "classify_motion",
    "classify_shape",
    "label_pixels",
    "measure_clip",
    "track_colors",
]
