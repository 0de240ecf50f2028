"""Node classes: conventions, the text-to-video chain on tiny real checkpoints, and the errors users can hit."""

from __future__ import annotations

import pytest
import test_nodes_fixtures as fx
import torch
from safetensors.torch import save_file
from videocascade.nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, STAGE_IMPORT_ERRORS
from videocascade.nodes.base import node_class_problems
from videocascade.runtime.latents import FORMAT_KEY, FRAMES_KEY, seeded_noise
from videocascade.runtime.loaders import PATH_CHOICE, sampler_preset
from videocascade.samplers import sample
from videocascade.vae import decode_video

NODES = NODE_CLASS_MAPPINGS
EXPECTED_IDS = {
    "VCTextEncoderLoader", "VCTextEncode", "VCVAELoader", "VCVAEEncode", "VCVAEDecode", "VCDiTLoader",
    "VCEmptyVideoLatent", "VCDiTSampler", "VCTemporalInterpolate", "VCSpatialUpscale", "VCLoadVideo",
    "VCSaveVideo", "VCPreviewVideo", "VCSpritesClip",
}  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    paths = fx.own_models(tmp_path_factory.mktemp("models"))
    return {kind: fx.load(kind, path) for kind, path in paths.items()}


def run(node_id, *args, **kwargs):
    node = NODES[node_id]()
    return getattr(node, node.FUNCTION)(*args, **kwargs)


def encode(models, text):
    return run("VCTextEncode", models["text_encoder"], text)[0]


def sample_node(models, latent, seed=7, steps=3, cfg=3.0, solver="default", denoise=1.0, shift=0.0):
    pos, neg = encode(models, "a red circle moving left"), encode(models, "")
    return run(
        "VCDiTSampler", models["dit"], pos, neg, latent, seed, steps, cfg, solver, "default", shift, denoise
    )[0]


def empty(models, width=32, height=32, frames=9, batch=1):
    return run("VCEmptyVideoLatent", models["vae"], width, height, frames, batch)[0]


# -- conventions ------------------------------------------------------------------------------------------------
def test_every_stage_imports_and_every_node_follows_the_conventions():
    assert STAGE_IMPORT_ERRORS == {}
    assert EXPECTED_IDS <= set(NODES)
    for node_id, node_class in NODES.items():
        assert node_class_problems(node_id, node_class) == [], node_id
        assert node_class.DESCRIPTION and NODE_DISPLAY_NAME_MAPPINGS[node_id].startswith("VC ")


# -- the chain ----------------------------------------------------------------------------------------------------
def test_loaders_attach_family_format_and_sampler_preset(models):
    assert models["vae"].family == fx.FAMILY and models["vae"].kind == "vae"
    dit = models["dit"]
    assert dit.options["latent_format"] == fx.FAMILY and dit.options["text_dim"] == fx.TEXT_DIM
    assert dit.model.attention_backend == "auto" and not dit.model.training
    preset = sampler_preset(dit, 8, 8)
    assert preset.prediction.kind == "flow" and preset.solver == "euler"
    cond = encode(models, "a blue square")
    (emb, extras), = cond  # fmt: skip
    assert emb.shape == (1, 32, fx.TEXT_DIM) and extras["attention_mask"].dtype == torch.bool
    assert extras["attention_mask"].sum() == len("a blue square") + 2  # bytes + BOS + EOS


@pytest.mark.parametrize("frames, latent_frames", [(9, 3), (12, 3), (13, 4), (1, 1)])
def test_empty_latent_shape_rounds_frames_down(models, frames, latent_frames):
    latent = empty(models, 48, 32, frames, 2)
    assert latent["samples"].shape == (2, 4, latent_frames, 8, 12)
    assert latent[FORMAT_KEY] == fx.FAMILY and not latent["samples"].any()


