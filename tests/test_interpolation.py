"""Weight-free temporal interpolation on sprites clips with known in-between frames."""

import math

import pytest
import torch
from videocascade.interpolation import FlowConfig, frames_at, interpolate, retime, retime_positions
from videocascade.interpolation.warp import backward_warp, fill_holes, forward_splat
from videocascade.sprites.world import random_clip_spec, render_clip

PLAIN = ["plain"]
TEXTURED = ["stripes", "checker", "noise", "gradient"]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean().clamp_min(1e-12)))


def sprites_clip(
    seed: int, kinds: list[str], num_frames: int, size: int = 64, fps: float = 8.0
) -> torch.Tensor:
    spec = random_clip_spec(seed, split="all", background_kinds=kinds, num_objects=1 + seed % 2)
    return render_clip(spec, num_frames, size, size, fps)


@pytest.mark.parametrize("k", [2, 4])
def test_flow_interpolation_beats_blending_on_known_in_betweens(k):
    gains = []
    for seed, kinds in [(0, PLAIN), (1, TEXTURED), (2, TEXTURED), (3, PLAIN)]:
        truth = sprites_clip(seed, kinds, num_frames=2 * k + 1, fps=8.0 * k)  # render at k x fps ...
        source = truth[::k]  # ... keep every k-th frame, interpolate back
        in_between = [i for i in range(truth.shape[0]) if i % k]
        flow = interpolate(source, k)
        blend = interpolate(source, k, method="blend")
        gain = psnr(flow[in_between], truth[in_between]) - psnr(blend[in_between], truth[in_between])
        assert gain > 1.0, f"seed {seed}: flow only {gain:.2f} dB over blending"
        gains.append(gain)
    assert sum(gains) / len(gains) > 5.0, gains


def test_farneback_flow_also_beats_blending():
    truth = sprites_clip(4, TEXTURED, num_frames=7, fps=16.0)
    source, in_between = truth[::2], [1, 3, 5]
    flow = interpolate(source, 2, flow_config=FlowConfig(algorithm="farneback"))
    blend = interpolate(source, 2, method="blend")
    assert psnr(flow[in_between], truth[in_between]) > psnr(blend[in_between], truth[in_between]) + 1.0


@pytest.mark.parametrize("multiplier", [1, 2, 3, 4])
@pytest.mark.parametrize("method", ["flow", "blend"])
def test_frame_counts_exact_source_copies_dtype_and_range(multiplier, method):
    frames = sprites_clip(5, TEXTURED, num_frames=4, size=40)
    out = interpolate(frames, multiplier, method=method)
    assert out.shape == ((4 - 1) * multiplier + 1, 40, 40, 3)
    assert out.dtype == torch.float32
    assert torch.equal(out[::multiplier], frames)
    assert out.min() >= 0 and out.max() <= 1


def test_blend_is_the_linear_cross_fade():
    frames = torch.rand(3, 8, 10, 3)
    out = interpolate(frames, 4, method="blend")
    for j, t in enumerate([0.25, 0.5, 0.75], start=1):
        torch.testing.assert_close(out[4 + j], (1 - t) * frames[1] + t * frames[2])


def test_half_precision_frames_keep_their_dtype():
    frames = sprites_clip(6, PLAIN, num_frames=3, size=32).to(torch.float16)
    out = interpolate(frames, 2)
    assert out.dtype == torch.float16 and out.shape == (5, 32, 32, 3)
    assert torch.equal(out[::2], frames)


def test_retime_24_to_60_counts_and_timing():
    positions = retime_positions(25, 24.0, 60.0)  # one second of 24 fps
    assert len(positions) == 61
    assert positions[5] == 2.0 and positions[60] == 24.0
    assert all(math.isclose(p, k * 0.4) for k, p in enumerate(positions))

    frames = torch.rand(25, 6, 7, 3)
    out = retime(frames, 24, 60, method="blend")
    assert out.shape == (61, 6, 7, 3)
    for j in range(13):  # every 5th output is a source frame, copied exactly
        assert torch.equal(out[5 * j], frames[2 * j])
    torch.testing.assert_close(out[3], 0.8 * frames[1] + 0.2 * frames[2])  # 3 * 0.4 = 1.2


def test_retime_matches_interpolate_and_handles_lower_rates():
    frames = sprites_clip(7, PLAIN, num_frames=4, size=32)
    torch.testing.assert_close(retime(frames, 12, 24), interpolate(frames, 2))
    assert torch.equal(retime(frames, 10, 10), frames)
    slower = retime(torch.rand(61, 4, 4, 3), 60, 24, method="blend")
    assert slower.shape[0] == 25  # 1 s -> 24 intervals


