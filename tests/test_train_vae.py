"""VAE training pieces (data stream, losses, latent statistics) and the shipped VAEs' held-out quality."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
import torch
from videocascade.runtime.model_paths import EMBEDDED_DIR
from videocascade.sprites.train_vae import (
    FRAME_CONFIG,
    VAE3D_CONFIG,
    _with_latent_statistics,
    clip_batch,
    eval_clips,
    evaluate,
    flicker,
    frame_batch,
    reconstruction_loss,
)
from videocascade.vae import CausalVAE, load_vae

SHIPPED_3D = os.path.join(EMBEDDED_DIR, "vae-sprites-3d.safetensors")
SHIPPED_FRAME = os.path.join(EMBEDDED_DIR, "vae-sprites-frame.safetensors")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_data_stream_is_fixed_by_seed_and_step():
    a = clip_batch(0, 5, 2, 9)
    assert a.shape == (2, 3, 9, 32, 32) and -1.0 <= a.min() and a.max() <= 1.0
    assert torch.equal(a, clip_batch(0, 5, 2, 9))
    assert not torch.equal(a, clip_batch(0, 6, 2, 9)) and not torch.equal(a, clip_batch(1, 5, 2, 9))
    frames = frame_batch(0, 5, 3)
    assert frames.shape == (3, 3, 1, 32, 32) and torch.equal(frames, frame_batch(0, 5, 3))


def test_losses_and_flicker():
    video = clip_batch(0, 0, 2, 5)
    terms = reconstruction_loss(video, video, temporal=True)
    assert all(float(v) == 0.0 for v in terms.values()) and set(terms) == {"l1", "l2", "edge", "dt"}
    jitter = video + 0.1 * torch.randn(video.shape, generator=torch.Generator().manual_seed(0))
    assert reconstruction_loss(jitter, video, temporal=True)["dt"] > 0.05
    assert flicker(video, video) == 0.0
    assert flicker(jitter, video) > flicker(video + 0.1, video)  # a constant offset does not flicker


def test_latent_statistics_normalise_to_unit_variance():
    torch.manual_seed(0)
    vae = CausalVAE(replace(FRAME_CONFIG, base_channels=8)).eval()
    video = clip_batch(0, 0, 4, 3)
    vae = _with_latent_statistics(vae, video)
    assert len(vae.config.latents_mean) == vae.latent_channels
    with torch.no_grad():
        z = vae.latents_to_model(vae.encode(video)).transpose(0, 1).flatten(1)
    torch.testing.assert_close(z.mean(1), torch.zeros(4), atol=1e-3, rtol=0)
    torch.testing.assert_close(z.std(1), torch.ones(4), atol=1e-3, rtol=0)


def test_configs_have_the_promised_factors():
    vae3d, frame = CausalVAE(VAE3D_CONFIG), CausalVAE(FRAME_CONFIG)
    assert (vae3d.temporal_factor, vae3d.spatial_factor, vae3d.latent_channels) == (4, 4, 8)
    assert (frame.temporal_factor, frame.spatial_factor, frame.latent_channels) == (1, 4, 4)


@pytest.mark.skipif(not os.path.isfile(SHIPPED_3D), reason="weights/vae-sprites-3d not trained yet")
def test_shipped_3d_vae_reconstructs_held_out_clips():
    vae, family = load_vae(SHIPPED_3D)
    assert family == "sprites-vae3d" and vae.temporal_factor == 4
    clips = eval_clips(2)
    assert evaluate(vae, clips)["psnr_db"] > 25.0
    with torch.no_grad():
        z = vae.latents_to_model(vae.encode(clips))
    assert 0.5 < float(z.std()) < 2.0  # what the DiT sees is ~unit variance


@pytest.mark.skipif(not os.path.isfile(SHIPPED_FRAME), reason="weights/vae-sprites-frame not trained yet")
def test_shipped_frame_vae_has_a_temporal_decoder_that_reduces_flicker():
    vae, family = load_vae(SHIPPED_FRAME)
    assert family == "sprites-frame" and vae.temporal_factor == 1 and vae.config.decoder_temporal_blocks
    image_vae = CausalVAE(replace(vae.config, decoder_temporal_blocks=False)).eval()
    missing, unexpected = image_vae.load_state_dict(vae.state_dict(), strict=False)
    assert not missing and all("temporal_blocks" in k for k in unexpected)
    clips = eval_clips(2)
    assert evaluate(vae, clips)["psnr_db"] > 25.0
    assert evaluate(vae, clips, 0.2)["flicker"] < evaluate(image_vae, clips, 0.2)["flicker"]