def library_sample(models, x, seed, steps, denoise=1.0):
    """What the sampler node should compute, written against the library: CPU noise from the seed,
    the prompts of sample_node(), the DiT's preset with the euler solver."""
    dit = models["dit"]
    pos, neg = (encode(models, p)[0] for p in ("a red circle moving left", ""))
    cond = {"context": pos[0], "mask": pos[1]["attention_mask"]}
    uncond = {"context": neg[0], "mask": neg[1]["attention_mask"]}
    device = next(dit.model.parameters()).device

    def model_fn(x, t, c):
        return dit.model(x, t, c["context"].to(device), c["mask"].to(device)).float()

    prediction = sampler_preset(dit, 8, 8).prediction
    return sample(model_fn, prediction, seeded_noise(x.shape, seed).to(device), steps=steps, solver="euler",
                  cfg=3.0, cond=cond, uncond=uncond, denoise=denoise, latent=x.to(device), progress=False)  # fmt: skip


def test_text_to_video_chain_is_seeded_like_comfyui(models):
    latent = empty(models)
    out = sample_node(models, latent, seed=7)
    assert out["samples"].shape == latent["samples"].shape and out[FORMAT_KEY] == fx.FAMILY
    assert torch.equal(out["samples"], sample_node(models, latent, seed=7)["samples"])
    assert not torch.allclose(out["samples"], sample_node(models, latent, seed=8)["samples"])
    expected = library_sample(models, latent["samples"], seed=7, steps=3)
    torch.testing.assert_close(out["samples"], expected, rtol=1e-4, atol=1e-5)
    frames = run("VCVAEDecode", models["vae"], out, 2, 0, 16)[0]
    assert frames.shape == (9, 32, 32, 3) and 0.0 <= frames.min() and frames.max() <= 1.0
    assert frames.std() > 0.01


def test_denoise_follows_ksampler_semantics(models):
    frames = run("VCVAEDecode", models["vae"], sample_node(models, empty(models)), 2, 0, 16)[0]
    latent = run("VCVAEEncode", models["vae"], frames, 4)[0]
    assert latent[FRAMES_KEY] == 9
    # steps=2 at denoise 0.5: the last 2 steps of a 4-step schedule (the library's denoise keeps 2 of 4).
    x = latent["samples"]
    expected = library_sample(models, x, seed=7, steps=4, denoise=0.5)
    out = sample_node(models, latent, steps=2, denoise=0.5, solver="euler")
    torch.testing.assert_close(out["samples"], expected, rtol=1e-4, atol=1e-5)
    assert out[FRAMES_KEY] == 9  # other keys of the latent travel on
    assert torch.equal(sample_node(models, latent, denoise=0.0)["samples"], x)


@pytest.mark.gpu
def test_same_seed_gives_the_same_video_on_the_gpu_as_on_the_cpu(tmp_path):
    paths = fx.own_models(tmp_path)
    models = {kind: fx.load(kind, path, dtype="fp32") for kind, path in paths.items()}
    latent = empty(models)
    on_gpu = sample_node(models, latent, seed=3, solver="euler")["samples"]  # the nodes run on CUDA
    assert next(models["dit"].model.parameters()).device.type == "cpu"  # offloaded after use
    on_cpu = library_sample(models, latent["samples"], seed=3, steps=3)
    torch.testing.assert_close(on_gpu, on_cpu, rtol=1e-3, atol=1e-3)
    frames = run("VCVAEDecode", models["vae"], {**latent, "samples": on_gpu}, 2, 32, 16)[0]
    assert frames.device.type == "cpu" and frames.shape == (9, 32, 32, 3)
    auto = fx.load("dit", paths["dit"])
    assert auto.dtype == torch.bfloat16 and next(auto.model.parameters()).dtype == torch.bfloat16


