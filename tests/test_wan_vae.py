"""Wan 2.1 VAE: equal to diffusers.AutoencoderKLWan on a tiny random config; every file layout loads; errors."""

import json
import os

import pytest
import torch
from safetensors.torch import save_file

diffusers = pytest.importorskip("diffusers")
from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers  # noqa: E402
from videocascade.runtime.checkpoints import CheckpointError, save_checkpoint  # noqa: E402
from videocascade.vae import (  # noqa: E402
    CausalVAE,
    CausalVAEConfig,
    decode_video,
    encode_video,
    load_vae,
    vae_preset,
)
from videocascade.vae.streaming import stream_encode  # noqa: E402
from videocascade.vae.wan_keys import (  # noqa: E402
    config_from_state,
    key_to_original,
    original_key_map,
    to_original,
)

TINY = dict(
    base_dim=8, z_dim=4, dim_mult=[1, 2, 4, 4], num_res_blocks=2, temperal_downsample=[False, True, True]
)
TOL = dict(rtol=0, atol=1e-4)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny tensors: threads only add synchronisation (badly so on a shared 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    ref = diffusers.AutoencoderKLWan(**TINY).eval()
    with torch.no_grad():  # non-trivial norm scales, so a mixed-up norm shows
        for name, p in ref.named_parameters():
            if name.endswith("gamma"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
    return ref


@pytest.fixture(scope="module")
def diffusers_folder(reference, tmp_path_factory):
    folder = tmp_path_factory.mktemp("wan_vae_diffusers")
    reference.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def ours(diffusers_folder):
    model, family = load_vae(diffusers_folder)
    assert family == "wan2.1" and isinstance(model, CausalVAE)
    return model


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(1)
    return torch.rand(1, 3, 9, 32, 32) * 2 - 1


@torch.no_grad()
def test_encode_matches_diffusers(reference, ours, clip):
    expected = reference.encode(clip).latent_dist
    posterior = ours.encode_posterior(clip)
    assert posterior.mean.shape == (1, 4, 3, 4, 4)
    torch.testing.assert_close(posterior.mean, expected.mean, **TOL)
    torch.testing.assert_close(posterior.logvar, expected.logvar, **TOL)
    streamed = stream_encode(ours, clip, chunk_frames=3)
    torch.testing.assert_close(streamed.mean, expected.mean, **TOL)


@torch.no_grad()
def test_decode_matches_diffusers_whole_and_streaming(reference, ours):
    torch.manual_seed(2)
    z = torch.randn(1, 4, 4, 4, 4)
    expected = reference.decode(z).sample
    assert expected.shape == (1, 3, 13, 32, 32) and expected.abs().lt(1).float().mean() > 0.5
    torch.testing.assert_close(ours.decode(z), expected, **TOL)
    for chunk in (1, 3):
        torch.testing.assert_close(decode_video(ours, z, chunk), expected, **TOL)


@torch.no_grad()
def test_exact_tiled_decode_matches_diffusers(reference, ours):
    """Tiles reading a halo of neighbouring data give diffusers' untiled result (frame 40x48, tiles not
    dividing it)."""
    torch.manual_seed(3)
    z = torch.randn(1, 4, 3, 5, 6)
    expected = reference.decode(z).sample
    for tile, chunk in (((16, 16), 1), ((24, 8), 2)):
        torch.testing.assert_close(
            decode_video(ours, z, chunk, tile=tile, tile_mode="exact"), expected, **TOL
        )


def test_original_names_agree_with_diffusers_converter(reference, ours):
    state = reference.state_dict()
    original = to_original(state, ours.config)
    assert "decoder.upsamples.4.shortcut.weight" in original and "conv1.weight" in original
    back = convert_wan_vae_to_diffusers(dict(original))
    assert set(back) == set(state)
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_real_wan21_preset_matches_diffusers_default_config():
    config = vae_preset("wan2.1")
    with torch.device("meta"):
        ref = diffusers.AutoencoderKLWan()
        model = CausalVAE(config)
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    our_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert our_shapes == ref_shapes
    assert sum(v.numel() for v in model.state_dict().values()) == 126_892_531
    assert list(config.latents_mean) == ref.config.latents_mean
    assert list(config.latents_std) == ref.config.latents_std
    # original names: diffusers' converter maps them back to ours, and shapes read back the preset
    names = original_key_map(config)
    converted = convert_wan_vae_to_diffusers({orig: ours for ours, orig in names.items()})
    assert converted == {ours: ours for ours in names}
    meta_original = {names[k]: v for k, v in model.state_dict().items()}
    assert config_from_state(meta_original, "original") == config


@torch.no_grad()
def test_original_layout_bf16_file(reference, ours, tmp_path):
    state = {k: v.to(torch.bfloat16).contiguous() for k, v in reference.state_dict().items()}
    path = tmp_path / "wan_2.1_vae.safetensors"
    save_file(to_original(state, ours.config), str(path))
    model, family = load_vae(str(path))
    assert family == "wan2.1" and model.config == ours.config
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v.float()) for k, v in state.items())
    bf16_model, _ = load_vae(str(path), dtype=torch.bfloat16)
    assert next(bf16_model.parameters()).dtype == torch.bfloat16
    z = torch.randn(1, 4, 2, 4, 4)
    torch.testing.assert_close(bf16_model.decode(z.bfloat16()).float(), model.decode(z), rtol=0, atol=0.1)


