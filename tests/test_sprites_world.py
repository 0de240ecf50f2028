"""The sprites world: determinism, continuous time, resolution independence, measurability, held-out split."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from videocascade.sprites.world import (
    BACKGROUND_COLORS,
    BACKGROUND_KINDS,
    COLORS,
    HELD_OUT_COMBINATIONS,
    MOTIONS,
    SHAPE_EXTENT,
    SHAPES,
    BackgroundSpec,
    ClipSpec,
    SpriteSpec,
    frame_times,
    is_held_out,
    nearest_color,
    random_clip_spec,
    render_alphas,
    render_background,
    render_clip,
)


def test_same_seed_same_clip_and_different_seeds_differ():
    a, b = random_clip_spec(123, num_objects=2), random_clip_spec(123, num_objects=2)
    assert a == b
    assert torch.equal(render_clip(a, 8, 32, 32, 8), render_clip(b, 8, 32, 32, 8))
    specs = {random_clip_spec(seed) for seed in range(50)}
    assert len(specs) == 50


def test_render_shape_dtype_range():
    spec = random_clip_spec(7, num_objects=2)
    frames = render_clip(spec, 5, 24, 40, 6)
    assert frames.shape == (5, 24, 40, 3) and frames.dtype == torch.float32
    assert frames.min() >= 0.0 and frames.max() <= 1.0


@pytest.mark.parametrize("seed", range(6))
def test_four_times_fps_subsampled_equals_base_render(seed):
    spec = random_clip_spec(seed, num_objects=2, split="all")
    base = render_clip(spec, 16, 32, 32, 8.0)
    fine = render_clip(spec, 64, 32, 32, 32.0)
    torch.testing.assert_close(fine[::4], base, atol=1e-6, rtol=0)
    # The in-between frames really are in between: not copies of their neighbours when something moves.
    if any(o.motion != "still" for o in spec.objects):
        assert (fine[1::4] - fine[0::4]).abs().max() > 0.05


@pytest.mark.parametrize("seed", range(8))
def test_downsampled_high_resolution_matches_low_resolution(seed):
    spec = random_clip_spec(seed, num_objects=2, split="all")
    low = render_clip(spec, 4, 32, 48, 8)
    high = render_clip(spec, 4, 128, 192, 8)
    down = F.avg_pool2d(high.permute(0, 3, 1, 2), 4).permute(0, 2, 3, 1)
    diff = (down - low).abs()
    assert diff.mean() < 0.004
    assert (diff > 0.1).float().mean() < 0.005  # only a few tip/corner pixels differ noticeably


def test_every_background_is_resolution_independent():
    for kind in BACKGROUND_KINDS:
        bg = BackgroundSpec(kind=kind, period=0.3, angle=30.0, seed=5)
        low = render_background(bg, 16, 24)
        high = render_background(bg, 64, 96)
        down = F.avg_pool2d(high.permute(2, 0, 1)[None], 4)[0].permute(1, 2, 0)
        assert (down - low).abs().mean() < 0.01, kind


def test_objects_stay_inside_the_frame_for_the_duration():
    for seed in range(300):
        spec = random_clip_spec(seed, split="all", duration=2.0 + (seed % 3))
        t = torch.linspace(0.0, spec.duration, 17, dtype=torch.float64)
        for obj in spec.objects:
            x, y = obj.center_at(t)
            reach = SHAPE_EXTENT * obj.size_at(t)
            assert (x - reach).min() >= 0 and (x + reach).max() <= 1, (seed, obj)
            assert (y - reach).min() >= 0 and (y + reach).max() <= 1, (seed, obj)
    # And in pixels: nothing of any object touches the border pixels of a square frame.
    for seed in range(40):
        spec = random_clip_spec(seed, split="all")
        alphas = render_alphas(spec, torch.linspace(0, spec.duration, 9), 32, 32)
        border = torch.cat([alphas[..., 0, :], alphas[..., -1, :], alphas[..., :, 0], alphas[..., :, -1]], -1)
        assert border.max() < 0.5, seed


def _visible_alphas(spec, times, height, width):
    """Coverage of each object after the objects drawn later have covered it."""
    alphas = render_alphas(spec, times, height, width)
    visible = alphas.clone()
    for i in range(alphas.shape[1]):
        for j in range(i + 1, alphas.shape[1]):
            visible[:, i] *= 1 - alphas[:, j]
    return visible


@pytest.mark.parametrize("size", [32, 64])
def test_object_colours_are_measurable_from_frames(size):
    for seed in range(30):
        spec = random_clip_spec(seed, split="all")
        times = frame_times(4, 2)
        frames = render_clip(spec, 4, size, size, 2)
        visible = _visible_alphas(spec, times, size, size)
        for i, obj in enumerate(spec.objects):
            inside = visible[:, i] > 0.99
            assert inside.sum() > 4, (seed, obj)
            assert nearest_color(frames[inside].mean(0)) == obj.color, (seed, obj)
        # Background pixels stay far from every object colour, so a threshold separates objects from them.
        background = frames[(visible.sum(1) < 0.01)]
        table = torch.tensor(list(COLORS.values()))
        distance = ((background[:, None, :] - table) ** 2).sum(-1).min().sqrt()
        assert distance > 0.45, seed


def test_object_and_background_palettes_are_far_apart():
    for a, b in itertools.combinations(COLORS.values(), 2):
        assert math.dist(a, b) > 0.4
    for a in COLORS.values():
        for b in BACKGROUND_COLORS.values():
            assert math.dist(a, b) > 0.5


def _centroid_and_area(alpha):
    h, w = alpha.shape[-2:]
    ys = torch.arange(h).view(-1, 1) + 0.5
    xs = torch.arange(w).view(1, -1) + 0.5
    area = alpha.sum((-1, -2))
    return (alpha * xs).sum((-1, -2)) / area, (alpha * ys).sum((-1, -2)) / area, area


@pytest.mark.parametrize("motion", MOTIONS)
def test_motion_is_measurable_from_coverage(motion):
    for shape in SHAPES:
        spec = ClipSpec((SpriteSpec("red", shape, motion, 0.5, 0.5, 0.12, 0.15),))
        alpha = render_alphas(spec, torch.tensor([0.0, 1.0]), 64, 64)[:, 0]
        cx, cy, area = _centroid_and_area(alpha)
        dx, dy = float(cx[1] - cx[0]), float(cy[1] - cy[0])
        expect_x = -1 if "left" in motion else 1 if "right" in motion else 0
        expect_y = -1 if "up" in motion else 1 if "down" in motion else 0
        for delta, expect in ((dx, expect_x), (dy, expect_y)):
            if expect == 0:
                assert abs(delta) < 0.1, (shape, motion, dx, dy)
            else:
                assert delta * expect > 4, (shape, motion, dx, dy)
        growth = float(area[1] / area[0])
        if motion == "grow":
            assert growth > 1.5
        elif motion == "shrink":
            assert growth < 0.7
        else:
            assert abs(growth - 1) < 0.03


def test_shapes_are_distinct():
    masks = {}
    for shape in SHAPES:
        spec = ClipSpec((SpriteSpec("white", shape, "still", 0.5, 0.5, 0.3),))
        masks[shape] = render_alphas(spec, torch.zeros(1), 64, 64)[0, 0]
    for a, b in itertools.combinations(SHAPES, 2):
        intersection = torch.minimum(masks[a], masks[b]).sum()
        union = torch.maximum(masks[a], masks[b]).sum()
        assert intersection / union < 0.9, (a, b)


def test_held_out_list_is_fixed_and_covers_everything_in_training():
    assert len(HELD_OUT_COMBINATIONS) == 66
    total = len(COLORS) * len(SHAPES) * len(MOTIONS)
    assert 0.10 <= len(HELD_OUT_COMBINATIONS) / total <= 0.15
    train = [t for t in itertools.product(COLORS, SHAPES, MOTIONS) if not is_held_out(*t)]
    for index, names in enumerate((COLORS, SHAPES, MOTIONS)):
        assert {t[index] for t in train} == set(names)
    for c, s in itertools.product(COLORS, SHAPES):
        assert any(t[:2] == (c, s) for t in train)
    for t in HELD_OUT_COMBINATIONS:
        assert t[0] in COLORS and t[1] in SHAPES and t[2] in MOTIONS


def test_train_split_never_produces_held_out_and_heldout_split_always_does():
    seen = set()
    for seed in range(1500):
        spec = random_clip_spec(seed, split="train")
        assert not spec.is_held_out
        seen.update(spec.triples)
        held = random_clip_spec(seed, split="heldout")
        assert is_held_out(*held.triples[0])
    # Training draws cover all colours, shapes and motions.
    for index, names in enumerate((COLORS, SHAPES, MOTIONS)):
        assert {t[index] for t in seen} == set(names)


def _path_middle(obj, duration):
    x, y = obj.center_at([duration / 2])
    return float(x[0]), float(y[0])


def test_path_spread_keeps_path_middles_near_the_centre_and_objects_inside():
    duration = 2.25
    middles = []
    for seed in range(400):
        spec = random_clip_spec(seed, num_objects=1, duration=duration, path_spread=0.1)
        obj = spec.objects[0]
        middles.append(_path_middle(obj, duration))
        t = torch.linspace(0.0, duration, 9, dtype=torch.float64)
        x, y = obj.center_at(t)
        reach = SHAPE_EXTENT * obj.size_at(t)
        assert (x - reach).min() >= 0 and (x + reach).max() <= 1, (seed, obj)
        assert (y - reach).min() >= 0 and (y + reach).max() <= 1, (seed, obj)
    middles = torch.tensor(middles)
    assert (middles - 0.5).abs().max() <= 0.1 + 1e-9
    assert (middles - 0.5).abs().max() > 0.08  # a spread, not a fixed point
    # The default lets paths lie anywhere: many middles are farther out than any spread of 0.1 allows.
    anywhere = torch.tensor(
        [_path_middle(random_clip_spec(s, num_objects=1).objects[0], 2.0) for s in range(400)]
    )
    assert ((anywhere - 0.5).abs().amax(1) > 0.2).float().mean() > 0.2
    # 0.5 is the whole frame: the same specs, draw for draw, as leaving the argument out.
    for seed in range(50):
        assert random_clip_spec(seed, path_spread=0.5) == random_clip_spec(seed)


def test_two_objects_have_different_colours():
    for seed in range(200):
        spec = random_clip_spec(seed, num_objects=2, split="all")
        assert spec.objects[0].color != spec.objects[1].color


def test_clear_errors():
    with pytest.raises(ValueError, match="unknown sprite colour 'pink'"):
        SpriteSpec("pink", "circle", "left", 0.5, 0.5, 0.1)
    with pytest.raises(ValueError, match="unknown sprite shape"):
        SpriteSpec("red", "hexagon", "left", 0.5, 0.5, 0.1)
    with pytest.raises(ValueError, match="unknown split"):
        random_clip_spec(0, split="test")
    with pytest.raises(ValueError, match="fps must be > 0"):
        render_clip(random_clip_spec(0), 4, 16, 16, 0)
    with pytest.raises(ValueError, match="frame size"):
        render_clip(random_clip_spec(0), 4, 0, 16, 8)
    with pytest.raises(ValueError, match="path_spread must be between 0 and 0.5"):
        random_clip_spec(0, path_spread=0.7)


def test_spec_dict_round_trip_and_validation():
    import json

    spec = random_clip_spec(11, num_objects=2, background_kinds=["noise"])
    assert ClipSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(ValueError, match="speed must be >= 0"):
        SpriteSpec("red", "circle", "left", 0.5, 0.5, 0.1, -0.2)
    with pytest.raises(ValueError, match="duration must be > 0"):
        ClipSpec((), duration=0.0)
    assert hash(BackgroundSpec(color=[0.1, 0.1, 0.1])) == hash(BackgroundSpec(color=(0.1, 0.1, 0.1)))