def test_vae_encode_pads_and_decode_trims_and_tiles(models):
    frames = torch.rand(7, 32, 40, 3)
    latent = run("VCVAEEncode", models["vae"], frames, 3)[0]
    assert latent["samples"].shape == (1, 4, 3, 8, 10)  # 7 frames padded to 9 = 1 + 2*4
    decoded = run("VCVAEDecode", models["vae"], latent, 1, 0, 16)[0]
    assert decoded.shape == (7, 32, 40, 3)
    tiled = run("VCVAEDecode", models["vae"], latent, 1, 24, 8)[0]
    vae = models["vae"].model
    video = decode_video(vae, vae.latents_from_model(latent["samples"]), 1, (24, 24), 8)[:, :, :7]
    torch.testing.assert_close(tiled, (video[0].permute(1, 2, 3, 0) * 0.5 + 0.5).clamp(0, 1))
    assert not torch.allclose(tiled, decoded)


# -- errors -------------------------------------------------------------------------------------------------------
def test_latent_of_another_family_is_refused_by_decoder_and_sampler(models, tmp_path):
    foreign = {"samples": torch.zeros(1, 4, 3, 8, 8), FORMAT_KEY: "wan2.1"}
    with pytest.raises(ValueError, match="'wan2.1' format but this test-t4 VAE expects 'test-t4'"):
        run("VCVAEDecode", models["vae"], foreign, 2, 0, 16)
    with pytest.raises(ValueError, match="'wan2.1' format but this DiT expects 'test-t4'.*test-t4 VAE"):
        sample_node(models, foreign)
    untagged = {"samples": torch.zeros(1, 16, 3, 8, 8)}  # e.g. from a core ComfyUI node
    with pytest.raises(ValueError, match="16 channels but this DiT .* expects 4"):
        sample_node(models, untagged)
    with pytest.raises(ValueError, match="image latent"):
        sample_node(models, {"samples": torch.zeros(1, 4, 8, 8)})


def test_conditioning_width_mismatch_names_both_widths(models, tmp_path):
    wide = [[torch.zeros(1, 8, 48), {}]]
    with pytest.raises(ValueError, match="'positive' conditioning has embeddings of width 48.*width 32"):
        run("VCDiTSampler", models["dit"], wide, encode(models, ""), empty(models), 0, 2, 3.0, "default",
            "default", 0.0, 1.0)  # fmt: skip


def test_bad_sizes_are_clear_errors(models):
    with pytest.raises(ValueError, match="multiples of the test-t4 VAE's spatial factor 4; use 32x32"):
        empty(models, width=34, height=32)
    with pytest.raises(ValueError, match="tile_size"):
        run("VCVAEDecode", models["vae"], empty(models), 2, 16, 16)
    with pytest.raises(ValueError, match="not divisible by the patch size"):
        sample_node(models, empty(models, width=36, height=32))


def test_missing_files_say_where_they_were_looked_for(tmp_path):
    with pytest.raises(FileNotFoundError, match="looked in: .*nope.safetensors"):
        run("VCVAELoader", "nope.safetensors", "auto")
    with pytest.raises(FileNotFoundError, match="check the 'path' input"):
        run("VCDiTLoader", PATH_CHOICE, "auto", "auto", path=str(tmp_path / "missing.safetensors"))
    with pytest.raises(ValueError, match="pick a file in the dropdown or type a file/folder path"):
        run("VCTextEncoderLoader", PATH_CHOICE, "auto")


def test_wrong_kind_of_file_is_refused(tmp_path, models):
    paths = fx.own_models(tmp_path)
    with pytest.raises(Exception, match="'dit'.*not a text encoder"):
        fx.load("text_encoder", paths["dit"])
    with pytest.raises(Exception, match="'vae' checkpoint, but a 'dit' was expected"):
        fx.load("dit", paths["vae"])
    plain = tmp_path / "plain.safetensors"
    save_file({"encoder.conv_in.weight": torch.zeros(2, 2)}, str(plain))
    with pytest.raises(Exception, match="not a text encoder this pack knows: expected a VideoCascade text"):
        fx.load("text_encoder", str(plain))
