"""CogVideoX transformer: equal to diffusers.CogVideoXTransformer3DModel on tiny 2B-, 5B- and 1.5-like configs."""

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from diffusers.models.embeddings import get_3d_rotary_pos_embed  # noqa: E402
from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid  # noqa: E402
from videocascade.models.cogvideox_dit import (  # noqa: E402
    COGVIDEOX_2B,
    COGVIDEOX_5B,
    CogVideoXTransformer,
    cogvideox_transformer_from_state,
    config_from_diffusers,
    looks_like_cogvideox_transformer,
)
from videocascade.runtime.checkpoints import CheckpointError  # noqa: E402

TINY = dict(
    num_attention_heads=2,
    attention_head_dim=16,
    in_channels=4,
    out_channels=4,
    time_embed_dim=16,
    text_embed_dim=24,
    num_layers=2,
    sample_width=12,
    sample_height=8,
    sample_frames=9,  # 3 latent frames
    max_text_seq_length=7,
)


def _reference(**overrides):
    torch.manual_seed(0)
    ref = diffusers.CogVideoXTransformer3DModel(**{**TINY, **overrides}).eval()
    with torch.no_grad():  # random norms and zero-init layers so every parameter matters
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return ref


def _rope(ref, frames, height, width):
    """The rotary tables as diffusers' CogVideoX pipeline builds them (outside the transformer)."""
    cfg = ref.config
    p, pt = cfg.patch_size, cfg.patch_size_t
    gh, gw = height // p, width // p
    base_w, base_h = cfg.sample_width // p, cfg.sample_height // p
    if pt is None:
        crops = get_resize_crop_region_for_grid((gh, gw), base_w, base_h)
        return get_3d_rotary_pos_embed(cfg.attention_head_dim, crops, (gh, gw), frames)
    return get_3d_rotary_pos_embed(
        cfg.attention_head_dim,
        None,
        (gh, gw),
        (frames + pt - 1) // pt,
        grid_type="slice",
        max_size=(base_h, base_w),
    )


def _compare(ref, frames, height, width, text_len=7, batch=2):
    ours = cogvideox_transformer_from_state(ref.state_dict(), dict(ref.config))
    x = torch.randn(batch, 4, frames, height, width)
    context = torch.randn(batch, text_len, 24)
    t = torch.tensor([999.0, 17.0])[:batch]
    rope = _rope(ref, frames, height, width) if ref.config.use_rotary_positional_embeddings else None
    with torch.no_grad():
        expected = ref(x.transpose(1, 2), context, t.long(), image_rotary_emb=rope, return_dict=False)[0]
        got = ours(x, t, context)
    expected = expected.transpose(1, 2)
    assert got.shape == x.shape
    assert (got - expected).abs().max().item() < 1e-4
    return ours


def test_2b_like_sincos_matches_diffusers():
    ref = _reference()
    ours = _compare(ref, 3, 8, 12)  # the trained size: diffusers uses its stored table
    _compare(ref, 2, 6, 10)  # another size: tables rebuilt on both sides
    assert not ours.config.use_rotary_positional_embeddings


def test_5b_like_rope_matches_diffusers():
    ref = _reference(use_rotary_positional_embeddings=True)
    _compare(ref, 3, 8, 12)
    _compare(ref, 2, 12, 6, text_len=5)  # taller than the base grid: the crop-region path


def test_15_like_temporal_patches_match_diffusers():
    ref = _reference(use_rotary_positional_embeddings=True, patch_size_t=2, patch_bias=False)
    _compare(ref, 4, 8, 12)
    ours = cogvideox_transformer_from_state(ref.state_dict(), dict(ref.config))
    with pytest.raises(ValueError, match="multiple of 2"):
        ours(torch.randn(1, 4, 3, 8, 12), torch.tensor([1.0]), torch.randn(1, 7, 24))


