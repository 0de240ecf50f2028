"""The sprites world: coloured shapes moving over dark backgrounds, rendered from a frozen spec.

A clip is a ``ClipSpec`` (one or more ``SpriteSpec`` objects over a ``BackgroundSpec``). Everything is
defined in continuous time (seconds) and normalised coordinates, so one spec renders the same scene at any
frame rate and any resolution:

- positions ``x``, ``y`` are fractions of the frame width and height (0 = left / top edge);
- sizes are fractions of ``min(height, width)``, so shapes stay round on non-square frames;
- frame ``i`` of a clip rendered at ``fps`` shows time ``i / fps``.

Edges are anti-aliased with analytic coverage (signed distance in pixels, a one-pixel box filter), so an
area-downsampled high-resolution render closely matches a low-resolution render.

Sizes: every shape fits in the circle of radius ``SHAPE_EXTENT * size`` around its centre; the random specs
keep that circle inside the frame for the spec's whole ``duration``.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike

# Object colours: saturated or bright, far apart in RGB (nearest pair: red/orange at 0.42) and far from
# every background tone (nearest: green/grey at 0.53), so a frame's colour can be measured back.
COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.10, 0.10),
    "orange": (1.00, 0.50, 0.00),
    "yellow": (1.00, 0.92, 0.10),
    "green": (0.10, 0.78, 0.20),
    "cyan": (0.05, 0.85, 0.92),
    "blue": (0.15, 0.30, 1.00),
    "purple": (0.62, 0.18, 0.92),
    "white": (0.96, 0.96, 0.96),
}

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star", "cross")

MOTIONS: tuple[str, ...] = (
    "left",
    "right",
    "up",
    "down",
    "up-left",
    "up-right",
    "down-left",
    "down-right",
    "grow",
    "shrink",
    "still",
)

# Unit direction of travel in frame fractions, y pointing down (screen convention).
_DIAG = 1.0 / math.sqrt(2.0)
_SIN60 = math.sqrt(3.0) / 2.0
MOTION_DIRECTIONS: dict[str, tuple[float, float]] = {
    "left": (-1.0, 0.0),
    "right": (1.0, 0.0),
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
    "up-left": (-_DIAG, -_DIAG),
    "up-right": (_DIAG, -_DIAG),
    "down-left": (-_DIAG, _DIAG),
    "down-right": (_DIAG, _DIAG),
    "grow": (0.0, 0.0),
    "shrink": (0.0, 0.0),
    "still": (0.0, 0.0),
}

# Background tones: dark, low-saturation colours, all far from the object colours.
BACKGROUND_COLORS: dict[str, tuple[float, float, float]] = {
    "black": (0.03, 0.03, 0.03),
    "charcoal": (0.14, 0.14, 0.15),
    "slate": (0.19, 0.22, 0.27),
    "umber": (0.25, 0.18, 0.13),
    "moss": (0.16, 0.21, 0.15),
    "grey": (0.32, 0.32, 0.33),
    "navy": (0.07, 0.08, 0.20),
}

BACKGROUND_KINDS: tuple[str, ...] = ("plain", "stripes", "checker", "noise", "gradient")

# Every shape fits inside the circle of radius SHAPE_EXTENT * size (the square's corners are the farthest).
SHAPE_EXTENT = 1.16

# Held-out colour x shape x motion combinations: never produced by split="train", used only to evaluate
# compositional generalisation. 66 of the 528 combinations (12.5%), chosen by the fixed rule
# (colour_index + 2 * shape_index + 3 * motion_index) % 8 == 0 over the orders above, and written out here
# so the list cannot drift if those orders change. Every colour, shape and motion, and every
# (colour, shape) and (shape, motion) pair, still appears in training.
_HELD_OUT_BY_COLOR: dict[str, tuple[tuple[str, str], ...]] = {
    "red": (
        ("circle", "left"), ("circle", "grow"), ("square", "up"), ("square", "still"), ("triangle", "up-left"),
        ("diamond", "down-left"), ("star", "left"), ("star", "grow"), ("cross", "up"), ("cross", "still"),
    ),
    "orange": (
        ("circle", "up-right"), ("square", "down-right"), ("triangle", "right"), ("triangle", "shrink"),
        ("diamond", "down"), ("star", "up-right"), ("cross", "down-right"),
    ),
    "yellow": (
        ("circle", "up"), ("circle", "still"), ("square", "up-left"), ("triangle", "down-left"),
        ("diamond", "left"), ("diamond", "grow"), ("star", "up"), ("star", "still"), ("cross", "up-left"),
    ),
    "green": (
        ("circle", "down-right"), ("square", "right"), ("square", "shrink"), ("triangle", "down"),
        ("diamond", "up-right"), ("star", "down-right"), ("cross", "right"), ("cross", "shrink"),
    ),
    "cyan": (
        ("circle", "up-left"), ("square", "down-left"), ("triangle", "left"), ("triangle", "grow"),
        ("diamond", "up"), ("diamond", "still"), ("star", "up-left"), ("cross", "down-left"),
    ),
    "blue": (
        ("circle", "right"), ("circle", "shrink"), ("square", "down"), ("triangle", "up-right"),
        ("diamond", "down-right"), ("star", "right"), ("star", "shrink"), ("cross", "down"),
    ),
    "purple": (
        ("circle", "down-left"), ("square", "left"), ("square", "grow"), ("triangle", "up"),
        ("triangle", "still"), ("diamond", "up-left"), ("star", "down-left"), ("cross", "left"),
        ("cross", "grow"),
    ),
    "white": (
        ("circle", "down"), ("square", "up-right"), ("triangle", "down-right"), ("diamond", "right"),
        ("diamond", "shrink"), ("star", "down"), ("cross", "up-right"),
    ),
}  # fmt: skip

HELD_OUT_COMBINATIONS: frozenset[tuple[str, str, str]] = frozenset(
    (color, shape, motion) for color, pairs in _HELD_OUT_BY_COLOR.items() for shape, motion in pairs
)

SPLITS: tuple[str, ...] = ("train", "heldout", "all")

# Ranges the random specs draw from (sizes in min(H, W) fractions, speeds per second).
MOVE_SIZE_RANGE = (0.10, 0.17)
MOVE_SPEED_RANGE = (0.18, 0.32)  # frame fractions per second along the path
SMALL_SIZE_RANGE = (0.06, 0.09)  # start of "grow", end of "shrink"
LARGE_SIZE_RANGE = (0.16, 0.20)  # end of "grow", start of "shrink"
MIN_SIZE = 0.02  # a shrinking sprite never vanishes completely, even rendered past its duration
EDGE_MARGIN = 0.01
_NOISE_LATTICE = 64


def is_held_out(color: str, shape: str, motion: str) -> bool:
    """True when this colour x shape x motion combination is reserved for evaluation."""
    return (color, shape, motion) in HELD_OUT_COMBINATIONS


def _check_name(kind: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown sprite {kind} {value!r}; choose one of {', '.join(allowed)}")


@dataclass(frozen=True)
class SpriteSpec:
    """One object: what it is, where it starts and how it moves.

    ``speed`` is in frame fractions per second along the path for the eight moves, in size units per second
    for ``grow``/``shrink``, and ignored for ``still``.
    """

    color: str
    shape: str
    motion: str
    x: float
    y: float
    size: float
    speed: float = 0.0

    def __post_init__(self) -> None:
        _check_name("colour", self.color, tuple(COLORS))
        _check_name("shape", self.shape, SHAPES)
        _check_name("motion", self.motion, MOTIONS)
        if not self.size > 0:
            raise ValueError(f"sprite size must be > 0 (a fraction of min(height, width)), got {self.size}")
        if not self.speed >= 0:
            raise ValueError(f"sprite speed must be >= 0 (the motion names the direction), got {self.speed}")

    def center_at(self, t: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Centre (x, y) in frame fractions at times ``t`` (seconds), float64 arrays."""
        t = _as_times(t)
        dx, dy = MOTION_DIRECTIONS[self.motion]
        return self.x + dx * self.speed * t, self.y + dy * self.speed * t

    def size_at(self, t: ArrayLike) -> np.ndarray:
        """Size (radius, min(H, W) fractions) at times ``t`` (seconds), a float64 array."""
        t = _as_times(t)
        if self.motion == "grow":
            return self.size + self.speed * t
        if self.motion == "shrink":
            return np.maximum(self.size - self.speed * t, MIN_SIZE)
        return np.full_like(t, self.size)


