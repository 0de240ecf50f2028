"""Training data: captioned sprites clips rendered on the fly, deterministic per index.

``SpritesDataset(num_samples, ...)[i]`` is ``(frames [T, H, W, 3] float32 in [0, 1], caption, spec)``, the
same for a given ``(seed, i)`` in any worker and any epoch; ``collate_clips`` batches them for a
``DataLoader``. Image mode (``image_mode=True``) gives single frames ``[1, H, W, 3]`` at a random time of the
clip with a caption that does not mention motion, for training spatial layers first.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from .captions import canonical_caption, canonical_phrase, caption, image_caption
from .world import SPLITS, ClipSpec, check_path_spread, random_clip_spec, render_clip, render_frames_at


@dataclass(frozen=True)
class SpritesDataConfig:
    """What the clips look like. ``duration`` defaults to the clip's length, ``(num_frames - 1) / fps``."""

    height: int = 32
    width: int = 32
    num_frames: int = 16
    fps: float = 8.0
    split: str = "train"
    num_objects: int | None = None  # None: one object (70%) or two (30%)
    image_mode: bool = False
    caption_style: str = "varied"  # "varied" or "canonical"
    background_kinds: tuple[str, ...] | None = None
    duration: float | None = None
    path_spread: float = 0.5  # path midpoints within this of the frame centre (0.5: anywhere)

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"unknown split {self.split!r}; choose one of {', '.join(SPLITS)}")
        if self.caption_style not in ("varied", "canonical"):
            raise ValueError(f"caption_style must be 'varied' or 'canonical', got {self.caption_style!r}")
        if self.height < 1 or self.width < 1 or self.num_frames < 1 or not self.fps > 0:
            raise ValueError("height, width, num_frames and fps must be positive")
        check_path_spread(self.path_spread)

    @property
    def clip_duration(self) -> float:
        if self.duration is not None:
            return float(self.duration)
        # Leave room for a 4x frame-rate render of the same clip ((4N - 1) / 4fps < N / fps).
        return max(self.num_frames / self.fps, 0.5)


class SpritesDataset(Dataset):
    """``num_samples`` captioned clips; item ``i`` is drawn from seed ``(seed, i)``."""

    def __init__(self, num_samples: int, config: SpritesDataConfig | None = None, seed: int = 0) -> None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.num_samples = int(num_samples)
        self.config = config or SpritesDataConfig()
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.num_samples

    def spec(self, index: int) -> tuple[ClipSpec, random.Random]:
        """The clip spec of item ``index`` and the generator that continues after it (captions, times)."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        cfg = self.config
        # A string seed hashes deterministically in random.Random (unlike hash() of a tuple across runs).
        rng = random.Random(f"sprites:{self.seed}:{index}")
        spec = random_clip_spec(
            rng,
            split=cfg.split,
            num_objects=cfg.num_objects,
            duration=cfg.clip_duration,
            background_kinds=cfg.background_kinds,
            path_spread=cfg.path_spread,
        )
        return spec, rng

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str, ClipSpec]:
        spec, rng = self.spec(index)
        cfg = self.config
        if cfg.image_mode:
            t = rng.uniform(0.0, spec.duration)
            frames = render_frames_at(spec, torch.tensor([t], dtype=torch.float64), cfg.height, cfg.width)
            if cfg.caption_style == "canonical":
                text = " and ".join(canonical_phrase(o.color, o.shape) for o in spec.objects)
            else:
                text = image_caption(spec, rng)
        else:
            frames = render_clip(spec, cfg.num_frames, cfg.height, cfg.width, cfg.fps)
            text = canonical_caption(spec) if cfg.caption_style == "canonical" else caption(spec, rng)
        return frames, text, spec


def collate_clips(
    batch: Sequence[tuple[torch.Tensor, str, ClipSpec]],
) -> tuple[torch.Tensor, list[str], list[ClipSpec]]:
    """Stack items into ``(frames [B, T, H, W, 3], captions, specs)`` (DataLoader ``collate_fn``)."""
    frames = torch.stack([item[0] for item in batch])
    return frames, [item[1] for item in batch], [item[2] for item in batch]


def frames_to_video(frames: torch.Tensor) -> torch.Tensor:
    """IMAGE-layout frames ``[B, T, H, W, 3]`` in [0, 1] to the library's video layout ``[B, 3, T, H, W]``
    in [-1, 1]."""
    if frames.dim() != 5 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames [B, T, H, W, 3], got {tuple(frames.shape)}")
    return frames.permute(0, 4, 1, 2, 3).mul(2.0).sub(1.0).contiguous()


def video_to_frames(video: torch.Tensor) -> torch.Tensor:
    """Inverse of ``frames_to_video``: ``[B, 3, T, H, W]`` in [-1, 1] to ``[B, T, H, W, 3]`` in [0, 1]."""
    if video.dim() != 5 or video.shape[1] != 3:
        raise ValueError(f"expected video [B, 3, T, H, W], got {tuple(video.shape)}")
    return video.add(1.0).mul(0.5).clamp(0.0, 1.0).permute(0, 2, 3, 4, 1).contiguous()
