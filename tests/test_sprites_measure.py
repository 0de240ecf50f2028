"""Measuring sprites clips from frames alone: colour, shape and motion come back from renders."""

import itertools

import numpy as np
import pytest
import torch
from videocascade.sprites.measure import classify_shape, label_pixels, measure_clip, track_colors
from videocascade.sprites.world import (
    COLORS,
    MOTIONS,
    SHAPES,
    BackgroundSpec,
    ClipSpec,
    SpriteSpec,
    random_clip_spec,
    render_alphas,
    render_clip,
)


@pytest.mark.parametrize("size,noise", [(32, 0.0), (32, 0.05), (48, 0.0)])
def test_random_clips_measure_back_to_their_spec(size, noise):
    generator = torch.Generator().manual_seed(0)
    correct = 0
    for seed in range(40):
        spec = random_clip_spec(seed, split="all")
        frames = render_clip(spec, 12, size, size, 6)
        if noise:
            frames = (frames + noise * torch.randn(frames.shape, generator=generator)).clamp(0, 1)
        correct += sorted(measure_clip(frames)) == sorted(spec.triples)
    assert correct >= 38


@pytest.mark.parametrize("motion", MOTIONS)
def test_every_motion_is_recognised(motion):
    spec = ClipSpec(
        (SpriteSpec("cyan", "circle", motion, 0.5, 0.5, 0.1, 0.15 if motion in MOTIONS[:8] else 0.05),)
    )
    assert measure_clip(render_clip(spec, 8, 32, 32, 4)) == [("cyan", "circle", motion)]


def test_every_colour_and_shape_is_recognised_on_textured_backgrounds():
    for (color, shape), kind in zip(itertools.product(COLORS, SHAPES), itertools.cycle(["checker", "noise"])):
        spec = ClipSpec((SpriteSpec(color, shape, "still", 0.5, 0.5, 0.16),), BackgroundSpec(kind, seed=1))
        assert measure_clip(render_clip(spec, 2, 48, 48, 4)) == [(color, shape, "still")], (color, shape)


def test_background_pixels_are_unlabelled_and_edge_blends_are_not_objects():
    spec = ClipSpec((SpriteSpec("yellow", "diamond", "still", 0.5, 0.5, 0.12),), BackgroundSpec("plain"))
    frames = render_clip(spec, 2, 64, 64, 2)
    labels = label_pixels(frames)
    alpha = render_alphas(spec, np.zeros(2), 64, 64)[:, 0].numpy()
    assert (labels[alpha == 0] == -1).all()
    # Half-covered yellow edge pixels look orange, but no orange object is reported.
    assert list(track_colors(frames)) == ["yellow"]


def test_classify_shape_needs_pixels():
    with pytest.raises(ValueError, match="too small"):
        classify_shape(np.zeros((8, 8), dtype=bool))
