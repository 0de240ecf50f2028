"""VideoDiT on tiny configs: patches, shapes, factorized attention, masks, rotary positions, errors."""

import dataclasses

import pytest
import torch
from videocascade.models.dit import DiTConfig, VideoDiT, dit_config, flow_skip_scale
from videocascade.models.embeddings import AbsolutePositionEmbedding, PatchEmbed3D, patchify, unpatchify
from videocascade.models.rope import RotaryEmbedding3D, apply_rotary, rope_split


def _randomize(model: torch.nn.Module, std: float = 0.2) -> torch.nn.Module:
    """Random weights everywhere (the default init zeroes the output layer, which would hide bugs)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith("temporal_gate"):
                p.normal_(0, std)
    return model.eval()


def _inputs(b=2, c=4, t=3, h=8, w=8, text_len=5, text_dim=24):
    return torch.randn(b, c, t, h, w), torch.tensor([10.0, 870.0])[:b], torch.randn(b, text_len, text_dim)


@pytest.mark.parametrize("patch", [(1, 2, 2), (2, 2, 2), (1, 1, 1), (2, 4, 3)])
def test_patchify_round_trip_and_conv_equivalence(patch):
    x = torch.randn(2, 5, 4, 8, 12)
    grid = (4 // patch[0], 8 // patch[1], 12 // patch[2])
    tokens = patchify(x, patch)
    assert tokens.shape == (2, grid[0] * grid[1] * grid[2], 5 * patch[0] * patch[1] * patch[2])
    assert torch.equal(unpatchify(tokens, grid, patch, 5), x)
    # Our matmul patch embedding computes exactly the Conv3d (kernel = stride = patch) it stores.
    embed = PatchEmbed3D(5, 7, patch)
    conv = embed.proj(x).flatten(2).transpose(1, 2)
    torch.testing.assert_close(embed(x), conv, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("preset", ["test-tiny", "test-tiny-factorized"])
@pytest.mark.parametrize("patch", [(1, 2, 2), (2, 2, 2)])
def test_output_shape_both_layouts(preset, patch):
    model = _randomize(VideoDiT(dit_config(preset, patch_size=patch, out_channels=6)))
    x, t, ctx = _inputs(t=4)
    with torch.no_grad():
        out = model(x, t, ctx)
    assert out.shape == (2, 6, 4, 8, 8)
    assert out.dtype == x.dtype and torch.isfinite(out).all()


def test_factorized_zero_gate_equals_per_frame_spatial_model():
    model = _randomize(VideoDiT(dit_config("test-tiny-factorized")))
    assert all(torch.count_nonzero(block.temporal_gate) == 0 for block in model.blocks)  # zero-initialised
    x, t, ctx = _inputs(t=3)
    with torch.no_grad():
        clip = model(x, t, ctx)
        frames = torch.cat([model(x[:, :, i : i + 1], t, ctx) for i in range(3)], dim=2)
        torch.testing.assert_close(clip, frames, atol=1e-5, rtol=1e-5)
        # Opening the gates couples the frames: the comparison above can fail.
        for block in model.blocks:
            block.temporal_gate.fill_(0.5)
        coupled = model(x, t, ctx)
    assert (coupled - frames).abs().max() > 1e-3


def test_spatial_and_temporal_parameter_groups_partition_the_model():
    model = VideoDiT(dit_config("test-tiny-factorized"))
    spatial, temporal = model.spatial_parameters(), model.temporal_parameters()
    assert len(spatial) + len(temporal) == len(list(model.parameters()))
    assert {id(p) for p in spatial}.isdisjoint({id(p) for p in temporal})
    names = [n for n, p in model.named_parameters() if any(p is q for q in temporal)]
    assert names and all(".temporal_" in n for n in names)
    assert VideoDiT(dit_config("test-tiny")).temporal_parameters() == []


def test_image_phase_gradients_reach_temporal_gate_only_in_temporal_branch():
    """With the gate at zero, the temporal weights get no gradient, but the gate does (so it can open)."""
    model = _randomize(VideoDiT(dit_config("test-tiny-factorized"))).train()
    x, t, ctx = _inputs(t=2)
    model(x, t, ctx).square().mean().backward()
    block = model.blocks[0]
    assert block.temporal_gate.grad.abs().sum() > 0
    assert block.temporal_attn.qkv.weight.grad.abs().sum() == 0
    assert block.self_attn.qkv.weight.grad.abs().sum() > 0


def test_context_mask_hides_padding():
    model = _randomize(VideoDiT(dit_config("test-tiny")))
    x, t, ctx = _inputs(text_len=6)
    mask = torch.tensor([[True] * 4 + [False] * 2, [True] * 6])
    changed = ctx.clone()
    changed[0, 4:] = torch.randn(2, 24) * 10  # only padded positions of sample 0
    with torch.no_grad():
        a = model(x, t, ctx, mask)
        b = model(x, t, changed, mask)
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
        # Same change without the mask is visible; and a change at a real position is visible.
        assert (model(x, t, changed) - model(x, t, ctx)).abs().max() > 1e-3
        real = ctx.clone()
        real[0, 1] += 1.0
        assert (model(x, t, real, mask) - a).abs().max() > 1e-3
        # Padding the context further (masked) changes nothing either.
        longer = torch.cat([ctx, torch.randn(2, 3, 24)], dim=1)
        longer_mask = torch.cat([mask, torch.zeros(2, 3, dtype=torch.bool)], dim=1)
        torch.testing.assert_close(model(x, t, longer, longer_mask), a, atol=1e-5, rtol=1e-5)


def test_all_true_mask_equals_no_mask_and_batch_one_context_broadcasts():
    model = _randomize(VideoDiT(dit_config("test-tiny")))
    x, t, ctx = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(model(x, t, ctx, torch.ones(2, 5, dtype=torch.bool)), model(x, t, ctx))
        one = model(x, t, ctx[:1])
        torch.testing.assert_close(one, model(x, t, ctx[:1].expand(2, -1, -1)))
        torch.testing.assert_close(model(x, torch.tensor(10.0), ctx)[0], model(x, t, ctx)[0])


def test_pooled_text_conditions_every_token_and_ignores_padding():
    config = dataclasses.replace(dit_config("test-tiny"), pooled_text=True)
    model = _randomize(VideoDiT(config))
    x, t, ctx = _inputs(text_len=6)
    mask = torch.tensor([[True] * 4 + [False] * 2, [True] * 6])
    with torch.no_grad():
        a = model(x, t, ctx, mask)
        padded = ctx.clone()
        padded[0, 4:] = 50.0  # masked tokens must not enter the pooled mean either
        torch.testing.assert_close(model(x, t, padded, mask), a, atol=1e-6, rtol=0)
        # With the cross-attention cut off, the prompt still reaches the output through the pooled path.
        for block in model.blocks:
            block.cross_attn.out.weight.zero_()
            block.cross_attn.out.bias.zero_()
        other = ctx + torch.randn_like(ctx)
        assert (model(x, t, other, mask) - model(x, t, ctx, mask)).abs().max() > 1e-3
    # The plain (Wan) model has no pooled weights, so Wan checkpoints keep loading strictly.
    assert not any(k.startswith("pooled_text") for k in VideoDiT(dit_config("test-tiny")).state_dict())
    assert any(k.startswith("pooled_text_embed.") for k in model.state_dict())


@pytest.mark.parametrize("layout", ["test-tiny", "test-tiny-factorized"])
def test_absolute_positions_tell_frames_and_places_apart(layout):
    """Rotary positions are relative: a clip of one flat colour comes out the same at every token. The
    absolute embedding is what lets a model put "the first frame" and "the left edge" somewhere else."""
    plain = _randomize(VideoDiT(dit_config(layout)))
    for block in plain.blocks:
        if block.factorized:
            torch.nn.init.normal_(block.temporal_gate, std=0.5)
    flat = torch.full((1, 4, 3, 8, 8), 0.7)
    _, t, ctx = _inputs(b=1)
    with torch.no_grad():
        out = plain(flat, t, ctx)
    tokens = patchify(out, plain.config.patch_size)  # pixels inside a patch may differ; patches may not
    torch.testing.assert_close(tokens, tokens[:, :1].expand_as(tokens), atol=1e-5, rtol=1e-5)

    placed = VideoDiT(dit_config(layout, absolute_positions=True)).eval()
    missing = placed.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["position_embed.proj.bias", "position_embed.proj.weight"]
    with torch.no_grad():
        # Zero at initialisation: adding it to a trained model changes nothing until it is trained.
        torch.testing.assert_close(placed(flat, t, ctx), out, atol=1e-6, rtol=0)
        placed.position_embed.proj.weight.normal_(0, 0.5)
        moved = placed(flat, t, ctx)
    assert (moved[:, :, 0] - moved[:, :, -1]).abs().amax() > 1e-2  # first frame != last frame
    assert (moved[..., :2] - moved[..., -2:]).abs().amax() > 1e-2  # left patch column != right one
    # Fractions of the axes: a single image and another size get embeddings too.
    with torch.no_grad():
        assert placed(torch.randn(1, 4, 1, 6, 10), t, ctx).shape == (1, 4, 1, 6, 10)
    assert "position_embed.proj.weight" not in VideoDiT(dit_config("test-tiny")).state_dict()


def test_flow_skip_scale_is_the_least_squares_velocity_from_the_input():
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(200_000, generator=g), torch.randn(200_000, generator=g)
    for s in (0.0, 0.1, 0.5, 0.8, 0.97, 1.0):
        x_s, velocity = (1 - s) * x0 + s * noise, noise - x0
        fitted = (x_s * velocity).mean() / x_s.square().mean()
        assert abs(fitted - flow_skip_scale(torch.tensor(s))) < 0.01, s
    torch.testing.assert_close(flow_skip_scale(torch.tensor([0.0, 0.5, 1.0])), torch.tensor([-1.0, 0.0, 1.0]))


@pytest.mark.parametrize("layout", ["test-tiny", "test-tiny-factorized"])
def test_flow_skip_adds_the_linear_prediction_to_what_the_blocks_say(layout):
    x, _, ctx = _inputs()
    timestep = torch.tensor([1000.0, 250.0])
    plain = _randomize(VideoDiT(dit_config(layout)))
    skip = VideoDiT(dit_config(layout, flow_skip=True))
    skip.load_state_dict(plain.state_dict())  # no weights of its own
    with torch.no_grad():
        added = skip(x, timestep, ctx) - plain(x, timestep, ctx)
        torch.testing.assert_close(added[0], x[0], atol=1e-5, rtol=1e-5)  # pure noise: the input itself
        torch.testing.assert_close(added[1], flow_skip_scale(torch.tensor(0.25)) * x[1], atol=1e-5, rtol=1e-5)
        # At initialisation the blocks add nothing: the model starts as the best linear predictor.
        fresh = VideoDiT(dit_config(layout, flow_skip=True))
        torch.testing.assert_close(fresh(x, timestep, ctx), added, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="flow_skip adds the input to the output"):
        dit_config(layout, flow_skip=True, out_channels=8)


def test_batch_items_are_independent():
    model = _randomize(VideoDiT(dit_config("test-tiny-factorized")))
    for block in model.blocks:
        torch.nn.init.normal_(block.temporal_gate, std=0.5)
    x, t, ctx = _inputs()
    with torch.no_grad():
        both = model(x, t, ctx)
        second = model(x[1:], t[1:], ctx[1:])
    torch.testing.assert_close(both[1:], second, atol=1e-5, rtol=1e-5)


def test_rope_relative_position_property():
    rope = RotaryEmbedding3D(head_dim=24)
    grid = (4, 5, 6)
    table = rope(grid, "thw", torch.device("cpu"))
    assert table.shape == (4 * 5 * 6, 12)

    def index(t, h, w):
        return (t * grid[1] + h) * grid[2] + w

    q, k = torch.randn(1, 1, 24, dtype=torch.float64).float(), torch.randn(1, 1, 24)
    rot = lambda v, pos: apply_rotary(v, table[index(*pos)][None])  # noqa: E731
    score = lambda a, b: (rot(q, a) * rot(k, b)).sum()  # noqa: E731
    base = score((0, 1, 2), (2, 3, 1))
    for shift in [(1, 0, 0), (0, 1, 3), (1, 1, 1)]:
        a = tuple(p + s for p, s in zip((0, 1, 2), shift))
        b = tuple(p + s for p, s in zip((2, 3, 1), shift))
        torch.testing.assert_close(score(a, b), base, atol=1e-5, rtol=1e-5)
    assert abs(score((0, 1, 2), (3, 3, 1)) - base) > 1e-4  # a different offset gives a different score
    # Rotation keeps norms; the spatial table leaves the time channels alone; the temporal one the space ones.
    v = torch.randn(120, 1, 24)
    rotated = apply_rotary(v, table)  # heads-first out: [1, 120, 24]
    torch.testing.assert_close(rotated[0].norm(dim=-1), v[:, 0].norm(dim=-1))
    t_dim = rope_split(24)[0]
    spatial = rope(grid, "hw", torch.device("cpu"))
    temporal = rope(grid, "t", torch.device("cpu"))
    assert spatial.shape == (30, 12) and temporal.shape == (4, 12)
    assert torch.all(spatial[:, : t_dim // 2] == 1) and torch.all(temporal[:, t_dim // 2 :] == 1)
    assert rope(grid, "thw", torch.device("cpu")) is table  # cached


def test_rope_split_matches_wan():
    assert rope_split(128) == (44, 42, 42)
    assert rope_split(16) == (8, 4, 4)


@pytest.mark.parametrize(
    "shape, message",
    [
        ((2, 4, 3, 7, 8), "height H=7 is not divisible"),
        ((2, 4, 3, 8, 9), "width W=9 is not divisible"),
        ((2, 5, 3, 8, 8), "expects 4 latent channels"),
        ((2, 4, 8, 8), r"must be \[B, C, T, H, W\]"),
    ],
)
def test_bad_input_shapes_raise_clear_errors(shape, message):
    model = VideoDiT(dit_config("test-tiny"))
    with pytest.raises(ValueError, match=message):
        model(torch.randn(*shape), torch.tensor([1.0, 2.0]), torch.randn(2, 5, 24))


def test_bad_frames_context_timestep_and_mask_raise_clear_errors():
    model = VideoDiT(dit_config("test-tiny", patch_size=(2, 2, 2)))
    x, t, ctx = _inputs(t=4)
    with pytest.raises(ValueError, match="frames T=3 is not divisible"):
        model(torch.randn(2, 4, 3, 8, 8), t, ctx)
    with pytest.raises(ValueError, match=r"text context must be \[B, L, 24\]"):
        model(x, t, torch.randn(2, 5, 16))
    with pytest.raises(ValueError, match="timestep must be"):
        model(x, torch.tensor([1.0, 2.0, 3.0]), ctx)
    with pytest.raises(ValueError, match="context_mask must be"):
        model(x, t, ctx, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="no True entry"):
        model(x, t, ctx, torch.tensor([[True] * 5, [False] * 5]))


def test_config_validation_and_presets():
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        DiTConfig(hidden_size=30, num_heads=4)
    with pytest.raises(ValueError, match="attention_layout"):
        DiTConfig(attention_layout="sparse")
    with pytest.raises(KeyError, match="known presets"):
        dit_config("nope")
    assert dit_config("wan2.1-t2v-14B").head_dim == 128
    assert dataclasses.replace(dit_config("sprites-s"), in_channels=8).in_channels == 8


def test_bf16_forward_is_close_to_fp32():
    model = _randomize(VideoDiT(dit_config("test-tiny")), std=0.1)
    x, t, ctx = _inputs()
    with torch.no_grad():
        ref = model(x, t, ctx)
        out = model.to(torch.bfloat16)(x, t, ctx)
    assert out.dtype == torch.float32  # returned in the input's dtype
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()


def test_gradient_checkpointing_gives_same_gradients():
    model = _randomize(VideoDiT(dit_config("test-tiny")), std=0.1).train()
    x, t, ctx = _inputs()
    model(x, t, ctx).square().mean().backward()
    ref = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.gradient_checkpointing = True
    model(x, t, ctx).square().mean().backward()
    for a, b in zip(ref, (p.grad for p in model.parameters())):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_inference_path_equals_autograd_path():
    """Without autograd the blocks update temporaries in place and reuse buffers; same numbers either way."""
    for preset in ("test-tiny", "test-tiny-factorized"):
        model = _randomize(VideoDiT(dit_config(preset)))
        for block in model.blocks:
            if hasattr(block, "temporal_gate"):
                torch.nn.init.normal_(block.temporal_gate, std=0.5)
        x, t, ctx = _inputs(t=2)
        mask = torch.tensor([[True] * 3 + [False] * 2, [True] * 5])
        recorded = model(x, t, ctx, mask)
        with torch.no_grad():
            first = model(x, t, ctx, mask)
            second = model(x, t, ctx, mask)  # buffers and caches reused across calls
        torch.testing.assert_close(first, recorded.detach(), atol=1e-5, rtol=1e-5)
        assert torch.equal(first, second)


@pytest.mark.gpu
def test_cuda_forward_matches_cpu_in_fp32_and_bf16():
    model = _randomize(VideoDiT(dit_config("test-tiny", num_heads=1)), std=0.1)  # head_dim 32
    x, t, ctx = _inputs()
    mask = torch.tensor([[True] * 3 + [False] * 2, [True] * 5])
    with torch.no_grad():
        reference = model(x, t, ctx, mask)
        cuda = model.to("cuda")
        inputs = [v.cuda() for v in (x, t, ctx, mask)]
        fp32 = cuda(*inputs).cpu()
        bf16 = cuda.to(torch.bfloat16)(*inputs).cpu()
    assert (fp32 - reference).abs().max() < 1e-3
    assert bf16.dtype == torch.float32 and (bf16 - reference).abs().max() < 0.05 * reference.abs().max()


def test_position_pairs_let_one_linear_map_draw_a_moving_object():
    """An object moving up is a band in (frame, row) space: per-axis Fourier features can only add a
    function of the frame to a function of the row, so no linear map of them draws it; the pair features
    can. That is the point of ``position_pairs`` (the blocks otherwise have to learn the product)."""
    grid = (17, 16, 16)  # more (frame, row) places than features: a fit, not an interpolation
    t, h, _ = torch.meshgrid(*[(torch.arange(n) + 0.5) / n for n in grid], indexing="ij")
    moving_up = torch.exp(-(((h - (0.8 - 0.6 * t)) / 0.15) ** 2)).flatten()

    def residual(pairs: bool) -> float:
        features = AbsolutePositionEmbedding(8, pairs=pairs).features(grid, torch.device("cpu"))
        design = torch.cat([features, torch.ones(len(features), 1)], dim=1).double()
        fit = torch.linalg.lstsq(design, moving_up.double().unsqueeze(1), driver="gelsd").solution
        return float((design @ fit).squeeze(1).sub(moving_up).square().mean() / moving_up.var())

    assert residual(pairs=False) > 0.3
    assert residual(pairs=True) < 0.05
    # The pairs come after the per-axis features, so those keep their place in the projection.
    plain = AbsolutePositionEmbedding(8).features(grid, torch.device("cpu"))
    paired = AbsolutePositionEmbedding(8, pairs=True).features(grid, torch.device("cpu"))
    torch.testing.assert_close(paired[:, : plain.shape[1]], plain)
    assert paired.shape[1] == plain.shape[1] + 3 * 2 * 2 * 4**2


def test_position_radial_lets_one_linear_map_tell_growing_from_shrinking():
    """Growing against shrinking in place is a disc whose radius rises or falls with the frame: a function
    of (frame, distance from the centre). The pair features leave a quarter of that difference unfit; the
    radial features draw it. That is the point of ``position_radial``."""
    grid = (17, 16, 16)
    t, h, w = torch.meshgrid(*[(torch.arange(n) + 0.5) / n for n in grid], indexing="ij")
    r = ((h - 0.5) ** 2 + (w - 0.5) ** 2).sqrt()

    def disc(radius: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid((radius - r) / 0.03)

    grow_minus_shrink = (disc(0.12 + 0.2 * t) - disc(0.32 - 0.2 * t)).flatten()

    def residual(radial: bool) -> float:
        embedding = AbsolutePositionEmbedding(8, pairs=True, radial=radial)
        features = embedding.features(grid, torch.device("cpu"))
        design = torch.cat([features, torch.ones(len(features), 1)], dim=1).double()
        fit = torch.linalg.lstsq(design, grow_minus_shrink.double().unsqueeze(1), driver="gelsd").solution
        return float(
            (design @ fit).squeeze(1).sub(grow_minus_shrink).square().mean() / grow_minus_shrink.var()
        )

    assert residual(radial=False) > 0.2
    assert residual(radial=True) < 0.01
    # The radial features come last, so a checkpoint without them keeps its projection's layout.
    paired = AbsolutePositionEmbedding(8, pairs=True).features(grid, torch.device("cpu"))
    radial = AbsolutePositionEmbedding(8, pairs=True, radial=True).features(grid, torch.device("cpu"))
    torch.testing.assert_close(radial[:, : paired.shape[1]], paired)
    assert radial.shape[1] == paired.shape[1] + 2 * 4 + 2 * 2 * 4**2


def test_position_radial_needs_absolute_positions():
    with pytest.raises(ValueError, match="position_radial adds to the absolute position embedding"):
        dit_config("test-tiny", position_radial=True)
    model = VideoDiT(dit_config("test-tiny", absolute_positions=True, position_radial=True))
    assert model.position_embed.proj.in_features == 24 + 8 + 64
    _, t, ctx = _inputs(b=1)
    with torch.no_grad():
        assert model(torch.randn(1, 4, 3, 8, 8), t, ctx).shape == (1, 4, 3, 8, 8)


def test_position_pairs_need_absolute_positions():
    with pytest.raises(ValueError, match="set absolute_positions too"):
        dit_config("test-tiny", position_pairs=True)
    model = VideoDiT(dit_config("test-tiny", absolute_positions=True, position_pairs=True))
    assert model.position_embed.proj.in_features == 24 + 192
    _, t, ctx = _inputs(b=1)
    with torch.no_grad():
        assert model(torch.randn(1, 4, 3, 8, 8), t, ctx).shape == (1, 4, 3, 8, 8)