@torch.no_grad()
def test_original_pth_and_diffusers_single_file(reference, ours, tmp_path):
    z = torch.randn(1, 4, 2, 4, 4)
    expected = ours.decode(z)
    pth = tmp_path / "Wan2.1_VAE.pth"
    torch.save(to_original(reference.state_dict(), ours.config), pth)
    single = tmp_path / "diffusers_layout.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(single))
    prefixed = tmp_path / "prefixed.safetensors"
    save_file({"vae." + k: v.contiguous() for k, v in reference.state_dict().items()}, str(prefixed))
    for path in (pth, single, prefixed):
        model, family = load_vae(str(path))
        assert family == "wan2.1"
        torch.testing.assert_close(model.decode(z), expected, rtol=0, atol=0)


def test_sharded_and_pipeline_folders(reference, ours, tmp_path):
    vae_folder = tmp_path / "pipeline" / "vae"
    reference.save_pretrained(vae_folder, max_shard_size="200KB")
    assert os.path.isfile(vae_folder / "diffusion_pytorch_model.safetensors.index.json")
    model, family = load_vae(str(tmp_path / "pipeline"))
    assert family == "wan2.1"
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in ours.state_dict().items())


def test_our_checkpoint_format(tmp_path):
    config = CausalVAEConfig(
        family="sprites-t4",
        base_channels=4,
        channel_multipliers=(1, 2),
        num_res_blocks=1,
        latent_channels=4,
        temporal_downsample=(True,),
    )
    model = CausalVAE(config).eval()
    path = tmp_path / "sprites_vae.safetensors"
    save_checkpoint(path, model, config, kind="vae", family="sprites-t4")
    loaded, family = load_vae(str(path))
    assert family == "sprites-t4" and loaded.config == config
    z = torch.randn(1, 4, 2, 3, 3)
    with torch.no_grad():
        torch.testing.assert_close(loaded.decode(z), model.decode(z), rtol=0, atol=0)
    save_checkpoint(tmp_path / "dit.safetensors", model, config, kind="dit", family="sprites-t4")
    with pytest.raises(CheckpointError, match="'vae' was expected"):
        load_vae(str(tmp_path / "dit.safetensors"))


def test_truncated_and_wrong_files_are_named(reference, ours, tmp_path):
    original = to_original(reference.state_dict(), ours.config)
    # cut short on disk
    full = tmp_path / "full.safetensors"
    save_file(original, str(full))
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="cut.safetensors"):
        load_vae(str(cut))
    # readable, but tensors missing (e.g. an interrupted conversion)
    partial = dict(original)
    del partial["decoder.upsamples.9.residual.6.weight"], partial["decoder.head.2.bias"]
    save_file(partial, str(tmp_path / "partial.safetensors"))
    with pytest.raises(CheckpointError, match=r"partial\.safetensors.*2 missing.*decoder\.conv_out\.bias"):
        load_vae(str(tmp_path / "partial.safetensors"))
    # encoder stages gone: the config cannot even be read
    no_encoder = {k: v for k, v in original.items() if not k.startswith("encoder.downsamples.")}
    save_file(no_encoder, str(tmp_path / "no_encoder.safetensors"))
    with pytest.raises(CheckpointError, match="no_encoder.safetensors.*incomplete"):
        load_vae(str(tmp_path / "no_encoder.safetensors"))
    # some other model altogether
    save_file({"blocks.0.attn.qkv.weight": torch.zeros(4, 4)}, str(tmp_path / "dit.safetensors"))
    with pytest.raises(CheckpointError, match=r"dit\.safetensors is not a VAE.*blocks\.0\.attn\.qkv\.weight"):
        load_vae(str(tmp_path / "dit.safetensors"))
    with pytest.raises(CheckpointError, match="not found"):
        load_vae(str(tmp_path / "absent.safetensors"))


def test_diffusers_folder_errors(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps({"_class_name": "AutoencoderKLWan", "is_residual": True})
    )
    save_file({"x": torch.zeros(1)}, str(tmp_path / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(CheckpointError, match="Wan 2.2"):
        load_vae(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    with pytest.raises(CheckpointError, match="AutoencoderKL'"):
        load_vae(str(tmp_path))


def test_cogvideox_files_are_handed_to_the_cogvideox_loader(tmp_path):
    pytest.importorskip("videocascade.vae.cogvideox")
    tiny = diffusers.AutoencoderKLCogVideoX(
        block_out_channels=(8, 8, 16, 16), latent_channels=4, layers_per_block=1, norm_num_groups=4
    )
    tiny.save_pretrained(tmp_path / "folder")
    model, family = load_vae(str(tmp_path / "folder"))
    assert family == "cogvideox" and model.latent_channels == 4
    # the node-facing helpers drive another family's VAE through its own chunked decode/encode
    z = torch.randn(1, 4, 3, 4, 4)
    video = decode_video(model, z, chunk_frames=-1)
    torch.testing.assert_close(video, model.decode(z).float(), rtol=0, atol=1e-5)
    assert decode_video(model, z, chunk_frames=-1, tile=(16, 16), tile_overlap=8).shape == video.shape
    assert encode_video(model, video[:, :, :8], chunk_frames=None).shape == (1, 4, 3, 4, 4)  # padded to 9
    # a single file has no config: the release's norm groups need widths that are multiples of 32
    small = diffusers.AutoencoderKLCogVideoX(
        block_out_channels=(32, 32, 32, 32), latent_channels=4, layers_per_block=1
    )
    save_file({k: v.contiguous() for k, v in small.state_dict().items()}, str(tmp_path / "cog.safetensors"))
    model, family = load_vae(str(tmp_path / "cog.safetensors"))
    assert family == "cogvideox" and model.latent_channels == 4


def test_key_map_refuses_layers_wan_does_not_have():
    config = CausalVAEConfig(decoder_temporal_blocks=True, temporal_downsample=(False, False))
    with pytest.raises(ValueError, match="temporal blocks"):
        key_to_original("decoder.conv_in.weight", config)
