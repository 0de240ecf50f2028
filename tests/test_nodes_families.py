"""Real-family paths of the nodes on tiny files: umT5 text (Wan padding), a Wan-layout DiT, T5 (CogVideoX)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("sentencepiece")

import test_nodes_fixtures as fx  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from videocascade.models.t5 import T5Encoder, T5EncoderConfig  # noqa: E402
from videocascade.runtime.latents import FORMAT_KEY  # noqa: E402
from videocascade.runtime.loaders import sampler_preset  # noqa: E402

NODES = fx.NODES


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("families")


@pytest.fixture(scope="module")
def spm_model(folder):
    return fx.train_spm(folder)


@pytest.fixture(scope="module")
def wan(folder, spm_model):
    paths = fx.wan_models(folder, spm_model)
    return {kind: fx.load(kind, path) for kind, path in paths.items()}


def run(node_id, *args, **kwargs):
    node = NODES[node_id]()
    return getattr(node, node.FUNCTION)(*args, **kwargs)


def test_umt5_file_is_wan_text_with_embedded_tokenizer_and_zero_padding(wan):
    encoder = wan["text_encoder"]
    assert encoder.family == "wan2.1" and encoder.options["prompts"]["max_length"] == 512
    ((emb, extras),) = run("VCTextEncode", encoder, "a  red circle &amp; a blue square")[0]
    mask = extras["attention_mask"]
    assert emb.shape == (1, 512, 16) and mask.shape == (1, 512)
    tokens = int(mask.sum())
    _, cleaned = encoder.options["tokenizer"](["a red circle & a blue square"], 512)  # Wan's prompt cleaning
    assert tokens == int(cleaned.sum()) and mask[0, :tokens].all()
    assert emb[0, tokens:].abs().max() == 0 and emb[0, :tokens].abs().min() > 0  # Wan zeroes the padding


def test_wan_dit_runs_the_wan_preset_on_wan_latents(wan):
    dit = wan["dit"]
    assert dit.family == "wan2.1" and dit.options["latent_format"] == "wan2.1"
    assert dit.options["use_context_mask"] is False  # Wan attends to its zero padding
    preset = sampler_preset(dit, 60, 104)  # 480x832
    assert preset.solver == "unipc" and preset.prediction.shift == 3.0
    assert sampler_preset(dit, 90, 160).prediction.shift == 5.0  # 720p
    latent = run("VCEmptyVideoLatent", wan["vae"], 32, 32, 5, 1)[0]
    assert latent["samples"].shape == (1, 16, 2, 8, 8) and latent[FORMAT_KEY] == "wan2.1"
    pos = run("VCTextEncode", wan["text_encoder"], "a red circle")[0]
    neg = run("VCTextEncode", wan["text_encoder"], "")[0]
    # 8x8 latents, patch 2: 16 tokens a frame.
    out = run("VCDiTSampler", dit, pos, neg, latent, 3, 3, 5.0, "default", "default", 0.0, 1.0)[0]
    assert out["samples"].shape == latent["samples"].shape and torch.isfinite(out["samples"]).all()
    frames = run("VCVAEDecode", wan["vae"], out, 1, 0, 16)[0]
    assert frames.shape == (5, 32, 32, 3)


def test_mismatched_encoder_and_latents_name_the_fix(wan, tmp_path):
    own = {kind: fx.load(kind, path) for kind, path in fx.own_models(tmp_path).items()}
    sprites_text = run("VCTextEncode", own["text_encoder"], "a red circle")[0]
    latent = run("VCEmptyVideoLatent", wan["vae"], 32, 32, 5, 1)[0]
    with pytest.raises(
        ValueError, match="width 32, but this wan2.1 DiT takes text of width 16: use the umT5-XXL"
    ):
        run("VCDiTSampler", wan["dit"], sprites_text, sprites_text, latent, 0, 2, 5.0, "default", "default",
            0.0, 1.0)  # fmt: skip
    own_latent = run("VCEmptyVideoLatent", own["vae"], 32, 32, 5, 1)[0]
    wan_text = run("VCTextEncode", wan["text_encoder"], "a red circle")[0]
    with pytest.raises(ValueError, match="'test-t4' format but this DiT expects 'wan2.1'"):
        run(
            "VCDiTSampler",
            wan["dit"],
            wan_text,
            wan_text,
            own_latent,
            0,
            2,
            5.0,
            "default",
            "default",
            0.0,
            1.0,
        )
    with pytest.raises(
        ValueError, match="width 16, but this test-t4 DiT takes text of width 32: use the text"
    ):
        run(
            "VCDiTSampler",
            own["dit"],
            wan_text,
            wan_text,
            own_latent,
            0,
            2,
            5.0,
            "default",
            "default",
            0.0,
            1.0,
        )


def test_t5_file_is_cogvideox_text_with_a_given_tokenizer(folder, spm_model, tmp_path):
    t5 = fx._perturbed(T5Encoder(T5EncoderConfig(vocab_size=64, d_model=16, d_kv=8, d_ff=32, num_layers=2,
                                                 num_heads=2)), 6)  # fmt: skip
    weights = tmp_path / "t5xxl_tiny.safetensors"
    save_file({k: v.contiguous() for k, v in t5.state_dict().items()}, str(weights))
    tokenizer = tmp_path / "spiece.model"
    tokenizer.write_bytes(spm_model)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    moved = outside / weights.name
    weights.rename(moved)
    with pytest.raises(FileNotFoundError, match="no tokenizer found for the T5 .*Set the 'tokenizer' input"):
        fx.load("text_encoder", str(moved))
    encoder = fx.load("text_encoder", str(moved), tokenizer=str(tokenizer))
    assert encoder.family == "cogvideox" and encoder.options["prompts"]["max_length"] == 226
    ((emb, extras),) = run("VCTextEncode", encoder, "a blue square grows")[0]
    tokens = int(extras["attention_mask"].sum())
    assert emb.shape == (1, 226, 16) and 0 < tokens < 40
    assert emb[0, tokens:].abs().max() > 0  # CogVideoX keeps the padding's embeddings
    # A tokenizer next to the weights is found without the input.
    (outside / "spiece.model").write_bytes(spm_model)
    assert fx.load("text_encoder", str(moved)).options["tokenizer"] is not None