@dataclass(frozen=True)
class BackgroundSpec:
    """A static background: ``plain`` (``color``) or a two-tone texture of ``color`` and ``color2``.

    ``period`` is the stripe/checker period, noise cell or gradient length in min(H, W) fractions; ``angle``
    (degrees) orients stripes and gradients; ``seed`` fixes the noise.
    """

    kind: str = "plain"
    color: tuple[float, float, float] = BACKGROUND_COLORS["black"]
    color2: tuple[float, float, float] = BACKGROUND_COLORS["grey"]
    period: float = 0.25
    angle: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        _check_name("background kind", self.kind, BACKGROUND_KINDS)
        if not self.period > 0:
            raise ValueError(f"background period must be > 0, got {self.period}")
        for name in ("color", "color2"):  # tuples keep the spec hashable (lists would not be)
            value = tuple(float(c) for c in getattr(self, name))
            if len(value) != 3:
                raise ValueError(f"background {name} must be an (r, g, b) triple, got {value}")
            object.__setattr__(self, name, value)


@dataclass(frozen=True)
class ClipSpec:
    """A clip: objects drawn in order (later ones on top) over a background.

    ``duration`` (seconds) is how long the random spec keeps every object inside the frame; rendering
    longer is allowed, objects then keep moving along their lines.
    """

    objects: tuple[SpriteSpec, ...]
    background: BackgroundSpec = BackgroundSpec()
    duration: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.objects, tuple):
            object.__setattr__(self, "objects", tuple(self.objects))
        if not all(isinstance(o, SpriteSpec) for o in self.objects):
            raise TypeError("ClipSpec.objects must be SpriteSpec instances")
        if not self.duration > 0:
            raise ValueError(f"clip duration must be > 0 seconds, got {self.duration}")

    def to_dict(self) -> dict:
        """Plain JSON-able form (for datasets on disk, model cards, evaluation logs)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ClipSpec:
        """Inverse of ``to_dict``."""
        return cls(
            objects=tuple(SpriteSpec(**o) for o in data["objects"]),
            background=BackgroundSpec(**data.get("background", {})),
            duration=float(data.get("duration", 2.0)),
        )

    @property
    def triples(self) -> list[tuple[str, str, str]]:
        """(colour, shape, motion) of each object, in drawing order."""
        return [(o.color, o.shape, o.motion) for o in self.objects]

    @property
    def is_held_out(self) -> bool:
        """True when any object's combination is held out of training."""
        return any(is_held_out(*t) for t in self.triples)


