"""Exact tiled decode: equal to the untiled decode for any tile and chunk size; refused for non-local decoders."""

import dataclasses
import logging

import pytest
import torch
from torch import nn
from videocascade.vae import CausalVAE, CausalVAEConfig, decode_video, vae_preset
from videocascade.vae.causal_conv import StreamCache
from videocascade.vae.exact_tiling import (
    StageGeometry,
    exact_tiling_problem,
    iter_decode_window,
    nonlocal_layers,
    split_axis,
    tile_windows,
    up_path_geometry,
)
from videocascade.vae.streaming import iter_decode

# float rounding only: convolutions over crops of another size may pick another CPU algorithm
TOL = dict(rtol=0, atol=1e-5)

T4 = CausalVAEConfig(
    family="test-t4",
    base_channels=8,
    channel_multipliers=(1, 2, 2),
    num_res_blocks=1,
    latent_channels=4,
    temporal_downsample=(True, True),
    middle_attention=True,
)
T1_TEMPORAL = dataclasses.replace(
    T4,
    family="test-t1",
    temporal_downsample=(False, False),
    encoder_temporal_kernel=1,
    decoder_temporal_kernel=1,
    decoder_temporal_blocks=True,
)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _random(config: CausalVAEConfig, seed: int) -> CausalVAE:
    """Random weights with non-trivial norm scales and temporal-block mixes (zero mixes are identities)."""
    torch.manual_seed(seed)
    vae = CausalVAE(config).eval()
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if name.endswith("gamma"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith("mix"):
                p.fill_(0.7)
    return vae


@pytest.fixture(scope="module")
def vae4():
    return _random(T4, 0)


@pytest.fixture(scope="module")
def vae1():
    return _random(T1_TEMPORAL, 1)


# -- equality with the untiled decode ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "tile,chunk", [((4, 4), 1), ((8, 12), 2), ((12, 12), None), ((20, 8), 1), ((1, 1), 3), ((100, 100), 1)]
)
def test_exact_tiles_equal_the_untiled_decode(vae4, tile, chunk):
    """Middle attention, temporal x4; latent 5x7 (f=4): tiles of 1, 2, 3 and 5 latent pixels, most of them
    not dividing the frame, and one tile larger than it."""
    torch.manual_seed(2)
    z = torch.randn(1, 4, 4, 5, 7)
    with torch.no_grad():
        expected = vae4.decode(z)
    tiled = decode_video(vae4, z, chunk, tile=tile, tile_mode="exact")
    assert tiled.shape == (1, 3, 13, 20, 28)
    torch.testing.assert_close(tiled, expected, **TOL)


@pytest.mark.parametrize("chunk", [1, 3])
def test_exact_tiles_with_decoder_temporal_blocks(vae1, chunk):
    torch.manual_seed(3)
    z = torch.randn(2, 4, 5, 6, 5)  # a batch of two clips
    with torch.no_grad():
        expected = vae1.decode(z)
    torch.testing.assert_close(decode_video(vae1, z, chunk, tile=(8, 12), tile_mode="exact"), expected, **TOL)


@pytest.mark.parametrize("preset", ["sprites-t4", "sprites-t1", "sprites-t1-temporal"])
def test_every_sprites_preset_tiles_exactly(preset):
    vae = _random(vae_preset(preset, base_channels=8), 4)
    assert exact_tiling_problem(vae) is None
    torch.manual_seed(5)
    z = torch.randn(1, vae.latent_channels, 3, 6, 6)
    with torch.no_grad():
        expected = vae.decode(z)
    torch.testing.assert_close(decode_video(vae, z, 1, tile=(8, 16), tile_mode="auto"), expected, **TOL)


def test_wan_layout_tiles_exactly_and_its_halo_is_the_receptive_field():
    """Three upsamplings (two also in time) and three res blocks per stage: the halo each stage reads is
    6 pixels around (3 res blocks x 2 convs), plus 1 for the upsampling conv and the output conv."""
    vae = _random(vae_preset("wan2.1", base_channels=8), 6)
    geometry = up_path_geometry(vae.decoder)
    assert geometry == [StageGeometry(6, 2, 1)] * 3 + [StageGeometry(6, 1, 0), StageGeometry(1, 1, 0)]
    # output columns 64..128 of a 256 px wide frame: 7 px around at full resolution, 21 px at half, ...
    assert geometry[-1].input_span((64, 128), 256) == (63, 129)
    assert geometry[-2].input_span((63, 129), 256) == (57, 135)
    assert geometry[-3].input_span((57, 135), 128) == (22, 74)
    torch.manual_seed(7)
    z = torch.randn(1, 16, 3, 5, 6)
    with torch.no_grad():
        expected = vae.decode(z)
    torch.testing.assert_close(decode_video(vae, z, 1, tile=(16, 24), tile_mode="exact"), expected, **TOL)


def test_a_window_continues_through_its_cache_and_keeps_less_than_the_whole_frame(vae4):
    """Tiles stream like the untiled decode: resuming with the window's cache gives the same frames, and the
    cache (the memory tiles exist to cut) holds only the window's neighbourhood."""
    torch.manual_seed(8)
    z = torch.randn(1, 4, 5, 8, 8)
    window = ((8, 16), (0, 12))
    with torch.no_grad():
        expected = vae4.decode(z)[..., 8:16, 0:12]
    cache = StreamCache()
    first = list(iter_decode_window(vae4, z[:, :, :2], window, 1, cache=cache))
    rest = list(iter_decode_window(vae4, z[:, :, 2:], window, 2, cache=cache))
    torch.testing.assert_close(torch.cat(first + rest, dim=2), expected, **TOL)
    whole = StreamCache()
    for _ in iter_decode(vae4, z[:, :, :2], 1, cache=whole):
        pass
    assert cache.nbytes() < 0.75 * whole.nbytes()