def test_retime_24_to_60_with_flow_follows_the_true_motion():
    spec = random_clip_spec(8, split="all", background_kinds=TEXTURED, num_objects=2)
    source = render_clip(spec, 7, 64, 64, 24.0 / 4)  # slow source rate: motion of several pixels per frame
    truth = render_clip(spec, 16, 64, 64, 60.0 / 4)  # the same seconds at the target rate
    flow = retime(source, 24, 60)
    blend = retime(source, 24, 60, method="blend")
    assert flow.shape == truth.shape
    assert psnr(flow, truth) > psnr(blend, truth) + 3.0


def test_scene_cut_is_cross_faded():
    first = sprites_clip(9, TEXTURED, num_frames=3)
    second = sprites_clip(10, TEXTURED, num_frames=3)
    frames = torch.cat([first, second])
    out = interpolate(frames, 2)
    cut_middle = out[5]  # between frames 2 (last of the first clip) and 3 (first of the second)
    torch.testing.assert_close(cut_middle, 0.5 * frames[2] + 0.5 * frames[3])
    assert not torch.allclose(out[1], 0.5 * frames[0] + 0.5 * frames[1], atol=1e-3)


def test_frames_at_arbitrary_positions():
    frames = sprites_clip(11, PLAIN, num_frames=3, size=32)
    out = frames_at(frames, [2.0, 0.5, 0.0, 1.25], method="blend")
    assert torch.equal(out[0], frames[2]) and torch.equal(out[2], frames[0])
    torch.testing.assert_close(out[3], 0.75 * frames[1] + 0.25 * frames[2])
    with pytest.raises(ValueError, match="outside the clip"):
        frames_at(frames, [2.5])


def test_clear_errors():
    frames = torch.rand(3, 8, 8, 3)
    with pytest.raises(ValueError, match="at least 2 frames"):
        interpolate(frames[:1], 2)
    with pytest.raises(ValueError, match="at least 2 frames"):
        retime(frames[:1], 24, 60)
    for bad in (0, -2):
        with pytest.raises(ValueError, match="multiplier"):
            interpolate(frames, bad)
    for bad in (2.5, True, "2"):
        with pytest.raises(TypeError, match="multiplier"):
            interpolate(frames, bad)
    for src, dst in ((0, 60), (24, -1), (24, float("nan")), (float("inf"), 60)):
        with pytest.raises(ValueError, match="fps"):
            retime(frames, src, dst)
    with pytest.raises(TypeError, match="fps"):
        retime(frames, "fast", 60)
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        interpolate(frames.permute(0, 3, 1, 2), 2)
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        interpolate(frames[0], 2)
    with pytest.raises(TypeError, match="floats"):
        interpolate((frames * 255).to(torch.uint8), 2)
    with pytest.raises(ValueError, match="method"):
        interpolate(frames, 2, method="magic")
    with pytest.raises(ValueError, match="flow algorithm"):
        interpolate(frames, 2, flow_config=FlowConfig(algorithm="raft"))


def test_backward_warp_with_whole_pixel_flow_is_a_shift():
    image = torch.rand(1, 3, 6, 9)
    flow = torch.zeros(1, 2, 6, 9)
    flow[:, 0] = 2.0  # sample two pixels to the right
    for mode in ("bilinear", "bicubic"):
        warped = backward_warp(image, flow, mode)
        torch.testing.assert_close(warped[..., :7], image[..., 2:])


def test_forward_splat_moves_values_and_keeps_mass():
    values = torch.rand(2, 2, 7, 8)
    flow = torch.zeros(2, 2, 7, 8)
    flow[:, 1] = 1.5  # half-way between two rows
    weight = torch.ones(2, 1, 7, 8)
    acc, mass = forward_splat(values, flow, weight)
    inside = mass[:, :, 2:6]  # rows reached from both sides
    torch.testing.assert_close(inside, torch.ones_like(inside))
    torch.testing.assert_close(acc[:, :, 3], 0.5 * (values[:, :, 1] + values[:, :, 2]))
    assert torch.all(mass[:, :, 0] == 0)  # nothing lands on the first row


def test_fill_holes_takes_the_surrounding_values():
    field = torch.full((1, 2, 16, 16), 3.0)
    mass = torch.ones(1, 1, 16, 16)
    mass[..., 5:9, 6:10] = 0
    field[..., 5:9, 6:10] = float("nan")
    filled = fill_holes(torch.nan_to_num(field), mass)
    torch.testing.assert_close(filled, torch.full_like(filled, 3.0))


@pytest.mark.gpu
def test_cuda_frames_match_cpu():
    frames = sprites_clip(12, TEXTURED, num_frames=3, size=48)
    cpu = interpolate(frames, 2)
    on_gpu = interpolate(frames.cuda(), 2)
    assert on_gpu.device.type == "cuda"
    assert psnr(on_gpu.cpu(), cpu) > 40  # same flow (OpenCV on CPU); warps differ only by float rounding
    computed_on_gpu = interpolate(frames, 2, device="cuda")
    assert computed_on_gpu.device.type == "cpu"
    assert psnr(computed_on_gpu, cpu) > 40