# ----------------------------------------------------------------------------------------------------------
# Rendering


def frame_times(num_frames: int, fps: float) -> torch.Tensor:
    """Times (seconds) of the frames of a clip, float64 [N]: frame ``i`` shows ``i / fps``."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    return torch.arange(num_frames, dtype=torch.float64) / float(fps)


# The renderer works in numpy: every array is small (one clip), and numpy's single-threaded elementwise
# kernels stay fast when data-loader workers or other jobs share the cores, where torch's intra-op threads
# can be ten times slower. Results are handed back as torch tensors.


def _as_times(t: ArrayLike) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().double().numpy()
    return np.asarray(t, dtype=np.float64).reshape(-1)


def _coverage(signed_distance: np.ndarray) -> np.ndarray:
    """Fraction of a pixel covered by the inside of a shape whose edge is ``signed_distance`` px away."""
    return np.clip(0.5 - signed_distance, 0.0, 1.0)


def _sd_box(px: np.ndarray, py: np.ndarray, half_w: np.ndarray, half_h: np.ndarray) -> np.ndarray:
    """Exact signed distance to an axis-aligned box centred at the origin."""
    qx = np.abs(px) - half_w
    qy = np.abs(py) - half_h
    outside = np.sqrt(np.maximum(qx, 0.0) ** 2 + np.maximum(qy, 0.0) ** 2)
    inside = np.minimum(np.maximum(qx, qy), 0.0)
    return outside + inside


def _sd_star(px: np.ndarray, py: np.ndarray, r_tip: np.ndarray, inner: float, points: int = 5) -> np.ndarray:
    """Signed distance to a star with one point up, tips at ``r_tip`` and inner corners at ``inner * r_tip``.

    Reflecting across the star's mirror lines folds every point into the wedge between the up axis and the
    first inner corner (distances are unchanged); there the boundary is one segment, tip to inner corner.
    """
    u, v = np.abs(px), -py  # v points up; the star is symmetric about the up axis
    u, v = np.broadcast_arrays(u, v)
    wedge = math.pi / points
    for j in range(points - 1, 0, -1):
        # Mirror line at angle j * wedge from the up axis; its normal points toward larger angles.
        nx, ny = math.cos(j * wedge), -math.sin(j * wedge)
        d = np.maximum(u * nx + v * ny, 0.0)
        u, v = u - (2.0 * nx) * d, v - (2.0 * ny) * d
    ex, ey = inner * math.sin(wedge), inner * math.cos(wedge) - 1.0  # tip -> inner corner, per unit r_tip
    wx, wy = u, v - r_tip
    h = np.clip((wx * ex + wy * ey) / (r_tip * (ex * ex + ey * ey)), 0.0, 1.0)
    dist = np.sqrt((wx - ex * r_tip * h) ** 2 + (wy - ey * r_tip * h) ** 2)
    # The centre lies on the negative side of the tip -> corner segment.
    return np.where(ex * wy - ey * wx > 0, dist, -dist)


def _sd_shape(shape: str, px: np.ndarray, py: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Signed distance (pixels, negative inside) to ``shape`` of the given radius (pixels) at the origin.

    Shapes are scaled so that they look about equally big for one radius; none reaches past
    ``SHAPE_EXTENT * radius`` from the centre. Convex polygons use the largest half-plane distance, exact
    inside and along the edges, which is all the one-pixel anti-aliasing needs.
    """
    if shape == "circle":
        return np.sqrt(px * px + py * py) - radius
    if shape == "square":
        half = 0.82 * radius
        return _sd_box(px, py, half, half)
    if shape == "triangle":
        # Equilateral, pointing up, centred on its centroid: tips at 1.12 r, edges at half that distance.
        tip = 1.12 * radius
        return np.maximum(py, _SIN60 * np.abs(px) - 0.5 * py) - 0.5 * tip
    if shape == "diamond":
        # A square standing on a corner, tips at 1.1 r.
        return (np.abs(px) + np.abs(py) - 1.1 * radius) * _DIAG
    if shape == "star":
        return _sd_star(px, py, 1.15 * radius, 0.48)
    if shape == "cross":
        arm, thickness = 1.0 * radius, 0.36 * radius
        return np.minimum(_sd_box(px, py, arm, thickness), _sd_box(px, py, thickness, arm))
    raise ValueError(f"unknown shape {shape!r}")