def test_tile_layout():
    assert split_axis(5, 8, 4) == [(0, 4), (4, 12), (12, 20)]  # at most 2 latent px, near-equal
    assert split_axis(7, 8, 4) == [(0, 4), (4, 12), (12, 20), (20, 28)]
    assert split_axis(20, 80, 8) == [(0, 80), (80, 160)]
    assert split_axis(20, 56, 8) == [(0, 48), (48, 104), (104, 160)]
    assert split_axis(3, 1, 4) == [(0, 4), (4, 8), (8, 12)]  # at least one latent pixel
    assert split_axis(3, 100, 4) == [(0, 12)]
    windows = tile_windows((5, 7), (8, 12), 4)
    assert len(windows) == 3 * 3 and windows[0] == ((0, 4), (0, 8)) and windows[-1] == ((12, 20), (16, 28))


# -- families that cannot be tiled exactly ----------------------------------------------------------------------
def test_non_local_layers_are_refused_or_fall_back_to_blended_tiles(caplog):
    vae = _random(dataclasses.replace(T4, middle_attention=False), 9)
    assert nonlocal_layers(vae.decoder) == []
    vae.decoder.up_blocks[1].resnets[0].norm1 = nn.GroupNorm(2, 8)  # normalises over the whole frame
    assert nonlocal_layers(vae.decoder) == ["up_blocks.1.resnets.0.norm1 (GroupNorm)"]
    z = torch.randn(1, 4, 2, 6, 6)
    with pytest.raises(
        ValueError, match="exact tiles: .*up_blocks.1.resnets.0.norm1 \\(GroupNorm\\).*'blend'"
    ):
        decode_video(vae, z, 1, tile=(12, 12), tile_mode="exact")
    with caplog.at_level(logging.INFO, logger="videocascade.vae.streaming"):
        auto = decode_video(vae, z, 1, tile=(12, 12), tile_overlap=4, tile_mode="auto")
    assert "blended tiles instead of exact ones" in caplog.text
    torch.testing.assert_close(auto, decode_video(vae, z, 1, tile=(12, 12), tile_overlap=4), rtol=0, atol=0)
    strided = _random(dataclasses.replace(T4, middle_attention=False), 9)
    strided.decoder.conv_out.stride = (1, 2, 2)
    assert nonlocal_layers(strided.decoder) == ["conv_out (not a stride-1 'same' convolution)"]


def test_cogvideox_is_refused_exact_tiles_and_blends_on_auto(caplog):
    from videocascade.vae.cogvideox import CogVideoXVAE, CogVideoXVAEConfig

    torch.manual_seed(10)
    config = CogVideoXVAEConfig(block_out_channels=(8, 8, 16, 16), latent_channels=4, layers_per_block=1,
                                norm_num_groups=4)  # fmt: skip
    cog = CogVideoXVAE(config).eval()
    assert "GroupNorm" in exact_tiling_problem(cog)
    z = torch.randn(1, 4, 2, 4, 4)
    with pytest.raises(ValueError, match="exact tiles: .*CogVideoX.*tile_mode='blend'"):
        decode_video(cog, z, 1, tile=(16, 16), tile_mode="exact")
    with caplog.at_level(logging.INFO, logger="videocascade.vae.streaming"):
        auto = decode_video(cog, z, 1, tile=(16, 16), tile_overlap=8, tile_mode="auto")
    assert "blended tiles instead of exact ones" in caplog.text
    torch.testing.assert_close(auto, decode_video(cog, z, 1, tile=(16, 16), tile_overlap=8), rtol=0, atol=0)


def test_bad_tile_arguments_are_clear_errors(vae4):
    z = torch.randn(1, 4, 2, 4, 4)
    with pytest.raises(ValueError, match="tile_mode must be one of"):
        decode_video(vae4, z, 1, tile=(8, 8), tile_mode="seamless")
    with pytest.raises(ValueError, match="at least 1 px"):
        decode_video(vae4, z, 1, tile=(0, 8), tile_mode="exact")
    with pytest.raises(ValueError, match="not inside the 16x16 frame"):
        list(iter_decode_window(vae4, z, ((0, 8), (8, 20))))


# -- the VAE Decode node -----------------------------------------------------------------------------------------
def test_decode_node_tiles_exactly_with_zero_overlap(vae4):
    from videocascade.nodes import NODE_CLASS_MAPPINGS
    from videocascade.runtime.handles import ModelHandle

    node = NODE_CLASS_MAPPINGS["VCVAEDecode"]()
    handle = ModelHandle(vae4, vae4.config, vae4.family, "vae")
    latent = {"samples": torch.randn(1, 4, 3, 6, 5), "videocascade_format": vae4.family}
    untiled = node.decode(handle, latent, 1, 0, 64)[0]
    exact = node.decode(handle, latent, 1, 8, 0)[0]
    blended = node.decode(handle, latent, 1, 16, 8)[0]
    assert exact.shape == untiled.shape == (9, 24, 20, 3)
    torch.testing.assert_close(exact, untiled, **TOL)
    assert (blended - untiled).abs().max() > 1e-3  # blending changes the frames near the seams
