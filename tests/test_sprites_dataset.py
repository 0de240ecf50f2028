"""Sprites training data: deterministic items, batches, image mode, split, layout helpers."""

import pytest
import torch
from torch.utils.data import DataLoader
from videocascade.sprites.captions import canonical_caption, parse_caption
from videocascade.sprites.dataset import (
    SpritesDataConfig,
    SpritesDataset,
    collate_clips,
    frames_to_video,
    video_to_frames,
)
from videocascade.sprites.world import render_clip


def test_items_are_deterministic_and_match_their_spec():
    config = SpritesDataConfig(height=24, width=40, num_frames=6, fps=6.0)
    a, b = SpritesDataset(20, config, seed=3), SpritesDataset(20, config, seed=3)
    for i in (0, 7, 19):
        frames, text, spec = a[i]
        frames2, text2, spec2 = b[i]
        assert torch.equal(frames, frames2) and text == text2 and spec == spec2
        assert frames.shape == (6, 24, 40, 3)
        assert torch.equal(frames, render_clip(spec, 6, 24, 40, 6.0))
        assert parse_caption(text) == spec.triples
    other = SpritesDataset(20, config, seed=4)
    assert other[0][2] != a[0][2]
    assert len({a[i][2] for i in range(20)}) == 20


def test_dataloader_batches_with_collate():
    loader = DataLoader(
        SpritesDataset(10, SpritesDataConfig(num_frames=4)), batch_size=4, collate_fn=collate_clips
    )
    frames, captions, specs = next(iter(loader))
    assert frames.shape == (4, 4, 32, 32, 3) and len(captions) == 4 and len(specs) == 4


def test_image_mode_gives_single_frames_without_motion_words():
    dataset = SpritesDataset(30, SpritesDataConfig(image_mode=True, height=16, width=16))
    for i in range(30):
        frames, text, spec = dataset[i]
        assert frames.shape == (1, 16, 16, 3)
        assert all(motion is None for _, _, motion in parse_caption(text))
    canonical = SpritesDataset(5, SpritesDataConfig(image_mode=True, caption_style="canonical"))
    frames, text, spec = canonical[0]
    assert text.startswith("a ") or text.startswith("an ")


def test_splits_and_canonical_captions():
    held = SpritesDataset(40, SpritesDataConfig(split="heldout", caption_style="canonical", num_frames=2))
    train = SpritesDataset(40, SpritesDataConfig(split="train", num_frames=2))
    assert all(held[i][2].is_held_out for i in range(40))
    assert not any(train[i][2].is_held_out for i in range(40))
    _, text, spec = held[0]
    assert text == canonical_caption(spec) and parse_caption(text) == spec.triples


def test_default_duration_covers_the_clip_and_a_four_times_fps_render():
    config = SpritesDataConfig(num_frames=16, fps=8.0)
    assert config.clip_duration >= (4 * 16 - 1) / (4 * 8.0)
    assert SpritesDataset(1, config)[0][2].duration == config.clip_duration


def test_layout_helpers_round_trip():
    frames = torch.rand(2, 5, 8, 12, 3)
    video = frames_to_video(frames)
    assert video.shape == (2, 3, 5, 8, 12) and video.min() >= -1 and video.max() <= 1
    torch.testing.assert_close(video_to_frames(video), frames)
    with pytest.raises(ValueError, match=r"expected frames \[B, T, H, W, 3\]"):
        frames_to_video(torch.rand(5, 8, 12, 3))


def test_config_errors():
    with pytest.raises(ValueError, match="unknown split"):
        SpritesDataConfig(split="valid")
    with pytest.raises(IndexError):
        SpritesDataset(3)[3]