def _value_noise(seed: int, cell_px: float, height: int, width: int) -> np.ndarray:
    """Smooth value noise in [0, 1], [H, W], on a lattice of ``cell_px`` pixels (resolution independent)."""
    lattice = np.random.default_rng(int(seed)).random((_NOISE_LATTICE, _NOISE_LATTICE), dtype=np.float32)
    gx = (np.arange(width, dtype=np.float32) + 0.5) / cell_px
    gy = (np.arange(height, dtype=np.float32) + 0.5) / cell_px
    x0, y0 = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
    fx, fy = gx - x0, gy - y0
    fx = (fx * fx * (3 - 2 * fx))[None, :]  # smoothstep: no visible lattice creases
    fy = (fy * fy * (3 - 2 * fy))[:, None]
    x0, y0 = x0 % _NOISE_LATTICE, y0 % _NOISE_LATTICE  # the lattice tiles beyond its size
    x1, y1 = (x0 + 1) % _NOISE_LATTICE, (y0 + 1) % _NOISE_LATTICE
    top = lattice[np.ix_(y0, x0)] + (lattice[np.ix_(y0, x1)] - lattice[np.ix_(y0, x0)]) * fx
    bottom = lattice[np.ix_(y1, x0)] + (lattice[np.ix_(y1, x1)] - lattice[np.ix_(y1, x0)]) * fx
    return top + (bottom - top) * fy


