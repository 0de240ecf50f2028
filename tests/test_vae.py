"""Causal VAE: causality, streaming == whole clip, tiling, temporal factor 1/4, temporal blocks, param groups."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from videocascade.vae import CausalVAE, CausalVAEConfig, decode_video, encode_video, pad_frames, vae_preset
from videocascade.vae.blocks import ResidualBlock
from videocascade.vae.causal_conv import CausalConv3d, StreamCache
from videocascade.vae.streaming import iter_decode, stream_encode
from videocascade.vae.tiling import decode_tiled, edge_ramp, tile_starts

T4 = CausalVAEConfig(
    family="test-t4",
    base_channels=8,
    channel_multipliers=(1, 2, 2),
    num_res_blocks=1,
    latent_channels=4,
    temporal_downsample=(True, True),
)
T1 = dataclasses.replace(
    T4,
    family="test-t1",
    temporal_downsample=(False, False),
    encoder_temporal_kernel=1,
    decoder_temporal_kernel=1,
)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny tensors: threads only add synchronisation (badly so on a shared 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _randomize_norms(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def vae4():
    torch.manual_seed(0)
    return _randomize_norms(CausalVAE(T4))


def _video(frames: int, size: int = 16) -> torch.Tensor:
    return torch.rand(1, 3, frames, size, size) * 2 - 1


# CPU paths: per tap (big frames), time-stacked conv2d (small frames), time-stacked im2col (tiny frames)
@pytest.mark.parametrize("channels,size,out", [(4, 8, 5), (24, 2, 5), (16, 1, 32)])
@pytest.mark.parametrize("kernel", [(3, 3, 3), (1, 3, 3), (3, 1, 1)])
@torch.no_grad()
def test_causal_conv_equals_zero_padded_conv3d(channels, size, out, kernel):
    conv = CausalConv3d(channels, out, kernel)
    kt = kernel[0]
    x = torch.randn(2, channels, 4, size, size)
    for past in (None, torch.randn(2, channels, 1, size, size), torch.randn(2, channels, 3, size, size)):
        front = [] if past is None else [past[:, :, -(kt - 1) :]] if kt > 1 else []
        sequence = torch.cat([*front, x], dim=2)
        zeros = torch.zeros(2, channels, kt - 1 + x.shape[2] - sequence.shape[2], size, size)
        padding = (0, kernel[1] // 2, kernel[2] // 2)
        expected = F.conv3d(torch.cat([zeros, sequence], dim=2), conv.weight, conv.bias, padding=padding)
        torch.testing.assert_close(conv(x, past), expected, rtol=0, atol=1e-5)
        # the generic path (any other device/dtype) gives the same numbers
        double = conv.double()(x.double(), None if past is None else past.double())
        torch.testing.assert_close(double.float(), expected, rtol=0, atol=1e-5)
        conv.float()
    # streaming a frame at a time through the cache equals the whole sequence
    cache = StreamCache()
    streamed = torch.cat([conv.stream(x[:, :, t : t + 1], cache) for t in range(4)], dim=2)
    torch.testing.assert_close(streamed, conv(x), rtol=0, atol=1e-5)


def test_shapes_and_factors(vae4):
    assert (vae4.temporal_factor, vae4.spatial_factor, vae4.latent_channels) == (4, 4, 4)
    with torch.no_grad():
        z = vae4.encode(_video(9))
        assert z.shape == (1, 4, 3, 4, 4)
        assert vae4.decode(z).shape == (1, 3, 9, 16, 16)
        assert vae4.decode(torch.randn(1, 4, 1, 4, 4)).shape == (1, 3, 1, 16, 16)  # an image
    wan = vae_preset("wan2.1")
    assert (wan.temporal_factor, wan.spatial_factor, wan.latent_channels) == (4, 8, 16)


@torch.no_grad()
def test_encoder_is_causal(vae4):
    video = _video(13)
    changed = video.clone()
    changed[:, :, 6] = -changed[:, :, 6]
    z, z_changed = vae4.encode_posterior(video), vae4.encode_posterior(changed)
    # latent frame j (j >= 1) summarises input frames 4j-3 .. 4j, so frames 0 and 1 (inputs <= 4) precede 6
    for a, b in ((z.mean, z_changed.mean), (z.logvar, z_changed.logvar)):
        torch.testing.assert_close(a[:, :, :2], b[:, :, :2], rtol=0, atol=1e-6)
        assert (a[:, :, 2:] - b[:, :, 2:]).abs().amax(dim=(0, 1, 3, 4)).min() > 1e-4


@torch.no_grad()
def test_decoder_is_causal(vae4):
    z = torch.randn(1, 4, 4, 4, 4)
    changed = z.clone()
    changed[:, :, 2] += 1.0
    video, video_changed = vae4.decode(z, clamp=False), vae4.decode(changed, clamp=False)
    first = 1 + 4 * (2 - 1)  # latent frame 2 maps to video frames 5..8
    torch.testing.assert_close(video[:, :, :first], video_changed[:, :, :first], rtol=0, atol=1e-6)
    assert (video[:, :, first:] - video_changed[:, :, first:]).abs().amax(dim=(0, 1, 3, 4)).min() > 1e-4


@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 5, 8, None])
def test_streaming_encode_equals_whole_clip(vae4, chunk):
    video = _video(17)
    with torch.no_grad():
        whole = vae4.encode_posterior(video)
    streamed = stream_encode(vae4, video, chunk)
    torch.testing.assert_close(streamed.mean, whole.mean, rtol=0, atol=1e-5)
    torch.testing.assert_close(streamed.logvar, whole.logvar, rtol=0, atol=1e-5)


@pytest.mark.parametrize("chunk", [1, 2, 3, None])
def test_streaming_decode_equals_whole_clip(vae4, chunk):
    z = torch.randn(1, 4, 5, 4, 4)
    with torch.no_grad():
        whole = vae4.decode(z)
    torch.testing.assert_close(decode_video(vae4, z, chunk), whole, rtol=0, atol=1e-5)


def test_decoding_resumes_from_a_cache(vae4):
    z = torch.randn(1, 4, 5, 4, 4)
    cache = StreamCache()
    first = torch.cat(list(iter_decode(vae4, z[:, :, :2], 1, cache=cache)), dim=2)
    rest = torch.cat(list(iter_decode(vae4, z[:, :, 2:], 2, cache=cache)), dim=2)
    torch.testing.assert_close(
        torch.cat([first, rest], dim=2), decode_video(vae4, z, None), rtol=0, atol=1e-5
    )


def test_encode_video_pads_odd_lengths_with_last_frame(vae4):
    video = _video(7)
    padded, added = pad_frames(video, 4)
    assert added == 2 and padded.shape[2] == 9
    assert torch.equal(padded[:, :, 7], video[:, :, 6]) and torch.equal(padded[:, :, 8], video[:, :, 6])
    z = encode_video(vae4, video, chunk_frames=4)
    assert z.shape[2] == 3
    with torch.no_grad():
        torch.testing.assert_close(z, vae4.encode(padded), rtol=0, atol=1e-5)
    assert decode_video(vae4, z, 1, num_frames=7).shape[2] == 7


def test_clear_errors_for_bad_shapes(vae4):
    with pytest.raises(ValueError, match="divisible by 4"):
        vae4.encode(_video(5, size=18))
    with pytest.raises(ValueError, match="1 \\+ 4\\*k frames"):
        vae4.encode(_video(6))
    with pytest.raises(ValueError, match="another VAE family"):
        decode_video(vae4, torch.randn(1, 16, 2, 4, 4))
    with pytest.raises(ValueError, match="divisible by 4"):
        encode_video(vae4, _video(5, size=18))


@torch.no_grad()
def test_temporal_factor_one_is_per_frame():
    torch.manual_seed(1)
    vae = _randomize_norms(CausalVAE(T1))
    assert vae.temporal_factor == 1
    video = _video(5)
    z = vae.encode(video)
    assert z.shape == (1, 4, 5, 4, 4)
    for t in range(5):  # each frame encodes and decodes on its own
        torch.testing.assert_close(z[:, :, t : t + 1], vae.encode(video[:, :, t : t + 1]), rtol=0, atol=1e-5)
    decoded = vae.decode(z)
    torch.testing.assert_close(decoded[:, :, 3:4], vae.decode(z[:, :, 3:4]), rtol=0, atol=1e-5)


@torch.no_grad()
def test_decoder_temporal_blocks_start_as_the_image_decoder():
    torch.manual_seed(2)
    image_vae = _randomize_norms(CausalVAE(T1))
    video_vae = CausalVAE(dataclasses.replace(T1, decoder_temporal_blocks=True)).eval()
    missing, unexpected = video_vae.load_state_dict(image_vae.state_dict(), strict=False)
    assert not unexpected and missing and all("temporal_blocks" in k for k in missing)
    z = torch.randn(1, 4, 5, 4, 4)
    torch.testing.assert_close(video_vae.decode(z), image_vae.decode(z), rtol=0, atol=1e-6)
    # once mixed in, the blocks couple frames causally, and streaming still equals the whole clip
    for name, p in video_vae.named_parameters():
        if name.endswith(".mix"):
            p.fill_(0.5)
    mixed = video_vae.decode(z, clamp=False)
    assert (mixed - image_vae.decode(z, clamp=False)).abs().max() > 1e-3
    changed = z.clone()
    changed[:, :, 3] += 1
    torch.testing.assert_close(
        video_vae.decode(changed, clamp=False)[:, :, :3], mixed[:, :, :3], rtol=0, atol=1e-6
    )
    assert (video_vae.decode(changed, clamp=False)[:, :, 4] - mixed[:, :, 4]).abs().max() > 1e-4
    torch.testing.assert_close(decode_video(video_vae, z, 2), mixed.clamp(-1, 1), rtol=0, atol=1e-5)


@pytest.mark.parametrize("config", [T4, dataclasses.replace(T1, decoder_temporal_blocks=True)])
def test_parameter_groups_are_disjoint_and_complete(config):
    vae = CausalVAE(config)
    spatial = {id(p) for p in vae.spatial_parameters()}
    temporal = {id(p) for p in vae.temporal_parameters()}
    assert spatial and temporal and not spatial & temporal
    assert spatial | temporal == {id(p) for p in vae.parameters()}
    # a trainer freezing the spatial group gets gradients in the temporal group only
    for p in vae.spatial_parameters():
        p.requires_grad_(False)
    if config.decoder_temporal_blocks:
        for name, p in vae.named_parameters():
            if name.endswith(".mix"):
                p.data.fill_(0.1)
    recon, _ = vae(_video(5), sample=False)
    recon.square().mean().backward()
    assert all(p.grad is None for p in vae.spatial_parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in vae.temporal_parameters())


def test_posterior_and_latent_normalisation(vae4):
    with torch.no_grad():
        posterior = vae4.encode_posterior(_video(5))
    assert posterior.kl().shape == (1,) and posterior.kl().item() >= 0
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(posterior.sample(g1), posterior.sample(g2))
    wan = CausalVAE.__new__(CausalVAE)  # normalisation only needs the config and the buffers
    torch.nn.Module.__init__(wan)
    config = vae_preset("wan2.1")
    wan.config = config
    wan.register_buffer("latents_mean", torch.tensor(config.latents_mean).view(1, 16, 1, 1, 1))
    wan.register_buffer("latents_std", torch.tensor(config.latents_std).view(1, 16, 1, 1, 1))
    z = torch.randn(1, 16, 2, 3, 3)
    normalised = wan.latents_to_model(z)
    torch.testing.assert_close(normalised[:, 7], (z[:, 7] - 1.5508) / 2.0743)
    torch.testing.assert_close(wan.latents_from_model(normalised), z)


# -- tiling ------------------------------------------------------------------------------------------
def test_tile_layout_and_ramps():
    assert tile_starts(10, 4, 1) == [0, 3, 6]
    assert tile_starts(11, 4, 1) == [0, 3, 6, 7]
    assert tile_starts(4, 8, 2) == [0]
    left = edge_ramp(8, 4, at_start=False, at_end=True)
    right = edge_ramp(8, 4, at_start=True, at_end=False)
    torch.testing.assert_close(left[4:] + right[:4], torch.ones(4))  # a linear cross-fade
    assert torch.equal(left[:4], torch.ones(4))


@pytest.mark.parametrize("tile,overlap", [((4, 4), 1), ((3, 5), 2), ((6, 6), 3), ((16, 16), 0)])
def test_tiles_partition_unity(tile, overlap):
    """With a decoder that has no spatial context, tiled decoding must equal the untiled one exactly."""
    f = 2

    def pointwise(z):  # each latent pixel -> an f x f block, in 2 temporal chunks
        video = torch.tanh(z[:, :3]).repeat_interleave(f, -1).repeat_interleave(f, -2)
        return [video[:, :, :1], video[:, :, 1:]]

    z = torch.randn(1, 4, 3, 7, 9)
    expected = torch.cat(pointwise(z), dim=2)
    out = decode_tiled(pointwise, z, torch.empty_like(expected), f, tile, overlap)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


@torch.no_grad()
def test_tiled_decode_is_close_to_untiled_and_blending_beats_hard_cuts():
    torch.manual_seed(4)
    vae = CausalVAE(dataclasses.replace(T1, middle_attention=False)).eval()
    for module in vae.modules():  # identity residual branches: a decoder with little spatial context
        if isinstance(module, ResidualBlock):
            module.conv2.weight.zero_()
            module.conv2.bias.zero_()
    z = torch.randn(1, 4, 2, 16, 16)
    untiled = decode_video(vae, z, None)
    blended = decode_video(vae, z, 1, tile=(32, 32), tile_overlap=16)
    hard = decode_video(vae, z, 1, tile=(32, 32), tile_overlap=0)
    err_blended, err_hard = (blended - untiled).abs(), (hard - untiled).abs()
    assert err_blended.mean() < 0.08 * untiled.abs().mean() and err_blended.max() < 0.2
    assert err_blended.mean() < 0.4 * err_hard.mean() and err_blended.max() < 0.25 * err_hard.max()


@torch.no_grad()
def test_smooth_gradient_shows_no_step_at_tile_borders():
    torch.manual_seed(5)
    vae = _randomize_norms(CausalVAE(dataclasses.replace(T1, middle_attention=False)))
    width = 32
    ramp = torch.linspace(-1, 1, width)
    z = (ramp.view(1, 1, 1, 1, width) * torch.tensor([1.0, -0.5, 0.8, 0.3]).view(1, 4, 1, 1, 1)).expand(
        1, 4, 2, 8, width
    )

    def step_at(video, columns):  # largest column-to-column change around the given pixel columns
        dx = (video[..., 1:] - video[..., :-1]).abs().mean(dim=(0, 1, 2, 3))
        return max(dx[c - 2 : c + 2].max().item() for c in columns)

    hard = decode_video(vae, z, 1, tile=(32, 48), tile_overlap=0)
    blended = decode_video(vae, z, 1, tile=(32, 48), tile_overlap=16)
    cuts = [s * 4 for s in tile_starts(width, 12, 0)[1:]]  # where hard tiles meet
    assert step_at(hard, cuts) > 0.2
    assert step_at(blended, cuts) < 0.35 * step_at(hard, cuts)


def test_tiles_and_temporal_chunks_together_equal_tiles_alone(vae4):
    z = torch.randn(1, 4, 4, 6, 6)
    one_pass = decode_video(vae4, z, None, tile=(16, 16), tile_overlap=8)
    streamed = decode_video(vae4, z, 1, tile=(16, 16), tile_overlap=8)
    assert streamed.shape == (1, 3, 13, 24, 24)
    torch.testing.assert_close(streamed, one_pass, rtol=0, atol=1e-5)
