"""CogVideoX VAE: equal to diffusers.AutoencoderKLCogVideoX on a tiny random config; loading and errors."""

import dataclasses

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from videocascade.runtime.checkpoints import CheckpointError  # noqa: E402
from videocascade.vae.cogvideox import (  # noqa: E402
    CogVideoXVAE,
    CogVideoXVAEConfig,
    cogvideox_vae_from_state,
    config_from_diffusers,
    looks_like_cogvideox_vae,
)
from videocascade.vae.cogvideox_blocks import conv3d_in_time_slices  # noqa: E402

TINY = dict(
    block_out_channels=(8, 8, 16, 16),
    latent_channels=4,
    layers_per_block=1,
    norm_num_groups=4,
    sample_height=64,
    sample_width=64,
    scaling_factor=0.7,
)


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    ref = diffusers.AutoencoderKLCogVideoX(**TINY).eval()
    # Random non-trivial norms so a mix-up of scale/shift or spatial-norm branches shows.
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    ours = cogvideox_vae_from_state(ref.state_dict(), dict(ref.config))
    return ref, ours


def _max_diff(a, b):
    return (a - b).abs().max().item()


def test_config_from_diffusers_and_interface(pair):
    ref, ours = pair
    assert ours.config.block_out_channels == (8, 8, 16, 16)
    assert ours.config.tile_sample_height == 32 and ours.config.tile_sample_width == 32
    assert (ours.temporal_factor, ours.spatial_factor, ours.latent_channels) == (4, 8, 4)
    assert [ours.video_frames(n) for n in (1, 2, 13)] == [1, 8, 49]  # even counts: 4 T' (as diffusers)
    assert ours.latent_frames(49) == 13
    z = torch.randn(1, 4, 3, 2, 2)
    assert torch.allclose(ours.latents_from_model(ours.latents_to_model(z)), z)
    assert torch.allclose(ours.latents_to_model(z), z * 0.7)


def test_encode_matches_diffusers_chunked_and_whole(pair):
    ref, ours = pair
    video = torch.rand(1, 3, 17, 16, 24) * 2 - 1  # 17 frames: two 8-frame chunks (9 + 8)
    with torch.no_grad():
        dist = ref.encode(video).latent_dist
    post = ours.encode_posterior(video)
    assert post.mean.shape == (1, 4, 5, 2, 3)
    assert _max_diff(post.mean, dist.mean) < 1e-4
    assert _max_diff(post.logvar, dist.logvar) < 1e-4
    assert _max_diff(ours.encode(video), dist.mean) < 1e-4

    ref.num_sample_frames_batch_size = 64  # one pass in the reference too
    try:
        with torch.no_grad():
            whole = ref.encode(video).latent_dist.mean
    finally:
        ref.num_sample_frames_batch_size = 8
    assert _max_diff(ours.encode(video, one_pass=True), whole) < 1e-4


def test_decode_matches_diffusers_chunked_and_whole(pair):
    ref, ours = pair
    z = torch.randn(2, 4, 5, 2, 2)  # 5 latent frames: chunks (3, 2) as the release decodes
    with torch.no_grad():
        expected = ref.decode(z).sample
    streamed = list(ours.iter_decode(z, 1))  # decode() is these chunks concatenated
    assert [s.shape[2] for s in streamed] == [9, 8]  # release chunks whatever a generic caller asks
    got = torch.cat(streamed, dim=2)
    assert got.shape == (2, 3, 17, 16, 16)
    assert _max_diff(got, expected) < 1e-4

    ref.num_latent_frames_batch_size = 64
    try:
        with torch.no_grad():
            whole = ref.decode(z[:1]).sample
    finally:
        ref.num_latent_frames_batch_size = 2
    assert _max_diff(ours.decode(z[:1], one_pass=True), whole) < 1e-4
    assert (
        _max_diff(whole, expected[:1]) > 1e-3
    )  # chunking matters, so the two checks above test different paths


@pytest.mark.slow
def test_tiled_encode_decode_match_diffusers(pair):
    ref, ours = pair
    ref.enable_tiling()  # 32x32 pixel tiles (4x4 latent) with 1/6, 1/5 overlap, as ours from config
    try:
        video = torch.rand(1, 3, 5, 40, 48) * 2 - 1  # 2x2 tiles
        z = torch.randn(1, 4, 3, 5, 6)  # 2x2 tiles
        with torch.no_grad():
            ref_mean = ref.encode(video).latent_dist.mean
            ref_video = ref.decode(z).sample
    finally:
        ref.disable_tiling()
    assert _max_diff(ours.encode(video, tiled=True), ref_mean) < 1e-4
    assert _max_diff(ours.decode(z, tiled=True), ref_video) < 1e-4