def _square_wave(coord: np.ndarray, period_px: float) -> np.ndarray:
    """Anti-aliased 0/1 stripes of the given period (pixels) along ``coord`` (pixels)."""
    return _coverage((np.abs((coord / period_px) % 1.0 - 0.5) - 0.25) * period_px)


def _background_array(background: BackgroundSpec, height: int, width: int) -> np.ndarray:
    unit = float(min(height, width))  # pixels per normalised unit
    c1 = np.asarray(background.color, dtype=np.float32)
    c2 = np.asarray(background.color2, dtype=np.float32)
    if background.kind == "plain":
        return np.broadcast_to(c1, (height, width, 3)).copy()
    xs = (np.arange(width, dtype=np.float32) + 0.5)[None, :]
    ys = (np.arange(height, dtype=np.float32) + 0.5)[:, None]
    period_px = background.period * unit
    angle = math.radians(background.angle)
    if background.kind == "stripes":
        mix = _square_wave(xs * math.cos(angle) + ys * math.sin(angle), period_px)
    elif background.kind == "gradient":
        # One tone to the other and back, as a triangle wave of the given period.
        phase = ((xs * math.cos(angle) + ys * math.sin(angle)) / period_px) % 2.0
        mix = 1.0 - np.abs(phase - 1.0)
    elif background.kind == "checker":
        a, b = _square_wave(xs, period_px), _square_wave(ys, period_px)
        mix = a + b - 2 * a * b  # soft XOR keeps the anti-aliased edges
    elif background.kind == "noise":
        mix = _value_noise(background.seed, period_px, height, width)
    else:
        raise ValueError(f"unknown background kind {background.kind!r}")
    mix = np.broadcast_to(mix, (height, width))[..., None].astype(np.float32)
    return c1 + (c2 - c1) * mix


def render_background(background: BackgroundSpec, height: int, width: int) -> torch.Tensor:
    """The static background, float32 [H, W, 3] in [0, 1]."""
    _check_size(height, width)
    return torch.from_numpy(_background_array(background, height, width))


