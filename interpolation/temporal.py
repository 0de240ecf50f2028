"""Weight-free temporal super-resolution on ComfyUI IMAGE batches ([N, H, W, 3] float in [0, 1]).

``interpolate`` inserts ``multiplier - 1`` frames between neighbours; ``retime`` resamples to another frame
rate. Both map every output frame to a position on the source timeline (frame ``i`` sits at ``i``) and
synthesise it from the two source frames around it, so the first and last source frames are the first and
last outputs, and outputs that land exactly on a source frame are exact copies.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import torch

from ..runtime.progress import Progress
from .flow import FlowConfig, FlowEstimator, flows_to_frame_size
from .synthesis import SynthesisConfig, analyse_pair, crossfade, synthesize

METHODS = ("flow", "blend")
_ON_FRAME_EPS = 1e-6  # positions this close to an integer are that source frame
_CHUNK_PIXELS = 1 << 22  # in-between frames synthesised at once x pixels (4 Mpx): bounds peak memory


def check_frames(frames: torch.Tensor, name: str = "frames", min_frames: int = 1) -> None:
    """Raise a clear error unless ``frames`` is an IMAGE batch [N, H, W, 3] of floats with N >= min_frames."""
    if not isinstance(frames, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor IMAGE batch [N, H, W, 3]; got {type(frames).__name__}"
        )
    if frames.dim() != 4 or frames.shape[-1] != 3:
        raise ValueError(
            f"{name} must be an IMAGE batch shaped [N, H, W, 3] (frames, height, width, RGB); got "
            f"{list(frames.shape)}. Convert [B, 3, H, W] with .permute(0, 2, 3, 1); drop alpha with [..., :3]."
        )
    if not frames.is_floating_point():
        raise TypeError(f"{name} must hold floats in [0, 1]; got {frames.dtype} (divide uint8 frames by 255)")
    if frames.shape[1] < 2 or frames.shape[2] < 2:
        raise ValueError(
            f"{name} frames must be at least 2x2 pixels; got {frames.shape[1]}x{frames.shape[2]}"
        )
    if frames.shape[0] < min_frames:
        raise ValueError(
            f"{name} has {frames.shape[0]} frame(s); interpolation needs at least {min_frames} frames of one clip"
        )


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")


def frames_at(
    frames: torch.Tensor,
    positions: Sequence[float],
    method: str = "flow",
    flow_config: FlowConfig | None = None,
    synthesis_config: SynthesisConfig | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Frames at fractional ``positions`` on the source timeline (frame i at position i), [len, H, W, 3].

    Positions on a source frame copy it exactly; the others are synthesised between their two neighbours
    (``method="flow"``: optical-flow warping; ``"blend"``: linear cross-fade). Flow is computed once per pair.
    """
    check_frames(frames, min_frames=2)
    _check_method(method)
    n = frames.shape[0]
    positions = [float(p) for p in positions]
    for p in positions:
        if not (math.isfinite(p) and -_ON_FRAME_EPS <= p <= n - 1 + _ON_FRAME_EPS):
            raise ValueError(f"position {p} lies outside the clip's timeline [0, {n - 1}]")
    work_device = torch.device(device) if device is not None else frames.device

    # Group the in-between positions by the pair (i, i + 1) that brackets them.
    by_pair: dict[int, list[tuple[int, float]]] = {}
    h, w = frames.shape[1:3]
    out = torch.empty(len(positions), h, w, 3, dtype=frames.dtype, device=frames.device)
    for k, p in enumerate(positions):
        nearest = round(p)
        if abs(p - nearest) <= _ON_FRAME_EPS:
            out[k] = frames[min(max(nearest, 0), n - 1)]
        else:
            i = min(int(math.floor(p)), n - 2)
            by_pair.setdefault(i, []).append((k, p - i))

    estimator = FlowEstimator(flow_config) if method == "flow" and by_pair else None
    syn_cfg = synthesis_config or SynthesisConfig()
    times_per_batch = max(1, _CHUNK_PIXELS // (h * w))  # bounds the memory of the warps for large frames
    gray_cache: dict[int, object] = {}
    with Progress(len(by_pair), "interpolate") as progress:
        for i in sorted(by_pair):
            slots = by_pair[i]
            f0 = frames[i].to(work_device, torch.float32).permute(2, 0, 1)[None]
            f1 = frames[i + 1].to(work_device, torch.float32).permute(2, 0, 1)[None]
            pair = None
            if estimator is not None:
                for j in (i, i + 1):
                    if j not in gray_cache:
                        gray_cache[j] = estimator.prepare(frames[j])
                gray_cache.pop(i - 1, None)  # the walk is in order: earlier frames are no longer needed
                flows = flows_to_frame_size(
                    list(estimator.pair(gray_cache[i], gray_cache[i + 1])), h, w, work_device
                )
                pair = analyse_pair(f0, f1, flows[:1], flows[1:], syn_cfg)
            for start in range(0, len(slots), times_per_batch):
                batch = slots[start : start + times_per_batch]
                times = torch.tensor([t for _, t in batch], dtype=torch.float32, device=work_device)
                made = crossfade(f0, f1, times) if pair is None else synthesize(pair, times, syn_cfg)
                made = made.clamp(0, 1).permute(0, 2, 3, 1).to(frames.device, frames.dtype)
                for (k, _), frame in zip(batch, made):
                    out[k] = frame
            progress.update()
    return out


def interpolate(
    frames: torch.Tensor,
    multiplier: int,
    method: str = "flow",
    flow_config: FlowConfig | None = None,
    synthesis_config: SynthesisConfig | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Insert ``multiplier - 1`` frames between each neighbouring pair: [(N - 1) * multiplier + 1, H, W, 3].

    Source frame ``i`` is output frame ``i * multiplier``, copied exactly.
    """
    check_frames(frames, min_frames=2)
    if isinstance(multiplier, bool):
        raise TypeError("multiplier must be an integer >= 1 (2, 3, 4, ...); got a bool")
    try:
        m = operator.index(multiplier)
    except TypeError:
        raise TypeError(f"multiplier must be an integer >= 1 (2, 3, 4, ...); got {multiplier!r}") from None
    if m < 1:
        raise ValueError(f"multiplier must be an integer >= 1 (2, 3, 4, ...); got {m}")
    positions = [k / m for k in range((frames.shape[0] - 1) * m + 1)]
    return frames_at(frames, positions, method, flow_config, synthesis_config, device)


def _check_fps(value: float, name: str) -> float:
    try:
        fps = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a positive number of frames per second; got {value!r}") from None
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"{name} must be a positive, finite number of frames per second; got {value!r}")
    return fps


def retime_positions(num_frames: int, src_fps: float, dst_fps: float) -> list[float]:
    """Source positions of the output frames when ``num_frames`` at ``src_fps`` are resampled to ``dst_fps``.

    Output frame k is shown at time k / dst_fps; the clip spans from its first to its last source frame, so
    there are floor((N - 1) * dst_fps / src_fps) + 1 outputs.
    """
    src, dst = _check_fps(src_fps, "src_fps"), _check_fps(dst_fps, "dst_fps")
    count = math.floor((num_frames - 1) * dst / src + 1e-9) + 1
    # k * src / dst computed as a ratio of products keeps positions like 5 * 24 / 60 exactly integral.
    return [min(k * src / dst, num_frames - 1) for k in range(count)]


def retime(
    frames: torch.Tensor,
    src_fps: float,
    dst_fps: float,
    method: str = "flow",
    flow_config: FlowConfig | None = None,
    synthesis_config: SynthesisConfig | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Resample a clip from ``src_fps`` to ``dst_fps``: floor((N - 1) * dst_fps / src_fps) + 1 frames.

    Output k shows time k / dst_fps (source position k * src_fps / dst_fps); outputs landing on a source frame
    are exact copies, e.g. 24 -> 60 fps copies source frame 2j to output 5j.
    """
    check_frames(frames, min_frames=2)
    positions = retime_positions(frames.shape[0], src_fps, dst_fps)
    return frames_at(frames, positions, method, flow_config, synthesis_config, device)