def test_context_mask_is_opt_in_and_backend_settable():
    ref = _reference(use_rotary_positional_embeddings=True)
    ours = cogvideox_transformer_from_state(ref.state_dict(), dict(ref.config))
    x, t, ctx = torch.randn(1, 4, 1, 4, 4), torch.tensor([500.0]), torch.randn(1, 7, 24)
    mask = torch.tensor([[True] * 4 + [False] * 3])
    with torch.no_grad():
        full = ours(x, t, ctx, mask)
        assert torch.equal(full, ours(x, t, ctx))  # ignored by default (trained without masks)
        ours.use_context_mask = True
        masked = ours(x, t, ctx, mask)
        assert (masked - full).abs().max() > 1e-5
        changed = ctx.clone()
        changed[:, 4:] = 100.0  # masked-out tokens no longer matter
        assert (ours(x, t, changed, mask) - masked).abs().max() < 1e-5
        ours.attention_backend = "bogus"
        with pytest.raises(ValueError, match="backend"):
            ours(x, t, ctx)


def test_config_inferred_without_config_json_and_errors():
    ref = _reference()
    state = ref.state_dict()
    assert looks_like_cogvideox_transformer(state.keys())
    assert not looks_like_cogvideox_transformer(["blocks.0.self_attn.q.weight"])
    guessed = cogvideox_transformer_from_state(state, None)
    cfg = guessed.config
    assert (cfg.num_attention_heads, cfg.attention_head_dim, cfg.num_layers) == (2, 16, 2)
    assert (cfg.in_channels, cfg.out_channels, cfg.text_embed_dim, cfg.time_embed_dim) == (4, 4, 24, 16)

    broken = dict(state)
    broken.pop("transformer_blocks.1.ff.net.2.bias")
    broken["transformer_blocks.1.extra"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"transformer_blocks\.1\.ff\.net\.2\.bias"):
        cogvideox_transformer_from_state(broken, dict(ref.config))
    with pytest.raises(CheckpointError, match="transformer_blocks.1.extra"):
        cogvideox_transformer_from_state(broken, dict(ref.config))
    gap = {k: v for k, v in state.items() if not k.startswith("transformer_blocks.0.ff.")}
    with pytest.raises(CheckpointError, match=r"missing key\(s\) \[transformer_blocks\.0\.ff\.net"):
        cogvideox_transformer_from_state(gap, None)
    with pytest.raises(CheckpointError, match="truncated"):
        cogvideox_transformer_from_state({k: v for k, v in state.items() if k != "proj_out.weight"}, None)
    with pytest.raises(CheckpointError, match="not a CogVideoX transformer"):
        cogvideox_transformer_from_state({"x": torch.zeros(1)}, None)
    with pytest.raises(CheckpointError, match="not supported"):
        config_from_diffusers({**TINY, "use_learned_positional_embeddings": True})
    ours = cogvideox_transformer_from_state(state, dict(ref.config))
    with pytest.raises(ValueError, match="width 24"):
        ours(torch.randn(1, 4, 1, 4, 4), torch.tensor([1.0]), torch.randn(1, 7, 4096))


@pytest.mark.parametrize("release", ["2b", "5b"])
def test_real_release_configs_on_meta_match_diffusers(release):
    """The real CogVideoX-2B / 5B transformer configs give diffusers' parameter names and shapes."""
    real = dict(
        activation_fn="gelu-approximate",
        attention_bias=True,
        attention_head_dim=64,
        dropout=0.0,
        flip_sin_to_cos=True,
        freq_shift=0,
        in_channels=16,
        max_text_seq_length=226,
        norm_elementwise_affine=True,
        norm_eps=1e-05,
        num_attention_heads=30 if release == "2b" else 48,
        num_layers=30 if release == "2b" else 42,
        out_channels=16,
        patch_size=2,
        sample_frames=49,
        sample_height=60,
        sample_width=90,
        spatial_interpolation_scale=1.875,
        temporal_compression_ratio=4,
        temporal_interpolation_scale=1.0,
        text_embed_dim=4096,
        time_embed_dim=512,
        timestep_activation_fn="silu",
        use_rotary_positional_embeddings=release == "5b",
    )
    with torch.device("meta"):
        ref = diffusers.CogVideoXTransformer3DModel(**real)
        ours = CogVideoXTransformer(config_from_diffusers(real))
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items() if k != "patch_embed.pos_embedding"}
    our_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert our_shapes == ref_shapes
    assert ours.config == (COGVIDEOX_2B if release == "2b" else COGVIDEOX_5B)