def _object_window(obj: SpriteSpec, times: np.ndarray, height: int, width: int):
    """Coverage of one object in a square window around it in each frame, and where the window lies.

    Returns ``(alpha [N, win, win], flat [N, win, win])``: ``flat`` indexes the frames flattened to
    ``[N * H * W]``, with window pixels outside the frame sent to one spare slot ``N * H * W``. Working in
    the window evaluates a few times fewer pixels than the frame for typical sizes.
    """
    unit = float(min(height, width))
    num = times.size
    cx, cy = obj.center_at(times)
    cx, cy = cx * width, cy * height  # pixels, float64
    radius = (obj.size_at(times) * unit).astype(np.float32).reshape(-1, 1, 1)
    win = int(math.ceil(2.0 * SHAPE_EXTENT * float(radius.max()))) + 3
    # Window origin per frame; the clip keeps far-away objects' windows just outside the frame.
    ox = np.clip(np.floor(cx - win / 2), -win, width).astype(np.int64)
    oy = np.clip(np.floor(cy - win / 2), -win, height).astype(np.int64)
    offsets = np.arange(win)
    cols = ox[:, None] + offsets  # [N, win]
    rows = oy[:, None] + offsets
    px = (cols + 0.5 - cx[:, None]).astype(np.float32).reshape(num, 1, win)
    py = (rows + 0.5 - cy[:, None]).astype(np.float32).reshape(num, win, 1)
    alpha = _coverage(_sd_shape(obj.shape, px, py, radius)).astype(np.float32)
    cols, rows = cols.reshape(num, 1, win), rows.reshape(num, win, 1)
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    frame_start = (np.arange(num) * (height * width)).reshape(-1, 1, 1)
    flat = np.where(inside, frame_start + rows * width + cols, num * height * width)
    return np.broadcast_to(alpha, flat.shape), flat


def _check_size(height: int, width: int) -> None:
    if height < 1 or width < 1:
        raise ValueError(f"frame size must be positive, got {height}x{width}")


def render_alphas(spec: ClipSpec, times: ArrayLike, height: int, width: int) -> torch.Tensor:
    """Coverage of each object, before occlusion: float32 [N, num_objects, H, W] in [0, 1]."""
    _check_size(height, width)
    times = _as_times(times)
    num = times.size
    planes = np.zeros((len(spec.objects), num * height * width + 1), dtype=np.float32)
    for i, obj in enumerate(spec.objects):
        alpha, flat = _object_window(obj, times, height, width)
        planes[i, flat.reshape(-1)] = alpha.reshape(-1)
    planes = planes[:, :-1].reshape(len(spec.objects), num, height, width)
    return torch.from_numpy(np.ascontiguousarray(planes.transpose(1, 0, 2, 3)))


def render_frames_at(spec: ClipSpec, times: ArrayLike, height: int, width: int) -> torch.Tensor:
    """Frames at arbitrary times (seconds): float32 [N, H, W, 3] in [0, 1]."""
    _check_size(height, width)
    times = _as_times(times)
    num = times.size
    # Frames flattened to pixels, plus the spare slot that window pixels outside the frame write to.
    pixels = np.empty((num * height * width + 1, 3), dtype=np.float32)
    pixels[-1] = 0.0  # the spare slot is composited over too: keep it a number, never uninitialised memory
    frames = pixels[:-1].reshape(num, height, width, 3)
    frames[:] = _background_array(spec.background, height, width)
    for obj in spec.objects:
        alpha, flat = _object_window(obj, times, height, width)
        color = np.asarray(COLORS[obj.color], dtype=np.float32)
        region = pixels[flat]  # [N, win, win, 3], a copy
        region += alpha[..., None] * (color - region)  # "over" compositing, objects in drawing order
        pixels[flat] = region
    return torch.from_numpy(frames)


def render_clip(spec: ClipSpec, num_frames: int, height: int, width: int, fps: float) -> torch.Tensor:
    """Render ``num_frames`` frames at ``fps``: float32 [N, H, W, 3] in [0, 1] (ComfyUI IMAGE layout)."""
    return render_frames_at(spec, frame_times(num_frames, fps), height, width)


# ----------------------------------------------------------------------------------------------------------
# Random specs