def test_single_frame_and_bf16(pair):
    ref, ours = pair
    image = torch.rand(1, 3, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        expected = ref.encode(image).latent_dist.mean
        decoded = ref.decode(expected).sample
    assert _max_diff(ours.encode(image), expected) < 1e-4
    assert _max_diff(ours.decode(expected), decoded) < 1e-4
    half = cogvideox_vae_from_state({k: v.bfloat16() for k, v in ref.state_dict().items()}, dict(ref.config))
    assert half.decode(expected).dtype == torch.bfloat16


def test_detection_and_defaults_without_config():
    # Group count cannot be read from shapes: without config.json the release's 32 groups apply.
    ref = diffusers.AutoencoderKLCogVideoX(
        block_out_channels=(32, 32, 64, 64), latent_channels=4, layers_per_block=2
    )
    state = ref.state_dict()
    assert looks_like_cogvideox_vae(state.keys())
    assert not looks_like_cogvideox_vae(["encoder.conv_in.weight", "decoder.conv_in.weight"])
    model = cogvideox_vae_from_state(state, None)
    assert model.config.block_out_channels == (32, 32, 64, 64)
    assert model.config.layers_per_block == 2 and model.config.latent_channels == 4
    assert model.config.scaling_factor == pytest.approx(1.15258426)  # 2B default without a config.json


def test_errors_name_the_problem(pair, caplog):
    ref, ours = pair
    state = dict(ref.state_dict())
    state.pop("decoder.up_blocks.1.resnets.0.conv2.conv.bias")
    state["decoder.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"decoder\.up_blocks\.1\.resnets\.0\.conv2\.conv\.bias"):
        cogvideox_vae_from_state(state, dict(ref.config))
    with pytest.raises(CheckpointError, match="decoder.extra.weight"):
        cogvideox_vae_from_state(state, dict(ref.config))
    truncated = {k: v for k, v in ref.state_dict().items() if not k.startswith("encoder.down_blocks.2")}
    with pytest.raises(CheckpointError, match="encoder.down_blocks.2.resnets.0.conv1.conv.weight"):
        cogvideox_vae_from_state(truncated, dict(ref.config))
    with pytest.raises(CheckpointError, match="not a CogVideoX VAE"):
        cogvideox_vae_from_state({"blocks.0.weight": torch.zeros(1)}, None)
    with pytest.raises(ValueError, match="1 \\+ 4k frames"):
        ours.encode(torch.zeros(1, 3, 4, 16, 16))
    with pytest.raises(ValueError, match="another VAE family"):
        ours.decode(torch.zeros(1, 16, 2, 2, 2))
    assert config_from_diffusers({"latent_channels": 4, "bogus": 1}).latent_channels == 4
    assert "ignoring unknown field 'bogus'" in caplog.text
    with pytest.raises(CheckpointError, match="quant_conv"):
        config_from_diffusers({"use_quant_conv": True})


@pytest.mark.parametrize(
    "scaling",
    [1.15258426, 0.7],
)
def test_real_release_config_on_meta_matches_diffusers(scaling):
    """The real 2B/5B VAE built on the meta device has diffusers' parameter names and shapes."""
    real = dict(
        block_out_channels=[128, 256, 256, 512],
        latent_channels=16,
        layers_per_block=3,
        norm_num_groups=32,
        temporal_compression_ratio=4,
        sample_height=480,
        sample_width=720,
        scaling_factor=scaling,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )
    with torch.device("meta"):
        ref = diffusers.AutoencoderKLCogVideoX(**real)
        ours = CogVideoXVAE(config_from_diffusers(real))
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    our_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert our_shapes == ref_shapes
    assert ours.config.tile_sample_height == 240 and ours.config.scaling_factor == scaling
    assert dataclasses.replace(CogVideoXVAEConfig(), scaling_factor=scaling) == ours.config


def test_team_streaming_entry_points_give_the_reference_result(pair):
    """vae.streaming's generic encode/decode (what the nodes call) reproduce diffusers with this VAE."""
    from videocascade.vae.streaming import decode_video, encode_video

    ref, ours = pair
    video = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    z = torch.randn(1, 4, 3, 2, 2)
    with torch.no_grad():
        ref_mean = ref.encode(video).latent_dist.mean
        ref_video = ref.decode(z).sample
    assert _max_diff(encode_video(ours, video), ref_mean) < 1e-4
    assert _max_diff(decode_video(ours, z), ref_video) < 1e-4
    tiled = decode_video(ours, z, tile=(8, 8), tile_overlap=0)  # their tiling: a tile per latent 1x1
    assert tiled.shape == ref_video.shape


@pytest.mark.parametrize("kernel", [1, 3])
def test_large_convs_split_in_time_give_the_same_result(kernel):
    conv = torch.nn.Conv3d(3, 5, kernel, padding=(0, kernel // 2, kernel // 2))
    x = torch.randn(1, 3, 11, 6, 6)
    with torch.no_grad():
        assert torch.allclose(conv3d_in_time_slices(conv, x, max_elements=300), conv(x), atol=1e-6)
