"""Weight-free spatial upscaling on area-downsampled sprites frames."""

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from videocascade.sprites.world import random_clip_spec, render_clip
from videocascade.upscaling import resize, target_size, upscale
from videocascade.upscaling.resample import resize_taps


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean().clamp_min(1e-12)))


def sprites_frames(size: int = 96) -> torch.Tensor:
    """One frame from each of four clips, plain and textured backgrounds."""
    frames = []
    for seed, kinds in [
        (0, ["plain"]),
        (1, ["stripes", "checker"]),
        (2, ["noise", "gradient"]),
        (3, ["plain"]),
    ]:
        spec = random_clip_spec(seed, split="all", background_kinds=kinds, num_objects=2)
        frames.append(render_clip(spec, 1, size, size, 8.0))
    return torch.cat(frames)


def area_downsample(frames: torch.Tensor, factor: int) -> torch.Tensor:
    return F.avg_pool2d(frames.permute(0, 3, 1, 2), factor).permute(0, 2, 3, 1)


def cv2_resize(frames: torch.Tensor, size: tuple[int, int], interpolation: int) -> torch.Tensor:
    out = [cv2.resize(f.numpy(), (size[1], size[0]), interpolation=interpolation) for f in frames]
    return torch.from_numpy(np.stack(out))


@pytest.mark.parametrize("factor", [2, 4])
def test_upscale_beats_bicubic_on_area_downsampled_sprites(factor):
    high = sprites_frames()
    low = area_downsample(high, factor)
    bicubic = cv2_resize(low, high.shape[1:3], cv2.INTER_CUBIC).clamp(0, 1)
    ours = upscale(low, scale=factor)
    assert ours.shape == high.shape
    for i in range(high.shape[0]):
        assert psnr(ours[i], high[i]) > psnr(bicubic[i], high[i]) + 0.5, f"frame {i}"
    assert psnr(ours, high) > psnr(bicubic, high) + 2.0


@pytest.mark.parametrize(
    ("method", "flag"),
    [
        ("lanczos", cv2.INTER_LANCZOS4),
        ("bicubic", cv2.INTER_CUBIC),
        ("bilinear", cv2.INTER_LINEAR),
        ("nearest", cv2.INTER_NEAREST_EXACT),
    ],
)
@pytest.mark.parametrize("size", [(26, 38), (39, 57), (52, 76), (30, 20)])
def test_plain_resampling_matches_opencv(method, flag, size):
    frames = torch.rand(2, 13, 19, 3)
    expected = cv2_resize(frames, size, flag)
    torch.testing.assert_close(resize(frames, size, method), expected, atol=2e-6, rtol=0)
    # The gathered-taps path (what runs on GPUs) computes the same numbers.
    torch.testing.assert_close(resize_taps(frames, size, method), expected, atol=2e-6, rtol=0)
    torch.testing.assert_close(upscale(frames, size=size, method=method, sharpen=0), expected.clamp(0, 1))


def test_sizes_dtype_and_range():
    frames = sprites_frames(24)
    assert upscale(frames, scale=2).shape == (4, 48, 48, 3)
    assert upscale(frames, scale=3).shape == (4, 72, 72, 3)
    assert upscale(frames, scale=1.5).shape == (4, 36, 36, 3)
    wide = torch.rand(2, 20, 30, 3)
    assert upscale(wide, size=(50, None)).shape == (2, 50, 75, 3)  # aspect kept
    assert upscale(wide, size=(0, 45)).shape == (2, 30, 45, 3)
    assert upscale(wide, size=(50, 40)).shape == (2, 50, 40, 3)  # both given: as asked
    out = upscale(wide, scale=4)
    assert out.dtype == torch.float32 and out.min() >= 0 and out.max() <= 1
    half = upscale(wide.to(torch.bfloat16), scale=2)
    assert half.dtype == torch.bfloat16 and half.shape == (2, 40, 60, 3)
    assert target_size(20, 30, size=(None, 60)) == (40, 60)


def test_sharpen_changes_only_what_resampling_left_blurry():
    frames = sprites_frames(32)
    plain = upscale(frames, scale=2, sharpen=0)
    sharp = upscale(frames, scale=2, sharpen=1.0)
    assert not torch.allclose(plain, sharp)
    # Back-projection keeps the result consistent with the input: area-downsampling gives it back closely.
    assert psnr(area_downsample(sharp, 2), frames) > psnr(area_downsample(plain, 2), frames)
    flat = torch.full((1, 8, 8, 3), 0.3)
    torch.testing.assert_close(upscale(flat, scale=4), torch.full((1, 32, 32, 3), 0.3))


def test_downscaling_antialiases():
    frames = sprites_frames(64)
    half = upscale(frames, scale=0.5, method="bilinear")
    assert half.shape == (4, 32, 32, 3)
    # A widened bilinear kernel is a tent over 4 source pixels: close to the 2x2 area average.
    assert psnr(half, area_downsample(frames, 2)) > 30


def test_clear_errors():
    frames = torch.rand(2, 8, 8, 3)
    with pytest.raises(ValueError, match="exactly one of scale"):
        upscale(frames)
    with pytest.raises(ValueError, match="exactly one of scale"):
        upscale(frames, scale=2, size=(16, 16))
    for bad in (0, -2, float("nan"), "2"):
        with pytest.raises(ValueError, match="scale"):
            upscale(frames, scale=bad)
    for bad in ((16,), (0, 0), (-4, 16), (16.5, 16)):
        with pytest.raises(ValueError, match="size"):
            upscale(frames, size=bad)
    with pytest.raises(ValueError, match="method"):
        upscale(frames, scale=2, method="magic")
    with pytest.raises(ValueError, match="sharpen"):
        upscale(frames, scale=2, sharpen=-1)
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        upscale(frames.permute(0, 3, 1, 2), scale=2)
    with pytest.raises(TypeError, match="floats"):
        upscale((frames * 255).to(torch.uint8), scale=2)


@pytest.mark.gpu
def test_cuda_frames_match_cpu():
    frames = sprites_frames(32)
    for method in ("lanczos", "bicubic", "bilinear", "nearest"):
        cpu = upscale(frames, scale=3, method=method)
        gpu = upscale(frames.cuda(), scale=3, method=method)
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(gpu.cpu(), cpu, atol=2e-3, rtol=0)
    assert upscale(frames, scale=2, device="cuda").device.type == "cpu"


def test_nearest_stays_pixel_repetition_even_with_sharpen():
    frames = sprites_frames(16)
    out = upscale(frames, scale=3, method="nearest", sharpen=1.0)
    assert torch.equal(out, frames.repeat_interleave(3, 1).repeat_interleave(3, 2))