def _as_rng(rng_or_seed: int | random.Random) -> random.Random:
    if isinstance(rng_or_seed, random.Random):
        return rng_or_seed
    if isinstance(rng_or_seed, (int, np.integer)):
        return random.Random(int(rng_or_seed))
    raise TypeError(f"expected an int seed or a random.Random, got {type(rng_or_seed).__name__}")


def _sample_triple(rng: random.Random, split: str, exclude_colors: set[str]) -> tuple[str, str, str]:
    if split == "heldout":
        candidates = sorted(t for t in HELD_OUT_COMBINATIONS if t[0] not in exclude_colors)
        return rng.choice(candidates)
    colors = [c for c in COLORS if c not in exclude_colors]
    while True:
        triple = (rng.choice(colors), rng.choice(SHAPES), rng.choice(MOTIONS))
        if split == "all" or not is_held_out(*triple):
            return triple


def _sample_sprite(
    rng: random.Random, color: str, shape: str, motion: str, duration: float, path_spread: float = 0.5
) -> SpriteSpec:
    """Start position, size and speed such that the sprite stays inside the frame for ``duration``, with the
    middle of its path within ``path_spread`` of the frame centre along each axis (0.5: anywhere)."""
    if motion == "grow":
        start, end = rng.uniform(*SMALL_SIZE_RANGE), rng.uniform(*LARGE_SIZE_RANGE)
        size, speed, max_size = start, (end - start) / duration, end
    elif motion == "shrink":
        start, end = rng.uniform(*LARGE_SIZE_RANGE), rng.uniform(*SMALL_SIZE_RANGE)
        size, speed, max_size = start, (start - end) / duration, start
    else:
        size = rng.uniform(*MOVE_SIZE_RANGE)
        speed = 0.0 if motion == "still" else rng.uniform(*MOVE_SPEED_RANGE)
        max_size = size
    margin = SHAPE_EXTENT * max_size + EDGE_MARGIN
    dx, dy = MOTION_DIRECTIONS[motion]
    room = 1.0 - 2.0 * margin
    if motion not in ("grow", "shrink", "still"):
        # Slow down when the path would not fit (long durations): the travel along each axis must fit.
        longest_axis = max(abs(dx), abs(dy))
        speed = min(speed, room / (longest_axis * duration))
    travel_x, travel_y = dx * speed * duration, dy * speed * duration
    x = rng.uniform(*_start_range(margin, travel_x, path_spread))
    y = rng.uniform(*_start_range(margin, travel_y, path_spread))
    return SpriteSpec(color=color, shape=shape, motion=motion, x=x, y=y, size=size, speed=speed)


def check_path_spread(path_spread: float) -> None:
    """Raise a clear error unless ``path_spread`` is a frame fraction from 0 (the centre) to 0.5 (anywhere)."""
    if not 0.0 <= path_spread <= 0.5:
        raise ValueError(f"path_spread must be between 0 and 0.5 (frame fractions), got {path_spread}")


def _start_range(margin: float, travel: float, path_spread: float) -> tuple[float, float]:
    """Where a path of ``travel`` (signed, frame fractions) can start along one axis: inside the frame
    throughout, its midpoint within ``path_spread`` of the centre. With the default 0.5 the second condition
    never binds, so the range (and the random stream) is that of the whole frame."""
    low, high = margin + max(0.0, -travel), 1.0 - margin - max(0.0, travel)
    centred_start = 0.5 - travel / 2.0  # the start whose path is centred on the frame
    return max(low, centred_start - path_spread), min(high, centred_start + path_spread)


def _min_gap(a: SpriteSpec, b: SpriteSpec, duration: float) -> float:
    """Smallest distance between the two bounding circles over the clip (negative when they overlap)."""
    t = np.linspace(0.0, duration, 9)
    ax, ay = a.center_at(t)
    bx, by = b.center_at(t)
    dist = np.sqrt((ax - bx) ** 2 + (ay - by) ** 2)
    return float((dist - SHAPE_EXTENT * (a.size_at(t) + b.size_at(t))).min())


def random_background(rng_or_seed: int | random.Random, kinds: Sequence[str] | None = None) -> BackgroundSpec:
    """A random background; ``kinds`` restricts the kinds drawn (default: plain half the time)."""
    rng = _as_rng(rng_or_seed)
    if kinds is None:
        kind = "plain" if rng.random() < 0.5 else rng.choice(BACKGROUND_KINDS[1:])
    else:
        for k in kinds:
            _check_name("background kind", k, BACKGROUND_KINDS)
        kind = rng.choice(list(kinds))
    tones = list(BACKGROUND_COLORS)
    c1 = rng.choice(tones)
    # Textures pair a darker and a lighter tone so the pattern stays visible but dark.
    c2 = rng.choice([t for t in tones if abs(sum(BACKGROUND_COLORS[t]) - sum(BACKGROUND_COLORS[c1])) > 0.2])
    period = rng.uniform(0.5, 1.5) if kind == "gradient" else rng.uniform(0.15, 0.4)
    angle = rng.choice([0.0, 45.0, 90.0, 135.0]) if kind == "stripes" else rng.uniform(0.0, 180.0)
    return BackgroundSpec(
        kind=kind,
        color=BACKGROUND_COLORS[c1],
        color2=BACKGROUND_COLORS[c2],
        period=period,
        angle=angle,
        seed=rng.randrange(2**31),
    )


def random_clip_spec(
    rng_or_seed: int | random.Random,
    split: str = "train",
    num_objects: int | None = None,
    duration: float = 2.0,
    background_kinds: Sequence[str] | None = None,
    path_spread: float = 0.5,
) -> ClipSpec:
    """A random clip, deterministic per seed.

    ``split``: ``"train"`` never uses a held-out combination, ``"heldout"`` makes the first object a
    held-out combination (others from training), ``"all"`` draws from everything. ``num_objects`` defaults
    to 1 (70%) or 2 (30%). Objects in one clip have different colours and start apart; each stays inside the
    frame for ``duration`` seconds. ``path_spread`` (frame fractions, 0 to 0.5) keeps the middle of each
    object's path that close to the frame centre along each axis; the default 0.5 lets it lie anywhere, and
    small values suit one-object clips (two objects kept near the centre would overlap).
    """
    check_path_spread(path_spread)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if not duration > 0:
        raise ValueError(f"duration must be > 0 seconds, got {duration}")
    rng = _as_rng(rng_or_seed)
    if num_objects is None:
        num_objects = 1 if rng.random() < 0.7 else 2
    if not 1 <= num_objects <= len(COLORS):
        raise ValueError(f"num_objects must be between 1 and {len(COLORS)}, got {num_objects}")
    objects: list[SpriteSpec] = []
    for index in range(num_objects):
        object_split = split if (split != "heldout" or index == 0) else "train"
        used = {o.color for o in objects}
        triple = _sample_triple(rng, object_split, used)
        # Keep objects apart when possible: redraw the placement a few times, keep the best one.
        best, best_gap = None, -math.inf
        for _ in range(20):
            candidate = _sample_sprite(rng, *triple, duration, path_spread)
            gap = min((_min_gap(candidate, o, duration) for o in objects), default=math.inf)
            if gap > best_gap:
                best, best_gap = candidate, gap
            if gap > 0.0:
                break
        objects.append(best)
    background = random_background(rng, background_kinds)
    return ClipSpec(objects=tuple(objects), background=background, duration=float(duration))


def nearest_color(rgb: Sequence[float] | torch.Tensor) -> str:
    """Name of the object colour nearest (in RGB) to ``rgb``."""
    rgb = torch.as_tensor(rgb, dtype=torch.float32).reshape(3)
    names = list(COLORS)
    table = torch.tensor([COLORS[n] for n in names])
    return names[int(((table - rgb) ** 2).sum(-1).argmin())]
